"""The frame codec and the checks done while a frame arrives, without a network.

Nothing here patches Thespian in this process: what ``install`` changes is
observed in a throwaway subprocess (``tests.support.install_probe``).
"""

from __future__ import annotations

import json
import os
import pickle
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from thespian.system.transport.streamBuffer import ackDataErrPacket, ackPacket, isControlMessage

from actorsys import metrics
from actorsys.errors import ConfigError
from actorsys.transport_security import (
    BAD_MAC,
    HEADER_MAX_BYTES,
    MAC_BYTES,
    MALFORMED,
    MAX_PEERS,
    TOO_LARGE,
    FrameCodec,
    FrameRejected,
    FrameTooLarge,
    KeyCheck,
    RejectionTable,
    TransportSettings,
    VerifiedReceiveBuffer,
    _Reporter,
    check_key_with,
    rejected_file,
    rejected_peers,
    write_rejections,
)
from tests.support.hostile import marker_pickle, raw_frame
from tests.support.waiting import wait_for

REPO = Path(__file__).resolve().parents[2]
KEY = bytes(range(32))
OTHER_KEY = bytes(range(1, 33))
CAP = 1 << 20


@pytest.fixture
def codec() -> FrameCodec:
    return FrameCodec(KEY, CAP)


def _receive(codec: FrameCodec, data: bytes) -> VerifiedReceiveBuffer:
    """Feed ``data`` the way Thespian reads a socket: ``remainingAmount()`` at a time."""
    buf = VerifiedReceiveBuffer(codec=codec)
    offset = 0
    while not buf.isDone() and offset < len(data):
        step = buf.remainingAmount()
        assert step > 0
        buf.addMore(data[offset : offset + step])
        offset += step
    return buf


def _rejection(codec: FrameCodec, *chunks: bytes) -> tuple[str, int]:
    """Feed chunks until refused; the reason and how many chunks it took."""
    buf = VerifiedReceiveBuffer(codec=codec)
    for taken, chunk in enumerate(chunks, start=1):
        try:
            buf.addMore(chunk)
        except FrameRejected as rejected:
            assert buf.rejected == rejected.reason
            assert buf.completed() is None
            return rejected.reason, taken
    raise AssertionError("the frame was accepted")


# --- the codec ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "message",
    ["ping", ("address", {"a": [1, 2.5, None]}), b"\x00" * 5000, list(range(1000))],
)
def test_a_signed_frame_roundtrips(codec: FrameCodec, message: Any) -> None:
    frame = codec.frame(message)
    body = frame[frame.index(b">") + 1 :]
    assert frame.startswith(b"%d>" % len(body))
    assert body[:MAC_BYTES] == codec.mac(body[MAC_BYTES:])
    assert codec.loads(codec.dumps(message)) == message
    buf = _receive(codec, frame)
    assert buf.isDone()
    assert buf.completed() == (message, b"")


def test_byte_by_byte_and_trailing_bytes(codec: FrameCodec) -> None:
    frame = codec.frame("one")
    buf = VerifiedReceiveBuffer(codec=codec)
    assert buf.is_empty()
    for i in range(len(frame) - 1):
        buf.addMore(frame[i : i + 1])
        assert not buf.isDone()
        assert not buf.is_empty()
    buf.addMore(frame[-1:] + b"next")
    assert buf.completed() == ("one", b"next")
    buf.removeExtra()
    assert buf.completed() == ("one", b"")


def test_reads_never_go_past_the_header_window_or_the_frame(codec: FrameCodec) -> None:
    buf = VerifiedReceiveBuffer(codec=codec)
    assert buf.remainingAmount() == HEADER_MAX_BYTES
    buf.addMore(b"12")
    assert buf.remainingAmount() == HEADER_MAX_BYTES - 2
    frame = codec.frame("x" * 100)
    buf = VerifiedReceiveBuffer(codec=codec)
    buf.addMore(frame[:HEADER_MAX_BYTES])
    assert buf.remainingAmount() == len(frame) - HEADER_MAX_BYTES


