"""The daemon's HTTP endpoints: /metrics, /healthz, /readyz, /status.

Served from the daemon's own process in a thread. Metrics come from every
actor process through prometheus-client's multiprocess mode (see
``actorsys.metrics``); /status and /readyz read the latest status snapshot
the daemon's main loop keeps.

- ``/healthz``: liveness. 200 ``{"status": "ok", "pid": ..., "uptime_s": ...}``
  while the process serves HTTP and its ``health`` callable (cheap, local
  checks only) is content; 503 ``{"status": "failing", "problems": [...]}``
  (with pid and uptime_s too) when it is not. It never asks the actor
  system, so a slow actor does not get the daemon restarted.
- ``/readyz``: 200 when started, connected to a broker, assigned partitions
  and the job store works; otherwise 503. Both bodies are JSON:
  ``{"ready": false, "problems": ["..."], "checks": {"broker": false, ...}}``.

The port is often reachable from a whole network, so one misbehaving client
must not take the endpoints away from Prometheus or systemd's probes:

- every socket operation of a connection times out after
  ``REQUEST_TIMEOUT_S``: a client that connects and sends nothing, or stops
  halfway through its request, loses its connection and its thread (one
  that trickles a byte now and then keeps its slot, but it is one slot);
- at most ``MAX_CONNECTIONS`` connections are served at once; one more is
  closed as soon as it is accepted, without waiting (a flood costs accepts,
  not threads or memory);
- ``server_close()`` cuts the connections still open, so stopping the
  daemon never waits for an idle client.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import os
import re
import socket
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import psutil
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.metrics_core import Metric
from prometheus_client.multiprocess import MultiProcessCollector, mark_process_dead

log = logging.getLogger("actorsys.web")

StatusSource = Callable[[], dict[str, Any]]
ReadinessSource = Callable[[], tuple[bool, dict[str, Any]]]
# (healthy, detail); detail is merged into the /healthz body, with a
# "problems" list of strings when unhealthy.
HealthSource = Callable[[], tuple[bool, dict[str, Any]]]

# Prometheus's default scrape timeout is 10 s as well: a client silent for
# longer is not a scraper.
REQUEST_TIMEOUT_S = 10.0
# Prometheus, a probe or two and `actorsys status --watch` need a handful.
MAX_CONNECTIONS = 16
_REJECT_WARN_INTERVAL_S = 60.0  # one warning a minute under a connection flood


def always_healthy() -> tuple[bool, dict[str, Any]]:
    """The ``health`` of a server that is given none: serving HTTP is healthy."""
    return True, {}


class _Handler(BaseHTTPRequestHandler):
    server: _Server

    def setup(self) -> None:
        super().setup()
        # What StreamRequestHandler.setup() does with a class-level `timeout`,
        # per server: every read (request line, headers) and write of the
        # connection gives up after it.
        self.connection.settimeout(self.server.request_timeout_s)

    def do_GET(self) -> None:
        path = self.path.split("?", 1)[0]
        if path == "/metrics":
            self._reply(200, generate_latest(self.server.registry), CONTENT_TYPE_LATEST)
        elif path == "/healthz":
            healthy, body = self._health()
            self._json(200 if healthy else 503, body)
        elif path == "/readyz":
            ready, detail = self.server.readiness()
            self._json(200 if ready else 503, {"ready": ready, **detail})
        elif path == "/status":
            self._json(200, self.server.status())
        else:
            self._json(
                404,
                {
                    "error": f"no such endpoint {path}",
                    "endpoints": ["/metrics", "/healthz", "/readyz", "/status"],
                },
            )

    def _health(self) -> tuple[bool, dict[str, Any]]:
        """The verdict of the server's ``health`` and the /healthz body. A
        check that raises is a failing one, not a 500 with a traceback."""
        try:
            healthy, detail = self.server.health()
        except Exception as exc:
            healthy, detail = False, {"problems": [f"health check raised: {exc!r}"]}
        body: dict[str, Any] = {
            **detail,
            "status": "ok" if healthy else "failing",
            "pid": os.getpid(),
            "uptime_s": round(time.monotonic() - self.server.started, 1),
        }
        if not healthy:
            body.setdefault("problems", ["health check failed without saying why"])
        return healthy, body

    def _json(self, code: int, doc: dict[str, Any]) -> None:
        self._reply(code, json.dumps(doc, default=str).encode(), "application/json")

    def _reply(self, code: int, body: bytes, content_type: str) -> None:
        self.send_response(code)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        pass  # scrapes every few seconds would drown the log


class _Server(ThreadingHTTPServer):
    """A thread per connection, at most ``max_connections`` at once."""

    daemon_threads = True
    registry: CollectorRegistry
    status: StatusSource
    readiness: ReadinessSource
    health: HealthSource
    started: float

    def __init__(
        self, address: tuple[str, int], request_timeout_s: float, max_connections: int
    ) -> None:
        if request_timeout_s <= 0 or max_connections < 1:
            raise ValueError(
                f"request_timeout_s must be > 0 and max_connections >= 1, not"
                f" {request_timeout_s} and {max_connections}"
            )
        # Before binding: a failed bind calls server_close(), which needs them.
        self.request_timeout_s = request_timeout_s
        self.max_connections = max_connections
        self._slots = threading.BoundedSemaphore(max_connections)
        self._open_lock = threading.Lock()
        self._open: set[socket.socket] = set()
        self._rejected = 0  # since the last warning
        self._warned_at = -_REJECT_WARN_INTERVAL_S
        super().__init__(address, _Handler)

    @property
    def open_connections(self) -> int:
        """Connections being served now (the cap counts these)."""
        with self._open_lock:
            return len(self._open)

    def process_request(self, request: Any, client_address: Any) -> None:
        """On the server thread: take a slot without waiting, or close the
        connection at once; a full server must keep accepting (and shedding)
        rather than stall behind its slowest clients."""
        if not self._slots.acquire(blocking=False):
            self._reject(request, client_address)
            return
        with self._open_lock:
            self._open.add(request)
        try:
            super().process_request(request, client_address)
        except BaseException:  # no thread started: nobody else frees the slot
            self._release(request)
            raise

    def process_request_thread(self, request: Any, client_address: Any) -> None:
        try:
            super().process_request_thread(request, client_address)
        finally:
            self._release(request)

    def _release(self, request: socket.socket) -> None:
        with self._open_lock:
            self._open.discard(request)
        self._slots.release()

    def _reject(self, request: socket.socket, client_address: Any) -> None:
        self.shutdown_request(request)  # shutdown + close: neither blocks
        self._rejected += 1
        now = time.monotonic()
        if now - self._warned_at >= _REJECT_WARN_INTERVAL_S:
            log.warning(
                "HTTP: %d connection(s) refused, all %d slots busy (latest from %s)",
                self._rejected,
                self.max_connections,
                client_address,
            )
            self._rejected, self._warned_at = 0, now

    def server_close(self) -> None:
        """Close the listener and cut every open connection, then join their
        threads: a blocked read returns at once instead of at its timeout."""
        with self._open_lock:
            still_open = list(self._open)
        for request in still_open:
            with contextlib.suppress(OSError):
                request.shutdown(socket.SHUT_RDWR)
        super().server_close()

    def handle_error(self, request: Any, client_address: Any) -> None:
        # socketserver prints a traceback to stderr; a client that hangs up
        # mid-reply is routine, not worth more than a debug line.
        log.debug("HTTP: error serving %s", client_address, exc_info=True)


def start_http_server(
    host: str,
    port: int,
    metrics_dir: str,
    status: StatusSource,
    readiness: ReadinessSource,
    health: HealthSource = always_healthy,
    *,
    request_timeout_s: float = REQUEST_TIMEOUT_S,
    max_connections: int = MAX_CONNECTIONS,
) -> _Server:
    """Start serving in a daemon thread; ``server.shutdown()`` then
    ``server.server_close()`` stop it (``server.server_address`` has the port
    chosen when ``port`` is 0)."""
    registry = CollectorRegistry()  # before binding: a bad metrics_dir leaks no socket
    registry.register(MultiProcessView(metrics_dir))
    server = _Server((host, port), request_timeout_s, max_connections)
    server.registry = registry
    server.status = status
    server.readiness = readiness
    server.health = health
    server.started = time.monotonic()
    threading.Thread(target=server.serve_forever, name="http", daemon=True).start()
    return server


# --- /metrics: the multiprocess directory, without what is gone --------------------------

_LIVE_GAUGE_FILE = re.compile(r"^gauge_live[a-z]+_(\d+)\.db$")


def reap_dead_processes(path: str) -> int:
    """Remove the live-gauge files of processes that are gone; returns how many
    processes. (A pid reused by an unrelated process keeps its predecessor's
    gauges until that process ends too: rare, and harmless but for the delay.)"""
    pids = set()
    with contextlib.suppress(FileNotFoundError):
        for name in os.listdir(path):
            if match := _LIVE_GAUGE_FILE.match(name):
                pids.add(int(match.group(1)))
    dead = [pid for pid in pids if not _alive(pid)]
    for pid in dead:
        mark_process_dead(pid, path)  # type: ignore[no-untyped-call]  # prometheus_client.multiprocess is untyped
    return len(dead)


def _alive(pid: int) -> bool:
    try:
        return bool(psutil.Process(pid).status() != psutil.STATUS_ZOMBIE)
    except psutil.NoSuchProcess:
        return False
    except psutil.Error:
        return True


class MultiProcessView:
    """A collector over the multiprocess directory: drops dead processes'
    live gauges first, and leaves out tombstoned (NaN) gauge series."""

    def __init__(self, path: str) -> None:
        self._path = path
        self._collector = MultiProcessCollector(None, path=path)  # type: ignore[no-untyped-call]  # prometheus_client.multiprocess is untyped

    def collect(self) -> Iterator[Metric]:
        reap_dead_processes(self._path)
        for metric in self._collector.collect():  # type: ignore[no-untyped-call]  # prometheus_client.multiprocess is untyped
            if metric.type == "gauge":
                metric.samples = [s for s in metric.samples if not math.isnan(s.value)]
            yield metric
