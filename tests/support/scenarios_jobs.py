"""Fault scenarios around jobs, workers and group membership.

Each scenario drives real ``actorsys run`` daemons against the real embedded
broker, injects one fault for real, waits (deadline-bounded polls) until the
committed offsets reach the end offsets and no job is PENDING or RUNNING,
stops the daemons (exit 0, no process left) and runs the exactly-once output
check. Registered for `scripts/chaos.py` and `tests/integration/test_faults_jobs.py`:

* ``rebalance_cooperative`` / ``rebalance_eager``: a second daemon (same group,
  same job store) joins while batches are in flight, leaves on SIGTERM, joins
  again and is killed with -9;
* ``worker_kill``: kill -9 of a worker process in the middle of a job;
* ``worker_sigstop``: a worker stopped past its lease and resumed; its stale
  completion must be rejected;
* ``flaky_handler``: every third job fails its first attempt;
* ``poison_job``: a job that always raises ends FAILED, dead-lettered; then
  ``actorsys jobs retry`` replays it once the poison is gone;
* ``crash_job``: a job that kills its worker every time ends FAILED;
* ``lost_messages``: a share of ACKs dropped and of batches sent twice.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil
from prometheus_client.parser import text_string_to_metric_families

from actorsys.embedded_broker import EmbeddedBroker
from actorsys.jobs.model import JobRecord, JobStatus
from actorsys.jobs.open import open_job_store
from actorsys.simulator import ProduceReport, create_topic_if_missing, produce
from tests.support.checks import (
    agg_count,
    all_committed,
    assert_exactly_once,
    dead_letters,
    jobs_unfinished,
    raw_positions,
    valid_positions,
)
from tests.support.daemon import DaemonProcess, new_daemon
from tests.support.scenario import ScenarioResult, scenario
from tests.support.waiting import wait_for

REPO_ROOT = Path(__file__).resolve().parents[2]
FAULTY = "tests.support.handlers:FaultyHandler"
PARTITIONS = 4
ALL_PARTITIONS = frozenset(range(PARTITIONS))
MALFORMED_RATIO = 0.01
DRAIN_TIMEOUT_S = 150.0
JOB_FAILED = "job_failed"


# --- the rig: one scenario's topic, group, job store and daemons ------------------------------


@dataclass
class _Rig:
    workdir: Path
    broker: EmbeddedBroker
    name: str
    topic: str = ""
    group: str = ""
    daemons: list[DaemonProcess] = field(default_factory=list)
    started: float = field(default_factory=time.monotonic)

    def __post_init__(self) -> None:
        suffix = uuid.uuid4().hex[:8]
        self.topic = self.topic or f"jobs-{self.name}-{suffix}"
        self.group = self.group or f"g-{self.name}-{suffix}"
        self.workdir.mkdir(parents=True, exist_ok=True)

    @property
    def bootstrap(self) -> str:
        return self.broker.bootstrap_servers

    @property
    def job_store(self) -> str:
        return f"sqlite:///{self.workdir}/jobs.db"

    @property
    def out(self) -> Path:
        return self.workdir / "out"

    @property
    def dlq(self) -> str:
        return f"{self.topic}.dlq"

    def elapsed(self) -> float:
        return round(time.monotonic() - self.started, 1)

    def daemon(
        self,
        name: str,
        extra: dict[str, dict[str, Any]] | None = None,
        env: dict[str, str] | None = None,
    ) -> DaemonProcess:
        """A daemon of this rig's group and job store (not started yet)."""
        # Plain Parquet output, whatever the handler: the rig's checks count the
        # per-job agg files (the table format has tests of its own).
        extra = {**(extra or {})}
        extra["output"] = {"format": "parquet", **extra.get("output", {})}
        daemon = new_daemon(
            self.workdir,
            name,
            bootstrap=self.bootstrap,
            topics=[self.topic],
            group_id=self.group,
            output_dir=self.out,
            job_store=self.job_store,
            extra=extra,
        )
        # Workers import the test handler: make the repository importable
        # whatever the caller's working directory (scripts/chaos.py).
        path = os.pathsep.join(p for p in (str(REPO_ROOT), os.environ.get("PYTHONPATH")) if p)
        daemon.env = {"PYTHONPATH": path, **(env or {})}
        self.daemons.append(daemon)
        return daemon

    def start(
        self,
        name: str,
        extra: dict[str, dict[str, Any]] | None = None,
        env: dict[str, str] | None = None,
    ) -> DaemonProcess:
        daemon = self.daemon(name, extra, env).start()
        daemon.wait_ready(90)
        return daemon

    def produce(self, count: int, seed: int) -> ProduceReport:
        return produce(
            self.bootstrap,
            self.topic,
            devices=100,
            rate=0,
            count=count,
            malformed_ratio=MALFORMED_RATIO,
            partitions=PARTITIONS,
            seed=seed,
        )

    def wait_drained(
        self,
        report: ProduceReport,
        alive: Iterable[DaemonProcess],
        timeout_s: float = DRAIN_TIMEOUT_S,
    ) -> float:
        """Until every offset is committed and no job is PENDING or RUNNING;
        returns how long that took."""
        began = time.monotonic()
        running = list(alive)

        def drained() -> bool:
            for daemon in running:
                daemon.check_alive()
            return (
                all_committed(self.bootstrap, self.group, self.topic, report)
                and jobs_unfinished(self.job_store) == 0
            )

        wait_for(drained, timeout_s, "every offset committed and no job PENDING or RUNNING", 0.5)
        return round(time.monotonic() - began, 1)

    def stop(self, daemon: DaemonProcess) -> float:
        """SIGTERM: exit 0, no process left, no actor crashed on a message;
        returns the shutdown time."""
        began = time.monotonic()
        code = daemon.terminate()
        assert code == 0, f"daemon exited with {code}:\n{daemon.log_tail()}"
        daemon.assert_nothing_left()
        took = round(time.monotonic() - began, 1)
        _assert_no_actor_crash(daemon)
        return took

    def jobs(self, status: JobStatus | None = None) -> list[JobRecord]:
        store = open_job_store(self.job_store, create=False)
        try:
            return store.list_jobs(status, 1_000_000)
        finally:
            store.close()

    def job(self, job_id: int) -> JobRecord:
        store = open_job_store(self.job_store, create=False)
        try:
            found = store.get(job_id)
        finally:
            store.close()
        assert found is not None, f"no job {job_id} in the store"
        return found

    def cli(self, *args: str) -> str:
        """Run `actorsys ARGS --job-store STORE` for real; returns its stdout."""
        done = subprocess.run(
            [sys.executable, "-m", "actorsys", *args, "--job-store", self.job_store],
            capture_output=True,
            text=True,
            timeout=60,
            cwd=REPO_ROOT,
            check=False,
        )
        assert done.returncode == 0, f"actorsys {' '.join(args)}: {done.returncode} {done.stderr}"
        return done.stdout

    def cleanup(self) -> None:
        for daemon in self.daemons:
            daemon.cleanup()


