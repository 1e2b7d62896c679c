"""Authenticated frames and a bind address for Thespian's TCP transport.

Why
---
Thespian's ``multiprocTCPBase`` gives every actor, and the admin, a TCP
listener bound to all interfaces, and hands every frame it receives to
``pickle.loads`` before any check. Anyone who can reach one of those ports
can therefore run code as the daemon's user: a pickle is a program. The
length header is not capped either: a frame announcing 100 GB is buffered
until memory runs out. This module closes both holes, in this process and
in every process forked from it afterwards (Thespian forks the admin and
each actor), so the daemon calls :func:`install` before it creates its
``ActorSystem``.

Frame format
------------
Thespian's framing is kept (``<len>>`` then ``len`` bytes of body); only the
body changes::

    <len>>  HMAC-SHA256(cluster key, payload) (32 bytes)  payload = pickle.dumps(obj)

``len`` counts the MAC and the payload, is ASCII digits only, ends with
``>`` within the first 20 bytes, and is at most ``max_frame_bytes``. The MAC
is checked with :func:`hmac.compare_digest` on the complete body before a
single byte is unpickled. Frames go both ways: Thespian's ACK and
ACK+DATAERR replies are signed too, so a sender only trusts a signed ACK.

What is patched, and why there
------------------------------
All in ``thespian.system.transport``; nothing else of Thespian is touched.

- ``IPBase.IPActorAddress.bindArgs`` (property): every listener (the admin,
  each actor, the ``ActorSystem`` handle in the daemon) binds through it, and
  so does ``TCPTransport.probeAdmin`` (which binds the admin port to see
  whether an admin already holds it: binding the same host keeps that
  answer right). An external address binds ``('', port)``; it now binds
  ``(bind_host, port)``. A specific ``bind_host`` is also what Thespian
  advertises (``THESPIAN_BASE_IPADDR``, when not already set): an actor that
  listens on 127.0.0.1 must not give peers its eth0 address.
- ``TCPTransport.serializer`` (module global, ``pickle`` by default):
  ``TCPTransport.serializer(intent)`` frames every outgoing message with its
  ``dumps``; the replacement signs, and refuses a message over the cap at
  send time (the peer would refuse it anyway, after a retry storm).
- ``TCPTransport.ackMsg`` / ``TCPTransport.ackDataErrMsg``: precomputed
  with plain pickle in ``streamBuffer`` and imported by name, so they are
  replaced by signed frames where they are used.
- ``TCPTransport.ReceiveBuffer``: every receive path (incoming sockets,
  idle reused sockets, the sender's ACK buffer) builds its buffer from this
  module global. The replacement parses the header itself (digits only, a
  ``>`` within 20 bytes, the cap checked before any body byte is kept),
  verifies the MAC in ``addMore`` once the body is complete, and
  ``completed()`` unpickles only verified bytes. Thespian's own parser
  accepts any ``int()`` text (``-5``, `` 12``) and buffers header bytes
  without end while no ``>`` arrives.
- ``TCPTransport.TCPIncoming_Common.addData``: where a rejection surfaces on
  the receiving side. The wrapper records it (metric, rate-limited warning,
  per-peer table) and re-raises; Thespian then closes just that socket
  ("corrupted incoming data") and goes on serving the others.
- ``TCPTransport.TCPTransport._check_XMIT_4_done``: where a sender reads the
  ACK. Unwrapped, a rejected ACK would escape to ``_nextTransmitStep``, which
  logs a traceback and drops the intent without calling its completion (the
  socket leaks, the sender waits forever). The wrapper records it and takes
  Thespian's own "corrupted ACK" branch: close, back off, retry.

Rejections
----------
Reasons: ``bad_mac`` (not signed with our key), ``too_large`` (over the
cap: refused on the header, the body is never read), ``malformed`` (no
valid length header, or one too short to hold a MAC). Each is counted in
``actorsys_transport_frames_rejected_total{reason}``, logged (one warning per
reason per 10 s and process, naming the peer, never frame bytes) and kept in
a table of at most 64 peers that is written, at most once a second, to
``<runtime_dir>/rejected-<pid>.json``; :func:`rejected_peers` merges those.
Logging and the file write happen on a small thread of this module, never
inside Thespian's transport loop: in an actor process a log record may be a
message sent through that very transport (Thespian's log forwarder), and
Thespian itself never logs through it from within the loop.

What it does NOT do
-------------------
- No confidentiality: frames are signed, not encrypted. Anyone on the path
  can read messages. There is no TLS.
- No replay protection: a captured frame can be sent again and will be
  accepted. The actor protocol tolerates duplicates (batches and jobs are
  idempotent), but keep the actor network private (a VPN, a private VLAN,
  or loopback on a single host) all the same.
- A peer holding the key is trusted completely (it can still send any
  pickle): the key is the cluster's boundary, guard it like a root password.
- Only IPv4 listeners are re-bound (Thespian's TCP transport is IPv4), and
  the UDP transport's serializer is left alone (``multiprocTCPBase`` does
  not use it).
"""

