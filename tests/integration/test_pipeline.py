"""The whole pipeline against the real embedded broker, real SQLite and a real
multi-process Thespian actor system: exactly-once output, and after kill -9."""

from __future__ import annotations

import contextlib
import uuid
from collections import Counter
from pathlib import Path
from typing import Any

import msgpack
import psutil
import pyarrow as pa
import pytest
from deltalake import DeltaTable

from actorsys.embedded_broker import EmbeddedBroker
from actorsys.kafka_clients import create_topic_if_missing
from actorsys.simulator import FIELDS, Kind, ProduceReport, produce
from tests.support.checks import (
    assert_exactly_once,
    committed_offsets,
    consume_all,
    dead_letters,
    wait_complete,
)
from tests.support.daemon import DaemonProcess, new_daemon
from tests.support.rig import Feeder
from tests.support.waiting import wait_for

pytestmark = pytest.mark.integration

RECORDS = 50_000
PARTITIONS = 4


def _daemon(
    tmp_path: Path,
    broker: EmbeddedBroker,
    topic: str,
    group: str,
    name: str = "daemon",
    **extra: dict[str, Any],
) -> DaemonProcess:
    return new_daemon(
        tmp_path,
        name,
        bootstrap=broker.bootstrap_servers,
        topics=[topic],
        group_id=group,
        output_dir=tmp_path / "out",
        job_store=f"sqlite:///{tmp_path}/jobs.db",
        extra=extra or None,
    )


def _wait_complete(
    daemon: DaemonProcess,
    broker: EmbeddedBroker,
    group: str,
    topic: str,
    report: ProduceReport,
    job_store: str,
    timeout_s: float = 180,
) -> None:
    wait_complete(daemon, broker.bootstrap_servers, group, topic, report, job_store, timeout_s)


def test_end_to_end_exactly_once(
    tmp_path: Path, broker: EmbeddedBroker, topic: str, daemons: list[DaemonProcess]
) -> None:
    # Given 50,000 records, 1 % malformed, already in the topic
    report = produce(
        broker.bootstrap_servers,
        topic,
        devices=100,
        rate=0,
        count=RECORDS,
        malformed_ratio=0.01,
        partitions=PARTITIONS,
        seed=7,
    )
    assert report.malformed > 0
    group = f"g-{uuid.uuid4().hex[:8]}"
    # When the daemon runs until everything is committed and every job is done
    daemon = _daemon(tmp_path, broker, topic, group, daemon={"progress_interval_s": 1})
    daemons.append(daemon.start())
    daemon.wait_ready()
    _wait_complete(daemon, broker, group, topic, report, f"sqlite:///{tmp_path}/jobs.db")
    # Then its progress line (a log event: not on a terminal) counts every valid row
    wait_for(
        lambda: f"{report.valid:,} rows" in daemon.log_tail(40), 15, "the progress line's rows"
    )
    # Then it exits 0 on SIGTERM and leaves no process behind
    assert daemon.terminate() == 0, daemon.log_tail()
    daemon.assert_nothing_left()
    # And every valid record is in raw exactly once, malformed ones in the DLQ once
    assert_exactly_once(tmp_path / "out", topic, report, broker.bootstrap_servers, f"{topic}.dlq")


def test_msgpack_values_end_to_end_exactly_once_with_their_values(
    tmp_path: Path, broker: EmbeddedBroker, topic: str, daemons: list[DaemonProcess]
) -> None:
    # Given 4,000 MessagePack records, 5 % malformed, already in the topic
    report = produce(
        broker.bootstrap_servers,
        topic,
        devices=50,
        rate=0,
        count=4_000,
        malformed_ratio=0.05,
        partitions=PARTITIONS,
        seed=23,
        value_format="msgpack",
    )
    assert report.malformed > 0
    group = f"g-{uuid.uuid4().hex[:8]}"
    # When a daemon told that values are MessagePack runs until everything is done
    options = {"options": {"value_format": "msgpack"}}
    daemon = _daemon(tmp_path, broker, topic, group, output=options)
    daemons.append(daemon.start())
    daemon.wait_ready()
    _wait_complete(daemon, broker, group, topic, report, f"sqlite:///{tmp_path}/jobs.db")
    assert daemon.terminate() == 0, daemon.log_tail()
    daemon.assert_nothing_left()
    # Then every valid record is in raw exactly once, every malformed one dead-lettered once
    dlq = f"{topic}.dlq"
    assert_exactly_once(tmp_path / "out", topic, report, broker.bootstrap_servers, dlq)
    # And each raw row holds the values of its record's map
    records, _ = consume_all(broker.bootstrap_servers, topic, report.end_offsets)
    expected = {
        (partition, offset): msgpack.unpackb(value)
        for partition, offset, _, value in records
        if (partition, offset) not in report.malformed_positions
    }
    raw = DeltaTable(str(tmp_path / "out" / "raw")).to_pyarrow_table()
    # ts back to integer epoch ms, exactly: the table holds microseconds.
    ts_ms = raw["ts"].cast(pa.timestamp("ms", tz="UTC")).cast(pa.int64())
    raw = raw.set_column(raw.schema.get_field_index("ts"), "ts", ts_ms)
    found = {
        (row["_partition"], row["_offset"]): {name: row[name] for name in FIELDS}
        for row in raw.to_pylist()
    }
    assert found == expected
    # And the dead letters' reasons are those of the factory's malformed kinds
    letters = dead_letters(broker.bootstrap_servers, dlq, report.malformed)
    reasons = Counter(h["reason"] for h in letters)
    kinds = report.malformed_by_kind
    assert reasons["not_msgpack"] > 0
    assert reasons["not_msgpack"] + reasons["empty"] == kinds.get(Kind.NOT_JSON, 0)
    assert reasons["missing_field"] == kinds.get(Kind.MISSING_FIELD, 0)
    assert reasons["wrong_type"] + reasons["not_object"] == kinds.get(Kind.WRONG_TYPE, 0)
    assert reasons["tombstone"] == kinds.get(Kind.TOMBSTONE, 0)
    assert reasons.total() == report.malformed


