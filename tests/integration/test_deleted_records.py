"""A job whose records left the log before its worker read them.

A pending job is only its offsets. If Kafka no longer holds them when the
worker fetches, the worker must do what a reset policy did when the group
consumer read the records: log the exact range, count it, and go on; never
skip silently, never retry for ever, and lose nothing else.

The embedded broker has no retention and refuses DeleteRecords, so the test
takes the records away by recreating the topic while the job waits in the
store (with no actorsys process running: librdkafka 2.16 crashes, measured,
when a topic it is assigned is deleted under it on this broker). The job's
offsets are then above the new log's end: the broker answers its fetches
with no record and a high watermark below them, which the reader takes as a
truncated log once that persists (``TRUNCATION_GRACE_S``). Records deleted
below the log start (retention proper) come back from Kafka as
OFFSET_OUT_OF_RANGE instead, which this broker cannot produce.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.admin import (  # type: ignore[attr-defined]  # re-exported, not in __all__
    AdminClient,
    NewTopic,
)

from actorsys.embedded_broker import EmbeddedBroker
from actorsys.jobs.model import JobStatus
from actorsys.kafka_clients import create_topic_if_missing
from tests.support.checks import job_intervals, raw_positions
from tests.support.daemon import DaemonProcess, start_ready, topic_daemon
from tests.support.prom import Exposition
from tests.support.waiting import wait_for

pytestmark = pytest.mark.integration

KEPT, DOOMED = 0, 1  # partitions: records produced after the loss, records lost
KEPT_RECORDS = 300
DOOMED_FROM, DOOMED_TO = 500, 1000


def _produce(bootstrap: str, topic: str, partition: int, count: int) -> None:
    producer = Producer({"bootstrap.servers": bootstrap, "linger.ms": 5})
    for i in range(count):
        value = {"device_id": f"d{i % 7}", "ts": 1_700_000_000_000 + i, "temperature": 20.0,
                 "humidity": 40.0, "battery": 90.0}  # fmt: skip
        producer.produce(topic, json.dumps(value).encode(), key=b"k", partition=partition)
    assert producer.flush(30) == 0


def _commit(bootstrap: str, group: str, topic: str, partition: int, offset: int) -> None:
    """The group's committed offset, as if earlier runs had processed below it."""
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": group})
    try:
        consumer.commit(offsets=[TopicPartition(topic, partition, offset)], asynchronous=False)
    finally:
        consumer.close()


def _recreate(bootstrap: str, topic: str) -> None:
    admin = AdminClient({"bootstrap.servers": bootstrap})
    admin.delete_topics([topic])[topic].result(30)
    wait_for(lambda: topic not in admin.list_topics(timeout=5).topics, 30, "the topic gone")
    admin.create_topics([NewTopic(topic, 2, 1)])[topic].result(30)


def test_records_gone_before_their_job_ran_are_logged_and_counted_exactly(
    tmp_path: Path, broker: EmbeddedBroker, topic: str, daemons: list[DaemonProcess]
) -> None:
    bootstrap = broker.bootstrap_servers
    create_topic_if_missing(bootstrap, topic, 2)
    create_topic_if_missing(bootstrap, f"{topic}.dlq", 1)
    _produce(bootstrap, topic, DOOMED, DOOMED_TO)
    _commit(bootstrap, f"g-{topic}", topic, DOOMED, DOOMED_FROM)
    # Given a job [500, 1000) stored by a daemon that has no worker to run it
    job_store = f"sqlite:///{tmp_path}/jobs.db"
    batching = {"max_records": 1000, "linger_ms": 1000}
    first = topic_daemon(
        tmp_path, bootstrap, topic, "first", batching=batching, workers={"on_leader": False}
    )
    start_ready(daemons, first)
    wait_for(
        lambda: (DOOMED, DOOMED_FROM, DOOMED_TO, JobStatus.PENDING) in job_intervals(job_store),
        60,
        "the job of partition 1 stored",
    )
    assert first.terminate() == 0
    first.assert_nothing_left()
    # When its records leave the log before a worker reads them, and new records
    # arrive on the other partition
    _recreate(bootstrap, topic)
    _produce(bootstrap, topic, KEPT, KEPT_RECORDS)
    second = topic_daemon(tmp_path, bootstrap, topic, "second", batching=batching)
    start_ready(daemons, second)
    # Then the job ends DONE (not failed, not retried for ever) ...
    wait_for(
        lambda: (DOOMED, DOOMED_FROM, DOOMED_TO, JobStatus.DONE) in job_intervals(job_store),
        120,
        "the job of the deleted records done",
    )

    def kept_done() -> bool:
        # However they were cut into jobs (how soon the consumer learns where
        # the log ends decides that): DONE jobs cover [0, KEPT_RECORDS) end to end.
        covered = 0
        for partition, start, end, status in job_intervals(job_store):
            if partition == KEPT and status is JobStatus.DONE and start == covered:
                covered = end
        return covered == KEPT_RECORDS

    wait_for(kept_done, 60, "the new records done")
    # ... the exact range is logged by the worker and the JobManager, and counted
    log = second.log_tail(400)
    assert f"[{DOOMED}]: offsets [{DOOMED_FROM}, {DOOMED_TO}) were deleted by retention" in log
    assert f"offsets [{DOOMED_FROM}, {DOOMED_TO}) were deleted by retention before it ran" in log
    code, body = second.http("/metrics")
    assert code == 200
    metrics = Exposition(body.decode())
    assert metrics.value("actorsys_skipped_offsets_total", topic=topic) == DOOMED_TO - DOOMED_FROM
    # ... and nothing else is lost: the new records are in the output, once
    assert second.terminate() == 0
    second.assert_nothing_left()
    positions = raw_positions(tmp_path / "out", topic)
    assert sorted(positions) == [(KEPT, o) for o in range(KEPT_RECORDS)]
