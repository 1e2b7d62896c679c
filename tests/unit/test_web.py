"""actorsys.web: the HTTP endpoints against real clients on a real socket,
including the ones that misbehave (silent, half a request, too many)."""

from __future__ import annotations

import http.client
import json
import socket
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from actorsys.web import HealthSource, start_http_server
from tests.support.waiting import wait_for

Server = Any  # actorsys.web._Server: what start_http_server returns
Serve = Callable[..., Server]


@pytest.fixture
def serve(tmp_path: Path) -> Iterator[Serve]:
    """Starts servers on a free port of 127.0.0.1; stops and closes every one
    at the end of the test, whatever happened."""
    started: list[Server] = []

    def start(**options: Any) -> Server:
        options.setdefault("status", lambda: {"state": "running"})
        options.setdefault("readiness", lambda: (True, {"problems": [], "checks": {}}))
        started.append(start_http_server("127.0.0.1", 0, str(tmp_path), **options))
        return started[-1]

    yield start
    for server in started:
        server.shutdown()
        server.server_close()


def get(server: Server, path: str, timeout_s: float = 5.0) -> tuple[int, bytes]:
    host, port = server.server_address[:2]
    conn = http.client.HTTPConnection(str(host), int(port), timeout=timeout_s)
    try:
        conn.request("GET", path)
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        conn.close()


def get_json(server: Server, path: str) -> tuple[int, dict[str, Any]]:
    status, body = get(server, path)
    return status, json.loads(body)


def connect(server: Server) -> socket.socket:
    """A client connection the server has taken (it holds one of its slots)."""
    before = server.open_connections
    sock = socket.create_connection(server.server_address, timeout=5)
    wait_for(lambda: server.open_connections > before, 5, "the server takes the connection")
    return sock


def closed_by_server(sock: socket.socket, within_s: float) -> bool:
    """Whether the server closes ``sock`` within ``within_s`` (sending nothing)."""
    sock.settimeout(within_s)
    try:
        return sock.recv(1024) == b""
    except ConnectionResetError:
        return True
    except TimeoutError:
        return False


def still_open(sock: socket.socket) -> bool:
    sock.setblocking(False)
    try:
        return sock.recv(1024) != b""
    except BlockingIOError:
        return True
    except ConnectionResetError:
        return False
    finally:
        sock.setblocking(True)


# --- misbehaving clients ------------------------------------------------------------------


@pytest.mark.parametrize(
    "sent", [b"", b"GET /healthz HTTP/1.1\r\nHost: x\r\n"], ids=["silent", "half-request"]
)
def test_a_stalled_client_does_not_delay_others_and_is_dropped_after_the_timeout(
    serve: Serve, sent: bytes
) -> None:
    timeout_s = 2.0
    server = serve(request_timeout_s=timeout_s)
    # Given a client that connected and sent nothing, or half a request, then stalled
    with connect(server) as stalled:
        stalled.sendall(sent)
        since = time.monotonic()
        # When another client asks for /healthz meanwhile
        status, _ = get(server, "/healthz")
        # Then it is answered while the stalled connection is still there
        assert status == 200
        assert still_open(stalled)
        # and the stalled one is cut, with no reply, once the timeout has passed
        assert closed_by_server(stalled, within_s=timeout_s + 8)
        assert time.monotonic() - since >= timeout_s * 0.9
    wait_for(lambda: server.open_connections == 0, 5, "its slot is free again")


def test_connections_past_the_cap_are_closed_at_once_and_service_resumes(serve: Serve) -> None:
    # Long request timeout: whatever closes a connection here is the cap.
    server = serve(max_connections=2, request_timeout_s=60)
    # Given as many idle connections as the cap
    idle = [connect(server) for _ in range(2)]
    try:
        # When more clients connect
        extra = [socket.create_connection(server.server_address, timeout=5) for _ in range(3)]
        # Then each is closed straight away, not after any timeout
        for sock in extra:
            with sock:
                assert closed_by_server(sock, within_s=3)
        # and so is a scrape, while the cap is reached
        with pytest.raises((OSError, http.client.HTTPException)):
            get(server, "/metrics")
    finally:
        for sock in idle:
            sock.close()
    # When the idle clients go away / Then /metrics answers again
    wait_for(lambda: server.open_connections == 0, 5, "the idle connections are gone")
    status, _ = get(server, "/metrics")
    assert status == 200


