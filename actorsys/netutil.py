"""Small socket helpers shared by the embedded broker, the CLI and the tests."""

from __future__ import annotations

import random
import socket


def free_port(host: str = "127.0.0.1") -> int:
    """Return a TCP port on ``host`` that nothing listens on right now.

    The kernel picks it (bind to port 0). There is an unavoidable window between
    closing this probe socket and the caller binding the port for real, so the
    caller must still handle "address in use" (the embedded broker does).
    """
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def port_is_free(host: str, port: int) -> bool:
    """Tell whether a listener could bind ``host:port`` now.

    ``SO_REUSEADDR`` is set like most servers (Tansu included) do, so a port that
    only has connections lingering in TIME_WAIT counts as free — only a live
    listener makes it busy.
    """
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return False
        return True


def free_port_below_ephemeral(
    host: str = "127.0.0.1", low: int = 20_000, high: int = 32_000
) -> int:
    """A free port below the kernel's ephemeral range (32768 and up by default).

    A port from :func:`free_port` is itself ephemeral: until its user binds it,
    any process binding port 0 (every Thespian actor does) may be given the
    same number. Fixed service ports (admin, metrics) picked here cannot be.
    """
    for _ in range(200):
        port = random.randint(low, high)
        if port_is_free(host, port):
            return port
    raise OSError(f"no free port between {low} and {high} on {host}")
