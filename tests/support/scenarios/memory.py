"""Memory and /status sampling for the ``overload`` scenario: the sum over
every process of a daemon (its group and its actor system's), RSS and PSS,
with paused partitions and the rebalance count, every 0.5 s; and which actor
each process is, so that growth can be told per role."""

from __future__ import annotations

import contextlib
import statistics
import threading
import time
from dataclasses import dataclass, field

import psutil

from tests.support.daemon import DaemonProcess

MIB = 1024 * 1024
# Peaks are compared over a rolling median of this many samples (2.5 s): a
# single fetch response or a garbage collection makes a spike of one or two
# samples that says nothing about growth.
FLAT_SMOOTHING = 5


@dataclass(frozen=True)
class Sample:
    at: float  # monotonic
    rss: int  # sum over every actorsys process (shared pages counted once per process)
    pss: int  # sum of proportional set sizes (shared pages split between sharers)
    processes: int
    paused: int | None  # paused partitions per /status, None when /status did not answer
    rebalances: int | None
    pss_by_pid: dict[int, int] = field(default_factory=dict)


def memory(daemon: DaemonProcess) -> tuple[int, int, dict[int, int]]:
    """RSS and PSS sums over the daemon's group and its actor system's group,
    and each process's PSS."""
    rss = pss = 0
    by_pid: dict[int, int] = {}
    for proc in daemon.group_processes():
        with contextlib.suppress(psutil.Error):
            info = proc.memory_full_info()
            rss += info.rss
            pss += info.pss
            by_pid[proc.pid] = info.pss
    return rss, pss, by_pid


def process_roles(daemon: DaemonProcess) -> dict[int, str]:
    """Which actor each process of a running daemon is, from the process tree:
    the admin's children are the logger and the Supervisor; the Supervisor's,
    the JobManager (it holds the job store open), the KafkaConsumerActor (it
    runs librdkafka's threads, and its children are the partition Consumers)
    and the WorkerMaster (its children are the Workers)."""
    procs = {p.pid: p for p in daemon.group_processes()}
    children: dict[int, list[int]] = {}
    for pid, proc in procs.items():
        with contextlib.suppress(psutil.Error):
            children.setdefault(proc.ppid(), []).append(pid)
    roles = {daemon.pgid: "daemon"}

    def holds_job_store(pid: int) -> bool:
        with contextlib.suppress(psutil.Error):
            return any(f.path.endswith("jobs.db") for f in procs[pid].open_files())
        return False

    job_manager = next((pid for pid in procs if holds_job_store(pid)), None)
    if job_manager is None:
        return roles
    roles[job_manager] = "job_manager"
    with contextlib.suppress(psutil.Error):
        supervisor = procs[job_manager].ppid()
        roles[supervisor] = "supervisor"
        admin = procs[supervisor].ppid()
        roles[admin] = "admin"
        for pid in children.get(admin, []):
            roles.setdefault(pid, "logger")
        for pid in children.get(supervisor, []):
            if pid == job_manager:
                continue
            kafka = procs[pid].num_threads() > 1
            roles[pid] = "kafka_consumer" if kafka else "worker_master"
            for child in children.get(pid, []):
                roles[child] = "consumer" if kafka else "worker"
    return roles


class Sampler:
    """Every ``every_s``: total memory of all actorsys processes, paused
    partitions and the rebalance count from /status."""

    def __init__(self, daemon: DaemonProcess, every_s: float = 0.5) -> None:
        self._daemon = daemon
        self._every_s = every_s
        self._stop = threading.Event()
        self.samples: list[Sample] = []
        self._thread = threading.Thread(target=self._run, name="sampler", daemon=True)

    def __enter__(self) -> Sampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(10)

    def _run(self) -> None:
        next_at = time.monotonic()
        while not self._stop.is_set():
            paused = rebalances = None
            with contextlib.suppress(Exception):
                consumer = self._daemon.status()["components"]["kafka_consumer"]
                paused = sum(1 for p in consumer["partitions"] if p["paused"])
                rebalances = consumer["rebalances"]
            rss, pss, by_pid = memory(self._daemon)
            self.samples.append(
                Sample(time.monotonic(), rss, pss, len(by_pid), paused, rebalances, by_pid)
            )
            next_at += self._every_s
            # A sampling period, not synchronisation: nothing waits on it.
            self._stop.wait(max(0.0, next_at - time.monotonic()))

    def between(self, start: float, end: float) -> list[Sample]:
        return [s for s in self.samples if start <= s.at <= end]


def growth_by_role(window: list[Sample], middle: float, roles: dict[int, str]) -> str:
    """Per role (processes of one role summed): second-half peak minus first-half
    peak of the rolling-median PSS, the three largest, e.g. "worker:+6.1"."""
    names = sorted(set(roles.values()) | {"other"})
    growth = {}
    for role in names:
        series = [
            sum(p for pid, p in s.pss_by_pid.items() if roles.get(pid, "other") == role)
            for s in window
        ]
        smooth = rolling_median(series, FLAT_SMOOTHING)
        first = [p for s, p in zip(window, smooth, strict=True) if s.at < middle]
        second = [p for s, p in zip(window, smooth, strict=True) if s.at >= middle]
        if first and second:
            growth[role] = max(second) - max(first)
    top = sorted(growth.items(), key=lambda kv: -abs(kv[1]))[:3]
    return ",".join(f"{role}:{mib(delta):+}" for role, delta in top)


def rolling_median(values: list[int], width: int) -> list[float]:
    """Each value replaced by the median of the ``width`` values centred on it."""
    half = width // 2
    return [statistics.median(values[max(0, i - half) : i + half + 1]) for i in range(len(values))]


def mib(n: float) -> float:
    return round(n / MIB, 1)