from __future__ import annotations

import enum
import hmac
import importlib
import json
import logging
import math
import os
import pickle
import socket
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any, Final, TypedDict

from thespian.system.transport import IPBase
from thespian.system.transport.streamBuffer import (
    ReceiveBuffer,
    ackDataErrPacket,
    ackPacket,
)

from actorsys import metrics
from actorsys.errors import ConfigError
from actorsys.logs import RateLimitedLog

MAC_BYTES: Final = 32
# Thespian reads at most 20 bytes before it knows a frame's length.
HEADER_MAX_BYTES: Final = 20
MIN_KEY_BYTES: Final = 16
BAD_MAC: Final = "bad_mac"
TOO_LARGE: Final = "too_large"
MALFORMED: Final = "malformed"
# A plain string: a Thespian endpoint cannot make an envelope of it and answers
# ACK+DATAERR, signed with its key, then closes. Nothing is delivered to any actor.
KEY_CHECK_PAYLOAD: Final = "actorsys-key-check"
KEY_CHECK_MAX_REPLY_BYTES: Final = 4096
MAX_PEERS: Final = 64
FLUSH_INTERVAL_S: Final = 1.0
LOG_INTERVAL_S: Final = 10.0
MAX_PENDING_LOGS: Final = 256
BASE_ADDR_ENV: Final = "THESPIAN_BASE_IPADDR"
TRANSPORT_LOGGER: Final = "actorsys.transport"
_WILDCARD_HOSTS: Final = frozenset({"", "0.0.0.0", "*", "::", "[::]"})
_TCP_MODULE: Final = "thespian.system.transport.TCPTransport"

Bytes = bytes | bytearray | memoryview


