"""Fault scenarios around flow control, shutdown and the broker.

Each scenario drives real ``actorsys run`` daemons against a real embedded
broker, injects one fault for real, waits (deadline-bounded polls, never
fixed sleeps) until the committed offsets reach the end offsets and no job
is PENDING or RUNNING, stops the daemons (no process left) and runs the
exactly-once output check. Registered for `scripts/chaos.py` and
`tests/integration/test_faults_flow.py`:

* ``overload``: a slow handler (one worker, 0.3 s per job) and a producer
  five times faster than it for 50 s: memory of every actorsys process stays
  under 1 GiB and flat, partitions are paused, the consumer never leaves its
  group, and the backlog drains once the handler is fast again;
* ``sigterm_under_load``: SIGTERM while the producer runs and the workers are
  busy: exit 0 within ``shutdown_grace_s``, nothing left, a second run drains
  the rest;
* ``sigterm_twice``: a second SIGTERM during the drain stops at once; still
  nothing lost;
* ``broker_pause``: the broker frozen (SIGSTOP) for 30 s mid-stream, on a
  broker of the scenario's own (the session's is shared with other tests);
* ``broker_late``: the daemon started before any broker listens on its port;
* ``bad_records``: every kind of record the handler must reject (a 900 kB
  one included), mixed with valid ones and a valid 1 MiB one; each lands in
  the dead-letter topic once, with the right ``reason``;
* ``bad_records_oversized``: an invalid record of 1 MiB (over librdkafka's
  default ``message.max.bytes``) must be dead-lettered too.

Module-level imports stay light: worker processes import this module for
:class:`ThrottledHandler`, and the memory they use is what ``overload``
measures (``tests.support.checks`` pulls in duckdb, so it is imported where
it is used).
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import statistics
import subprocess
import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil

from actorsys.embedded_broker import EmbeddedBroker
from actorsys.handlers.api import DeadLetterSink, HandlerResult, HandlerSettings, JobInput
from actorsys.netutil import free_port_below_ephemeral
from actorsys.simulator import ProduceReport, create_topic_if_missing, produce
from tests.support.daemon import DaemonProcess, new_daemon, write_config
from tests.support.handlers import FaultyHandler
from tests.support.scenario import ScenarioResult, scenario
from tests.support.waiting import wait_for

REPO_ROOT = Path(__file__).resolve().parents[2]
FAULTY = "tests.support.handlers:FaultyHandler"
THROTTLED = "tests.support.scenarios_flow:ThrottledHandler"
PARTITIONS = 4
MALFORMED_RATIO = 0.01
GRACE_S = 20.0
DRAIN_TIMEOUT_S = 150.0
MIB = 1024 * 1024
GIB = 1024 * MIB


# --- failures the tests expect until a reported actorsys bug is fixed -------------------------


class SecondSignalTooSlow(AssertionError):
    """The daemon did not stop at once on a second signal."""


class DeadLettersWrong(AssertionError):
    """A bad record is missing from the dead-letter topic, has the wrong
    reason, or a valid record is there too."""


# --- a handler that is slow only while the scenario says so ----------------------------------


class ThrottledHandler:
    """FaultyHandler whose ``delay_s`` applies only while the file ``slow_flag``
    exists. ``overload`` keeps the single worker slow for the whole overload
    window, then removes the flag so the backlog drains at full speed (at
    0.3 s per job it would take minutes)."""

    def __init__(self, settings: HandlerSettings) -> None:
        options = dict(settings.options)
        self._flag = Path(options.pop("slow_flag"))
        self._delay_s = float(options.pop("delay_s", 0))
        self._inner = FaultyHandler(HandlerSettings(settings.output_dir, settings.metrics, options))

    def handle(self, job: JobInput, dead_letters: DeadLetterSink) -> HandlerResult:
        if self._delay_s and self._flag.exists():
            time.sleep(self._delay_s)  # the simulated slow work, not synchronisation
        return self._inner.handle(job, dead_letters)


# --- the rig: one scenario's topic, group, job store and daemons ------------------------------


@dataclass
class _Rig:
    """Everything one scenario creates; ``close`` leaves no process behind."""

    workdir: Path
    bootstrap: str
    name: str
    partitions: int = PARTITIONS
    topic: str = ""
    group: str = ""
    daemons: list[DaemonProcess] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        tag = uuid.uuid4().hex[:8]
        self.topic = self.topic or f"flow-{self.name}-{tag}"
        self.group = self.group or f"g-{self.name}-{tag}"

    @property
    def job_store(self) -> str:
        return f"sqlite:///{self.workdir}/jobs.db"

    @property
    def out(self) -> Path:
        return self.workdir / "out"

    @property
    def dlq(self) -> str:
        return f"{self.topic}.dlq"

    def daemon(
        self, name: str, restart_of: DaemonProcess | None = None, **extra: dict[str, Any]
    ) -> DaemonProcess:
        """A daemon of this scenario (not started). ``restart_of``: the same
        daemon started again, so on the same admin and metrics ports (its job
        store claims are in the name of its host and admin port)."""
        sections: dict[str, dict[str, Any]] = {"daemon": {"shutdown_grace_s": GRACE_S}}
        for section, values in extra.items():
            sections.setdefault(section, {}).update(values)
        config = {
            "bootstrap": self.bootstrap,
            "topics": [self.topic],
            "group_id": self.group,
            "output_dir": self.out,
            "job_store": self.job_store,
            "extra": sections,
        }
        if restart_of is None:
            daemon = new_daemon(self.workdir, name, **config)
        else:
            ports = {"admin_port": restart_of.admin_port, "metrics_port": restart_of.metrics_port}
            path = write_config(self.workdir / f"{name}.toml", **ports, **config)
            daemon = DaemonProcess(path, self.workdir / f"{name}.log", **ports)
        # Handlers under tests/ must import in the daemon and its actors, whatever the cwd.
        paths = [str(REPO_ROOT), *filter(None, [os.environ.get("PYTHONPATH")])]
        daemon.env["PYTHONPATH"] = os.pathsep.join(paths)
        self.daemons.append(daemon)
        return daemon

    def create_topic(self) -> None:
        create_topic_if_missing(self.bootstrap, self.topic, self.partitions)

    def committed_total(self) -> int:
        from tests.support.checks import committed_offsets

        offsets = committed_offsets(
            self.bootstrap, self.group, self.topic, list(range(self.partitions))
        )
        return sum(max(o, 0) for o in offsets.values())

    def wait_complete(
        self, daemon: DaemonProcess, report: ProduceReport, timeout_s: float = DRAIN_TIMEOUT_S
    ) -> float:
        """Wait until every offset is committed and no job is left; return the seconds."""
        from tests.support.checks import all_committed, jobs_unfinished

        started = time.monotonic()

        def done() -> bool:
            daemon.check_alive()
            return (
                all_committed(self.bootstrap, self.group, self.topic, report)
                and jobs_unfinished(self.job_store) == 0
            )

        wait_for(done, timeout_s, "every offset committed and every job done", 0.5)
        return time.monotonic() - started

    def stop(self, daemon: DaemonProcess, timeout_s: float = GRACE_S + 30) -> float:
        """SIGTERM; assert exit 0 and no process left; return the shutdown seconds."""
        started = time.monotonic()
        code = daemon.terminate(timeout_s)
        took = time.monotonic() - started
        assert code == 0, f"{daemon.log_path.name} exited with {code}:\n{daemon.log_tail()}"
        daemon.assert_nothing_left()
        return took

    def check(self, report: ProduceReport, dead_letters_exactly_once: bool = True) -> None:
        from tests.support.checks import assert_exactly_once

        assert_exactly_once(
            self.out, self.topic, report, self.bootstrap, self.dlq, dead_letters_exactly_once
        )

    def dead_letters_twice(self, report: ProduceReport) -> int:
        """How many dead letters of this topic are in the dead-letter topic more than once."""
        from tests.support.checks import dead_letters

        sources = Counter(
            (h.get("source_partition"), h.get("source_offset"))
            for h in dead_letters(self.bootstrap, self.dlq, report.malformed)
            if h.get("source_topic") == self.topic
        )
        return sum(1 for n in sources.values() if n > 1)

    def close(self) -> None:
        for daemon in self.daemons:
            daemon.cleanup()


@contextlib.contextmanager
def _rig(workdir: Path, bootstrap: str, name: str, **kwargs: Any) -> Iterator[_Rig]:
    rig = _Rig(workdir, bootstrap, name, **kwargs)
    try:
        yield rig
    finally:
        rig.close()


class _Feeder:
    """``produce`` in a thread: at ``rate`` until ``count`` records, or until stopped."""

    def __init__(self, bootstrap: str, topic: str, **kwargs: Any) -> None:
        self._stop = threading.Event()
        self.reports: list[ProduceReport] = []
        self.errors: list[BaseException] = []
        options = {
            "devices": 100,
            "malformed_ratio": MALFORMED_RATIO,
            "partitions": PARTITIONS,
            **kwargs,
        }

        def run() -> None:
            try:
                self.reports.append(produce(bootstrap, topic, stop=self._stop, **options))
            except BaseException as exc:
                self.errors.append(exc)

        self._thread = threading.Thread(target=run, name=f"feeder-{topic}", daemon=True)
        self._thread.start()

    @property
    def running(self) -> bool:
        return self._thread.is_alive()

    def stop(self) -> None:
        self._stop.set()

    def report(self, timeout_s: float = 200) -> ProduceReport:
        """Wait for the producer to finish (every delivery report in) and return its report."""
        self._thread.join(timeout_s)
        assert not self._thread.is_alive(), f"the producer did not finish within {timeout_s}s"
        if self.errors:
            raise AssertionError(f"the producer failed: {self.errors[0]!r}") from self.errors[0]
        return self.reports[0]

    def close(self) -> None:
        self._stop.set()
        self._thread.join(60)


@contextlib.contextmanager
def _feeding(bootstrap: str, topic: str, **kwargs: Any) -> Iterator[_Feeder]:
    feeder = _Feeder(bootstrap, topic, **kwargs)
    try:
        yield feeder
    finally:
        feeder.close()


# --- memory and status sampling --------------------------------------------------------------


@dataclass(frozen=True)
class _Sample:
    at: float  # monotonic
    rss: int  # sum over every actorsys process (shared pages counted once per process)
    pss: int  # sum of proportional set sizes (shared pages split between sharers)
    processes: int
    paused: int | None  # paused partitions per /status, None when /status did not answer
    rebalances: int | None
    pss_by_pid: dict[int, int] = field(default_factory=dict)


def _memory(daemon: DaemonProcess) -> tuple[int, int, dict[int, int]]:
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


def _roles(daemon: DaemonProcess) -> dict[int, str]:
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


class _Sampler:
    """Every ``every_s``: total memory of all actorsys processes, paused
    partitions and the rebalance count from /status."""

    def __init__(self, daemon: DaemonProcess, every_s: float = 0.5) -> None:
        self._daemon = daemon
        self._every_s = every_s
        self._stop = threading.Event()
        self.samples: list[_Sample] = []
        self._thread = threading.Thread(target=self._run, name="sampler", daemon=True)

    def __enter__(self) -> _Sampler:
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
            rss, pss, by_pid = _memory(self._daemon)
            self.samples.append(
                _Sample(time.monotonic(), rss, pss, len(by_pid), paused, rebalances, by_pid)
            )
            next_at += self._every_s
            # A sampling period, not synchronisation: nothing waits on it.
            self._stop.wait(max(0.0, next_at - time.monotonic()))

    def between(self, start: float, end: float) -> list[_Sample]:
        return [s for s in self.samples if start <= s.at <= end]


# --- logs -------------------------------------------------------------------------------------


def _log_size(daemon: DaemonProcess) -> int:
    return daemon.log_path.stat().st_size if daemon.log_path.exists() else 0


def _log_slice(daemon: DaemonProcess, start: int, end: int | None = None) -> list[str]:
    """The daemon log's lines written between two byte offsets."""
    with daemon.log_path.open("rb") as fh:
        fh.seek(start)
        data = fh.read() if end is None else fh.read(max(0, end - start))
    return data.decode(errors="replace").splitlines()


