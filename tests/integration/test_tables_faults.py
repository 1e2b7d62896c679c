"""Faults in the middle of a compaction of table output (``[output] format =
"delta"``), against the real broker and real daemons: a kill -9 of every
process, and a full disk. A fault-injection hook (:mod:`actorsys.testhooks`)
pauses the compaction at a chosen stage and says so, so the fault strikes
there and not by luck of timing. Whatever happens, a reader polling the
table never sees a record twice, every valid record ends in it once, every
hour ends compacted, and ``agg`` holds one row per (device, minute) with the
raw counts. And the same for a full disk under the raw table's log while
ingested files await their commit."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from deltalake import DeltaTable

from actorsys.embedded_broker import EmbeddedBroker
from actorsys.jobs.model import JobKind, JobRecord, JobStatus
from actorsys.jobs.open import open_job_store
from actorsys.kafka_clients import create_topic_if_missing
from actorsys.simulator import produce
from tests.integration.test_tables import (
    PARTITIONS,
    _all_compacted,
    _assert_final_aggregates,
    _assert_table_exactly_once,
    _daemon,
    _feed,
    _Reader,
)
from tests.support.checks import dead_letters, wait_complete
from tests.support.daemon import DaemonProcess, start_ready
from tests.support.disk import fill, tmpfs
from tests.support.waiting import wait_for

pytestmark = pytest.mark.integration

TABLES = ("raw", "agg", "agg_hourly")
# Hours close within seconds: 2 event-minutes of lateness, 3 s idle partitions.
FAST_HOURS = {
    "commit_interval_ms": 300,
    "allowed_lateness_s": 120.0,
    "idle_partition_s": 3.0,
    "recompact_delay_s": 1.0,
}
CHAOS = (
    "ACTORSYS_CHAOS_COMPACTION_DELAY_S",
    "ACTORSYS_CHAOS_COMPACTION_STAGE",
    "ACTORSYS_CHAOS_DIR",
)
NO_SPACE = "No space left on device"


def _hour_start(minutes: int) -> int:
    """Epoch ms of the current UTC hour's start plus ``minutes``."""
    now = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
    return int(now.timestamp() * 1000) + minutes * 60_000


def _paused(chaos: Path) -> list[dict[str, Any]]:
    """What the compactions paused by the hook reported, oldest job first."""
    found = [json.loads(p.read_text()) for p in chaos.glob("compaction-*.json")]
    return sorted(found, key=lambda r: (r["job_id"], r["attempt"]))


def _active(root: Path) -> list[str]:
    """The table's active files, relative to its root."""
    prefix = str(root) + "/"
    return [
        uri.removeprefix("file://").removeprefix(prefix)
        for uri in DeltaTable(str(root)).file_uris()
    ]


def _ever_added(root: Path) -> set[str]:
    """Every path any commit in the table's log added (the JSON commits are
    kept a day, checkpoints only summarise them)."""
    added = set()
    for commit in (root / "_delta_log").glob("*.json"):
        for line in commit.read_text().splitlines():
            action = json.loads(line)
            if "add" in action:
                added.add(action["add"]["path"])
    return added


def _assert_tables_consistent(out: Path, tables: tuple[str, ...] = TABLES) -> None:
    """Each table's active files are distinct and all on disk."""
    for table in tables:
        active = _active(out / table)
        assert len(active) == len(set(active)), f"{table}: a file is active twice"
        missing = [path for path in active if not (out / table / path).exists()]
        assert not missing, f"{table}: active files missing on disk: {missing[:3]}"


def _compaction_jobs(job_store: str) -> list[JobRecord]:
    store = open_job_store(job_store)
    try:
        return [job for job in store.list_jobs(limit=10_000) if job.kind is JobKind.COMPACT]
    finally:
        store.close()


def _statuses(job_store: str) -> dict[JobStatus, int]:
    store = open_job_store(job_store)
    try:
        return dict(store.count_by_status())
    finally:
        store.close()