def test_sending_over_the_cap_fails_at_the_sender() -> None:
    small = FrameCodec(KEY, 1024)
    small.dumps(b"x" * 900)
    with pytest.raises(FrameTooLarge):
        small.dumps(b"x" * 1024)


def test_the_reasons_are_the_metrics_reasons() -> None:
    assert set(metrics.FRAME_REJECT_REASONS) == {BAD_MAC, TOO_LARGE, MALFORMED}


# --- bad MACs: nothing is unpickled ------------------------------------------------------------


def test_the_marker_pickle_is_live(tmp_path: Path) -> None:
    """Control: plain ``pickle.loads`` of the payload does create the file."""
    marker = tmp_path / "pwned"
    pickle.loads(marker_pickle(marker))
    assert marker.exists()


def _forged_frames(codec: FrameCodec, marker: Path) -> Iterator[tuple[str, bytes]]:
    payload = marker_pickle(marker)
    yield "no MAC at all", raw_frame(payload)
    yield "another key", FrameCodec(OTHER_KEY, CAP).frame(_Marker(marker))
    signed = bytearray(codec.frame(_Marker(marker)))
    signed[-2] ^= 0x01  # one bit of the payload
    yield "tampered payload", bytes(signed)
    signed = bytearray(codec.frame(_Marker(marker)))
    header = signed.index(b">") + 1
    signed[header] ^= 0x80  # one bit of the MAC
    yield "tampered MAC", bytes(signed)
    framed = codec.frame(_Marker(marker))
    body = framed[framed.index(b">") + 1 :]
    yield "truncated", raw_frame(body[:-1])


class _Marker:
    def __init__(self, path: Path) -> None:
        self.path = path

    def __reduce__(self) -> tuple[Any, ...]:
        return (Path.touch, (self.path,))