class FrameRejected(Exception):
    """A received frame failed a check; nothing of it was deserialized."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class FrameTooLarge(ValueError):
    """A message to send would make a frame over the cap every peer enforces."""


@dataclass(frozen=True)
class TransportSettings:
    """What :func:`install` needs: where to listen, the key, the frame cap and
    where to leave the rejected-peer table (None: keep it in memory only)."""

    bind_host: str
    key: bytes = field(repr=False)
    max_frame_bytes: int
    runtime_dir: str | None = None

    def __post_init__(self) -> None:
        if len(self.key) < MIN_KEY_BYTES:
            raise ConfigError(f"the cluster key must be at least {MIN_KEY_BYTES} bytes")
        if self.max_frame_bytes <= MAC_BYTES:
            raise ConfigError(
                f"max_frame_bytes must be more than {MAC_BYTES}, got {self.max_frame_bytes}"
            )


class FrameCodec:
    """Signs and verifies frame bodies with one key; also the drop-in for
    Thespian's ``serializer`` module global (``dumps``/``loads``)."""

    __slots__ = ("_key", "max_frame_bytes")

    def __init__(self, key: bytes, max_frame_bytes: int) -> None:
        if len(key) < MIN_KEY_BYTES:
            raise ValueError(f"a frame key is at least {MIN_KEY_BYTES} bytes")
        if max_frame_bytes <= MAC_BYTES:
            raise ValueError(f"max_frame_bytes must be more than {MAC_BYTES}")
        self._key = bytes(key)
        self.max_frame_bytes = max_frame_bytes

    def __repr__(self) -> str:
        return f"FrameCodec(max_frame_bytes={self.max_frame_bytes})"

    def mac(self, payload: Bytes) -> bytes:
        return hmac.digest(self._key, payload, "sha256")

    def seal(self, payload: bytes) -> bytes:
        """MAC + payload, refused here when a peer would refuse it."""
        body = self.mac(payload) + payload
        if len(body) > self.max_frame_bytes:
            raise FrameTooLarge(
                f"a frame of {len(body)} bytes is over the cap of {self.max_frame_bytes} bytes"
            )
        return body

    def verify(self, body: Bytes) -> None:
        """Raise ``FrameRejected("bad_mac")`` unless ``body`` is MAC + payload."""
        with memoryview(body) as view:
            if len(view) < MAC_BYTES or not hmac.compare_digest(
                view[:MAC_BYTES], self.mac(view[MAC_BYTES:])
            ):
                raise FrameRejected(BAD_MAC)

    def dumps(self, obj: Any) -> bytes:
        return self.seal(pickle.dumps(obj))

    def loads(self, body: Bytes) -> Any:
        """Verify, then unpickle: the order is the whole point."""
        self.verify(body)
        return unpickle_verified(body)

    def frame(self, obj: Any) -> bytes:
        """A complete frame as Thespian's ``toSendBuffer`` lays it out."""
        body = self.dumps(obj)
        return b"%d>" % len(body) + body


def unpickle_verified(body: Bytes) -> Any:
    """Unpickle the payload of a body whose MAC was already checked."""
    with memoryview(body) as view:
        return pickle.loads(view[MAC_BYTES:])


class VerifiedReceiveBuffer(ReceiveBuffer):  # type: ignore[misc]  # Thespian is untyped
    """Thespian's ``ReceiveBuffer`` contract, with every check done while the
    bytes arrive: the header before any body byte is kept, the MAC as soon as
    the body is complete. Thespian passes its ``serializer.loads``; it is
    ignored, ``completed()`` only ever unpickles a verified body."""

    def __init__(self, serializer: Any = None, *, codec: FrameCodec | None = None) -> None:
        super().__init__()
        self._codec = codec if codec is not None else _installed_codec()
        self._header = b""
        self._buf = bytearray()
        self._rejected: str | None = None
        self._verified = False

    def addMore(self, buf: Any) -> None:
        if not isinstance(buf, bytes | bytearray | memoryview):
            raise TypeError(f"frame data must be bytes, not {type(buf).__name__}")
        if self._rejected is not None:
            raise FrameRejected(self._rejected)
        try:
            data = bytes(buf)
            if self._size is None:
                data = self._take_header(data)
            if self._size is not None:
                self._take_body(data)
        except FrameRejected as rejected:
            self._rejected = rejected.reason
            raise

    def _take_header(self, data: bytes) -> bytes:
        """Parse ``<digits>>``; return what follows it (empty while incomplete)."""
        seen = self._header + data
        mark = seen.find(b">", 0, HEADER_MAX_BYTES)
        if mark < 0:
            if len(seen) >= HEADER_MAX_BYTES or (seen and not seen.isdigit()):
                raise FrameRejected(MALFORMED)
            self._header = seen
            return b""
        digits = seen[:mark]
        if not digits.isdigit():  # bytes.isdigit(): ASCII digits only, and not empty
            raise FrameRejected(MALFORMED)
        size = int(digits)
        if size > self._codec.max_frame_bytes:
            raise FrameRejected(TOO_LARGE)
        if size < MAC_BYTES:
            raise FrameRejected(MALFORMED)
        self._header = seen[: mark + 1]
        self._size = size
        return seen[mark + 1 :]

    def _take_body(self, data: bytes) -> None:
        want = self._size - len(self._buf)
        self._buf += data[:want]
        if len(data) > want:
            self._extra += data[want:]
        self._blen = len(self._buf)
        if self._blen == self._size and not self._verified:
            self._codec.verify(self._buf)
            self._verified = True

    def is_empty(self) -> bool:
        return not self._header and self._size is None

    def remainingAmount(self) -> int:
        if self._size is None:
            return HEADER_MAX_BYTES - len(self._header)
        return int(self._size) - len(self._buf)

    def isDone(self) -> bool:
        return self._verified

    def completed(self) -> tuple[Any, bytes] | None:
        if not self._verified:
            return None
        return unpickle_verified(self._buf), self._extra

    @property
    def rejected(self) -> str | None:
        """The reason this frame was refused, if it was."""
        return self._rejected