def _wait_log(daemon: DaemonProcess, pattern: str, timeout_s: float, start: int = 0) -> str:
    """Wait until a line matching ``pattern`` appears in the log; return it."""
    regex = re.compile(pattern)

    def found() -> str | None:
        return next((line for line in _log_slice(daemon, start) if regex.search(line)), None)

    return wait_for(found, timeout_s, f"a log line matching {pattern!r}", 0.2)


def _drain_line(daemon: DaemonProcess) -> str:
    return next(
        (line for line in _log_slice(daemon, 0) if "drained in" in line or "drain did not" in line),
        "(no drain line)",
    )


def _jobs_by_status(job_store: str) -> str:
    from actorsys.jobs.open import open_job_store

    store = open_job_store(job_store)
    try:
        return ",".join(f"{s.value}:{n}" for s, n in sorted(store.count_by_status().items()))
    finally:
        store.close()


def _growth_by_role(window: list[_Sample], middle: float, roles: dict[int, str]) -> str:
    """Per role (processes of one role summed): second-half peak minus first-half
    peak of the rolling-median PSS, the three largest, e.g. "worker:+6.1"."""
    names = sorted(set(roles.values()) | {"other"})
    growth = {}
    for role in names:
        series = [
            sum(p for pid, p in s.pss_by_pid.items() if roles.get(pid, "other") == role)
            for s in window
        ]
        smooth = _rolling_median(series, FLAT_SMOOTHING)
        first = [p for s, p in zip(window, smooth, strict=True) if s.at < middle]
        second = [p for s, p in zip(window, smooth, strict=True) if s.at >= middle]
        if first and second:
            growth[role] = max(second) - max(first)
    top = sorted(growth.items(), key=lambda kv: -abs(kv[1]))[:3]
    return ",".join(f"{role}:{_mib(delta):+}" for role, delta in top)