def _job_manager(daemon: DaemonProcess) -> dict[str, Any]:
    component: dict[str, Any] = daemon.status()["components"].get("job_manager", {})
    return component


def _wait_compacted(daemon: DaemonProcess, raw: Path, timeout_s: float = 60) -> None:
    def compacted() -> bool:
        daemon.check_alive()
        return _all_compacted(raw)

    wait_for(compacted, timeout_s, "every hour to be compacted", 0.5)


def test_kill_9_of_every_process_during_a_compaction_then_restart_is_exactly_once(
    tmp_path: Path, broker: EmbeddedBroker, topic: str, daemons: list[DaemonProcess]
) -> None:
    # Given a daemon whose hours close within seconds, and whose compactions
    # pause once every file is written, before any is committed
    create_topic_if_missing(broker.bootstrap_servers, topic, PARTITIONS)
    chaos = tmp_path / "chaos"
    chaos.mkdir()
    daemon = _daemon(tmp_path, broker, topic, tables=FAST_HOURS)
    daemon.env.update({CHAOS[0]: "120", CHAOS[2]: str(chaos)})
    start_ready(daemons, daemon)
    out = tmp_path / "out"
    raw = out / "raw"
    job_store = f"sqlite:///{tmp_path}/jobs.db"
    with _Reader(raw, topic).polling() as reader:
        # When records stream in from 40 event-minutes before an hour's end to
        # 40 after (600x wall time), 2 % up to 30 event-minutes late, and the
        # first hour closes mid-stream
        feed = _feed(
            broker, topic, 24_000, 3_000, devices=40, seed=13, time_scale=600.0,
            late_ratio=0.02, late_max_s=1800.0, epoch_ms=_hour_start(-40),
        )  # fmt: skip
        paused = wait_for(
            lambda: _paused(chaos), 60, "a compaction to pause between its files and their commit"
        )[0]
        # (its files are written, and none is in a table)
        written = {table: paused["files"][table] for table in TABLES}
        assert written["raw"] and written["agg"] and written["agg_hourly"], paused
        for table, paths in written.items():
            assert all((out / table / path).exists() for path in paths), paused
            assert not set(paths) & set(_active(out / table)), paused
        # And every process of the daemon is killed -9 right then
        daemon.kill9()
        daemon.assert_nothing_left()
        report = feed.report()
        # And it starts again on the same job store and tables, the hook off
        again = DaemonProcess(
            daemon.config_path, tmp_path / "again.log", daemon.metrics_port, daemon.admin_port,
            {k: v for k, v in daemon.env.items() if k not in CHAOS},
        )  # fmt: skip
        daemons.append(again)
        again.start()
        wait_complete(again, broker.bootstrap_servers, f"g-{topic}", topic, report, job_store)
        _wait_compacted(again, raw)
        wait_complete(again, broker.bootstrap_servers, f"g-{topic}", topic, report, job_store)
    # Then no poll ever saw a record twice, and each valid record is in raw once
    print(f"{reader.polls} polls, up to {reader.max_rows} rows seen; paused {paused}")
    assert report.late > 0 and reader.polls > 10
    assert not reader.duplicates, reader.duplicates[:3]
    _assert_table_exactly_once(raw, topic, report, f"g-{topic}")
    # And every hour is compacted, with exact final aggregates
    assert _all_compacted(raw)
    _assert_final_aggregates(out, report)
    # And the killed attempt's files are in no commit of any table: left on disk,
    # as the committer's start-up sweep keeps untracked files younger than
    # job_timeout_s + 60 s (a running attempt's, for all it knows)
    _assert_tables_consistent(out)
    for table, paths in written.items():
        assert not set(paths) & _ever_added(out / table), (table, paths)
        assert all((out / table / path).exists() for path in paths), (table, paths)
    # And its job ran again, under a new attempt, to DONE
    job = next(j for j in _compaction_jobs(job_store) if j.id == paused["job_id"])
    assert job.status is JobStatus.DONE and job.attempts > paused["attempt"], job
    assert _statuses(job_store).get(JobStatus.FAILED, 0) == 0
    assert again.terminate() == 0