# --- the rejected-peer table ------------------------------------------------------------------


class RejectedPeer(TypedDict):
    peer: str
    reason: str
    count: int
    last_seen: float


class RejectionTable:
    """Peers whose frames were refused: at most ``max_peers``, the one seen
    longest ago making room for a new one (memory stays flat under a scan)."""

    def __init__(self, max_peers: int = MAX_PEERS) -> None:
        self._max_peers = max_peers
        self._peers: dict[str, RejectedPeer] = {}

    def __len__(self) -> int:
        return len(self._peers)

    def record(self, peer: str, reason: str, now: float) -> None:
        entry = self._peers.get(peer)
        if entry is None:
            if len(self._peers) >= self._max_peers:
                oldest = min(self._peers.values(), key=lambda row: row["last_seen"])
                del self._peers[oldest["peer"]]
            self._peers[peer] = RejectedPeer(peer=peer, reason=reason, count=1, last_seen=now)
            return
        entry["reason"] = reason
        entry["count"] += 1
        entry["last_seen"] = now

    def rows(self) -> list[RejectedPeer]:
        """Newest first."""
        return sorted(
            (RejectedPeer(**row) for row in self._peers.values()),
            key=lambda row: row["last_seen"],
            reverse=True,
        )


def rejected_file(runtime_dir: str | Path, pid: int | None = None) -> Path:
    return Path(runtime_dir) / f"rejected-{os.getpid() if pid is None else pid}.json"


