"""The cluster key file: created once by the leader, copied to members, never
loose in permissions, and every error one line that says what to do."""

from __future__ import annotations

import logging
import os
import stat
from pathlib import Path

import pytest

from actorsys.cluster_key import KEY_BYTES, KEY_ENV, format_key, generate_key, load_key
from actorsys.errors import ConfigError

NO_ENV: dict[str, str] = {}


def _write_key(path: Path, text: str, mode: int = 0o600) -> None:
    path.write_text(text)
    path.chmod(mode)


def _one_line(exc: pytest.ExceptionInfo[ConfigError]) -> str:
    message = str(exc.value)
    assert "\n" not in message
    return message


def test_leader_creates_a_private_key_once(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "var" / "lib" / "actorsys" / "cluster.key"
    with caplog.at_level(logging.INFO, logger="actorsys.cluster_key"):
        key = load_key(path, create=True, env=NO_ENV)
    assert len(key) == KEY_BYTES
    assert path.read_text() == key.hex() + "\n"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    for directory in (tmp_path / "var", tmp_path / "var" / "lib", path.parent):
        assert stat.S_IMODE(directory.stat().st_mode) == 0o700, directory
    assert [r.getMessage() for r in caplog.records] == [f"created cluster key {path}"]
    assert key.hex() not in caplog.text

    caplog.clear()
    with caplog.at_level(logging.INFO, logger="actorsys.cluster_key"):
        assert load_key(path, create=True, env=NO_ENV) == key
    assert not caplog.records, "an existing key is read, not replaced"


def test_a_member_without_the_key_is_told_how_to_get_it(tmp_path: Path) -> None:
    path = tmp_path / "cluster.key"
    with pytest.raises(ConfigError) as exc:
        load_key(path, create=False, env=NO_ENV)
    message = _one_line(exc)
    assert f"scp leader:/var/lib/actorsys/cluster.key {path} && chmod 600 {path}" in message
    assert KEY_ENV in message
    assert not path.exists()


def test_the_environment_wins_over_the_file(tmp_path: Path) -> None:
    key = generate_key()
    other = generate_key()
    path = tmp_path / "cluster.key"
    _write_key(path, format_key(other))
    assert load_key(path, create=False, env={KEY_ENV: key.hex()}) == key
    assert load_key(path, create=False, env={KEY_ENV: key.hex() + "\n"}) == key
    absent = tmp_path / "absent.key"
    assert load_key(absent, create=True, env={KEY_ENV: key.hex()}) == key
    assert not absent.exists(), "no file is created when the environment holds the key"


@pytest.mark.parametrize(
    "value",
    ["", "abc", "g" * 64, "A" * 64, "a" * 63, "a" * 65, " " + "a" * 64, "a" * 64 + "\n\n"],
)
def test_a_malformed_environment_key_is_refused_without_echoing_it(
    tmp_path: Path, value: str
) -> None:
    with pytest.raises(ConfigError) as exc:
        load_key(tmp_path / "cluster.key", create=True, env={KEY_ENV: value})
    message = _one_line(exc)
    assert KEY_ENV in message
    assert value.strip() == "" or value.strip() not in message
    assert not (tmp_path / "cluster.key").exists()


@pytest.mark.parametrize("mode", [0o640, 0o604, 0o660, 0o644, 0o601, 0o610, 0o700 | 0o044])
def test_a_key_file_open_to_others_is_refused(tmp_path: Path, mode: int) -> None:
    path = tmp_path / "cluster.key"
    _write_key(path, format_key(generate_key()), mode)
    with pytest.raises(ConfigError) as exc:
        load_key(path, create=True, env=NO_ENV)
    message = _one_line(exc)
    assert str(path) in message
    assert f"chmod 600 {path}" in message
    assert f"{mode:04o}" in message


@pytest.mark.parametrize("mode", [0o600, 0o400])
def test_owner_only_modes_are_accepted(tmp_path: Path, mode: int) -> None:
    key = generate_key()
    path = tmp_path / "cluster.key"
    _write_key(path, format_key(key), mode)
    assert load_key(path, create=False, env=NO_ENV) == key


def test_a_trailing_newline_is_optional(tmp_path: Path) -> None:
    key = generate_key()
    path = tmp_path / "cluster.key"
    _write_key(path, key.hex())
    assert load_key(path, create=False, env=NO_ENV) == key


@pytest.mark.parametrize(
    "content",
    [
        "",
        "not a key\n",
        "A" * 64 + "\n",
        "a" * 62 + "\n",
        "a" * 66 + "\n",
        "a" * 64 + "\n\n",
        "a" * 64 + " \n",
        "a" * 5000,
        "é" * 32,
    ],
)
def test_a_malformed_key_file_is_refused_and_never_overwritten(
    tmp_path: Path, content: str
) -> None:
    path = tmp_path / "cluster.key"
    _write_key(path, content)
    with pytest.raises(ConfigError) as exc:
        load_key(path, create=True, env=NO_ENV)
    message = _one_line(exc)
    assert str(path) in message
    assert "64 lowercase hex" in message
    assert content.strip()[:10] not in message or not content.strip()
    assert path.read_text() == content, "create=True never replaces an existing file"


def test_a_directory_is_not_a_key(tmp_path: Path) -> None:
    path = tmp_path / "cluster.key"
    path.mkdir(mode=0o700)
    with pytest.raises(ConfigError) as exc:
        load_key(path, create=True, env=NO_ENV)
    assert "not a regular file" in _one_line(exc)


def test_a_parent_that_is_a_file_is_a_one_line_error(tmp_path: Path) -> None:
    (tmp_path / "data").write_text("")
    with pytest.raises(ConfigError) as exc:
        load_key(tmp_path / "data" / "cluster.key", create=True, env=NO_ENV)
    assert str(tmp_path / "data") in _one_line(exc)


@pytest.mark.parametrize("umask", [0o000, 0o077, 0o277])
def test_the_umask_does_not_decide_the_modes(tmp_path: Path, umask: int) -> None:
    path = tmp_path / "new" / "cluster.key"
    previous = os.umask(umask)
    try:
        load_key(path, create=True, env=NO_ENV)
    finally:
        os.umask(previous)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700


def test_format_key_only_takes_32_bytes() -> None:
    assert format_key(bytes(32)) == "0" * 64 + "\n"
    with pytest.raises(ValueError):
        format_key(bytes(16))
