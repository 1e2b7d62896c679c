"""What every fault scenario stands on: a :class:`Rig` (one scenario's topic,
group, job store, output and daemons) and a :class:`Feeder` (a producer in a
thread, running while the fault is injected).

One rig for every scenario means one meaning for "complete" (every end
offset committed and no job PENDING or RUNNING), for "stopped" (exit 0
within the deadline and no process left) and for the output check,
whichever scenario asks; what differs between scenarios (the output format,
the deadlines, whether an actor's exception fails the stop) is a field.
"""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from actorsys.jobs.model import JobRecord, JobStatus
from actorsys.jobs.open import open_job_store
from actorsys.kafka_clients import create_topic_if_missing
from actorsys.simulator import ProduceReport, produce
from tests.support.checks import assert_output, committed_offsets, dead_letters, wait_complete
from tests.support.closing import Closes
from tests.support.daemon import DaemonProcess, new_daemon, write_config
from tests.support.process import REPO_ROOT, repo_pythonpath

PARTITIONS = 4
MALFORMED_RATIO = 0.01
GRACE_S = 20.0  # every scenario daemon's shutdown_grace_s
DRAIN_TIMEOUT_S = 150.0


@dataclass
class Rig(Closes):
    """Everything one scenario creates; leaving its ``with`` block (or
    :meth:`close`) leaves no process behind.

    ``output_format``: forced on every daemon (None: the handler's or the
    default); ``ready_timeout_s``, ``stop_timeout_s``: how long a daemon may
    take to be ready and to exit on SIGTERM; ``actor_crash_check``: whether
    :meth:`stop` also fails on an actor that raised on a message.
    """

    workdir: Path
    bootstrap: str
    name: str
    partitions: int = PARTITIONS
    prefix: str = "flow"
    output_format: str | None = None
    ready_timeout_s: float = 60
    stop_timeout_s: float = GRACE_S + 30
    actor_crash_check: bool = False
    topic: str = ""
    group: str = ""
    daemons: list[DaemonProcess] = field(default_factory=list)
    started: float = field(default_factory=time.monotonic)

    def __post_init__(self) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        tag = uuid.uuid4().hex[:8]
        self.topic = self.topic or f"{self.prefix}-{self.name}-{tag}"
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

    def elapsed(self) -> float:
        """Seconds since the rig was made, to 0.1 s (a scenario's duration figure)."""
        return round(time.monotonic() - self.started, 1)

    # --- daemons ------------------------------------------------------------------------

    def daemon(
        self,
        name: str,
        *,
        restart_of: DaemonProcess | None = None,
        env: dict[str, str] | None = None,
        **extra: dict[str, Any],
    ) -> DaemonProcess:
        """A daemon of this scenario (not started), with ``extra`` sections on
        top of the rig's. ``restart_of``: the same daemon started again, so on
        the same admin and metrics ports (its job store claims are in the name
        of its host and admin port). ``env``: variables for it alone."""
        sections: dict[str, dict[str, Any]] = {"daemon": {"shutdown_grace_s": GRACE_S}}
        if self.output_format is not None:
            sections["output"] = {"format": self.output_format}
        for section, values in extra.items():
            sections.setdefault(section, {}).update(values)
        config: dict[str, Any] = {
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
            admin, metrics = restart_of.admin_port, restart_of.metrics_port
            path = write_config(
                self.workdir / f"{name}.toml", admin_port=admin, metrics_port=metrics, **config
            )
            daemon = DaemonProcess(path, self.workdir / f"{name}.log", metrics, admin)
        daemon.env.update(env or {})
        # Handlers under tests/ must import in the daemon and its actors, whatever the cwd.
        daemon.env["PYTHONPATH"] = repo_pythonpath()
        self.daemons.append(daemon)
        return daemon

    def start(
        self,
        name: str,
        *,
        restart_of: DaemonProcess | None = None,
        env: dict[str, str] | None = None,
        **extra: dict[str, Any],
    ) -> DaemonProcess:
        """:meth:`daemon`, started, once /readyz says it is ready."""
        daemon = self.daemon(name, restart_of=restart_of, env=env, **extra).start()
        daemon.wait_ready(self.ready_timeout_s)
        return daemon

    def stop(self, daemon: DaemonProcess) -> float:
        """SIGTERM; assert exit 0 and no process left (and, with
        ``actor_crash_check``, that no actor raised); return the shutdown seconds."""
        started = time.monotonic()
        code = daemon.terminate(self.stop_timeout_s)
        took = time.monotonic() - started
        assert code == 0, f"{daemon.log_path.name} exited with {code}:\n{daemon.log_tail()}"
        daemon.assert_nothing_left()
        if self.actor_crash_check:
            daemon.assert_no_actor_crash()
        return took

    def close(self) -> None:
        for daemon in self.daemons:
            daemon.cleanup()

    # --- the topic ----------------------------------------------------------------------

    def create_topic(self) -> None:
        create_topic_if_missing(self.bootstrap, self.topic, self.partitions)

    def produce(
        self, count: int, seed: int, malformed_ratio: float = MALFORMED_RATIO
    ) -> ProduceReport:
        """``count`` records as fast as the broker takes them (a backlog)."""
        return produce(
            self.bootstrap,
            self.topic,
            devices=100,
            rate=0,
            count=count,
            malformed_ratio=malformed_ratio,
            partitions=self.partitions,
            seed=seed,
        )

    def feeder(self, rate: float, seed: int, count: int = 0, **options: Any) -> Feeder:
        """A :class:`Feeder` into this rig's topic (not started)."""
        return Feeder(
            self.bootstrap,
            self.topic,
            partitions=self.partitions,
            rate=rate,
            seed=seed,
            count=count,
            **options,
        )

    def committed_total(self) -> int:
        offsets = committed_offsets(
            self.bootstrap, self.group, self.topic, list(range(self.partitions))
        )
        return sum(max(o, 0) for o in offsets.values())

    def wait_complete(
        self, daemon: DaemonProcess, report: ProduceReport, timeout_s: float = DRAIN_TIMEOUT_S
    ) -> float:
        """Until every offset is committed and no job is left, failing at once
        if ``daemon`` dies; returns the seconds it took."""
        return wait_complete(
            daemon, self.bootstrap, self.group, self.topic, report, self.job_store, timeout_s
        )

    # --- the output ---------------------------------------------------------------------

    def check(
        self,
        report: ProduceReport,
        *,
        failed_jobs: Iterable[JobRecord] = (),
        replayed_jobs: Iterable[JobRecord] = (),
        failed_error: str | None = None,
        dead_letters_exactly_once: bool = True,
    ) -> dict[str, int]:
        """The exactly-once output check (see :func:`tests.support.checks.assert_output`)."""
        return assert_output(
            self.out,
            self.topic,
            report,
            self.bootstrap,
            self.dlq,
            failed_jobs=failed_jobs,
            replayed_jobs=replayed_jobs,
            failed_error=failed_error,
            dead_letters_exactly_once=dead_letters_exactly_once,
        )

    def dead_letters_twice(self, report: ProduceReport) -> int:
        """How many dead letters of this topic are in the dead-letter topic more than once."""
        sources = Counter(
            (h.get("source_partition"), h.get("source_offset"))
            for h in dead_letters(self.bootstrap, self.dlq, report.malformed)
            if h.get("source_topic") == self.topic
        )
        return sum(1 for n in sources.values() if n > 1)

    # --- the job store ------------------------------------------------------------------

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

    def jobs_by_status(self) -> str:
        """e.g. "DONE:12,FAILED:1", for a figure."""
        store = open_job_store(self.job_store)
        try:
            return ",".join(f"{s.value}:{n}" for s, n in sorted(store.count_by_status().items()))
        finally:
            store.close()

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

    def cli_json(self, *args: str) -> Any:
        """:meth:`cli` with ``--json``, parsed."""
        return json.loads(self.cli(*args, "--json"))


class Feeder(Closes):
    """``produce`` in a thread, at ``rate``, until ``count`` records (0: until
    :meth:`stop`). A test that acts mid-stream (kills a process, then checks
    that nothing was lost) must not find a stream of fixed length already
    over when it acts: one that runs until stopped cannot race the daemon's
    start-up, and its report holds exactly what was delivered.

    Use as a context manager (leaving it ends the stream, report or not).
    """

    def __init__(
        self,
        bootstrap: str,
        topic: str,
        *,
        partitions: int,
        rate: float,
        seed: int,
        count: int = 0,
        devices: int = 100,
        malformed_ratio: float = MALFORMED_RATIO,
        producer_config: dict[str, object] | None = None,
        **produce_options: Any,  # more of produce()'s arguments: event time, late records
    ) -> None:
        self._stop = threading.Event()
        self._report: ProduceReport | None = None
        self.error: BaseException | None = None
        options: dict[str, Any] = {
            "devices": devices,
            "rate": rate,
            "count": count,
            "malformed_ratio": malformed_ratio,
            "partitions": partitions,
            "seed": seed,
            "producer_config": producer_config,
            **produce_options,
        }

        def run() -> None:
            try:
                self._report = produce(bootstrap, topic, stop=self._stop, **options)
            except BaseException as exc:  # re-raised by report(), in the scenario's thread
                self.error = exc

        self._thread = threading.Thread(target=run, name=f"feeder-{topic}", daemon=True)

    @property
    def running(self) -> bool:
        return self._thread.is_alive()

    def start(self) -> Feeder:
        self._thread.start()
        return self

    def report(self, timeout_s: float = 200) -> ProduceReport:
        """Wait for the stream to end (its count reached, or stopped) and every
        delivery to be reported; return what was delivered."""
        self._thread.join(timeout_s)
        assert not self._thread.is_alive(), f"the producer did not finish within {timeout_s:.0f}s"
        if self.error is not None:
            raise AssertionError(f"the producer failed: {self.error!r}") from self.error
        assert self._report is not None
        return self._report

    def stop(self, timeout_s: float = 60) -> ProduceReport:
        """End the stream now; return what was delivered."""
        self._stop.set()
        return self.report(timeout_s)

    def close(self) -> None:
        """End the stream without a report (the scenario failed already, or has it)."""
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(60)

    def __enter__(self) -> Feeder:
        return self.start()


def stays_up(
    daemon: DaemonProcess,
    seconds: float,
    *,
    since: float | None = None,
    also: Callable[[], object] | None = None,
) -> None:
    """Let a fault last ``seconds`` from ``since`` (monotonic; default: now):
    the fault itself, not a wait for anything. Checks every 0.5 s that the
    daemon is still up and, if given, runs ``also()`` (which asserts)."""
    started = time.monotonic() if since is None else since
    while time.monotonic() - started < seconds:
        daemon.check_alive()
        if also is not None:
            also()
        time.sleep(0.5)