def test_kill_minus_nine_mid_stream_loses_nothing_and_writes_nothing_twice(
    tmp_path: Path, broker: EmbeddedBroker, topic: str, daemons: list[DaemonProcess]
) -> None:
    # Given a producer streaming records (1 % malformed) at 5,000/s until stopped
    group = f"g-{uuid.uuid4().hex[:8]}"
    job_store = f"sqlite:///{tmp_path}/jobs.db"
    with Feeder(
        broker.bootstrap_servers, topic, partitions=PARTITIONS, rate=5_000, seed=11
    ) as feed:
        first = _daemon(tmp_path, broker, topic, group, name="first")
        daemons.append(first.start())
        first.wait_ready()

        # When some work is committed, mid-stream, every daemon process is killed with -9
        def some_committed() -> bool:
            offsets = committed_offsets(
                broker.bootstrap_servers, group, topic, list(range(PARTITIONS))
            )
            return sum(max(o, 0) for o in offsets.values()) >= 5_000

        wait_for(some_committed, 90, "some offsets committed")
        first.kill9()
        first.assert_nothing_left()
        # And the daemon is started again, while the stream goes on
        second = _daemon(tmp_path, broker, topic, group, name="second")
        daemons.append(second.start())
        second.wait_ready()
        report = feed.stop()
    _wait_complete(second, broker, group, topic, report, job_store)
    assert second.terminate() == 0, second.log_tail()
    second.assert_nothing_left()
    # Then nothing is lost and nothing written twice; dead letters at least once
    assert_exactly_once(
        tmp_path / "out",
        topic,
        report,
        broker.bootstrap_servers,
        f"{topic}.dlq",
        dead_letters_exactly_once=False,
    )


def test_actor_system_ends_itself_when_the_daemon_is_killed(
    tmp_path: Path, broker: EmbeddedBroker, topic: str, daemons: list[DaemonProcess]
) -> None:
    # Given a running daemon and its actor system (a process group of its own)
    create_topic_if_missing(broker.bootstrap_servers, topic, PARTITIONS)
    daemon = _daemon(tmp_path, broker, topic, f"g-{uuid.uuid4().hex[:8]}")
    daemons.append(daemon.start())
    daemon.wait_ready()
    assert daemon.actor_system.alive(), "the actor system's processes were not found"
    # When only the daemon's own process is killed with -9
    assert daemon.proc is not None
    daemon.proc.kill()
    daemon.proc.wait(10)
    # Then the orphaned actor system notices and ends every one of its processes
    wait_for(lambda: not daemon.actor_system.alive(), 20, "the orphaned actor system to end")


def _job_manager_process(daemon: DaemonProcess, db: Path) -> psutil.Process | None:
    """The JobManager is the actor process that holds the job store open."""
    for proc in daemon.actor_system.alive():
        with contextlib.suppress(psutil.Error):
            if any(f.path == str(db) for f in proc.open_files()):
                return proc
    return None


def test_supervisor_recreates_a_killed_job_manager_which_reloads_from_the_store(
    tmp_path: Path, broker: EmbeddedBroker, topic: str, daemons: list[DaemonProcess]
) -> None:
    # Given a daemon working through a stream
    group = f"g-{uuid.uuid4().hex[:8]}"
    with Feeder(
        broker.bootstrap_servers, topic, partitions=PARTITIONS, rate=5_000, seed=13
    ) as feed:
        daemon = _daemon(tmp_path, broker, topic, group)
        daemons.append(daemon.start())
        daemon.wait_ready()
        # When its JobManager process is killed with -9 mid-stream
        manager = wait_for(
            lambda: _job_manager_process(daemon, tmp_path / "jobs.db"), 30, "the JobManager process"
        )
        wait_for(
            lambda: (
                sum(
                    max(o, 0)
                    for o in committed_offsets(
                        broker.bootstrap_servers, group, topic, list(range(PARTITIONS))
                    ).values()
                )
                >= 5_000
            ),
            90,
            "some offsets committed (jobs in the store)",
        )
        manager.kill()
        # Then the Supervisor recreates it, and it carries on from the store
        wait_for(
            lambda: "job_manager exited; recreating it" in daemon.log_tail(400),
            30,
            "the Supervisor to notice",
        )
        report = feed.stop()
    _wait_complete(daemon, broker, group, topic, report, f"sqlite:///{tmp_path}/jobs.db")
    assert daemon.terminate() == 0, daemon.log_tail()
    daemon.assert_nothing_left()
    assert_exactly_once(
        tmp_path / "out",
        topic,
        report,
        broker.bootstrap_servers,
        f"{topic}.dlq",
        dead_letters_exactly_once=False,
    )
