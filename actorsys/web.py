"""The daemon's HTTP endpoints: /metrics, /healthz, /readyz, /status.

Served from the daemon's own process in a thread. Metrics come from every
actor process through prometheus-client's multiprocess mode; /status and
/readyz read the latest status snapshot the daemon's main loop keeps.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.multiprocess import MultiProcessCollector

StatusSource = Callable[[], dict[str, Any]]
ReadinessSource = Callable[[], tuple[bool, dict[str, Any]]]


class _Handler(BaseHTTPRequestHandler):
    server: _Server

    def do_GET(self) -> None:
        path = self.path.split("?", 1)[0]
        if path == "/metrics":
            body = generate_latest(self.server.registry)
            self._reply(200, body, CONTENT_TYPE_LATEST)
        elif path == "/healthz":
            self._json(
                200, {"status": "ok", "uptime_s": round(time.monotonic() - self.server.started, 1)}
            )
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
    daemon_threads = True
    registry: CollectorRegistry
    status: StatusSource
    readiness: ReadinessSource
    started: float


def start_http_server(
    host: str, port: int, metrics_dir: str, status: StatusSource, readiness: ReadinessSource
) -> _Server:
    """Start serving in a daemon thread; ``server.shutdown()`` stops it."""
    server = _Server((host, port), _Handler)
    registry = CollectorRegistry()
    MultiProcessCollector(registry, path=metrics_dir)
    server.registry = registry
    server.status = status
    server.readiness = readiness
    server.started = time.monotonic()
    threading.Thread(target=server.serve_forever, name="http", daemon=True).start()
    return server