def write_rejections(path: Path, rows: list[RejectedPeer]) -> None:
    """Write the table atomically: a reader sees the old file or the new one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps({"pid": os.getpid(), "peers": rows}), encoding="utf-8")
    os.replace(tmp, path)


def rejected_peers(runtime_dir: str | Path) -> list[RejectedPeer]:
    """Every process's table merged: one row per peer ip (counts summed, the
    latest reason and time kept), newest first. Unreadable files are skipped:
    a process may be writing, or may have died mid-way."""
    merged: dict[str, RejectedPeer] = {}
    for path in sorted(Path(runtime_dir).glob("rejected-*.json")):
        for row in _read_rows(path):
            _merge(merged, row)
    return sorted(merged.values(), key=lambda row: row["last_seen"], reverse=True)


def _read_rows(path: Path) -> list[RejectedPeer]:
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return []
    peers = doc.get("peers") if isinstance(doc, dict) else None
    if not isinstance(peers, list):
        return []
    return [row for row in (_valid_row(item) for item in peers) if row is not None]


def _valid_row(item: Any) -> RejectedPeer | None:
    if not isinstance(item, dict):
        return None
    peer, reason, count, seen = (item.get(k) for k in ("peer", "reason", "count", "last_seen"))
    if not (isinstance(peer, str) and isinstance(reason, str) and isinstance(count, int)):
        return None
    if isinstance(seen, bool) or not isinstance(seen, int | float):
        return None
    return RejectedPeer(peer=peer, reason=reason, count=count, last_seen=float(seen))


def _merge(merged: dict[str, RejectedPeer], row: RejectedPeer) -> None:
    current = merged.get(row["peer"])
    if current is None:
        merged[row["peer"]] = RejectedPeer(**row)
        return
    current["count"] += row["count"]
    if row["last_seen"] > current["last_seen"]:
        current["reason"] = row["reason"]
        current["last_seen"] = row["last_seen"]


class _Reporter:
    """Records rejections at once (metric, table) and leaves the slow parts
    (the warning, the file) to one thread of its own, started on first use.

    The thread matters inside actor processes: a log record there is a
    message sent through the very transport loop that found the bad frame.
    """

    def __init__(self) -> None:
        self._runtime_dir: str | None = None
        self._reset()

    def _reset(self) -> None:
        self._cond = threading.Condition()
        self._table = RejectionTable()
        self._pending: deque[tuple[str, str]] = deque(maxlen=MAX_PENDING_LOGS)
        self._dirty = False
        self._last_write = -math.inf
        self._thread: threading.Thread | None = None
        self._limited = RateLimitedLog(logging.getLogger(TRANSPORT_LOGGER), LOG_INTERVAL_S)

    def after_fork_in_child(self) -> None:
        """A forked actor starts with an empty table (its file is its own) and no
        thread (threads do not survive fork); the lock may have been held."""
        self._reset()

    def configure(self, runtime_dir: str | None) -> None:
        with self._cond:
            self._runtime_dir = runtime_dir
            self._cond.notify()

    def report(self, reason: str, peer: tuple[str, int] | None) -> None:
        metrics.frame_rejected(reason)
        ip = peer[0] if peer else "unknown"
        shown = f"{peer[0]}:{peer[1]}" if peer else "an unknown peer"
        with self._cond:
            self._table.record(ip, reason, time.time())
            self._pending.append((reason, shown))
            self._dirty = True
            self._start_thread()
            self._cond.notify()

    def rows(self) -> list[RejectedPeer]:
        with self._cond:
            return self._table.rows()

    def _start_thread(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(
                target=self._run, name="actorsys-frame-rejections", daemon=True
            )
            self._thread.start()

    def _run(self) -> None:
        while True:
            logs, rows, path = self._next_batch()
            for reason, shown in logs:
                self._limited.log(
                    logging.WARNING,
                    reason,
                    "refused a frame from %s (%s): dropped unread, connection closed",
                    shown,
                    reason,
                )
            if rows is not None and path is not None:
                self._write(path, rows)

    def _next_batch(self) -> tuple[list[tuple[str, str]], list[RejectedPeer] | None, Path | None]:
        """Wait for warnings to log or a file write that is due (≤ 1 a second)."""
        with self._cond:
            while True:
                now = time.monotonic()
                wants_write = self._dirty and self._runtime_dir is not None
                write_at = self._last_write + FLUSH_INTERVAL_S
                if self._pending or (wants_write and now >= write_at):
                    break
                self._cond.wait(max(write_at - now, 0.0) if wants_write else None)
            logs = list(self._pending)
            self._pending.clear()
            if self._runtime_dir is None or not (wants_write and now >= write_at):
                return logs, None, None
            self._dirty = False
            self._last_write = now
            return logs, self._table.rows(), rejected_file(self._runtime_dir)

    def _write(self, path: Path, rows: list[RejectedPeer]) -> None:
        try:
            write_rejections(path, rows)
        except OSError as exc:
            self._limited.log(
                logging.WARNING, "write", "cannot write %s: %s", path, exc.strerror or exc
            )


_REPORTER = _Reporter()
os.register_at_fork(after_in_child=_REPORTER.after_fork_in_child)


# --- the patches ------------------------------------------------------------------------------


@dataclass
class _Installed:
    settings: TransportSettings | None = None
    codec: FrameCodec | None = None
    originals: dict[str, Any] = field(default_factory=dict)
    advertised_by_us: str | None = None


_STATE = _Installed()
_INSTALL_LOCK = threading.Lock()


def _installed_codec() -> FrameCodec:
    if _STATE.codec is None:
        raise RuntimeError("actorsys.transport_security.install() was not called")
    return _STATE.codec


def _tcp_module() -> ModuleType:
    # importlib, not attribute access: the package's `TCPTransport` attribute is
    # the submodule only as long as nothing rebinds it.
    return importlib.import_module(_TCP_MODULE)


def install(settings: TransportSettings) -> None:
    """Patch Thespian's TCP transport of this process (and of every process it
    forks later). Call it before creating the ActorSystem. Calling it again
    replaces the settings; the patches stay single (never wrapped twice)."""
    _check_bindable(settings.bind_host)
    codec = FrameCodec(settings.key, settings.max_frame_bytes)
    tcp = _tcp_module()
    with _INSTALL_LOCK:
        if not _STATE.originals:
            _STATE.originals = _originals(tcp)
        _STATE.settings = settings
        _STATE.codec = codec
        _patch(tcp, codec)
        _advertise(settings.bind_host)
    _REPORTER.configure(settings.runtime_dir)


def uninstall() -> None:
    """Put Thespian back as it was (for tools and tests; a daemon never does)."""
    tcp = _tcp_module()
    with _INSTALL_LOCK:
        if not _STATE.originals:
            return
        original = _STATE.originals
        IPBase.IPActorAddress.bindArgs = original["bindArgs"]
        for name in ("serializer", "ackMsg", "ackDataErrMsg", "ReceiveBuffer"):
            setattr(tcp, name, original[name])
        tcp.TCPIncoming_Common.addData = original["addData"]
        tcp.TCPTransport._check_XMIT_4_done = original["_check_XMIT_4_done"]
        if _STATE.advertised_by_us is not None:
            if os.environ.get(BASE_ADDR_ENV) == _STATE.advertised_by_us:
                del os.environ[BASE_ADDR_ENV]
            _STATE.advertised_by_us = None
        _STATE.originals = {}
        _STATE.settings = None
        _STATE.codec = None
    _REPORTER.configure(None)


def installed_settings() -> TransportSettings | None:
    return _STATE.settings


def _originals(tcp: ModuleType) -> dict[str, Any]:
    return {
        "bindArgs": IPBase.IPActorAddress.__dict__["bindArgs"],
        "serializer": tcp.serializer,
        "ackMsg": tcp.ackMsg,
        "ackDataErrMsg": tcp.ackDataErrMsg,
        "ReceiveBuffer": tcp.ReceiveBuffer,
        "addData": tcp.TCPIncoming_Common.__dict__["addData"],
        "_check_XMIT_4_done": tcp.TCPTransport.__dict__["_check_XMIT_4_done"],
    }


def _patch(tcp: ModuleType, codec: FrameCodec) -> None:
    IPBase.IPActorAddress.bindArgs = property(_bind_args)
    # The module's globals, by name as uninstall() puts them back (a module
    # object declares no attributes to assign to).
    module_globals: dict[str, Any] = {
        "serializer": codec,
        "ackMsg": codec.frame(ackPacket),
        "ackDataErrMsg": codec.frame(ackDataErrPacket),
        "ReceiveBuffer": VerifiedReceiveBuffer,
    }
    for name, value in module_globals.items():
        setattr(tcp, name, value)
    tcp.TCPIncoming_Common.addData = _add_data
    tcp.TCPTransport._check_XMIT_4_done = _check_ack


def _bind_args(address: Any) -> tuple[Any, ...]:
    """``IPActorAddress.bindArgs``: an all-interfaces IPv4 bind becomes bind_host."""
    name = address.bindname
    settings = _STATE.settings
    if settings is None or address.af != socket.AF_INET or name[0] != "":
        return (name,)
    return ((_bind_address(settings.bind_host), name[1]),)


def _bind_address(host: str) -> str:
    return "" if host in _WILDCARD_HOSTS else host


def _check_bindable(host: str) -> None:
    """Fail now, in one line, rather than deep inside ActorSystem startup."""
    address = _bind_address(host)
    if not address:
        return
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        try:
            probe.bind((address, 0))
        except OSError as exc:
            raise ConfigError(
                f"bind host {host!r} is not an IPv4 address of this host "
                f"({exc.strerror or exc}); use 127.0.0.1 or one of its interface addresses"
            ) from None


def _advertise(host: str) -> None:
    """Make Thespian advertise the address it listens on. Its default is the
    interface routing to 8.8.8.8, where a loopback listener cannot be reached.
    An operator's own THESPIAN_BASE_IPADDR (say, a NAT address) is kept."""
    address = _bind_address(host)
    current = os.environ.get(BASE_ADDR_ENV)
    ours = _STATE.advertised_by_us
    if current is not None and current != ours:
        return
    if not address:
        if ours is not None:
            del os.environ[BASE_ADDR_ENV]
            _STATE.advertised_by_us = None
        return
    os.environ[BASE_ADDR_ENV] = address
    _STATE.advertised_by_us = address
    IPBase.thisSystem.add_local_addr(address)