@contextmanager
def _small_disk(path: Path, size: str, daemons: list[DaemonProcess]) -> Iterator[Path]:
    """A tmpfs of ``size`` at ``path`` for the block, unmounted once every
    daemon is gone (they write there: stopped first, whatever happened)."""
    with tmpfs(path, size) as disk:
        try:
            yield disk
        finally:
            for daemon in reversed(daemons):
                daemon.cleanup()


@pytest.mark.parametrize(
    "stage",
    [
        pytest.param("start", id="writing-its-files"),
        pytest.param("written", id="committing-them"),
    ],
)
def test_a_full_disk_during_a_compaction_fails_it_and_it_is_retried_losing_nothing(
    stage: str,
    tmp_path: Path,
    broker: EmbeddedBroker,
    topic: str,
    daemons: list[DaemonProcess],
) -> None:
    with _small_disk(tmp_path / "out", "32m", daemons) as out:
        # Given a daemon writing its tables on a small disk, whose compactions pause
        # before writing anything ("start"), or once every file is written ("written")
        create_topic_if_missing(broker.bootstrap_servers, topic, PARTITIONS)
        chaos = tmp_path / "chaos"
        chaos.mkdir()
        daemon = _daemon(tmp_path, broker, topic, tables=FAST_HOURS)
        daemon.env.update({CHAOS[0]: "60", CHAOS[1]: stage, CHAOS[2]: str(chaos)})
        start_ready(daemons, daemon)
        raw = out / "raw"
        job_store = f"sqlite:///{tmp_path}/jobs.db"
        with _Reader(raw, topic).polling() as reader:
            # And records of one event hour (300x wall time, 2 % late, 1 % malformed),
            # every one committed before the hour closes (its partitions idle for 3 s)
            report = produce(
                broker.bootstrap_servers, topic, devices=40, rate=3000, count=8_000,
                malformed_ratio=0.01, partitions=PARTITIONS, seed=14, time_scale=300.0,
                late_ratio=0.02, late_max_s=1800.0, epoch_ms=_hour_start(31),
            )  # fmt: skip
            paused = wait_for(lambda: _paused(chaos), 60, "the hour's compaction to start")[0]
            job_id, first = paused["job_id"], paused["attempt"]
            # When the disk fills up just then, and the compaction goes on: it writes
            # its files, or the committer its commit to the table's log
            ballast = fill(out)
            (chaos / "resume").touch()  # no more pauses
            (chaos / f"compaction-j{job_id}-a{first}-{stage}.json").unlink()

            # Then its attempt fails on the full disk, a transient fault: the job is
            # to run again, and the JobManager pauses consumption
            def failed_on_full_disk() -> JobRecord | None:
                daemon.check_alive()
                job = next(j for j in _compaction_jobs(job_store) if j.id == job_id)
                return job if NO_SPACE in (job.last_error or "") else None

            failed = wait_for(failed_on_full_disk, 30, "the compaction to fail on the full disk")
            assert failed.status in (JobStatus.PENDING, JobStatus.RUNNING), failed
            manager = wait_for(
                lambda: (m := _job_manager(daemon)).get("output_ok") is False and m,
                10,
                "the JobManager to see the output as unwritable",
                0.2,
            )
            assert manager  # wait_for returns only a truthy value: the component
            assert NO_SPACE in manager["output_error"] and manager["transient_failures"] >= 1
            # And the failed attempt's files are in no table, and gone: removed by the
            # compaction itself, or by the raw committer once the table showed that
            # its commit had not landed; its aggregates, never sent to their
            # committers, are left to the start-up sweep of orphans
            left = {
                table: [
                    p.relative_to(out / table).as_posix()
                    for p in (out / table).rglob("*")
                    if re.search(
                        rf"-j{job_id}-a{first}[-.]|^\.tmp-duckdb-{job_id}-{first}$", p.name
                    )
                ]
                for table in TABLES
            }
            assert not left["raw"], left
            if stage == "start":
                assert not left["agg"] and not left["agg_hourly"], left
            for table, paths in left.items():
                assert not set(paths) & _ever_added(out / table), left
            assert not _all_compacted(raw)
            # And once space is freed, the compaction is retried and succeeds
            ballast.unlink()
            _wait_compacted(daemon, raw)
            wait_complete(daemon, broker.bootstrap_servers, f"g-{topic}", topic, report, job_store)
        # And no poll ever saw a record twice; each valid record is in raw once
        print(f"{reader.polls} polls, up to {reader.max_rows} rows seen; failed {failed}")
        assert report.late > 0 and reader.polls > 10
        assert not reader.duplicates, reader.duplicates[:3]
        _assert_table_exactly_once(raw, topic, report, f"g-{topic}")
        _assert_final_aggregates(out, report)
        _assert_tables_consistent(out)
        # And the full disk cost the job no attempt of its budget; no job failed, so
        # nothing but the malformed records went to the dead-letter topic
        job = next(j for j in _compaction_jobs(job_store) if j.id == job_id)
        assert job.status is JobStatus.DONE and job.attempts > first, job
        assert job.attempts - job.replay_base == 1, job
        assert _statuses(job_store).get(JobStatus.FAILED, 0) == 0
        letters = dead_letters(
            broker.bootstrap_servers, f"{topic}.dlq", len(report.malformed_positions)
        )
        assert sorted(
            (int(h["source_partition"]), int(h["source_offset"])) for h in letters
        ) == sorted(report.malformed_positions)
        assert daemon.terminate() == 0