def _rolling_median(values: list[int], width: int) -> list[float]:
    """Each value replaced by the median of the ``width`` values centred on it."""
    half = width // 2
    return [statistics.median(values[max(0, i - half) : i + half + 1]) for i in range(len(values))]


def _mib(n: float) -> float:
    return round(n / MIB, 1)


# --- overload ---------------------------------------------------------------------------------

# Once the caps are full: the producer outruns the worker for WARMUP_S + OVERLOAD_S;
# memory must be flat over the last OVERLOAD_S (processes grow to their working
# set in the first seconds of saturation: in a 120 s run the JobManager took
# ~20 s to settle at +8 MiB, then stayed there).
WARMUP_S = 15.0
OVERLOAD_S = 35.0
OVERLOAD_RATE = 15_000  # records/s: ~5x what one worker at 0.3 s per 1,000-record job takes
OVERLOAD_BUDGET = GIB
# Flat: the window's second half peaks at most this much above its first half,
# peaks taken over a rolling median of this many samples (see the docstring).
FLAT_TOLERANCE = 0.15
FLAT_SMOOTHING = 5
OVERLOAD_KAFKA = {
    # Shorter than the window: a consumer that stopped polling while its
    # partitions are paused would be kicked out of its group within it.
    "max.poll.interval.ms": "10000",
    # librdkafka's default fetch.max.bytes (50 MiB) is memory too: the embedded
    # broker ignores max.partition.fetch.bytes, so each fetch after a resume
    # brought up to 50 MiB at once (spikes of +40 MiB in the consumer process).
    "fetch.max.bytes": str(4 * MIB),
    # Its prefetch queue (16 MiB in actorsys's defaults) refills on every resume
    # and is dropped on every pause: the consumer process swung by ~30 MiB.
    "queued.max.messages.kbytes": "4096",
}
OVERLOAD_FLOW = {
    # Small enough that the backlog stays in Kafka within seconds: no record is
    # read before its job runs, and these cap the offsets handed out and not
    # yet stored as jobs, so the JobManager's held notifications stay few.
    "max_inflight_records_per_partition": 10_000,
    "max_inflight_records": 40_000,
    "max_pending_jobs": 16,
}


