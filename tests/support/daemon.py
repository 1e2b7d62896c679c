"""Run `actorsys run` as a real process for tests and benchmarks: its TOML
configuration, start, wait until ready, stop, kill -9.

The daemon gets its own session (process group), so a test can kill every
process of it at once, and check that none is left behind (see
:mod:`tests.support.process`).
"""

from __future__ import annotations

import json
import re
import subprocess
import urllib.error
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from actorsys.netutil import free_port_below_ephemeral
from tests.support.process import ACTORSYS, SessionProcess, repo_pythonpath
from tests.support.waiting import wait_for

# The KafkaConsumerActor's "assigned" log line: when the daemon got its partitions.
_ASSIGNED = re.compile(
    r"^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d),(\d{3}) INFO \[actorsys\.kafka_consumer [^\]]*\] assigned "
)


def write_toml(path: Path, sections: Mapping[str, Mapping[str, Any]]) -> Path:
    """Write ``{section: {key: value}}`` as TOML; a dict value becomes a
    sub-table ``[section.key]``, a dict inside that an inline table. The one
    writer of actorsys configurations for the tests and the benchmarks."""
    lines: list[str] = []
    for section, values in sections.items():
        lines.append(f"[{section}]")
        for key, value in values.items():
            if isinstance(value, dict):
                continue
            lines.append(f"{key} = {toml_value(value)}")
        for key, value in values.items():
            if isinstance(value, dict):
                lines.append(f"[{section}.{key}]")
                lines.extend(f"{json.dumps(k)} = {toml_value(v)}" for k, v in value.items())
        lines.append("")
    path.write_text("\n".join(lines))
    return path


def write_config(
    path: Path,
    *,
    bootstrap: str,
    topics: list[str],
    group_id: str,
    output_dir: Path,
    job_store: str,
    admin_port: int,
    metrics_port: int,
    extra: dict[str, dict[str, Any]] | None = None,
) -> Path:
    """A test daemon's configuration: small batches and a short session timeout
    (tests want to see jobs and rebalances quickly), its own cluster key, then
    ``extra`` merged in section by section."""
    sections: dict[str, dict[str, Any]] = {
        "kafka": {
            "bootstrap_servers": bootstrap,
            "topics": topics,
            "group_id": group_id,
            "session_timeout_ms": 6000,
        },
        "batching": {"max_records": 2000, "linger_ms": 300, "ack_timeout_ms": 1000},
        "jobs": {"store": job_store},
        "workers": {"count": 2},
        "output": {"dir": str(output_dir)},
        "daemon": {"admin_port": admin_port, "metrics_port": metrics_port, "shutdown_grace_s": 20},
        # Each test's own cluster key (made on first start), never the repository's.
        "cluster": {"key_file": str(path.parent / "cluster.key")},
    }
    for section, values in (extra or {}).items():
        sections.setdefault(section, {}).update(values)
    if "handler" in sections["output"]:
        # The test handlers write plain Parquet files: they test the job and flow
        # protocols, not the table format.
        sections["output"].setdefault("format", "parquet")
    return write_toml(path, sections)


def toml_value(value: Any) -> str:
    """A TOML value: JSON's strings, numbers, booleans and arrays are TOML too;
    a table becomes an inline table (``{ env = "NAME" }``)."""
    if isinstance(value, dict):
        pairs = ", ".join(f"{json.dumps(k)} = {toml_value(v)}" for k, v in value.items())
        return "{ " + pairs + " }"
    return json.dumps(value)


