"""The Delta table's offset chain goes on past jobs that write no file.

The raw table's committer publishes a partition's jobs in offset order, and
the table's version of a partition is the end offset it has reached. A job
whose records were all dead-lettered, or one that ended FAILED, writes no
file: it must still advance that version, or every later job of its
partition waits for it for ever and nothing more reaches readers.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any, TypedDict, Unpack

import pytest
from confluent_kafka import Producer
from deltalake import DeltaTable

from actorsys.embedded_broker import EmbeddedBroker
from actorsys.jobs.model import JobStatus
from actorsys.kafka_clients import create_topic_if_missing
from actorsys.tables.delta import app_id
from tests.support.checks import job_intervals, raw_positions
from tests.support.daemon import DaemonProcess, start_ready, topic_daemon
from tests.support.waiting import wait_for

pytestmark = pytest.mark.integration


def _produce(bootstrap: str, topic: str, values: list[bytes]) -> None:
    producer = Producer({"bootstrap.servers": bootstrap, "linger.ms": 5})
    for value in values:
        producer.produce(topic, value, key=b"k", partition=0)
    assert producer.flush(30) == 0


def _valid(count: int, first_ts: int) -> list[bytes]:
    reading = {"device_id": "d1", "temperature": 20.0, "humidity": 40.0, "battery": 90.0}
    return [json.dumps({**reading, "ts": first_ts + i}).encode() for i in range(count)]


def _statuses(job_store: str) -> list[tuple[int, int, JobStatus]]:
    return [(start, end, status) for _, start, end, status in job_intervals(job_store)]


def _all_done_up_to(job_store: str, end: int) -> bool:
    jobs = _statuses(job_store)
    finished = {JobStatus.DONE, JobStatus.FAILED}
    return bool(jobs) and jobs[-1][1] == end and all(status in finished for *_, status in jobs)


class Extra(TypedDict, total=False):
    """Config sections for topic_daemon's ``**extra`` besides those set below."""

    tables: dict[str, Any]


def _poisoned_daemon(
    tmp_path: Path, bootstrap: str, topic: str, name: str, **extra: Unpack[Extra]
) -> DaemonProcess:
    """A Delta daemon whose job holding offset 30 always fails (one attempt)."""
    return topic_daemon(
        tmp_path, bootstrap, topic, name,
        batching={"max_records": 10, "linger_ms": 200},
        jobs={"max_attempts": 1},
        output={"format": "delta", "handler": "tests.support.handlers:FaultyHandler",
                "options": {"poison_partition": 0, "poison_offset": 30,
                            "table_format": "delta"}},
        **extra,
    )  # fmt: skip


def test_jobs_without_rows_and_failed_jobs_let_the_partition_go_on(
    tmp_path: Path, broker: EmbeddedBroker, topic: str, daemons: list[DaemonProcess]
) -> None:
    bootstrap = broker.bootstrap_servers
    create_topic_if_missing(bootstrap, topic, 1)
    create_topic_if_missing(bootstrap, f"{topic}.dlq", 1)
    # Given a Delta daemon whose job holding offset 30 always fails (one attempt)
    daemon = _poisoned_daemon(tmp_path, bootstrap, topic, "daemon")
    start_ready(daemons, daemon)
    job_store = f"sqlite:///{tmp_path}/jobs.db"
    # When the partition starts with records that are all unreadable (a job of
    # dead letters only), then holds the poisoned job, then good records
    _produce(bootstrap, topic, [b"not json"] * 20)
    wait_for(lambda: _all_done_up_to(job_store, 20), 60, "the dead-letter-only jobs done")
    _produce(bootstrap, topic, _valid(100, int(time.time() * 1000)))
    # Then every job finishes, and the good records after both reach the table
    wait_for(lambda: _all_done_up_to(job_store, 120), 90, "every job finished")
    failed = [(s, e) for s, e, status in _statuses(job_store) if status is JobStatus.FAILED]
    assert len(failed) == 1 and failed[0][0] <= 30 < failed[0][1], _statuses(job_store)
    lost_start, lost_end = failed[0]

    def readable() -> list[tuple[int, int]] | None:
        positions = sorted(raw_positions(tmp_path / "out", topic))
        expected = [(0, o) for o in range(20, 120) if not lost_start <= o < lost_end]
        return positions if positions == expected else None

    wait_for(readable, 60, "the good records readable in the raw table")
    assert daemon.terminate() == 0
    daemon.assert_nothing_left()


def test_a_failed_job_whose_skip_was_not_committed_does_not_stall_its_partition_after_a_restart(
    tmp_path: Path, broker: EmbeddedBroker, topic: str, daemons: list[DaemonProcess]
) -> None:
    bootstrap = broker.bootstrap_servers
    create_topic_if_missing(bootstrap, topic, 1)
    create_topic_if_missing(bootstrap, f"{topic}.dlq", 1)
    job_store = f"sqlite:///{tmp_path}/jobs.db"
    # Given a daemon that commits its table at most once a minute, and a
    # partition of 100 good records whose job holding offset 30 FAILS
    first = _poisoned_daemon(tmp_path, bootstrap, topic, "first",
                             tables={"commit_interval_ms": 60_000})  # fmt: skip
    start_ready(daemons, first)
    _produce(bootstrap, topic, _valid(100, int(time.time() * 1000)))

    def failed_job() -> tuple[int, int] | None:
        failed = [(s, e) for s, e, status in _statuses(job_store) if status is JobStatus.FAILED]
        return failed[0] if failed else None

    lost = wait_for(failed_job, 90, "the poisoned job FAILED")
    assert lost is not None  # wait_for returns only a truthy value
    lost_start, lost_end = lost
    # When every process of it is killed before the table recorded that job
    first.kill9()
    first.assert_nothing_left()
    version = DeltaTable(str(tmp_path / "out" / "raw")).transaction_version(
        app_id(f"g-{topic}", topic, 0)
    )
    assert version is None or version <= lost_start, f"the skip was committed ({version}): " \
        "the test proves nothing"  # fmt: skip
    # And the daemon is started again
    second = _poisoned_daemon(tmp_path, bootstrap, topic, "second")
    start_ready(daemons, second)

    # Then the partition goes on past the FAILED job: every other record is readable
    def readable() -> list[tuple[int, int]] | None:
        positions = sorted(raw_positions(tmp_path / "out", topic))
        expected = [(0, o) for o in range(100) if not lost_start <= o < lost_end]
        return positions if positions == expected else None

    wait_for(readable, 90, "the records after the FAILED job readable in the raw table")
    assert second.terminate() == 0
    second.assert_nothing_left()