@scenario("overload")
def overload(workdir: Path, broker: EmbeddedBroker) -> ScenarioResult:
    """One worker at 0.3 s per 1,000-record job (~3,000 records/s) against a
    producer at 15,000 records/s, for 50 s after the caps first fill.

    Memory: the sum over every process of the daemon (its group and its actor
    system's group), RSS and PSS, every 0.5 s. The budget is on PSS (forked
    actor processes share pages; RSS counts them once per process). Flat: the
    window judged is the last 35 s, 15 s after the first partition is paused
    (the caps are full, and the processes have grown to their working set:
    the JobManager settles ~20 s into saturation); unbounded buffering grows with
    the records produced, which over 35 s at 15,000/s is ~500,000 records
    (~50 MB of payload, more as Python objects), so the second half's peak
    would be far above the first half's; bounded memory keeps the two peaks
    within allocator noise. We allow 15 %, comparing peaks of the rolling
    median over 5 samples (2.5 s): a single fetch response or a garbage
    collection makes a spike of one or two samples that says nothing about
    growth, while growth, bounded or not, lasts. The raw peaks are reported
    too, and every raw sample counts against the budget.

    Group membership: ``max.poll.interval.ms`` is cut to 10 s, so a consumer
    that stopped polling while paused would be kicked out within the window;
    /status's rebalance count must not move and no ``revoked``/``lost`` line
    may appear in the log.
    """
    with _rig(workdir, broker.bootstrap_servers, "overload") as rig:
        flag = workdir / "slow.flag"
        flag.touch()
        # Given one slow worker, small caps, and a consumer that must poll every 10 s
        rig.create_topic()
        daemon = rig.daemon(
            "daemon",
            kafka={"properties": OVERLOAD_KAFKA},
            batching={"max_records": 1000, "linger_ms": 300},
            flow=OVERLOAD_FLOW,
            workers={"count": 1},
            output={"handler": THROTTLED, "options": {"delay_s": 0.3, "slow_flag": str(flag)}},
        )
        daemon.start()
        daemon.wait_ready()
        with (
            _Sampler(daemon) as sampler,
            _feeding(rig.bootstrap, rig.topic, rate=OVERLOAD_RATE, count=0, seed=31) as feeder,
        ):
            # When the producer outruns the worker until the caps are full ...
            def some_paused() -> bool:
                daemon.check_alive()
                return any(s.paused for s in sampler.samples[-2:])

            wait_for(some_paused, 60, "a partition to be paused", 0.25)
            overload_start = time.monotonic()
            roles = _roles(daemon)
            log_at_start = _log_size(daemon)
            rebalances_at_start = daemon.status()["components"]["kafka_consumer"]["rebalances"]
            # ... and keeps at it for the whole window (the injected fault itself)
            while time.monotonic() - overload_start < WARMUP_S + OVERLOAD_S:
                daemon.check_alive()
                assert feeder.running, f"the producer stopped: {feeder.errors!r}"
                time.sleep(0.5)
            window_end = time.monotonic()
            window_start = overload_start + WARMUP_S
            rebalances_at_end = daemon.status()["components"]["kafka_consumer"]["rebalances"]
            window_log = _log_slice(daemon, log_at_start, _log_size(daemon))
            committed_at_end = rig.committed_total()
            # Then the producer stops, the handler is fast again, and the backlog drains
            feeder.stop()
            report = feeder.report()
            flag.unlink()
            drain_s = rig.wait_complete(daemon, report)
        shutdown_s = rig.stop(daemon)
        rig.check(report)

        window = sampler.between(window_start, window_end)
        middle = window_start + (window_end - window_start) / 2
        smooth = _rolling_median([s.pss for s in window], FLAT_SMOOTHING)
        first = [p for s, p in zip(window, smooth, strict=True) if s.at < middle]
        second = [p for s, p in zip(window, smooth, strict=True) if s.at >= middle]
        raw_first = [s.pss for s in window if s.at < middle]
        raw_second = [s.pss for s in window if s.at >= middle]
        everything = sampler.samples
        peak_pss = max(s.pss for s in everything)
        peak_rss = max(s.rss for s in everything)
        paused_samples = [s for s in window if s.paused]
        figures = {
            "records_in": report.produced,
            "valid": report.valid,
            "dead_letters": report.malformed,
            "producer_rate": round(report.records_per_s),
            "overload_s": round(window_end - overload_start, 1),
            "flat_window_s": round(window_end - window_start, 1),
            "committed_at_window_end": committed_at_end,
            "peak_rss_mib": _mib(peak_rss),
            "peak_pss_mib": _mib(peak_pss),
            "pss_first_half_peak_mib": _mib(max(first)),
            "pss_second_half_peak_mib": _mib(max(second)),
            "pss_first_half_raw_max_mib": _mib(max(raw_first)),
            "pss_second_half_raw_max_mib": _mib(max(raw_second)),
            "pss_window_min_mib": _mib(min(raw_first + raw_second)),
            "processes": max(s.processes for s in everything),
            "pss_growth_by_role_mib": _growth_by_role(window, middle, roles),
            "samples": len(window),
            "paused_share": round(len(paused_samples) / max(1, len(window)), 2),
            "max_paused_partitions": max((s.paused or 0) for s in window),
            "rebalances_in_window": rebalances_at_end - rebalances_at_start,
            "log_lines_in_window": len(window_log),
            "drain_s": round(drain_s, 1),
            "shutdown_s": round(shutdown_s, 1),
        }
        result = ScenarioResult(
            "overload",
            f"one worker at 0.3 s/job vs a producer at {OVERLOAD_RATE}/s for "
            f"{WARMUP_S + OVERLOAD_S:.0f} s",
            figures,
        )
        # Then memory stayed under the budget and flat, partitions were paused,
        # and the consumer never left its group
        assert peak_pss < OVERLOAD_BUDGET, result.summary()
        assert max(second) <= max(first) * (1 + FLAT_TOLERANCE), (
            f"memory grew during the overload: {result.summary()}"
        )
        assert paused_samples, f"no partition was ever paused: {result.summary()}"
        assert rebalances_at_end == rebalances_at_start, result.summary()
        kicked = [line for line in window_log if re.search(r"\b(revoked|lost)\b", line)]
        assert not kicked, f"the consumer left its group during the overload: {kicked[:3]}"
        return result