def test_server_close_cuts_open_connections_instead_of_waiting_for_them(serve: Serve) -> None:
    server = serve(request_timeout_s=60)
    with connect(server) as idle:
        # When the server is stopped while a client idles
        started = time.monotonic()
        server.shutdown()
        server.server_close()
        # Then stopping took far less than the request timeout, and the client is cut
        assert time.monotonic() - started < 10
        assert closed_by_server(idle, within_s=5)


@pytest.mark.parametrize(("request_timeout_s", "max_connections"), [(0, 16), (-1.0, 16), (10.0, 0)])
def test_bad_limits_are_refused(
    tmp_path: Path, request_timeout_s: float, max_connections: int
) -> None:
    with pytest.raises(ValueError, match="request_timeout_s"):
        start_http_server(
            "127.0.0.1",
            0,
            str(tmp_path),
            dict,
            lambda: (True, {}),
            request_timeout_s=request_timeout_s,
            max_connections=max_connections,
        )


# --- /healthz -----------------------------------------------------------------------------


def test_healthz_without_a_health_check_is_ok(serve: Serve) -> None:
    status, body = get_json(serve(), "/healthz")
    assert status == 200
    assert body["status"] == "ok"
    assert isinstance(body["pid"], int) and body["uptime_s"] >= 0


def test_healthz_is_ok_with_the_checks_detail_when_healthy(serve: Serve) -> None:
    server = serve(health=lambda: (True, {"checks": {"job_store": True}}))
    status, body = get_json(server, "/healthz")
    assert status == 200
    assert (body["status"], body["checks"]) == ("ok", {"job_store": True})
    assert {"pid", "uptime_s"} <= set(body)


def test_healthz_is_503_naming_the_problems_when_unhealthy(serve: Serve) -> None:
    problems = ["main loop stalled for 120 s"]
    server = serve(health=lambda: (False, {"problems": problems}))
    status, body = get_json(server, "/healthz")
    assert status == 503
    assert (body["status"], body["problems"]) == ("failing", problems)
    assert {"pid", "uptime_s"} <= set(body)


def test_healthz_is_503_when_the_health_check_raises_or_says_nothing(serve: Serve) -> None:
    def broken() -> tuple[bool, dict[str, Any]]:
        raise RuntimeError("status snapshot missing")

    checks: list[HealthSource] = [broken, lambda: (False, {})]
    for health in checks:
        status, body = get_json(serve(health=health), "/healthz")
        assert status == 503 and body["status"] == "failing"
        assert body["problems"] and all(isinstance(p, str) for p in body["problems"])
    assert "status snapshot missing" in get_json(serve(health=broken), "/healthz")[1]["problems"][0]


# --- the other endpoints, unchanged ---------------------------------------------------------


def test_readyz_status_metrics_and_unknown_paths(serve: Serve) -> None:
    server = serve(
        status=lambda: {"state": "running"},
        readiness=lambda: (False, {"problems": ["no broker"], "checks": {"broker": False}}),
    )
    assert get_json(server, "/readyz") == (
        503,
        {"ready": False, "problems": ["no broker"], "checks": {"broker": False}},
    )
    assert get_json(server, "/status") == (200, {"state": "running"})
    assert get(server, "/metrics")[0] == 200
    status, body = get_json(server, "/nope")
    assert status == 404 and "/healthz" in body["endpoints"]


def test_a_port_already_taken_is_a_plain_os_error(tmp_path: Path) -> None:
    # Given a port something else listens on
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        # When the server is started there, Then it fails with the OS's reason
        # (which the daemon turns into one line), not with its own AttributeError
        with pytest.raises(OSError, match="in use"):
            start_http_server("127.0.0.1", port, str(tmp_path), lambda: {}, lambda: (True, {}))