@dataclass
class DaemonProcess(SessionProcess):
    """One `actorsys run` process and everything it starts."""

    config_path: Path
    log_path: Path
    metrics_port: int
    admin_port: int
    env: dict[str, str] = field(default_factory=dict)
    program: list[str] = field(default_factory=lambda: list(ACTORSYS))
    proc: subprocess.Popen[bytes] | None = None

    def __post_init__(self) -> None:
        self._init_session()

    def arguments(self) -> list[str]:
        return ["run", "--config", str(self.config_path)]

    @property
    def key_file(self) -> Path:
        """The cluster key the daemon makes on first start (worker hosts need it)."""
        return self.config_path.parent / "cluster.key"

    def start(self) -> DaemonProcess:
        self.start_process()
        return self

    # --- its HTTP endpoints -----------------------------------------------------------------

    def http(self, path: str) -> tuple[int, bytes]:
        try:
            with urllib.request.urlopen(
                f"http://127.0.0.1:{self.metrics_port}{path}", timeout=2
            ) as resp:
                return resp.status, resp.read()
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read()

    def status(self) -> dict[str, Any]:
        """/status, which must answer."""
        code, body = self.http("/status")
        assert code == 200, body
        return dict(json.loads(body))

    def component(self, role: str) -> dict[str, Any]:
        """One component of /status ({} while /status does not answer): for
        polls, and for figures taken while the daemon may be going."""
        try:
            return dict(self.status().get("components", {}).get(role, {}))
        except (OSError, AssertionError, ValueError):
            return {}

    def workers_by_host(self) -> dict[str, int]:
        """The WorkerMaster's workers per host, from /status ({} until known)."""
        return dict(self.component("worker_master").get("workers_by_host") or {})

    def wait_ready(self, timeout_s: float = 60) -> None:
        def ready() -> bool:
            self.check_alive()
            self.actor_system.refresh()
            try:
                return self.http("/readyz")[0] == 200
            except OSError:
                return False

        wait_for(ready, timeout_s, f"{self.what} to be ready (/readyz 200)", 0.25)

    # --- its log ----------------------------------------------------------------------------

    def first_assigned_at(self) -> float | None:
        """Wall-clock time of the KafkaConsumerActor's first "assigned" log line."""
        for line in self.log_lines():
            match = _ASSIGNED.match(line)
            if match:
                local = datetime.strptime(match.group(1), "%Y-%m-%d %H:%M:%S")
                return local.timestamp() + int(match.group(2)) / 1000
        return None

    def wait_assigned(self, timeout_s: float) -> float:
        """Until the first "assigned" log line; returns its time (wall clock)."""

        def assigned() -> float | None:
            self.check_alive()
            self.actor_system.refresh()
            return self.first_assigned_at()

        found = wait_for(assigned, timeout_s, f"{self.what} to get partitions", 0.05)
        assert found is not None  # wait_for returns only a truthy value
        return found

    def wait_log(self, pattern: str, timeout_s: float, start: int = 0) -> str:
        """Until a line matching ``pattern`` is in the log (after byte ``start``); returns it."""
        regex = re.compile(pattern)

        def found() -> str | None:
            return next((line for line in self.log_lines(start) if regex.search(line)), None)

        line = wait_for(found, timeout_s, f"a log line matching {pattern!r}", 0.2)
        assert line is not None  # wait_for returns only a truthy value
        return line


def new_daemon(tmp_path: Path, name: str, **config: Any) -> DaemonProcess:
    """A daemon (not started) with ``config`` (see :func:`write_config`) on
    ports of its own, its config and log in ``tmp_path``."""
    # Below the ephemeral range: no actor binding port 0 can take them first.
    # Two different ones: neither is bound yet, so the second pick may repeat the first.
    metrics_port = free_port_below_ephemeral()
    admin_port = free_port_below_ephemeral()
    while admin_port == metrics_port:
        admin_port = free_port_below_ephemeral()
    config_path = write_config(
        tmp_path / f"{name}.toml", admin_port=admin_port, metrics_port=metrics_port, **config
    )
    return DaemonProcess(config_path, tmp_path / f"{name}.log", metrics_port, admin_port)


def topic_daemon(
    tmp_path: Path,
    bootstrap: str,
    topic: str,
    name: str = "daemon",
    *,
    group: str | None = None,
    job_store: str | None = None,
    output_dir: Path | None = None,
    **extra: dict[str, Any],
) -> DaemonProcess:
    """A daemon (not started) consuming ``topic`` as group ``g-<topic>`` into
    ``tmp_path/out`` with its own SQLite store, whose actors can import the
    test handlers under ``tests/`` whatever the cwd."""
    daemon = new_daemon(
        tmp_path,
        name,
        bootstrap=bootstrap,
        topics=[topic],
        group_id=group or f"g-{topic}",
        output_dir=output_dir or tmp_path / "out",
        job_store=job_store or f"sqlite:///{tmp_path}/jobs.db",
        extra=extra or None,
    )
    daemon.env["PYTHONPATH"] = repo_pythonpath()
    return daemon


def start_ready(daemons: list[Any], daemon: DaemonProcess, timeout_s: float = 60) -> DaemonProcess:
    """Start ``daemon``, registered first in the ``daemons`` fixture (so it is
    cleaned up whatever happens), and wait until /readyz says ready."""
    daemons.append(daemon)
    daemon.start()
    daemon.wait_ready(timeout_s)
    return daemon