# --- SIGTERM under load ------------------------------------------------------------------------

LOAD_RATE = 10_000  # records/s: more than two workers at 0.3 s per job take
LOAD_COUNT = 200_000
LOAD_BUSY = {
    "batching": {"max_records": 1000, "linger_ms": 300},
    # The overload scenario's caps: the daemon reaches them within seconds, so
    # the signal finds it saturated (partitions paused, ACKs withheld).
    "flow": OVERLOAD_FLOW,
    "workers": {"count": 2},
}


def _busy_output(workdir: Path, delay_s: float) -> dict[str, Any]:
    return {"handler": FAULTY, "options": {"delay_s": delay_s, "pid_dir": str(workdir / "pids")}}


def _jobs_running(workdir: Path) -> int:
    """How many jobs a worker is in the middle of (FaultyHandler's pid markers)."""
    pids = workdir / "pids"
    return len(list(pids.iterdir())) if pids.exists() else 0


def _paused(daemon: DaemonProcess) -> int:
    with contextlib.suppress(Exception):
        partitions = daemon.status()["components"]["kafka_consumer"]["partitions"]
        return sum(1 for p in partitions if p["paused"])
    return 0


def _wait_under_load(
    rig: _Rig, daemon: DaemonProcess, feeder: _Feeder, committed: int, saturated: bool
) -> None:
    """Until some work is committed and a worker is mid-job (and, if
    ``saturated``, a partition paused), the producer still running."""

    def loaded() -> bool:
        daemon.check_alive()
        assert feeder.running, "the stream ended before the signal: the test proves nothing"
        return (
            rig.committed_total() >= committed
            and _jobs_running(rig.workdir) > 0
            and (not saturated or _paused(daemon) > 0)
        )

    wait_for(loaded, 90, f"{committed} records committed and a job running", 0.2)


@scenario("sigterm_under_load")
def sigterm_under_load(workdir: Path, broker: EmbeddedBroker) -> ScenarioResult:
    """SIGTERM while the producer runs and both workers are busy: the daemon
    drains and exits 0 within ``shutdown_grace_s``; a second run takes the rest."""
    with _rig(workdir, broker.bootstrap_servers, "sigterm") as rig:
        # Given a producer outrunning two workers at 0.3 s per job
        rig.create_topic()
        first = rig.daemon("first", output=_busy_output(workdir, 0.3), **LOAD_BUSY)
        first.start()
        first.wait_ready()
        with _feeding(
            rig.bootstrap, rig.topic, rate=LOAD_RATE, count=LOAD_COUNT, seed=41
        ) as feeder:
            _wait_under_load(rig, first, feeder, committed=10_000, saturated=True)
            running_at_signal = _jobs_running(workdir)
            paused_at_signal = _paused(first)
            # When it gets SIGTERM
            shutdown_s = rig.stop(first)
            drain = _drain_line(first)
            committed_at_stop = rig.committed_total()
            # Then it exited 0 within the grace period, leaving nothing (rig.stop);
            # and a second run, with a fast handler, drains the rest
            second = rig.daemon(
                "second", restart_of=first, output=_busy_output(workdir, 0), **LOAD_BUSY
            )
            second.start()
            second.wait_ready()
            report = feeder.report()
        drain_s = rig.wait_complete(second, report)
        second_shutdown_s = rig.stop(second)
        # And nothing was lost or written twice across the restart
        rig.check(report)
        result = ScenarioResult(
            "sigterm_under_load",
            f"SIGTERM with the producer at {LOAD_RATE}/s, {running_at_signal} job(s) running "
            f"and {paused_at_signal} partition(s) paused",
            {
                "records_in": report.produced,
                "valid": report.valid,
                "dead_letters": report.malformed,
                "committed_at_sigterm": committed_at_stop,
                "shutdown_s": round(shutdown_s, 1),
                "grace_s": GRACE_S,
                "drain": drain.split("] ", 1)[-1],
                "second_run_drain_s": round(drain_s, 1),
                "second_shutdown_s": round(second_shutdown_s, 1),
            },
        )
        assert shutdown_s <= GRACE_S + 5, result.summary()
        assert "all open batches ACKed and committed" in drain, (
            f"the drain was not clean: {drain}\n{first.log_tail(60)}"
        )
        return result


@scenario("sigterm_twice")
def sigterm_twice(workdir: Path, broker: EmbeddedBroker) -> ScenarioResult:
    """A second SIGTERM while the first one's drain waits for 5-second jobs:
    the daemon stops at once (any exit code), leaves no process, and a second
    run loses nothing (dead letters at least once: jobs were cut short)."""
    with _rig(workdir, broker.bootstrap_servers, "sigterm2") as rig:
        # Given busy workers whose jobs take 5 s each, and a producer still running
        rig.create_topic()
        first = rig.daemon("first", output=_busy_output(workdir, 5.0), **LOAD_BUSY)
        first.start()
        first.wait_ready()
        with _feeding(rig.bootstrap, rig.topic, rate=5_000, count=60_000, seed=43) as feeder:
            _wait_under_load(rig, first, feeder, committed=1, saturated=False)
            # When SIGTERM starts a drain that must wait for the running jobs ...
            assert first.proc is not None
            first.proc.send_signal(signal.SIGTERM)
            _wait_log(first, r"SIGTERM: draining", 10)
            assert _jobs_running(workdir) > 0, "no job running: the drain would end at once"
            # ... and a second SIGTERM arrives during it
            started = time.monotonic()
            first.proc.send_signal(signal.SIGTERM)
            try:
                code = first.proc.wait(15)
            except subprocess.TimeoutExpired:
                raise AssertionError(
                    f"no exit 15 s after the second SIGTERM:\n{first.log_tail()}"
                ) from None
            exit_s = time.monotonic() - started
            # Then it stopped at once and left no process behind
            first.assert_nothing_left()
            drained_first = any("drained in" in line for line in _log_slice(first, 0))
            second = rig.daemon(
                "second", restart_of=first, output=_busy_output(workdir, 0), **LOAD_BUSY
            )
            second.start()
            second.wait_ready()
            report = feeder.report()
        drain_s = rig.wait_complete(second, report)
        second_shutdown_s = rig.stop(second)
        # And the restart lost nothing and wrote nothing twice
        rig.check(report, dead_letters_exactly_once=False)
        result = ScenarioResult(
            "sigterm_twice",
            "a second SIGTERM during the drain of 5 s jobs",
            {
                "records_in": report.produced,
                "valid": report.valid,
                "dead_letters": report.malformed,
                "exit_code": code,
                "exit_after_second_signal_s": round(exit_s, 2),
                "dead_letters_sent_twice": rig.dead_letters_twice(report),
                "second_run_drain_s": round(drain_s, 1),
                "second_shutdown_s": round(second_shutdown_s, 1),
            },
        )
        assert not drained_first, f"the drain finished before the second signal: {result}"
        if exit_s >= 5:
            raise SecondSignalTooSlow(f"no exit at once on a second signal: {result.summary()}")
        return result