def _peer_of(sock: Any) -> tuple[str, int] | None:
    try:
        name = sock.getpeername()
    except (OSError, AttributeError):
        return None
    if not isinstance(name, tuple) or len(name) < 2:  # not an IP socket
        return None
    return str(name[0]), int(name[1])


def _add_data(incoming: Any, new_data: Any) -> None:
    """``TCPIncoming_Common.addData``: note who sent a refused frame, then let
    Thespian close that one socket."""
    try:
        _STATE.originals["addData"](incoming, new_data)
    except FrameRejected as rejected:
        _REPORTER.report(rejected.reason, _peer_of(incoming.socket))
        raise


def _check_ack(transport: Any, intent: Any, rcv: bytes) -> bool:
    """``TCPTransport._check_XMIT_4_done``: a refused ACK is a corrupted ACK."""
    try:
        return bool(_STATE.originals["_check_XMIT_4_done"](transport, intent, rcv))
    except FrameRejected as rejected:
        _REPORTER.report(rejected.reason, _peer_of(getattr(intent, "socket", None)))
        intent.backoffPause(True)
        intent.stage = transport._XMITStepRetry
        return bool(transport._nextTransmitStep(intent))


# --- checking a key against a running admin ----------------------------------------------------


class KeyCheck(enum.Enum):
    ACCEPTED = "accepted"  # the admin answered with a frame signed by our key
    REFUSED = "refused"  # it closed, or sent nothing we could verify, in time
    UNREACHABLE = "unreachable"  # no TCP connection at all