def test_a_full_disk_while_files_await_their_commit_holds_commits_back_and_loses_nothing(
    tmp_path: Path, broker: EmbeddedBroker, topic: str, daemons: list[DaemonProcess]
) -> None:
    # Given a daemon whose raw table keeps its log on a small disk of its own, so
    # that the disk fills exactly between the writing of data files and their
    # commit (a whole full disk fails the writing of data files first)
    create_topic_if_missing(broker.bootstrap_servers, topic, PARTITIONS)
    raw = tmp_path / "out" / "raw"
    job_store = f"sqlite:///{tmp_path}/jobs.db"
    with _small_disk(raw / "_delta_log", "4m", daemons) as log_disk:
        daemon = _daemon(tmp_path, broker, topic)
        start_ready(daemons, daemon)
        with _Reader(raw, topic).polling() as reader:
            # When that disk fills up while records stream in
            feed = _feed(broker, topic, 20_000, 2_000)
            wait_for(lambda: reader.max_rows > 2_000, 60, "rows to be committed", 0.2)
            ballast = fill(log_disk)

            # Then commits fail on it, and the daemon lives on, holding the files
            def commit_failed() -> bool:
                daemon.check_alive()
                text = daemon.log_path.read_text(errors="replace")
                return "table raw: commit failed" in text and NO_SPACE in text

            wait_for(commit_failed, 30, "a commit to fail on the full disk", 0.2)
            # And once space is freed, every file is committed, each valid record once
            ballast.unlink()
            report = feed.report()
            wait_complete(daemon, broker.bootstrap_servers, f"g-{topic}", topic, report, job_store)
        print(f"{reader.polls} polls, up to {reader.max_rows} rows seen")
        assert not reader.duplicates, reader.duplicates[:3]
        _assert_table_exactly_once(raw, topic, report, f"g-{topic}")
        _assert_tables_consistent(tmp_path / "out", ("raw",))
        assert _statuses(job_store).get(JobStatus.FAILED, 0) == 0
        # And the failed commits left nothing behind in the log
        commits = re.compile(r"\d{20}\.(json|checkpoint\.parquet)|_last_checkpoint")
        assert all(commits.fullmatch(p.name) for p in log_disk.iterdir()), list(log_disk.iterdir())
        assert daemon.terminate() == 0
