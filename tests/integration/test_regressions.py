"""Correctness defects found in review, each driven for real against the
embedded broker, real SQLite and real daemons. Every test here failed on the
code before its fix (see the commit that added it) and passes after.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import sqlite3
import time
from pathlib import Path
from typing import Any, TypedDict

import psutil
import pytest

from actorsys.embedded_broker import EmbeddedBroker
from actorsys.jobs.open import open_job_store
from actorsys.kafka_clients import create_topic_if_missing
from actorsys.procs import admin_process
from actorsys.simulator import produce
from tests.support.checks import raw_positions, valid_positions, wait_complete
from tests.support.daemon import DaemonProcess, start_ready, topic_daemon
from tests.support.disk import fill, tmpfs
from tests.support.waiting import wait_for

pytestmark = pytest.mark.integration

FAULTY = "tests.support.handlers:FaultyHandler"


def _daemon(tmp_path: Path, broker: EmbeddedBroker, topic: str, name: str = "daemon",
            **kw: Any) -> DaemonProcess:  # fmt: skip
    return topic_daemon(tmp_path, broker.bootstrap_servers, topic, name, **kw)


def _jobs(job_store: str) -> dict[str, int]:
    store = open_job_store(job_store)
    try:
        return {s.value: n for s, n in store.count_by_status().items()}
    finally:
        store.close()


# --- a stale attempt that fails must not delete the output of the one that succeeded -------


def test_a_stale_failing_attempt_does_not_delete_the_finished_jobs_output(
    tmp_path: Path, broker: EmbeddedBroker, topic: str, daemons: list[DaemonProcess]
) -> None:
    # Given job 1's first attempt stuck past its 2 s lease (another worker then
    # runs the job to DONE), which fails once it wakes up
    create_topic_if_missing(broker.bootstrap_servers, topic, 1)
    report = produce(
        broker.bootstrap_servers, topic, devices=20, rate=0, count=3000,
        malformed_ratio=0.0, partitions=1, seed=3,
    )  # fmt: skip
    state = tmp_path / "state"
    daemon = _daemon(
        tmp_path,
        broker,
        topic,
        jobs={"job_timeout_s": 2.0},
        workers={"count": 2, "stop_grace_s": 60.0},
        batching={"max_records": 1000, "linger_ms": 200},
        output={
            "handler": FAULTY,
            "options": {"state_dir": str(state), "overrun_then_fail_job": 1, "overrun_s": 6.0},
        },
    )
    daemons.append(daemon)
    daemon.start()
    job_store = f"sqlite:///{tmp_path}/jobs.db"
    wait_complete(daemon, broker.bootstrap_servers, f"g-{topic}", topic, report, job_store, 120)
    # When the stale attempt fails (after the job is DONE)
    wait_for(
        lambda: "stale attempt of job 1 fails late" in daemon.log_path.read_text(),
        30,
        "the stale attempt of job 1 to fail",
        0.5,
    )
    wait_for(lambda: "rejected a stale failure of job 1" in daemon.log_path.read_text(), 15,
             "the JobManager to reject the stale failure", 0.5)  # fmt: skip
    # Then every record is still in the output, exactly once
    assert set(raw_positions(tmp_path / "out", topic)) == valid_positions(report)
    assert _jobs(job_store)["DONE"] >= 3 and _jobs(job_store)["FAILED"] == 0


# --- a store error at completion must keep the job recoverable --------------------------------


def test_a_job_store_locked_at_completion_still_ends_the_job_done(
    tmp_path: Path, broker: EmbeddedBroker, topic: str, daemons: list[DaemonProcess]
) -> None:
    # Given a slow job (2 s) and a store whose writers give up after 0.3 s
    create_topic_if_missing(broker.bootstrap_servers, topic, 1)
    report = produce(
        broker.bootstrap_servers, topic, devices=20, rate=0, count=2000,
        malformed_ratio=0.0, partitions=1, seed=4,
    )  # fmt: skip
    db = tmp_path / "jobs.db"
    job_store = f"sqlite:///{db}?busy_timeout_ms=300"
    pid_dir = tmp_path / "running"
    daemon = _daemon(
        tmp_path,
        broker,
        topic,
        job_store=job_store,
        workers={"count": 1},
        batching={"max_records": 1000, "linger_ms": 200},
        output={"handler": FAULTY, "options": {"delay_s": 2.0, "pid_dir": str(pid_dir)}},
    )
    daemons.append(daemon)
    daemon.start()
    wait_for(lambda: pid_dir.exists() and any(pid_dir.iterdir()), 60, "a job to be running", 0.1)
    # When another process holds the store's write lock while the job completes
    lock = sqlite3.connect(db, timeout=10, isolation_level=None)
    try:
        lock.execute("BEGIN EXCLUSIVE")
        wait_for(
            lambda: "cannot record job" in daemon.log_path.read_text(),
            30,
            "the completion to fail on the locked store",
            0.2,
        )
    finally:
        lock.execute("ROLLBACK")
        lock.close()
    # Then once the store works again the job is recorded DONE, and nothing is lost
    wait_complete(daemon, broker.bootstrap_servers, f"g-{topic}", topic, report, job_store, 60)
    assert set(raw_positions(tmp_path / "out", topic)) == valid_positions(report)


# --- several JobManagers on one store ---------------------------------------------------------


def test_a_leader_whose_jobs_other_workers_finish_does_not_stall(
    tmp_path: Path, broker: EmbeddedBroker, topic: str, daemons: list[DaemonProcess]
) -> None:
    # Given leader A with no workers of its own and at most 2 unfinished jobs, and
    # leader B sharing its job store, whose workers take any job of the store
    other = f"{topic}-b"
    for name in (topic, other):
        create_topic_if_missing(broker.bootstrap_servers, name, 1)
    job_store = f"sqlite:///{tmp_path}/jobs.db"
    a = _daemon(
        tmp_path,
        broker,
        topic,
        "a",
        job_store=job_store,
        workers={"on_leader": False},
        flow={"max_pending_jobs": 2},
        batching={"max_records": 500, "linger_ms": 200},
    )
    b = _daemon(tmp_path, broker, other, "b", job_store=job_store, workers={"count": 2})
    daemons.extend([a, b])
    a.start()
    b.start()
    a.wait_ready()
    b.wait_ready()
    # When A's topic gets 10 jobs' worth of records
    report = produce(
        broker.bootstrap_servers, topic, devices=20, rate=0, count=5000,
        malformed_ratio=0.0, partitions=1, seed=5,
    )  # fmt: skip
    # Then all of them are done: A learns from the store that B's workers finished them
    wait_complete(a, broker.bootstrap_servers, f"g-{topic}", topic, report, job_store, 90)
    assert set(raw_positions(tmp_path / "out", topic)) == valid_positions(report)


# --- a full disk is a transient fault ----------------------------------------------------------


class Feed(TypedDict):
    """The arguments of simulator.produce that both feeds share."""

    devices: int
    rate: float
    malformed_ratio: float
    partitions: int


def test_a_full_disk_pauses_consumption_and_retries_without_using_attempts(
    tmp_path: Path, broker: EmbeddedBroker, topic: str, daemons: list[DaemonProcess]
) -> None:
    # Given an output disk that is full, and jobs that may fail at most twice
    create_topic_if_missing(broker.bootstrap_servers, topic, 2)
    job_store = f"sqlite:///{tmp_path}/jobs.db"
    with tmpfs(tmp_path / "disk", "4m") as disk:
        daemon = _daemon(
            tmp_path,
            broker,
            topic,
            job_store=job_store,
            output_dir=disk / "out",
            jobs={"max_attempts": 2, "retry_backoff_initial_s": 0.2, "retry_backoff_max_s": 1.0},
            batching={"max_records": 500, "linger_ms": 200},
        )
        start_ready(daemons, daemon)
        ballast = fill(disk)
        feed: Feed = {"devices": 20, "rate": 0, "malformed_ratio": 0.0, "partitions": 2}
        produce(broker.bootstrap_servers, topic, count=2000, seed=6, **feed)
        # When writes fail with ENOSPC, Then the JobManager sees the output unwritable
        manager = wait_for(
            lambda: (c := daemon.component("job_manager")).get("output_ok") is False and c,
            60,
            "the JobManager to see the output as unwritable",
            0.5,
        )
        assert manager  # wait_for returns only a truthy value: the component
        assert "No space left on device" in manager["output_error"]
        # And consumption pauses: what arrives meanwhile is held, not ACKed
        report = produce(broker.bootstrap_servers, topic, count=2000, seed=7, **feed)
        wait_for(lambda: daemon.component("job_manager").get("held_batches", 0) > 0, 30,
                 "batches to be held", 0.5)  # fmt: skip
        attempts_seen = daemon.component("job_manager")["transient_failures"]
        assert attempts_seen >= 2, "more transient failures than max_attempts, still no FAILED"
        assert _jobs(job_store)["FAILED"] == 0
        # And once space is freed, everything is written exactly once, nothing dead-lettered
        ballast.unlink()
        wait_complete(daemon, broker.bootstrap_servers, f"g-{topic}", topic, report, job_store)
        assert _jobs(job_store)["FAILED"] == 0
        assert set(raw_positions(disk / "out", topic)) == valid_positions(report)
        assert daemon.terminate() == 0


# --- restarts, missing topics, health ------------------------------------------------------------


def test_a_restart_right_after_kill_9_waits_for_the_previous_actor_system(
    tmp_path: Path, broker: EmbeddedBroker, topic: str, daemons: list[DaemonProcess]
) -> None:
    # Given a running daemon whose own process is killed -9; its actor system
    # would end itself within ~2 s, so it is held (stopped) to be sure the
    # restart meets it still there (without this the race went either way)
    create_topic_if_missing(broker.bootstrap_servers, topic, 1)
    first = _daemon(tmp_path, broker, topic, "first")
    start_ready(daemons, first)
    assert first.proc is not None
    first.actor_system.refresh()
    held = first.actor_system.alive()
    for proc in held:
        proc.suspend()
    first.proc.send_signal(signal.SIGKILL)
    first.proc.wait(10)
    # When it is restarted at once on the same ports
    second = DaemonProcess(
        first.config_path, tmp_path / "second.log", first.metrics_port, first.admin_port, first.env
    )
    daemons.append(second)
    second.start()
    # Then it waits for the old actor system (let go once it says so) and
    # starts, instead of exiting 1
    try:
        wait_for(
            lambda: "waiting up to 15s for a previous actor system" in second.log_tail(50),
            30,
            "the restart to wait for the old actor system",
        )
    finally:
        for proc in held:
            with contextlib.suppress(psutil.Error):
                proc.resume()
    second.wait_ready(60)
    assert second.terminate() == 0


def test_a_missing_topic_is_named_and_consumed_within_seconds_of_its_creation(
    tmp_path: Path, broker: EmbeddedBroker, topic: str, daemons: list[DaemonProcess]
) -> None:
    # Given a daemon started before its topic exists
    daemon = _daemon(tmp_path, broker, topic)
    daemons.append(daemon)
    daemon.start()

    def says_missing() -> bool:
        daemon.check_alive()
        with contextlib.suppress(OSError):
            code, body = daemon.http("/readyz")
            return code == 503 and f"waiting for topic(s) {topic} to exist" in body.decode()
        return False

    wait_for(says_missing, 60, "/readyz to name the missing topic", 0.5)
    time.sleep(6)  # the scenario itself: the topic appears well after the daemon's first join
    # When the topic is created and fed
    created = time.monotonic()
    report = produce(
        broker.bootstrap_servers, topic, devices=20, rate=0, count=2000,
        malformed_ratio=0.0, partitions=2, seed=7,
    )  # fmt: skip
    # Then consumption starts within seconds (not at librdkafka's 5-minute refresh)
    job_store = f"sqlite:///{tmp_path}/jobs.db"
    wait_complete(daemon, broker.bootstrap_servers, f"g-{topic}", topic, report, job_store, 60)
    took = time.monotonic() - created
    print(f"consumed everything {took:.1f}s after the topic was created")
    assert took < 30
    assert "waiting for topic" in daemon.log_path.read_text()


def test_at_start_counters_exist_at_zero_and_orphaned_temp_files_are_gone(
    tmp_path: Path, broker: EmbeddedBroker, topic: str, daemons: list[DaemonProcess]
) -> None:
    # Given plain Parquet output (a table's committer removes unreferenced files
    # on its own): a temporary file a writer killed mid-write left an hour ago,
    # and a finished file
    create_topic_if_missing(broker.bootstrap_servers, topic, 2)
    day = tmp_path / "out" / "raw" / "date=2026-01-01"
    day.mkdir(parents=True)
    orphan = day / ".tmp-999999-t-0-0-10.parquet.partial"
    finished = day / "t-0-0-10.parquet"
    for path in (orphan, finished):
        path.write_bytes(b"x")
        os.utime(path, (time.time() - 3600, time.time() - 3600))
    # When the daemon starts
    daemon = _daemon(tmp_path, broker, topic, output={"format": "parquet"})
    start_ready(daemons, daemon)
    # Then the orphan is gone, the finished file is kept, and every counter exists at 0
    assert not orphan.exists() and finished.exists()
    assert "removed 1 orphaned temporary output file(s)" in daemon.log_path.read_text()
    code, body = daemon.http("/metrics")
    text = body.decode()
    assert code == 200
    for series in (
        'actorsys_dead_letters_total{reason="not_json"} 0.0',
        'actorsys_dead_letters_total{reason="job_failed"} 0.0',
        'actorsys_job_attempt_failures_total{reason="transient"} 0.0',
        'actorsys_jobs_finished_total{status="FAILED"} 0.0',
        'actorsys_transport_frames_rejected_total{reason="bad_mac"} 0.0',
        f'actorsys_offset_chain_total{{topic="{topic}",verdict="gap"}} 0.0',
        f'actorsys_records_consumed_total{{partition="1",topic="{topic}"}} 0.0',
        "actorsys_commit_failures_total 0.0",
    ):
        assert series in text, f"{series} missing from /metrics"


def test_the_daemon_exits_non_zero_when_thespians_admin_is_gone(
    tmp_path: Path, broker: EmbeddedBroker, topic: str, daemons: list[DaemonProcess]
) -> None:
    # Given a running daemon
    create_topic_if_missing(broker.bootstrap_servers, topic, 1)
    daemon = _daemon(tmp_path, broker, topic)
    start_ready(daemons, daemon)
    admin = admin_process(daemon.admin_port)
    assert admin is not None
    # When Thespian's admin process dies (nothing would ever restart it)
    os.kill(admin.pid, signal.SIGKILL)
    # Then the daemon says why and exits 1, so its supervisor restarts it
    assert daemon.proc is not None
    code = daemon.proc.wait(30)
    assert code == 1, daemon.log_tail()
    assert re.search(r"Thespian's admin \(pid \d+\).* process gone", daemon.log_path.read_text())
    daemon.assert_nothing_left()