def check_key_with(host: str, port: int, key: bytes, timeout_s: float = 5.0) -> KeyCheck:
    """Ask a Thespian admin whether it shares our key, before joining it.

    One signed frame holding a plain string: an admin with our key answers
    with a signed ACK+DATAERR (the string is no envelope, so nothing reaches
    any actor); one with another key closes the connection unanswered (and
    lists us among its rejected peers). The reply is verified, never unpickled.
    """
    codec = FrameCodec(key, KEY_CHECK_MAX_REPLY_BYTES)
    deadline = time.monotonic() + timeout_s
    try:
        sock = socket.create_connection((host, port), timeout=timeout_s)
    except OSError:
        return KeyCheck.UNREACHABLE
    with sock:
        try:
            sock.sendall(codec.frame(KEY_CHECK_PAYLOAD))
            signed = _signed_reply(sock, codec, deadline)
        except (OSError, FrameRejected):
            return KeyCheck.REFUSED
    return KeyCheck.ACCEPTED if signed else KeyCheck.REFUSED


def _signed_reply(sock: socket.socket, codec: FrameCodec, deadline: float) -> bool:
    reply = VerifiedReceiveBuffer(codec=codec)
    while not reply.isDone():
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return False
        sock.settimeout(remaining)
        data = sock.recv(reply.remainingAmount())
        if not data:
            return False
        reply.addMore(data)
    return True
