"""Install the transport patches in a throwaway process and report what changed.

Run as ``python -m tests.support.install_probe``; prints one JSON object.
The unit tests read it rather than patching Thespian in the pytest process,
where the patches would outlive the test.
"""

from __future__ import annotations

import importlib
import json
import socket
import sys
from typing import Any

from thespian.system.transport import IPBase, SendStatus
from thespian.system.transport.streamBuffer import ackPacket, isControlMessage

from actorsys import transport_security as ts

KEY_A = b"a" * 32
KEY_B = b"b" * 32
CAP = 1 << 20


class _Intent:
    """Just what ``_check_XMIT_4_done`` touches of a TransmitIntent."""

    def __init__(self, codec: ts.FrameCodec, sock: socket.socket) -> None:
        self.ackbuf = ts.VerifiedReceiveBuffer(codec=codec)
        self.socket = sock
        self.stage = 4
        self.paused = False
        self.result: Any = None

    def backoffPause(self, start: bool = False) -> bool:
        self.paused = self.paused or start
        return self.paused


class _Transport:
    """Just what ``_check_XMIT_4_done`` touches of a TCPTransport."""

    _XMITStepFinishCleanup = 5
    _XMITStepRetry = 6

    def __init__(self, tcp: Any) -> None:
        self._tcp = tcp
        self.steps: list[int] = []

    def _check_XMIT_4_done(self, intent: _Intent, rcv: bytes) -> bool:
        return bool(self._tcp.TCPTransport._check_XMIT_4_done(self, intent, rcv))

    def _nextTransmitStep(self, intent: _Intent) -> bool:
        self.steps.append(intent.stage)
        return True


def _ack_outcome(tcp: Any, ack: bytes, codec: ts.FrameCodec) -> dict[str, Any]:
    """Feed ``ack`` to Thespian's (patched) ACK reader, as a sender would."""
    left, right = socket.socketpair()
    with left, right:
        intent = _Intent(codec, left)
        transport = _Transport(tcp)
        returned = tcp.TCPTransport._check_XMIT_4_done(transport, intent, ack)
        return {
            "returned": returned,
            "steps": transport.steps,
            "paused": intent.paused,
            "sent": intent.result == SendStatus.Sent,
        }


def _address_binds() -> dict[str, Any]:
    external = IPBase.TCPv4ActorAddress(None, 4321, external=True)
    internal = IPBase.TCPv4ActorAddress("127.0.0.1", 4322)
    return {
        "external_bind": list(external.bindArgs[0]),
        "external_advertised": external.sockname[0],
        "internal_bind": list(internal.bindArgs[0]),
    }


def _probe_admin(tcp: Any) -> dict[str, bool]:
    """``probeAdmin`` binds the admin address: busy port -> True, free -> False."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        busy = listener.getsockname()[1]
        busy_addr = tcp.TCPTransport.getAdminAddr({"Admin Port": busy})
        held = bool(tcp.TCPTransport.probeAdmin(busy_addr))
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        free = probe.getsockname()[1]
    free_addr = tcp.TCPTransport.getAdminAddr({"Admin Port": free})
    return {"held": held, "free": bool(tcp.TCPTransport.probeAdmin(free_addr))}


def _codec_checks(tcp: Any, codec: ts.FrameCodec) -> dict[str, Any]:
    ack_buf = tcp.ReceiveBuffer(tcp.serializer.loads)
    ack_buf.addMore(tcp.ackMsg)
    ack, _ = ack_buf.completed()
    return {
        "serializer_is_codec": isinstance(tcp.serializer, ts.FrameCodec),
        "receive_buffer": tcp.ReceiveBuffer.__name__,
        "ack_is_control": isControlMessage(ack) and ack == ackPacket,
        "ack_signed_by": "A" if tcp.ackMsg == ts.FrameCodec(KEY_A, CAP).frame(ackPacket) else "B",
        "signed_ack": _ack_outcome(tcp, tcp.ackMsg, codec),
        "unsigned_ack": _ack_outcome(tcp, ts.FrameCodec(b"x" * 32, CAP).frame(ackPacket), codec),
    }


def main() -> int:
    tcp = importlib.import_module("thespian.system.transport.TCPTransport")
    original_add_data = tcp.TCPIncoming_Common.__dict__["addData"]
    report: dict[str, Any] = {"before": _address_binds()}
    ts.install(ts.TransportSettings("127.0.0.1", KEY_A, CAP))
    report["first"] = {**_address_binds(), **_codec_checks(tcp, ts.FrameCodec(KEY_A, CAP))}
    report["first"]["probe_admin"] = _probe_admin(tcp)
    ts.install(ts.TransportSettings("0.0.0.0", KEY_B, CAP))
    report["second"] = {**_address_binds(), **_codec_checks(tcp, ts.FrameCodec(KEY_B, CAP))}
    report["wrapped_once"] = (
        ts._STATE.originals["addData"] is original_add_data
        and tcp.TCPIncoming_Common.addData is ts._add_data
    )
    report["rejections"] = ts._REPORTER.rows()
    ts.uninstall()
    report["after"] = {
        **_address_binds(),
        "serializer": getattr(tcp.serializer, "__name__", "?"),
        "add_data_restored": tcp.TCPIncoming_Common.__dict__["addData"] is original_add_data,
    }
    sys.stdout.write(json.dumps(report) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