@contextmanager
def _rig(workdir: Path, broker: EmbeddedBroker, name: str) -> Iterator[_Rig]:
    rig = _Rig(workdir, broker, name)
    try:
        yield rig
    finally:
        rig.cleanup()


class _Feeder:
    """A producer streaming into the topic in a thread until ``finish()``."""

    def __init__(self, rig: _Rig, rate: float, seed: int) -> None:
        self._rig = rig
        self._rate = rate
        self._seed = seed
        self._stop = threading.Event()
        self._report: ProduceReport | None = None
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="feeder", daemon=True)

    def _run(self) -> None:
        try:
            self._report = produce(
                self._rig.bootstrap,
                self._rig.topic,
                devices=100,
                rate=self._rate,
                count=0,
                malformed_ratio=MALFORMED_RATIO,
                partitions=PARTITIONS,
                seed=self._seed,
                stop=self._stop,
            )
        except BaseException as exc:  # reported by finish()
            self._error = exc

    def start(self) -> _Feeder:
        self._thread.start()
        return self

    def abandon(self) -> None:
        """Stop without a report (the scenario failed already)."""
        self._stop.set()
        self._thread.join(30)

    def finish(self, timeout_s: float = 60) -> ProduceReport:
        self._stop.set()
        self._thread.join(timeout_s)
        assert not self._thread.is_alive(), "the producer did not stop"
        if self._error is not None:
            raise AssertionError(f"the producer failed: {self._error!r}") from self._error
        assert self._report is not None
        return self._report


# --- reading a daemon ------------------------------------------------------------------------


def _component(daemon: DaemonProcess, role: str) -> dict[str, Any]:
    try:
        return dict(daemon.status().get("components", {}).get(role, {}))
    except (OSError, AssertionError, ValueError):
        return {}


def _assigned(daemon: DaemonProcess, topic: str) -> frozenset[int]:
    parts = _component(daemon, "kafka_consumer").get("partitions", [])
    return frozenset(p["partition"] for p in parts if p["topic"] == topic)


def _metric_total(daemon: DaemonProcess, name: str) -> float:
    """The sum of every sample called ``name`` in the daemon's /metrics."""
    code, body = daemon.http("/metrics")
    assert code == 200, body
    return sum(
        s.value
        for family in text_string_to_metric_families(body.decode())
        for s in family.samples
        if s.name == name
    )


def _fresh_marker(pid_dir: Path, daemon: DaemonProcess, max_age_s: float) -> tuple[int, int] | None:
    """A worker of ``daemon`` that started a job at most ``max_age_s`` ago:
    FaultyHandler keeps ``<pid>-<job id>`` in ``pid_dir`` while a job runs."""
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