def test_a_forged_frame_is_refused_before_unpickling(codec: FrameCodec, tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    for name, frame in _forged_frames(codec, marker):
        buf = VerifiedReceiveBuffer(codec=codec)
        with pytest.raises(FrameRejected) as exc:
            buf.addMore(frame)
        assert exc.value.reason == BAD_MAC, name
        assert not buf.isDone() and buf.completed() is None, name
        with pytest.raises(FrameRejected):
            buf.addMore(b"more")  # stays refused
        body = frame[frame.index(b">") + 1 :]
        with pytest.raises(FrameRejected):
            codec.loads(body)
        assert not marker.exists(), name


# --- headers: refused before the body is buffered ----------------------------------------------


def test_an_oversize_header_is_refused_on_its_last_byte(codec: FrameCodec) -> None:
    header = b"%d>" % (100 * 10**9)
    reason, taken = _rejection(codec, *(header[i : i + 1] for i in range(len(header))))
    assert (reason, taken) == (TOO_LARGE, len(header))


def test_an_oversize_header_is_refused_before_any_body_byte(codec: FrameCodec) -> None:
    buf = VerifiedReceiveBuffer(codec=codec)
    with pytest.raises(FrameRejected) as exc:
        buf.addMore(b"%d>" % (CAP + 1) + b"x" * 7)
    assert exc.value.reason == TOO_LARGE
    assert len(buf._buf) == 0 and buf._extra == b""
    at_cap = VerifiedReceiveBuffer(codec=codec)
    at_cap.addMore(b"%d>" % CAP + b"x")  # the cap itself is allowed
    assert at_cap.rejected is None and at_cap.remainingAmount() == CAP - 1


@pytest.mark.parametrize(
    ("chunks", "taken"),
    [
        ((b"GET / HTTP/1.1\r\n",), 1),
        ((b"12", b"a"), 2),
        ((b">" + b"x" * 40,), 1),
        ((b"-5>",), 1),
        ((b" 50>",), 1),
        ((b"+50>",), 1),
        ((b"1_000>",), 1),
        ((b"\xd9\xa5>",), 1),  # an Arabic-Indic digit: int() would take it
        ((b"1" * 10, b"1" * 9, b"1"), 3),  # 20 digits, still no '>'
        ((b"31>" + b"x" * 31,), 1),  # too short to hold a MAC
        ((b"0>",), 1),
    ],
)
def test_a_malformed_header_is_refused_early(
    codec: FrameCodec, chunks: tuple[bytes, ...], taken: int
) -> None:
    assert _rejection(codec, *chunks) == (MALFORMED, taken)


def test_non_bytes_are_a_type_error_not_a_rejection(codec: FrameCodec) -> None:
    buf = VerifiedReceiveBuffer(codec=codec)
    with pytest.raises(TypeError):
        buf.addMore(("address", "message"))  # Thespian's trailing-data path does this
    assert buf.rejected is None


# --- ACK frames ----------------------------------------------------------------------------------


@pytest.mark.parametrize("packet", [ackPacket, ackDataErrPacket])
def test_signed_acks_verify_and_are_control_messages(codec: FrameCodec, packet: str) -> None:
    message, extra = _receive(codec, codec.frame(packet)).completed()  # type: ignore[misc]  # Thespian is untyped
    assert isControlMessage(message) and message == packet and extra == b""
    assert _rejection(FrameCodec(OTHER_KEY, CAP), codec.frame(packet))[0] == BAD_MAC
    plain = raw_frame(pickle.dumps(packet))  # Thespian's own ACK: too short for a MAC
    assert _rejection(codec, plain)[0] == MALFORMED


def test_install_patches_thespian_once_and_uninstall_restores() -> None:
    env = {k: v for k, v in os.environ.items() if k != "THESPIAN_BASE_IPADDR"}
    done = subprocess.run(
        [sys.executable, "-m", "tests.support.install_probe"],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    report = json.loads(done.stdout)
    first, second, after = report["first"], report["second"], report["after"]
    assert report["before"]["external_bind"][0] == ""
    assert first["external_bind"] == ["127.0.0.1", 4321]
    assert first["external_advertised"] == "127.0.0.1"
    assert first["internal_bind"] == ["127.0.0.1", 4322]
    assert first["serializer_is_codec"] and first["receive_buffer"] == "VerifiedReceiveBuffer"
    assert first["ack_is_control"] and first["ack_signed_by"] == "A"
    assert first["probe_admin"] == {"held": True, "free": False}
    # a signed ACK finishes the send; a forged one is a corrupted ACK: back off, retry
    assert first["signed_ack"] == {"returned": True, "steps": [5], "paused": False, "sent": True}
    assert first["unsigned_ack"] == {
        "returned": True,
        "steps": [6],
        "paused": True,
        "sent": False,
    }
    # a second install replaces the settings (key, bind host) without wrapping twice
    assert second["ack_signed_by"] == "B" and second["external_bind"] == ["", 4321]
    assert second["external_advertised"] == report["before"]["external_advertised"]
    assert report["wrapped_once"]
    assert [row["reason"] for row in report["rejections"]] == [BAD_MAC]
    assert after["external_bind"][0] == "" and after["serializer"] == "pickle"
    assert after["add_data_restored"]


def test_settings_hide_the_key_and_check_their_values() -> None:
    settings = TransportSettings("127.0.0.1", KEY, CAP)
    assert KEY.hex() not in repr(settings) and repr(KEY) not in repr(settings)
    with pytest.raises(ConfigError):
        TransportSettings("127.0.0.1", b"short", CAP)
    with pytest.raises(ConfigError):
        TransportSettings("127.0.0.1", KEY, MAC_BYTES)
    shown = repr(FrameCodec(KEY, CAP))
    assert "max_frame_bytes" in shown and "key" not in shown


# --- the rejected-peer table --------------------------------------------------------------------


def test_the_table_keeps_the_most_recent_peers_only() -> None:
    table = RejectionTable()
    for i in range(MAX_PEERS + 36):
        table.record(f"10.0.0.{i}", BAD_MAC, float(i))
    table.record("10.0.0.99", TOO_LARGE, 1000.0)
    rows = table.rows()
    assert len(table) == MAX_PEERS
    assert rows[0] == {"peer": "10.0.0.99", "reason": TOO_LARGE, "count": 2, "last_seen": 1000.0}
    assert {row["peer"] for row in rows} == {f"10.0.0.{i}" for i in range(36, MAX_PEERS + 36)}


def test_rejected_peers_merges_every_process(tmp_path: Path) -> None:
    write_rejections(
        rejected_file(tmp_path, 101),
        [
            {"peer": "10.0.0.1", "reason": BAD_MAC, "count": 3, "last_seen": 100.0},
            {"peer": "10.0.0.2", "reason": MALFORMED, "count": 1, "last_seen": 50.0},
        ],
    )
    write_rejections(
        rejected_file(tmp_path, 102),
        [{"peer": "10.0.0.1", "reason": TOO_LARGE, "count": 2, "last_seen": 200.0}],
    )
    write_rejections(
        rejected_file(tmp_path, 103),
        [{"peer": "10.0.0.2", "reason": BAD_MAC, "count": 4, "last_seen": 10.0}],
    )
    (tmp_path / "rejected-104.json").write_text("{not json")
    (tmp_path / "rejected-105.json").write_text(json.dumps({"peers": [{"peer": 1}, "x"]}))
    (tmp_path / "other.json").write_text(json.dumps({"peers": []}))
    assert rejected_peers(tmp_path) == [
        {"peer": "10.0.0.1", "reason": TOO_LARGE, "count": 5, "last_seen": 200.0},
        {"peer": "10.0.0.2", "reason": MALFORMED, "count": 5, "last_seen": 50.0},
    ]
    assert rejected_peers(tmp_path / "absent") == []
    assert not list(tmp_path.glob(".*.tmp")), "writes go through a temp file and os.replace"


def test_the_reporter_writes_this_process_table(tmp_path: Path) -> None:
    reporter = _Reporter()
    reporter.configure(str(tmp_path))
    reporter.report(BAD_MAC, ("192.0.2.7", 40000))
    path = rejected_file(tmp_path)
    wait_for(path.exists, 5.0, "the first write (at once)")
    reporter.report(MALFORMED, ("192.0.2.7", 40001))
    reporter.report(BAD_MAC, None)
    wait_for(lambda: len(rejected_peers(tmp_path)) == 2, 5.0, "the next write (within 1 s)")
    rows = rejected_peers(tmp_path)
    assert rows[0]["peer"] == "unknown"
    assert rows[1] == {**rows[1], "peer": "192.0.2.7", "reason": MALFORMED, "count": 2}
    assert reporter.rows() == rows


# --- check_key_with against a stand-in admin ----------------------------------------------------


def _stand_in_admin(reply: bytes | None) -> tuple[socket.socket, threading.Thread]:
    """Accept one connection, read one frame's worth, answer ``reply`` (None:
    close unanswered, as an admin with another key does)."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen()

    def serve() -> None:
        conn, _ = server.accept()
        with conn:
            conn.recv(4096)
            if reply is not None:
                conn.sendall(reply)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    return server, thread


@pytest.mark.parametrize(
    ("reply", "expected"),
    [
        (FrameCodec(KEY, CAP).frame(ackDataErrPacket), KeyCheck.ACCEPTED),
        (FrameCodec(OTHER_KEY, CAP).frame(ackDataErrPacket), KeyCheck.REFUSED),
        (raw_frame(pickle.dumps(ackDataErrPacket)), KeyCheck.REFUSED),
        (None, KeyCheck.REFUSED),
    ],
)
def test_check_key_with(reply: bytes | None, expected: KeyCheck) -> None:
    server, thread = _stand_in_admin(reply)
    with server:
        assert check_key_with("127.0.0.1", server.getsockname()[1], KEY, 5.0) is expected
        thread.join(5.0)


def test_check_key_with_a_silent_peer_times_out_refused() -> None:
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()  # accepted by the kernel, never answered
        assert check_key_with("127.0.0.1", server.getsockname()[1], KEY, 0.3) is KeyCheck.REFUSED


def test_check_key_with_nobody_listening_is_unreachable() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    assert check_key_with("127.0.0.1", port, KEY, 1.0) is KeyCheck.UNREACHABLE