# --- the broker frozen, and the broker not there yet -------------------------------------------

PAUSE_S = 30.0
PAUSE_LOG_LINES = 100


@scenario("broker_pause")
def broker_pause(workdir: Path, broker: EmbeddedBroker) -> ScenarioResult:
    """The broker frozen with SIGSTOP for 30 s mid-stream, then resumed.

    Uses a broker of its own (``broker`` is ignored): freezing the shared one
    would stall every other test."""
    with EmbeddedBroker() as own, _rig(workdir, own.bootstrap_servers, "pause") as rig:
        # Given a daemon consuming a stream (the producer waits out the pause too)
        rig.create_topic()
        daemon = rig.daemon("daemon")
        daemon.start()
        daemon.wait_ready()
        with _feeding(
            rig.bootstrap,
            rig.topic,
            rate=4_000,
            count=100_000,
            seed=51,
            producer_config={"message.timeout.ms": 180_000},
        ) as feeder:

            def some_committed() -> bool:
                daemon.check_alive()
                return rig.committed_total() >= 10_000

            wait_for(some_committed, 60, "10,000 records committed", 0.25)
            # When the broker is frozen for 30 s (the fault itself: it lasts that long)
            log_at_pause = _log_size(daemon)
            own.pause()
            paused_at = time.monotonic()
            try:
                while time.monotonic() - paused_at < PAUSE_S:
                    daemon.check_alive()  # Then the daemon stays up the whole time
                    time.sleep(0.5)
            finally:
                own.resume()
            pause_log = _log_slice(daemon, log_at_pause, _log_size(daemon))
            resumed_at = time.monotonic()
            report = feeder.report()
        # And after the resume everything drains
        drain_s = rig.wait_complete(daemon, report, timeout_s=180)
        recovery_s = time.monotonic() - resumed_at
        shutdown_s = rig.stop(daemon)
        # A worker whose dead letters could not be delivered within 30 s fails
        # its attempt and the retry sends them again: at least once here.
        rig.check(report, dead_letters_exactly_once=False)
        status_lines = [line for line in pause_log if re.match(r"\d{4}-\d\d-\d\d ", line)]
        result = ScenarioResult(
            "broker_pause",
            f"broker SIGSTOPped for {PAUSE_S:.0f} s mid-stream",
            {
                "records_in": report.produced,
                "valid": report.valid,
                "dead_letters": report.malformed,
                "log_lines_during_pause": len(pause_log),
                "log_events_during_pause": len(status_lines),
                "dead_letters_sent_twice": rig.dead_letters_twice(report),
                "drain_after_resume_s": round(recovery_s, 1),
                "final_wait_s": round(drain_s, 1),
                "shutdown_s": round(shutdown_s, 1),
            },
        )
        # And the log was not flooded while the broker was frozen
        assert len(pause_log) < PAUSE_LOG_LINES, (
            f"{len(pause_log)} log lines in {PAUSE_S:.0f} s:\n" + "\n".join(pause_log[:40])
        )
        return result


ABSENT_S = 15.0
ABSENT_LOG_LINES = 60


