"""Helpers several scenarios share: the test handlers' settings, the rig of
the scenarios about jobs and workers, and reading what a daemon is doing."""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

from actorsys.embedded_broker import EmbeddedBroker
from tests.support.daemon import DaemonProcess
from tests.support.rig import Rig
from tests.support.waiting import wait_for

FAULTY = "tests.support.handlers:FaultyHandler"
THROTTLED = "tests.support.handlers:ThrottledHandler"


def jobs_rig(workdir: Path, broker: EmbeddedBroker, name: str) -> Rig:
    """The rig of a scenario about jobs and workers: plain Parquet output,
    whatever the handler (its checks count the per-job agg files; the table
    format has tests of its own), 90 s to be ready, 60 s to stop, and no actor
    may have raised on a message."""
    return Rig(
        workdir,
        broker.bootstrap_servers,
        name,
        prefix="jobs",
        output_format="parquet",
        ready_timeout_s=90,
        stop_timeout_s=60,
        actor_crash_check=True,
    )


def faulty(**options: Any) -> dict[str, Any]:
    """The ``[output]`` section of a daemon running FaultyHandler with ``options``."""
    return {"handler": FAULTY, "options": options}


def batches_of(records: int) -> dict[str, Any]:
    """Jobs of at most ``records`` offsets (more jobs, more messages)."""
    return {"batching": {"max_records": records}}


def jobs_running(pid_dir: Path) -> int:
    """How many jobs a worker is in the middle of (FaultyHandler's pid markers)."""
    return len(list(pid_dir.iterdir())) if pid_dir.exists() else 0


def fresh_marker(pid_dir: Path, daemon: DaemonProcess, max_age_s: float) -> tuple[int, int] | None:
    """(pid, job id) of a worker of ``daemon`` that started a job at most
    ``max_age_s`` ago: FaultyHandler keeps ``<pid>-<job id>`` in ``pid_dir``
    while a job runs. A fresh job has written nothing yet."""
    if not pid_dir.exists():
        return None
    group = daemon.actor_system.refresh()
    now = time.time()
    for path in pid_dir.iterdir():
        pid, _, job_id = path.name.partition("-")
        try:
            age = now - path.stat().st_mtime
            in_daemon = group is not None and os.getpgid(int(pid)) == group
        except (FileNotFoundError, ProcessLookupError):
            continue
        if age <= max_age_s and in_daemon:
            return int(pid), int(job_id)
    return None


def wait_mid_job(
    daemon: DaemonProcess,
    pid_dir: Path,
    delay_s: float,
    what: str = "a worker in the middle of a job",
    interval_s: float = 0.05,
) -> tuple[int, int]:
    """(pid, job id) of a worker of ``daemon`` that started a job of ``delay_s``
    at most a third of it ago (see :func:`fresh_marker`)."""
    found = wait_for(lambda: fresh_marker(pid_dir, daemon, delay_s / 3), 60, what, interval_s)
    assert found is not None  # wait_for returns only a truthy value
    return found


def settled(daemon: DaemonProcess, role: str, **want: Any) -> dict[str, Any]:
    """The component's /status once it shows ``want``: the status is pushed
    about once a second, so it may lag the job store for a moment."""

    def shows() -> dict[str, Any] | None:
        component = daemon.component(role)
        return component if all(component.get(k) == v for k, v in want.items()) else None

    found = wait_for(shows, 15, f"/status {role} to show {want}", 0.25)
    assert found is not None  # wait_for returns only a truthy value
    return found
