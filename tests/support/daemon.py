"""Run `actorsys run` as a real process for tests: start, wait, stop, kill -9.

The daemon gets its own session (process group), so a test can kill every
process of it at once, and check that none is left behind.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil

from actorsys.netutil import free_port_below_ephemeral
from actorsys.procs import ActorSystemProcesses, group_members, kill_group
from tests.support.waiting import wait_for


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
    lines = []
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


def toml_value(value: Any) -> str:
    """A TOML value: JSON's strings, numbers, booleans and arrays are TOML too;
    a table becomes an inline table (``{ env = "NAME" }``)."""
    if isinstance(value, dict):
        pairs = ", ".join(f"{json.dumps(k)} = {toml_value(v)}" for k, v in value.items())
        return "{ " + pairs + " }"
    return json.dumps(value)


@dataclass
class DaemonProcess:
    """One `actorsys run` process and everything it starts."""

    config_path: Path
    log_path: Path
    metrics_port: int
    admin_port: int
    env: dict[str, str] = field(default_factory=dict)
    proc: subprocess.Popen[bytes] | None = None

    def __post_init__(self) -> None:
        self.actor_system = ActorSystemProcesses(self.admin_port)

    @property
    def key_file(self) -> Path:
        """The cluster key the daemon makes on first start (worker hosts need it)."""
        return self.config_path.parent / "cluster.key"

    def start(self) -> DaemonProcess:
        log = self.log_path.open("ab")
        self.actor_system = ActorSystemProcesses(self.admin_port)
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "actorsys", "run", "--config", str(self.config_path)],
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            env={**os.environ, **self.env},
        )
        log.close()
        return self

    @property
    def pgid(self) -> int:
        assert self.proc is not None
        return self.proc.pid  # session leader: its pid is the group id

    def group_processes(self) -> list[psutil.Process]:
        """Every live process of this daemon: its own group (the daemon, the
        broker it may start) and its actor system's group (a session of its own)."""
        self.actor_system.refresh()
        found = group_members(self.pgid)
        if self.actor_system.pgid is not None:
            found += group_members(self.actor_system.pgid)
        return found

    def http(self, path: str) -> tuple[int, bytes]:
        try:
            with urllib.request.urlopen(
                f"http://127.0.0.1:{self.metrics_port}{path}", timeout=2
            ) as resp:
                return resp.status, resp.read()
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read()

    def status(self) -> dict[str, Any]:
        code, body = self.http("/status")
        assert code == 200, body
        return json.loads(body)

    def wait_ready(self, timeout_s: float = 60) -> None:
        def ready() -> bool:
            self.check_alive()
            self.actor_system.refresh()
            try:
                return self.http("/readyz")[0] == 200
            except OSError:
                return False

        wait_for(ready, timeout_s, "the daemon to be ready (/readyz 200)", 0.25)

    def check_alive(self) -> None:
        assert self.proc is not None
        if self.proc.poll() is not None:
            raise AssertionError(f"daemon exited with {self.proc.returncode}:\n{self.log_tail()}")

    def log_tail(self, lines: int = 40) -> str:
        text = self.log_path.read_text(errors="replace") if self.log_path.exists() else ""
        return "\n".join(text.splitlines()[-lines:])

    def terminate(self, timeout_s: float = 60) -> int:
        """SIGTERM, wait for exit, return the exit code."""
        assert self.proc is not None
        self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout_s)
        except subprocess.TimeoutExpired:
            self.kill9()
            raise AssertionError(
                f"daemon did not exit within {timeout_s}s:\n{self.log_tail()}"
            ) from None

    def kill9(self) -> None:
        """kill -9 every process of the daemon (its whole group)."""
        self.actor_system.refresh()
        kill_group(self.pgid)
        self.actor_system.kill_all()
        if self.proc is not None:
            self.proc.wait(10)

    def assert_nothing_left(self, timeout_s: float = 15) -> None:
        wait_for(lambda: not self.group_processes(), timeout_s, "every daemon process to exit", 0.2)

    def cleanup(self) -> None:
        """For fixtures' finally: whatever happened, leave no process behind."""
        if self.proc is None:
            return
        if self.group_processes() or self.proc.poll() is None:
            self.kill9()


def new_daemon(tmp_path: Path, name: str, **config: Any) -> DaemonProcess:
    # Below the ephemeral range: no actor binding port 0 can take them first.
    metrics_port, admin_port = free_port_below_ephemeral(), free_port_below_ephemeral()
    config_path = write_config(
        tmp_path / f"{name}.toml", admin_port=admin_port, metrics_port=metrics_port, **config
    )
    return DaemonProcess(config_path, tmp_path / f"{name}.log", metrics_port, admin_port)


REPO_ROOT = Path(__file__).resolve().parents[2]


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
    daemon.env["PYTHONPATH"] = os.pathsep.join(
        [str(REPO_ROOT), *filter(None, [os.environ.get("PYTHONPATH")])]
    )
    return daemon


def start_ready(daemons: list[Any], daemon: DaemonProcess, timeout_s: float = 60) -> DaemonProcess:
    """Start ``daemon``, registered first in the ``daemons`` fixture (so it is
    cleaned up whatever happens), and wait until /readyz says ready."""
    daemons.append(daemon)
    daemon.start()
    daemon.wait_ready(timeout_s)
    return daemon
