"""The daemon's HTTP endpoints: /metrics, /healthz, /readyz, /status.

Served from the daemon's own process in a thread. Metrics come from every
actor process through prometheus-client's multiprocess mode (see
``actorsys.metrics``); /status and /readyz read the latest status snapshot
the daemon's main loop keeps.

- ``/healthz``: 200 while the process serves HTTP (liveness; it never asks
  the actor system, so a slow actor does not get the daemon restarted).
- ``/readyz``: 200 when started, connected to a broker, assigned partitions
  and the job store works; otherwise 503. Both bodies are JSON:
  ``{"ready": false, "problems": ["..."], "checks": {"broker": false, ...}}``.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import re
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import psutil
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.metrics_core import Metric
from prometheus_client.multiprocess import MultiProcessCollector, mark_process_dead

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
            uptime_s = round(time.monotonic() - self.server.started, 1)
            self._json(200, {"status": "ok", "pid": os.getpid(), "uptime_s": uptime_s})
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
    registry.register(MultiProcessView(metrics_dir))
    server.registry = registry
    server.status = status
    server.readiness = readiness
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
        mark_process_dead(pid, path)
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
        self._collector = MultiProcessCollector(None, path=path)

    def collect(self) -> Iterator[Metric]:
        reap_dead_processes(self._path)
        for metric in self._collector.collect():
            if metric.type == "gauge":
                metric.samples = [s for s in metric.samples if not math.isnan(s.value)]
            yield metric