@scenario("broker_late")
def broker_late(workdir: Path, broker: EmbeddedBroker) -> ScenarioResult:
    """The daemon starts with no broker on its port; the broker comes 15 s
    later, on that very port. Uses a broker of its own (``broker`` is ignored)."""
    from confluent_kafka.admin import AdminClient

    port = free_port_below_ephemeral()  # the daemon's actors bind port 0 meanwhile
    bootstrap = f"127.0.0.1:{port}"
    late = EmbeddedBroker(port=port)
    try:
        with _rig(workdir, bootstrap, "late") as rig:
            # Given a daemon started while nothing listens on the broker's port
            daemon = rig.daemon("daemon")
            daemon.start()

            def serving() -> bool:
                daemon.check_alive()
                try:
                    return daemon.http("/healthz")[0] == 200
                except OSError:
                    return False

            wait_for(serving, 60, "the daemon to serve /healthz without a broker", 0.25)
            log_at_up = _log_size(daemon)
            # When the broker stays absent a while (the fault itself) ...
            absent_from = time.monotonic()
            while time.monotonic() - absent_from < ABSENT_S:
                daemon.check_alive()  # Then the daemon stays up ...
                time.sleep(0.5)
            absent_log = _log_slice(daemon, log_at_up, _log_size(daemon))
            ready_without_broker = daemon.http("/readyz")[0] == 200
            # ... and then starts on the port the daemon was given
            late.start()
            admin = AdminClient({"bootstrap.servers": bootstrap})
            dlq_at_broker_start = rig.dlq in admin.list_topics(timeout=10).topics
            came_at = time.monotonic()
            report = produce(
                bootstrap,
                rig.topic,
                devices=100,
                rate=0,
                count=40_000,
                malformed_ratio=0.02,
                partitions=PARTITIONS,
                seed=61,
            )
            daemon.wait_ready(90)
            ready_s = time.monotonic() - came_at
            drain_s = rig.wait_complete(daemon, report)
            dlq_at_end = rig.dlq in admin.list_topics(timeout=10).topics
            shutdown_s = rig.stop(daemon)
            rig.check(report)
            startup_warning = next(
                (line for line in _log_slice(daemon, 0) if "could not create topic" in line), ""
            )
            result = ScenarioResult(
                "broker_late",
                f"no broker for the daemon's first {ABSENT_S:.0f} s",
                {
                    "records_in": report.produced,
                    "valid": report.valid,
                    "dead_letters": report.malformed,
                    "log_lines_while_absent": len(absent_log),
                    "ready_without_broker": ready_without_broker,
                    "dlq_topic_when_broker_came": dlq_at_broker_start,
                    "dlq_topic_at_end": dlq_at_end,
                    "startup_dlq_warning": bool(startup_warning),
                    "ready_after_broker_s": round(ready_s, 1),
                    "drain_s": round(drain_s, 1),
                    "shutdown_s": round(shutdown_s, 1),
                },
            )
            # And it logged the outage at a bounded rate, was not ready without a
            # broker, and created nothing before the broker existed
            assert len(absent_log) < ABSENT_LOG_LINES, "\n".join(absent_log[:40])
            assert not ready_without_broker, result.summary()
            assert startup_warning, "start-up did not say it could not create the DLQ topic"
            assert not dlq_at_broker_start, result.summary()
            assert dlq_at_end, result.summary()
            return result
    finally:
        late.stop()


# --- records the handler must reject -----------------------------------------------------------

YEAR_1900_MS = -2_208_988_800_000  # 1900-01-01T00:00:00Z
YEAR_3000_MS = 32_503_680_000_000  # 3000-01-01T00:00:00Z
# librdkafka's default message.max.bytes (1,000,000) refuses anything bigger
# at produce(), before the broker sees it.
DEFAULT_MESSAGE_MAX_BYTES = 1_000_000


def _reading(device: str, ts: int | str, metrics: str = "") -> bytes:
    """A reading built as text, so it can hold literals ``json`` would refuse."""
    body = f'"device_id":"{device}","ts":{ts}'
    return ("{" + body + (f",{metrics}" if metrics else "") + "}").encode()


def _huge_valid(now_ms: int, size: int) -> bytes:
    """A valid reading of ``size`` bytes: extra fields are ignored by the handler."""
    head = _reading("dev-huge", now_ms, '"temperature":21.5,"note":"')
    return head[:-1] + b"x" * (size - len(head) - 1) + b'"}'


def _huge_invalid(size: int) -> bytes:
    """``size`` bytes of JSON cut off inside a string: not JSON."""
    head = b'{"device_id":"dev-huge","ts":1,"note":"'
    return head + b"y" * (size - len(head))


def _bad_values(now_ms: int, invalid_blob_size: int) -> list[tuple[str, bytes | None, str]]:
    """(what, value, the dead-letter reason it must get)."""
    return [
        ("binary noise", b"\x80\xff\xfe\x00 not text", "invalid_utf8"),
        ("invalid UTF-8 inside JSON", b'{"device_id":"dev-\xff\xfe","ts":1}', "invalid_utf8"),
        ("a JSON array", b'[{"device_id":"dev-0001","ts":%d}]' % now_ms, "not_object"),
        ("an empty JSON array", b"[]", "not_object"),
        # NaN and Infinity are not JSON (RFC 8259): not_json, not not_finite.
        ("NaN", _reading("dev-0001", now_ms, '"temperature":NaN'), "not_json"),
        ("Infinity", _reading("dev-0001", now_ms, '"humidity":Infinity'), "not_json"),
        ("-Infinity", _reading("dev-0001", now_ms, '"battery":-Infinity'), "not_json"),
        ("1e999", _reading("dev-0001", now_ms, '"temperature":1e999'), "not_finite"),
        ("ts in 1900", _reading("dev-0001", YEAR_1900_MS), "ts_out_of_range"),
        ("ts in 3000", _reading("dev-0001", YEAR_3000_MS), "ts_out_of_range"),
        (f"{invalid_blob_size:,} bytes not JSON", _huge_invalid(invalid_blob_size), "not_json"),
        ("an empty value", b"", "empty"),
        ("a null value (tombstone)", None, "tombstone"),
    ]


