"""The cluster key: the shared secret every actor system of one cluster holds.

Every frame between actor systems is signed with this key
(``actorsys.transport_security``), so only a process that holds it can make
another one deserialize anything. It is 32 random bytes, stored as 64
lowercase hex characters (one trailing newline allowed) in a file only its
owner may read, and the same file is copied to every host. The leader creates
it on first start; a member that lacks it is refused with a one-line fix.

``ACTORSYS_CLUSTER_KEY`` (the same 64 hex characters) wins over the file, for
hosts that keep secrets in their service manager rather than on disk.

Every error is a one-line ``ConfigError`` that names the file and says what
to do; none ever shows the key, or what a malformed file holds.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import re
import secrets
import stat
from collections.abc import Mapping
from pathlib import Path
from typing import Final

from actorsys.errors import ConfigError

KEY_ENV: Final = "ACTORSYS_CLUSTER_KEY"
KEY_BYTES: Final = 32
FILE_MODE: Final = 0o600
DIR_MODE: Final = 0o700
# The path the fix-it message tells members to copy from (the packaged default).
LEADER_KEY_PATH: Final = "/var/lib/actorsys/cluster.key"

_HEX_KEY = re.compile(r"[0-9a-f]{64}")
# A valid file is 64 or 65 bytes; reading a little more tells "too long" apart.
_READ_LIMIT = 2 * KEY_BYTES + 8

log = logging.getLogger(__name__)


def generate_key() -> bytes:
    """A fresh key from the operating system's CSPRNG."""
    return secrets.token_bytes(KEY_BYTES)


def format_key(key: bytes) -> str:
    """The key as stored: 64 lowercase hex characters and a newline."""
    if len(key) != KEY_BYTES:
        raise ValueError(f"a cluster key is {KEY_BYTES} bytes, got {len(key)}")
    return key.hex() + "\n"


def load_key(path: str | Path, *, create: bool, env: Mapping[str, str] = os.environ) -> bytes:
    """This host's cluster key: ``$ACTORSYS_CLUSTER_KEY`` when set, else the file.

    ``create`` is for the leader: a missing file is then generated (mode 0600,
    never overwriting one that appeared meanwhile). A member passes False, so a
    missing key is a clear error instead of a fresh key no peer would accept.
    """
    value = env.get(KEY_ENV)
    if value is not None:
        return _parse(value, f"${KEY_ENV}", f"set {KEY_ENV} to the leader's 64 hex characters")
    key_path = Path(path)
    try:
        return _read_file(key_path)
    except FileNotFoundError:
        if not create:
            raise ConfigError(_missing_message(key_path)) from None
    return _create(key_path)


def _missing_message(path: Path) -> str:
    return (
        f"cluster key {path} not found: copy the leader's key file to {path} with mode 0600 "
        f"(e.g. scp leader:{LEADER_KEY_PATH} {path} && chmod 600 {path}) or set {KEY_ENV}"
    )


def _parse(text: str, source: str, fix: str) -> bytes:
    """Decode 64 lowercase hex characters; the message never echoes ``text``."""
    body = text.removesuffix("\n")
    if not _HEX_KEY.fullmatch(body):
        raise ConfigError(
            f"cluster key {source} is not {2 * KEY_BYTES} lowercase hex characters "
            f"({KEY_BYTES} bytes): {fix}"
        )
    return bytes.fromhex(body)


def _read_file(path: Path) -> bytes:
    """Read and check the key file; the mode is checked on the open descriptor,
    so the file judged is the file read."""
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_CLOEXEC", 0))
    except FileNotFoundError:
        raise
    except OSError as exc:
        raise ConfigError(f"cannot read cluster key {path}: {_reason(exc)}") from None
    try:
        _check_mode(path, os.fstat(fd))
        raw = _read_some(fd, path)
    finally:
        os.close(fd)
    try:
        text = raw.decode("ascii")
    except UnicodeDecodeError:
        text = ""
    return _parse(text, str(path), "copy the leader's key file again")


def _read_some(fd: int, path: Path) -> bytes:
    try:
        return os.read(fd, _READ_LIMIT)
    except OSError as exc:
        raise ConfigError(f"cannot read cluster key {path}: {_reason(exc)}") from None


def _check_mode(path: Path, st: os.stat_result) -> None:
    if not stat.S_ISREG(st.st_mode):
        raise ConfigError(f"cluster key {path} is not a regular file")
    if st.st_mode & 0o077:
        mode = stat.S_IMODE(st.st_mode)
        raise ConfigError(
            f"cluster key {path} is open to group or others (mode {mode:04o}); "
            f"run: chmod 600 {path}"
        )


def _create(path: Path) -> bytes:
    """Write a new key with O_EXCL: if another process won the race, use its key."""
    _make_parents(path.parent)
    key = generate_key()
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0)
    try:
        fd = os.open(path, flags, FILE_MODE)
    except FileExistsError:
        return _read_file(path)
    except OSError as exc:
        raise ConfigError(f"cannot create cluster key {path}: {_reason(exc)}") from None
    try:
        os.fchmod(fd, FILE_MODE)  # whatever the umask
        os.write(fd, format_key(key).encode("ascii"))
        os.fsync(fd)
    except OSError as exc:
        os.close(fd)
        _discard(path)
        raise ConfigError(f"cannot write cluster key {path}: {_reason(exc)}") from None
    os.close(fd)
    log.info("created cluster key %s", path)
    return key


def _make_parents(directory: Path) -> None:
    """Create missing directories one level at a time, each mode 0700
    (``Path.mkdir(parents=True)`` would give the intermediate ones the umask)."""
    missing: list[Path] = []
    current = directory
    while not current.exists() and current != current.parent:
        missing.append(current)
        current = current.parent
    for each in reversed(missing):
        try:
            each.mkdir(mode=DIR_MODE)
            os.chmod(each, DIR_MODE)  # whatever the umask
        except FileExistsError:
            continue
        except OSError as exc:
            raise ConfigError(f"cannot create directory {each}: {_reason(exc)}") from None


def _discard(path: Path) -> None:
    with contextlib.suppress(OSError):
        path.unlink()


def _reason(exc: OSError) -> str:
    if exc.errno is not None and exc.strerror:
        return exc.strerror.lower()
    return errno.errorcode.get(exc.errno or 0, type(exc).__name__)
