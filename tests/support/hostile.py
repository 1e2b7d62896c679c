"""What an attacker on the actor network would send: raw frames, no key.

``marker_pickle`` is a live exploit in miniature: unpickling it creates a
file. Tests send it and then assert the file never appeared.
"""

from __future__ import annotations

import pathlib
import pickle
import socket
import time
from typing import Any


class _TouchOnLoad:
    """Pickles as "call Path.touch(path)": loading it runs that call."""

    def __init__(self, path: pathlib.Path) -> None:
        self.path = path

    def __reduce__(self) -> tuple[Any, ...]:
        return (pathlib.Path.touch, (self.path,))


def marker_pickle(marker: pathlib.Path) -> bytes:
    return pickle.dumps(_TouchOnLoad(marker))


def raw_frame(body: bytes) -> bytes:
    """Thespian's framing, with no MAC: ``<len>>`` then the body."""
    return b"%d>" % len(body) + body


def open_and_send(port: int, data: bytes, host: str = "127.0.0.1") -> socket.socket:
    sock = socket.create_connection((host, port), timeout=5.0)
    sock.sendall(data)
    return sock


def seconds_until_closed(sock: socket.socket, timeout_s: float) -> float | None:
    """How long the server took to close ``sock`` (None: still open at the deadline).
    Whatever it sends first is read and dropped; a reset counts as closed."""
    started = time.monotonic()
    deadline = started + timeout_s
    with sock:
        while (remaining := deadline - time.monotonic()) > 0:
            sock.settimeout(remaining)
            try:
                if not sock.recv(4096):
                    return time.monotonic() - started
            except TimeoutError:
                return None
            except (ConnectionResetError, BrokenPipeError):
                return time.monotonic() - started
    return None


def send_and_time_close(port: int, data: bytes, timeout_s: float) -> float | None:
    return seconds_until_closed(open_and_send(port, data), timeout_s)