def _produce_mixed(
    bootstrap: str, topic: str, bad: list[tuple[str, bytes | None, str]], valid: list[bytes]
) -> tuple[ProduceReport, dict[tuple[int, int], str]]:
    """Produce ``valid`` with the ``bad`` ones spread among them, on 2 partitions;
    return the report and the reason expected at each bad position."""
    from confluent_kafka import Producer

    create_topic_if_missing(bootstrap, topic, 2)
    producer = Producer(
        {
            "bootstrap.servers": bootstrap,
            "acks": "all",
            "linger.ms": 5,
            # Above librdkafka's 1,000,000-byte default, for the 1 MiB records.
            "message.max.bytes": 8 * MIB,
        }
    )
    records: list[tuple[bytes | None, str | None]] = [(v, None) for v in valid]
    step = max(1, len(valid) // (len(bad) + 1))
    for i, (_what, value, reason) in enumerate(bad):
        records.insert((i + 1) * step + i, (value, reason))
    expected: dict[tuple[int, int], str] = {}
    errors: list[str] = []
    end_offsets: dict[int, int] = {}
    started = time.monotonic()

    def delivered(reason: str | None) -> Any:
        def on_delivery(err: Any, msg: Any) -> None:
            if err is not None:
                errors.append(str(err))
                return
            position = (msg.partition(), msg.offset())
            end_offsets[position[0]] = max(end_offsets.get(position[0], 0), position[1] + 1)
            if reason is not None:
                expected[position] = reason

        return on_delivery

    for i, (value, reason) in enumerate(records):
        key = f"dev-{i % 10:04d}".encode()
        producer.produce(topic, value, key, partition=i % 2, on_delivery=delivered(reason))
        producer.poll(0)
    assert producer.flush(60) == 0, "records still undelivered after 60 s"
    assert not errors, f"delivery failed: {errors[:3]}"
    by_reason: dict[str, int] = {}
    for reason in expected.values():
        by_reason[reason] = by_reason.get(reason, 0) + 1
    report = ProduceReport(
        topic=topic,
        produced=len(records),
        valid=len(valid),
        malformed=len(bad),
        end_offsets=dict(sorted(end_offsets.items())),
        malformed_positions=frozenset(expected),
        elapsed_s=time.monotonic() - started,
        malformed_by_kind=by_reason,
    )
    return report, expected


def _bad_records(
    workdir: Path, broker: EmbeddedBroker, name: str, invalid_blob_size: int
) -> ScenarioResult:
    from actorsys.simulator import IotRecordFactory
    from tests.support.checks import dead_letters

    with _rig(workdir, broker.bootstrap_servers, name, partitions=2) as rig:
        # Given valid readings, a 1 MiB valid one among them, and every kind of bad record
        now_ms = int(time.time() * 1000)
        factory = IotRecordFactory(devices=20, seed=71)
        valid = [value for _key, value, _kind in factory.batch(3000) if value is not None]
        valid.insert(len(valid) // 2, _huge_valid(now_ms, MIB))
        bad = _bad_values(now_ms, invalid_blob_size)
        report, expected = _produce_mixed(rig.bootstrap, rig.topic, bad, valid)
        # When the daemon reads them (failures retried quickly, so a job that
        # cannot dead-letter its records is FAILED within seconds), with
        # message.max.bytes raised for every Kafka client [kafka.properties] reaches
        daemon = rig.daemon(
            "daemon",
            kafka={"properties": {"message.max.bytes": str(8 * MIB)}},
            jobs={"max_attempts": 2, "retry_backoff_initial_s": 0.2},
        )
        started = time.monotonic()
        daemon.start()
        daemon.wait_ready()
        rig.wait_complete(daemon, report)
        complete_s = time.monotonic() - started
        shutdown_s = rig.stop(daemon)
        letters = dead_letters(rig.bootstrap, rig.dlq, len(bad))
        got = {
            (int(h["source_partition"]), int(h["source_offset"])): h.get("reason", "")
            for h in letters
            if h.get("source_topic") == rig.topic
        }
        wrong = {
            pos: (got.get(pos), want) for pos, want in expected.items() if got.get(pos) != want
        }
        result = ScenarioResult(
            name,
            f"{len(bad)} bad records among {len(valid)} valid ones "
            f"(1 MiB valid; a {invalid_blob_size:,}-byte invalid blob)",
            {
                "records_in": report.produced,
                "valid": report.valid,
                "bad": report.malformed,
                "dead_letters": len(letters),
                "reasons": ",".join(
                    f"{r}:{n}" for r, n in sorted(report.malformed_by_kind.items())
                ),
                "jobs_by_status": _jobs_by_status(rig.job_store),
                "start_to_all_done_s": round(complete_s, 1),
                "shutdown_s": round(shutdown_s, 1),
            },
        )
        # Then every bad record is dead-lettered with the right reason, and nothing else is
        missing = sorted(set(expected) - set(got))
        extra = Counter(reason for pos, reason in got.items() if pos not in expected)
        if missing or extra:
            raise DeadLettersWrong(
                f"dead letters: missing {missing} ({[expected[p] for p in missing]}); "
                f"{sum(extra.values())} valid record(s) dead-lettered too, by reason "
                f"{dict(extra)}: {result.summary()}"
            )
        if wrong:
            raise DeadLettersWrong(f"wrong dead-letter reasons (got, want): {wrong}")
        # And the exactly-once output check holds (valid ones in raw exactly once)
        rig.check(report)
        return result


@scenario("bad_records")
def bad_records(workdir: Path, broker: EmbeddedBroker) -> ScenarioResult:
    """Invalid UTF-8, JSON arrays, NaN/Infinity/1e999, ``ts`` in 1900 and 3000,
    an empty value, a tombstone and a 900 kB blob that is not JSON, among valid
    readings and one valid reading of 1 MiB (valid: extra fields are ignored)."""
    return _bad_records(workdir, broker, "bad_records", 900_000)


@scenario("bad_records_oversized")
def bad_records_oversized(workdir: Path, broker: EmbeddedBroker) -> ScenarioResult:
    """As ``bad_records``, but the invalid blob is 1 MiB: more than the
    dead-letter producer's ``message.max.bytes`` (librdkafka's default,
    1,000,000), which ``[kafka.properties]`` does not reach."""
    return _bad_records(workdir, broker, "bad_records_oversized", MIB)