def _gone(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def _within(timeout_s: float, condition: Callable[[], object]) -> bool:
    """Whether ``condition`` comes true within the deadline (polled, no raise)."""
    try:
        wait_for(condition, timeout_s, "", 0.25)
    except AssertionError:
        return False
    return True


def _log_has(daemon: DaemonProcess, text: str) -> bool:
    return text in daemon.log_path.read_text(errors="replace")


def _assert_no_actor_crash(daemon: DaemonProcess) -> None:
    """Thespian logs "... exception on message ..." when an actor raises while
    handling a message: a bug whatever the output looks like."""
    lines = daemon.log_path.read_text(errors="replace").splitlines()
    for i, line in enumerate(lines):
        if "exception on message" in line:
            context = "\n".join(lines[i : i + 25])
            raise AssertionError(f"an actor raised in {daemon.log_path}:\n{context}")


# --- the output check, for scenarios where whole jobs are dead-lettered -----------------------


def _positions(jobs: Iterable[JobRecord]) -> set[tuple[int, int]]:
    return {(j.partition, o) for j in jobs for o in range(j.start_offset, j.end_offset)}


def check_output(
    rig: _Rig,
    report: ProduceReport,
    *,
    failed_jobs: Iterable[JobRecord] = (),
    replayed_jobs: Iterable[JobRecord] = (),
    failed_error: str | None = None,
    dead_letters_exactly_once: bool = True,
) -> dict[str, int]:
    """The exactly-once output check, extended to jobs that ended FAILED.

    Without such jobs it is ``assert_exactly_once`` itself. With them:
    ``failed_jobs`` are FAILED now, so their records are in the dead-letter
    topic with reason ``job_failed`` (and ``failed_error`` in ``error``), not
    in raw; ``replayed_jobs`` were dead-lettered that way, then replayed with
    `actorsys jobs retry` and succeeded, so their records are in both. Every
    other valid record is exactly once in raw, every other malformed one in
    the dead-letter topic with its own reason. Returns the figures."""
    failed, replayed = list(failed_jobs), list(replayed_jobs)
    if not failed and not replayed:
        assert_exactly_once(
            rig.out,
            rig.topic,
            report,
            rig.bootstrap,
            rig.dlq,
            dead_letters_exactly_once=dead_letters_exactly_once,
        )
        figures = {"raw_records": len(raw_positions(rig.out, rig.topic))}
        if dead_letters_exactly_once:
            return {**figures, "dead_letters": report.malformed}
        letters = [
            h
            for h in dead_letters(rig.bootstrap, rig.dlq, report.malformed)
            if h.get("source_topic") == rig.topic
        ]
        return {
            **figures,
            "dead_letters": len(letters),
            "dead_letters_repeated": len(letters) - report.malformed,
        }

    failed_positions = _positions(failed)
    job_failed_positions = failed_positions | _positions(replayed)
    # Raw: every valid record but those of jobs that are FAILED now, exactly once.
    positions = raw_positions(rig.out, rig.topic)
    twice = [pos for pos, n in Counter(positions).items() if n > 1]
    assert not twice, f"{len(twice)} records written twice, e.g. {twice[:5]}"
    want_raw = valid_positions(report) - failed_positions
    got = set(positions)
    assert got == want_raw, (
        f"raw has {len(got)} records, expected {len(want_raw)}: "
        f"missing {sorted(want_raw - got)[:5]}, unexpected {sorted(got - want_raw)[:5]}"
    )
    assert agg_count(rig.out) == len(want_raw)
    # Dead letters: malformed records by their own reason (those of FAILED jobs
    # never reached the handler), and every record of a job that ended FAILED.
    want_malformed = set(report.malformed_positions) - failed_positions
    letters = [
        h
        for h in dead_letters(
            rig.bootstrap, rig.dlq, len(want_malformed) + len(job_failed_positions)
        )
        if h.get("source_topic") == rig.topic
    ]
    by_reason = [
        (int(h["source_partition"]), int(h["source_offset"]))
        for h in letters
        if h.get("reason") != JOB_FAILED
    ]
    by_job = [
        (int(h["source_partition"]), int(h["source_offset"]))
        for h in letters
        if h.get("reason") == JOB_FAILED
    ]
    assert set(by_reason) == want_malformed, (
        f"malformed dead letters: missing {sorted(want_malformed - set(by_reason))[:5]}, "
        f"unexpected {sorted(set(by_reason) - want_malformed)[:5]}"
    )
    assert set(by_job) == job_failed_positions, (
        f"job_failed dead letters: missing {sorted(job_failed_positions - set(by_job))[:5]}, "
        f"unexpected {sorted(set(by_job) - job_failed_positions)[:5]}"
    )
    if dead_letters_exactly_once:
        assert len(by_reason) == len(set(by_reason)), "a malformed dead letter was produced twice"
        assert len(by_job) == len(set(by_job)), "a job_failed dead letter was produced twice"
    assert all(h.get("error") for h in letters), "every dead letter says why"
    if failed_error is not None:
        errors = {h["error"] for h in letters if h.get("reason") == JOB_FAILED}
        assert all(failed_error in e for e in errors), f"job_failed errors: {sorted(errors)[:3]}"
    return {
        "raw_records": len(positions),
        "dead_letters": len(letters),
        "dead_letters_malformed": len(by_reason),
        "dead_letters_job_failed": len(by_job),
    }


def _faulty(**options: Any) -> dict[str, Any]:
    return {"handler": FAULTY, "options": options}


def _batches_of(records: int) -> dict[str, dict[str, Any]]:
    """Jobs of at most ``records`` offsets (more jobs, more messages)."""
    return {"batching": {"max_records": records}}


def _settled(daemon: DaemonProcess, role: str, **want: Any) -> dict[str, Any]:
    """The component's /status once it shows ``want``: the status is pushed
    about once a second, so it may lag the job store for a moment."""

    def shows() -> dict[str, Any] | None:
        component = _component(daemon, role)
        return component if all(component.get(k) == v for k, v in want.items()) else None

    return wait_for(shows, 15, f"/status {role} to show {want}", 0.25)


# --- 1. rebalancing --------------------------------------------------------------------------


def _rebalance(workdir: Path, broker: EmbeddedBroker, strategy: str) -> ScenarioResult:
    """Daemon A consumes a live stream; B (same group, same job store) joins
    while batches are in flight, shares the partitions, leaves on SIGTERM;
    then B joins again and is killed with -9 while one of its workers is in
    the middle of a job: A takes everything over after the session timeout
    and re-runs the jobs B left RUNNING."""
    name = "rebalance_" + ("cooperative" if strategy == "cooperative-sticky" else "eager")
    delay_s = 0.3
    figures: dict[str, Any] = {"strategy": strategy}

    def extra(pid_dir: Path) -> dict[str, dict[str, Any]]:
        return {
            "kafka": {"partition_assignment_strategy": strategy},
            "batching": {"linger_ms": 1000},
            # The survivor requeues a killed daemon's RUNNING jobs once that daemon's
            # JobManager is known to be gone; a short lease bounds the wait.
            "jobs": {"job_timeout_s": 10, "retry_backoff_initial_s": 0.2},
            # Jobs take a moment, so that one is running when B is killed.
            "output": _faulty(delay_s=delay_s, pid_dir=str(pid_dir)),
        }

    def shared(x: DaemonProcess, y: DaemonProcess) -> dict[str, list[int]] | None:
        px, py = _assigned(x, rig.topic), _assigned(y, rig.topic)
        ok = px and py and not (px & py) and (px | py) == ALL_PARTITIONS
        return {"A": sorted(px), "B": sorted(py)} if ok else None

    def inflight(daemon: DaemonProcess) -> int:
        parts = _component(daemon, "kafka_consumer").get("partitions", [])
        return sum(p.get("inflight_records") or 0 for p in parts)

    with _rig(workdir, broker, name) as rig:
        # Given a producer streaming 1,000 records/s (1 % malformed) for the whole scenario
        create_topic_if_missing(rig.bootstrap, rig.topic, PARTITIONS)
        feeder = _Feeder(rig, rate=1_000, seed=31).start()
        try:
            # And daemon A consuming it alone, with every partition, storing batches
            a = rig.start("a", extra(rig.workdir / "pids-a"))
            wait_for(
                lambda: (
                    _assigned(a, rig.topic) == ALL_PARTITIONS
                    and _component(a, "job_manager").get("batches_stored", 0) > 0
                ),
                60,
                "daemon A to own every partition and store batches",
                0.25,
            )

            # When daemon B joins the group while batches are in flight
            figures["a_inflight_records_at_join"] = inflight(a)
            joined = time.monotonic()
            b = rig.start("b", extra(rig.workdir / "pids-b"))
            # Then A and B share the partitions
            figures["phase1_assignment"] = wait_for(
                lambda: shared(a, b), 60, "A and B to share the partitions", 0.25
            )
            figures["join_s"] = round(time.monotonic() - joined, 1)
            # And B does real work: it persists batches of its own partitions
            wait_for(
                lambda: _component(b, "job_manager").get("batches_stored", 0) >= 3,
                60,
                "B to store batches",
                0.25,
            )
            stats_b = _component(b, "job_manager")

            # When B leaves on SIGTERM
            figures["b_shutdown_s"] = rig.stop(b)
            left = time.monotonic()
            # Then A takes every partition back
            wait_for(lambda: _assigned(a, rig.topic) == ALL_PARTITIONS, 60, "A to own all", 0.25)
            figures["takeover_after_sigterm_s"] = round(time.monotonic() - left, 1)

            # When B joins again and is killed with -9 in the middle of a job
            b2 = rig.start("b2", extra(rig.workdir / "pids-b2"))
            figures["phase2_assignment"] = wait_for(
                lambda: shared(a, b2), 60, "A and B to share the partitions again", 0.25
            )
            worker, _job = wait_for(
                lambda: _fresh_marker(rig.workdir / "pids-b2", b2, delay_s / 3),
                60,
                "a worker of B in the middle of a job",
                0.02,
            )
            # (frozen first, so that it cannot finish the job while B is being killed)
            os.kill(worker, signal.SIGSTOP)
            stats_b2 = _component(b2, "job_manager")
            b2.kill9()
            killed = time.monotonic()
            b2.assert_nothing_left()
            _assert_no_actor_crash(b2)
            # (B's claims are named "<host>:<admin port>/<host>/<worker id>")
            owner = f"{os.uname().nodename}:{b2.admin_port}/"
            orphans = [
                j.id for j in rig.jobs(JobStatus.RUNNING) if (j.worker or "").startswith(owner)
            ]
            assert orphans, "B was killed holding no RUNNING job: the scenario proves less"
            # Then A owns every partition again once B's session has timed out
            wait_for(lambda: _assigned(a, rig.topic) == ALL_PARTITIONS, 90, "A to own all", 0.25)
            figures["takeover_after_kill9_s"] = round(time.monotonic() - killed, 1)
            stored = _component(a, "job_manager").get("batches_stored", 0)
            wait_for(
                lambda: _component(a, "job_manager").get("batches_stored", 0) > stored,
                60,
                "A to store batches of the partitions it took over",
                0.25,
            )
        except BaseException:
            feeder.abandon()
            raise
        report = feeder.finish()

        # And, once the stream has ended, A alone drains everything, B's orphaned jobs too
        figures["drain_s"] = rig.wait_drained(report, [a])
        stats_a = _component(a, "job_manager")
        orphaned = [rig.job(i) for i in orphans]
        assert _log_has(a, "requeued "), a.log_tail()  # "requeued N job(s) of ..."
        figures["shutdown_s"] = rig.stop(a)

        # Then every valid record is exactly once in raw; dead letters at least once
        # (B died with a job mid-way: that job's rejects may be sent again)
        assert all(j.status is JobStatus.DONE and j.attempts >= 2 for j in orphaned), orphaned
        checked = check_output(rig, report, dead_letters_exactly_once=False)
        chain = {
            k: sum(s.get(k, 0) for s in (stats_a, stats_b, stats_b2))
            for k in ("batches_stored", "duplicates", "trimmed", "gaps", "out_of_order")
        }
        return ScenarioResult(
            name,
            f"{strategy}: B joins, SIGTERM, joins again, kill -9 mid-job",
            {
                **figures,
                "records_in": report.produced,
                **checked,
                "orphaned_jobs": len(orphaned),
                "orphaned_job_attempts": [j.attempts for j in orphaned],
                **chain,
                "duration_s": rig.elapsed(),
            },
        )


@scenario("rebalance_cooperative")
def rebalance_cooperative(workdir: Path, broker: EmbeddedBroker) -> ScenarioResult:
    """A second daemon joins, leaves (SIGTERM), rejoins and is killed -9, with the
    cooperative-sticky assignor; every record exactly once."""
    return _rebalance(workdir, broker, "cooperative-sticky")


@scenario("rebalance_eager")
def rebalance_eager(workdir: Path, broker: EmbeddedBroker) -> ScenarioResult:
    """A second daemon joins, leaves (SIGTERM), rejoins and is killed -9, with the
    eager range assignor; every record exactly once."""
    return _rebalance(workdir, broker, "range")


# --- 2. kill -9 of a worker mid-job ----------------------------------------------------------


@scenario("worker_kill")
def worker_kill(workdir: Path, broker: EmbeddedBroker) -> ScenarioResult:
    """kill -9 of a worker process in the middle of a job: the worker is replaced,
    the job runs again; every record exactly once."""
    delay_s = 1.5
    with _rig(workdir, broker, "worker_kill") as rig:
        # Given 20,000 records and a daemon whose jobs take 1.5 s each
        report = rig.produce(20_000, seed=41)
        pid_dir = rig.workdir / "pids"
        daemon = rig.start(
            "daemon",
            {
                "jobs": {"retry_backoff_initial_s": 0.2},
                "output": _faulty(delay_s=delay_s, pid_dir=str(pid_dir)),
            },
        )
        # When a worker is killed with -9 while it is in the middle of a job
        # (a job that started moments ago: it has written nothing yet)
        pid, job_id = wait_for(
            lambda: _fresh_marker(pid_dir, daemon, delay_s / 3),
            60,
            "a worker in the middle of a job",
            0.05,
        )
        os.kill(pid, signal.SIGKILL)
        killed = time.monotonic()
        # Then the WorkerMaster replaces it and the job goes back
        wait_for(
            lambda: _component(daemon, "worker_master").get("workers_replaced", 0) >= 1,
            30,
            "the worker to be replaced",
            0.25,
        )
        replaced_s = round(time.monotonic() - killed, 1)
        drain_s = rig.wait_drained(report, [daemon])
        pool = _settled(daemon, "worker_master", workers=2)
        assert _log_has(daemon, "exited; its job goes back"), daemon.log_tail()
        shown = json.loads(rig.cli("jobs", "show", str(job_id), "--json"))
        shutdown_s = rig.stop(daemon)

        # And that job ran twice, the second time to completion
        assert shown["status"] == "DONE" and shown["attempts"] == 2, shown
        assert "died while running the job" in (shown["last_error"] or ""), shown
        assert _gone(pid), f"the killed worker {pid} is still there"
        # And every valid record is exactly once in raw, malformed ones once in the DLQ
        checked = check_output(rig, report)
        return ScenarioResult(
            "worker_kill",
            f"kill -9 of worker pid {pid} during job {job_id}",
            {
                "records_in": report.produced,
                **checked,
                "killed_job": job_id,
                "killed_job_attempts": shown["attempts"],
                "workers_replaced": pool.get("workers_replaced"),
                "replaced_after_s": replaced_s,
                "drain_s": drain_s,
                "shutdown_s": shutdown_s,
                "duration_s": rig.elapsed(),
            },
        )


# --- 3. a worker stopped past its lease -------------------------------------------------------


@scenario("worker_sigstop")
def worker_sigstop(workdir: Path, broker: EmbeddedBroker) -> ScenarioResult:
    """A worker SIGSTOPped past its lease, then resumed: its stale completion is
    rejected, the job ran elsewhere; every record exactly once."""
    delay_s, lease_s, stopped_for_s = 1.0, 3.0, 8.0
    with _rig(workdir, broker, "worker_sigstop") as rig:
        # Given 20,000 records, jobs of 1 s each, a 3 s lease, and a replaced
        # worker killed only 30 s after it was replaced
        report = rig.produce(20_000, seed=43)
        pid_dir = rig.workdir / "pids"
        daemon = rig.start(
            "daemon",
            {
                "jobs": {"job_timeout_s": lease_s, "retry_backoff_initial_s": 0.2},
                "workers": {"stop_grace_s": 30},
                "output": _faulty(delay_s=delay_s, pid_dir=str(pid_dir)),
            },
        )
        # When a worker in the middle of a job is stopped with SIGSTOP
        pid, job_id = wait_for(
            lambda: _fresh_marker(pid_dir, daemon, delay_s / 3),
            60,
            "a worker in the middle of a job",
            0.05,
        )
        os.kill(pid, signal.SIGSTOP)
        stopped = time.monotonic()
        try:
            # Then its lease expires, a new worker replaces it, and the job runs
            # again elsewhere, to completion
            wait_for(
                lambda: rig.job(job_id).status is JobStatus.DONE, 60, "the job to run again", 0.25
            )
            redone_s = round(time.monotonic() - stopped, 1)
            assert _log_has(daemon, f"job {job_id} overran its lease"), daemon.log_tail()
            # (the fault itself: the worker stays stopped for 8 s in all)
            time.sleep(max(0.0, stopped_for_s - (time.monotonic() - stopped)))
        finally:
            # When it is resumed
            with suppress(ProcessLookupError):
                os.kill(pid, signal.SIGCONT)
        # Then its completion, from a superseded attempt, is rejected and counted
        wait_for(
            lambda: _component(daemon, "job_manager").get("stale_completions", 0) >= 1,
            30,
            "the stale completion to be rejected",
            0.25,
        )
        assert _log_has(daemon, f"rejected a stale completion of job {job_id} (token 1)"), (
            daemon.log_tail()
        )
        resumed = time.monotonic()
        # And the replaced worker exits (it was asked to when it was replaced),
        # while the pool is back to its size with the replacement
        exited = _within(10, lambda: _gone(pid))
        exited_s = round(time.monotonic() - resumed, 1) if exited else None
        pool_restored = _within(10, lambda: _component(daemon, "worker_master").get("workers") == 2)
        pool = _component(daemon, "worker_master")
        drain_s = rig.wait_drained(report, [daemon])
        stats = _component(daemon, "job_manager")
        job = rig.job(job_id)
        shutdown_s = rig.stop(daemon)

        # And the job's output is exactly once in raw; its dead letters may have
        # been sent again by the resumed worker (at least once)
        assert job.status is JobStatus.DONE and job.attempts >= 2, job
        checked = check_output(rig, report, dead_letters_exactly_once=False)
        assert pool_restored and pool.get("workers_replaced", 0) >= 1, (
            f"the pool was not restored after the lease overrun: /status worker_master {pool}"
        )
        assert exited, f"the replaced worker {pid} was still running 10 s after it was resumed"
        return ScenarioResult(
            "worker_sigstop",
            f"SIGSTOP of worker pid {pid} during job {job_id} for {stopped_for_s:.0f} s "
            f"(lease {lease_s:.0f} s)",
            {
                "records_in": report.produced,
                **checked,
                "stopped_job": job_id,
                "stopped_job_attempts": job.attempts,
                "rerun_done_after_s": redone_s,
                "stale_completions": stats.get("stale_completions"),
                "workers_replaced": pool.get("workers_replaced"),
                "stale_worker_exit_s": exited_s,
                "drain_s": drain_s,
                "shutdown_s": shutdown_s,
                "duration_s": rig.elapsed(),
            },
        )


# --- 4. a handler that fails some jobs once ----------------------------------------------------


@scenario("flaky_handler")
def flaky_handler(workdir: Path, broker: EmbeddedBroker) -> ScenarioResult:
    """Every third job fails its first attempt and succeeds on retry; every record
    exactly once."""
    every = 3
    with _rig(workdir, broker, "flaky_handler") as rig:
        # Given 30,000 records and a handler that fails the first attempt of
        # every third job, with retries 0.2 s apart at first
        report = rig.produce(30_000, seed=47)
        daemon = rig.start(
            "daemon",
            {
                **_batches_of(1_000),
                "jobs": {"retry_backoff_initial_s": 0.2},
                "output": _faulty(
                    fail_first_attempt_every=every, state_dir=str(rig.workdir / "state")
                ),
            },
        )
        # When the daemon runs until everything is committed and done
        drain_s = rig.wait_drained(report, [daemon])
        jobs = rig.jobs()
        retried = [j for j in jobs if j.attempts == 2]
        stats = _settled(daemon, "job_manager", attempts_failed=len(retried))
        shutdown_s = rig.stop(daemon)

        # Then those jobs took two attempts, every other job one
        assert jobs and all(j.status is JobStatus.DONE for j in jobs)
        attempts = {j.id: j.attempts for j in jobs}
        want = {j.id: 2 if j.id % every == 0 else 1 for j in jobs}
        assert attempts == want, {i: n for i, n in attempts.items() if n != want[i]}
        assert retried, "no job was retried: the scenario proves nothing"
        assert all("fails" in (j.last_error or "") for j in retried)
        # And every valid record is exactly once in raw, malformed ones once in the DLQ
        checked = check_output(rig, report)
        return ScenarioResult(
            "flaky_handler",
            f"first attempt of every {every}rd job raises",
            {
                "records_in": report.produced,
                **checked,
                "jobs": len(jobs),
                "jobs_retried": len(retried),
                "attempts_failed": stats.get("attempts_failed"),
                "drain_s": drain_s,
                "shutdown_s": shutdown_s,
                "duration_s": rig.elapsed(),
            },
        )


# --- 5. a poison job, and a job that kills its worker ---------------------------------------


def _valid_position_near(report: ProduceReport, partition: int) -> tuple[int, int]:
    """A valid record in the middle of ``partition``."""
    offset = report.end_offsets[partition] // 2
    while (partition, offset) in report.malformed_positions:
        offset += 1
    return partition, offset


def _the_failed_job(rig: _Rig, partition: int, offset: int) -> dict[str, Any]:
    """`actorsys jobs list --status FAILED --json`: exactly one job, holding that record."""
    listed = json.loads(rig.cli("jobs", "list", "--status", "FAILED", "--json"))
    assert listed["counts"].get("FAILED") == 1, listed["counts"]
    (job,) = listed["jobs"]
    assert job["partition"] == partition and job["start_offset"] <= offset < job["end_offset"]
    return dict(job)


@scenario("poison_job")
def poison_job(workdir: Path, broker: EmbeddedBroker) -> ScenarioResult:
    """A job that always raises ends FAILED and dead-lettered, then `actorsys jobs
    retry` replays it once the poison is gone; everything else exactly once."""
    max_attempts = 3
    with _rig(workdir, broker, "poison_job") as rig:
        # Given 20,000 records, one of which (a valid one) the handler always chokes on
        report = rig.produce(20_000, seed=53)
        partition, offset = _valid_position_near(report, 1)
        jobs = {"max_attempts": max_attempts, "retry_backoff_initial_s": 0.2}
        poisoned = rig.start(
            "poisoned",
            {
                **_batches_of(1_000),
                "jobs": jobs,
                "output": _faulty(poison_partition=partition, poison_offset=offset),
            },
        )
        # When the daemon runs until everything is committed and no job is left to run
        drain_s = rig.wait_drained(report, [poisoned])
        _settled(poisoned, "job_manager", jobs_failed=1)
        shutdown_s = rig.stop(poisoned)

        # Then the job holding it is FAILED after max_attempts, listed by the CLI
        listed = _the_failed_job(rig, partition, offset)
        assert listed["attempts"] == max_attempts, listed
        assert "poison record" in (listed["last_error"] or ""), listed
        failed = rig.job(listed["id"])
        # And its records are in the DLQ as job_failed with the last error; all
        # other records exactly once in raw, malformed ones once in the DLQ
        first = check_output(
            rig, report, failed_jobs=[failed], failed_error=f"poison record at {partition}:{offset}"
        )

        # When the poison is removed (the daemon restarted without it) and the
        # job is replayed with `actorsys jobs retry ID`
        cured = rig.start("cured", {**_batches_of(1_000), "jobs": jobs})
        replay = time.monotonic()
        assert "1 job(s) queued again" in rig.cli("jobs", "retry", str(failed.id))
        # Then it runs, and no job is FAILED any more
        wait_for(lambda: rig.job(failed.id).status is JobStatus.DONE, 60, "the replayed job", 0.25)
        replay_s = round(time.monotonic() - replay, 1)
        rig.wait_drained(report, [cured])
        counts = json.loads(rig.cli("jobs", "list", "--status", "FAILED", "--json"))["counts"]
        assert counts.get("FAILED") == 0, counts
        replayed = rig.job(failed.id)
        cured_shutdown_s = rig.stop(cured)
        # And its records are in raw now, exactly once (the job_failed dead letters stay)
        second = check_output(
            rig, report, replayed_jobs=[replayed], failed_error=f"poison record at {partition}"
        )
        return ScenarioResult(
            "poison_job",
            f"record {partition}:{offset} makes its job raise every time",
            {
                "records_in": report.produced,
                "failed_job": failed.id,
                "failed_job_records": failed.record_count,
                "failed_job_attempts": failed.attempts,
                "before_retry": first,
                "after_retry": second,
                "replayed_job_attempts": replayed.attempts,
                "replay_done_s": replay_s,
                "drain_s": drain_s,
                "shutdown_s": shutdown_s,
                "cured_shutdown_s": cured_shutdown_s,
                "duration_s": rig.elapsed(),
            },
        )


@scenario("crash_job")
def crash_job(workdir: Path, broker: EmbeddedBroker) -> ScenarioResult:
    """A job that kills its worker every time ends FAILED after max_attempts (no
    loop), the pool keeps its size; everything else exactly once."""
    max_attempts = 3
    with _rig(workdir, broker, "crash_job") as rig:
        # Given 20,000 records, one of which makes the handler kill its worker process
        report = rig.produce(20_000, seed=59)
        partition, offset = _valid_position_near(report, 2)
        daemon = rig.start(
            "daemon",
            {
                **_batches_of(1_000),
                "jobs": {
                    "max_attempts": max_attempts,
                    "retry_backoff_initial_s": 0.2,
                    "job_timeout_s": 30,
                },
                "output": _faulty(crash_partition=partition, crash_offset=offset),
            },
        )
        # When the daemon runs until everything is committed and no job is left to run
        drain_s = rig.wait_drained(report, [daemon])
        _settled(daemon, "job_manager", jobs_failed=1)
        pool = _settled(daemon, "worker_master", workers=2, workers_replaced=max_attempts)
        shutdown_s = rig.stop(daemon)

        # Then that job is FAILED after max_attempts (it did not loop), each
        # attempt having cost a worker, and the pool kept its size
        listed = _the_failed_job(rig, partition, offset)
        assert listed["attempts"] == max_attempts, listed
        assert "died while running the job" in (listed["last_error"] or ""), listed
        # And its records are dead-lettered as job_failed, everything else exactly once
        checked = check_output(
            rig,
            report,
            failed_jobs=[rig.job(listed["id"])],
            failed_error="died while running the job",
        )
        return ScenarioResult(
            "crash_job",
            f"record {partition}:{offset} makes its job kill the worker every time",
            {
                "records_in": report.produced,
                **checked,
                "failed_job": listed["id"],
                "failed_job_attempts": listed["attempts"],
                "workers_replaced": pool.get("workers_replaced"),
                "drain_s": drain_s,
                "shutdown_s": shutdown_s,
                "duration_s": rig.elapsed(),
            },
        )


# --- 6. lost and duplicated actor messages --------------------------------------------------


@scenario("lost_messages")
def lost_messages(workdir: Path, broker: EmbeddedBroker) -> ScenarioResult:
    """30 % of BatchAcks dropped and 30 % of batches sent twice (test hooks): the
    offset chain dedupes, retransmits recover; every record exactly once."""
    chaos = {
        "ACTORSYS_CHAOS_DROP_ACK": "0.3",
        "ACTORSYS_CHAOS_DUP_BATCH": "0.3",
        "ACTORSYS_CHAOS_SEED": "1234",
    }
    with _rig(workdir, broker, "lost_messages") as rig:
        # Given 30,000 records cut into small batches (many messages to lose)
        report = rig.produce(30_000, seed=61)
        # When every Consumer drops 30 % of its ACKs and sends 30 % of its batches twice
        # (retransmits back off from 1 s up to 4 s: an ACK lost four times in a row
        # would otherwise wait 1 + 2 + 4 + 8 + 16 s)
        settings = _batches_of(250)
        settings["batching"]["max_ack_timeout_ms"] = 4_000
        daemon = rig.start("daemon", settings, env=chaos)
        drain_s = rig.wait_drained(report, [daemon])
        stats = _settled(daemon, "job_manager", batches_stored=len(rig.jobs()))
        sent = _metric_total(daemon, "actorsys_batches_sent_total")
        retransmitted = _metric_total(daemon, "actorsys_batches_retransmitted_total")
        shutdown_s = rig.stop(daemon)

        # Then the JobManager saw the duplicates and stored each batch once,
        # and the Consumers retransmitted what was not ACKed
        assert stats.get("duplicates", 0) >= 1, stats
        assert retransmitted >= 1
        # And every valid record is exactly once in raw, malformed ones once in the DLQ
        checked = check_output(rig, report)
        return ScenarioResult(
            "lost_messages",
            "30 % of BatchAcks dropped, 30 % of batches sent twice",
            {
                "records_in": report.produced,
                **checked,
                "batches_sent": int(sent),
                "batches_retransmitted": int(retransmitted),
                "batches_stored": stats.get("batches_stored"),
                "duplicates": stats.get("duplicates"),
                "out_of_order": stats.get("out_of_order"),
                "drain_s": drain_s,
                "shutdown_s": shutdown_s,
                "duration_s": rig.elapsed(),
            },
        )
