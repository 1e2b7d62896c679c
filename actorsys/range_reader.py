"""Reading one partition's offset interval ``[start, end)`` straight from Kafka.

The building block of a data path in which a job is its offset interval
alone and the worker that runs it reads the records itself, as Spark's Kafka
source and Flink's split readers do: a consumer with ``assign()`` and a start
offset, never a member of the consumer group, created once and reused. A job
that starts where the previous one ended keeps what librdkafka prefetched.

Not wired into the pipeline yet: workers still receive their records from
the job store.

Records deleted by retention before their job ran are never skipped
silently: ``auto.offset.reset`` is ``error`` here, and the range reports the
exact offsets it could not read.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass

from confluent_kafka import Consumer, KafkaError, KafkaException, Message, TopicPartition

from actorsys.errors import ActorsysError
from actorsys.records import Record

CONSUME_BATCH = 10_000
POLL_S = 0.2


class RangeUnavailable(ActorsysError):
    """The range could not be read completely before the deadline."""


@dataclass(frozen=True, slots=True)
class RangeRead:
    """What ``[start, end)`` held: its records in offset order, and the offsets
    retention had deleted before they could be read (``None``: nothing lost)."""

    records: list[Record]
    deleted: tuple[int, int] | None = None


def reader_properties(consumer_properties: Mapping[str, str]) -> dict[str, str]:
    """A group consumer's settings turned into a range reader's: the same
    cluster, security and fetch tuning; no offset is ever committed or reset."""
    props = dict(consumer_properties)
    for key in ("partition.assignment.strategy", "session.timeout.ms"):
        props.pop(key, None)
    props.update(
        {
            # librdkafka wants a group id even for assign(); this one never joins.
            "group.id": f"{consumer_properties.get('group.id', 'actorsys')}.range-reader",
            "enable.auto.commit": "false",
            "enable.auto.offset.store": "false",
            "auto.offset.reset": "error",
            "enable.partition.eof": "true",
        }
    )
    return props


class RangeReader:
    def __init__(self, properties: Mapping[str, str]) -> None:
        self._consumer = Consumer(dict(properties))
        self._at: tuple[str, int] | None = None  # the partition assigned now
        self._next: int | None = None  # the offset the consumer will return next
        self._carry: list[Message] = []  # consumed past the last range's end

    def read(self, topic: str, partition: int, start: int, end: int, timeout_s: float) -> RangeRead:
        """The records of ``[start, end)``; raises RangeUnavailable past ``timeout_s``."""
        if (topic, partition) != self._at or start != self._next:
            self._seek(topic, partition, start)
        deadline = time.monotonic() + timeout_s
        records: list[Record] = []
        deleted: tuple[int, int] | None = None
        pending, self._carry = self._carry, []
        position = start
        while position < end:
            if not pending:
                if time.monotonic() >= deadline:
                    self._at = None  # the consumer's position is unknown now
                    raise RangeUnavailable(
                        f"{topic}[{partition}] [{start}, {end}): only up to {position} "
                        f"read within {timeout_s:.0f}s"
                    )
                try:
                    pending = self._consumer.consume(CONSUME_BATCH, timeout=POLL_S)
                except KafkaException as exc:
                    raise RangeUnavailable(f"{topic}[{partition}]: {exc}") from exc
            for i, message in enumerate(pending):
                error = message.error()
                if error is not None:
                    if error.code() == KafkaError._PARTITION_EOF:
                        if message.offset() >= end:  # the range ends in a hole
                            position = end
                        continue
                    if error.code() == KafkaError._AUTO_OFFSET_RESET:
                        low = self._log_start(topic, partition)
                        deleted = (position, min(low, end))
                        position = min(low, end)
                        self._seek(topic, partition, low)
                        pending = []
                        break
                    raise RangeUnavailable(f"{topic}[{partition}]: {error}")
                offset = message.offset()
                if offset < position:
                    continue  # before the range (a seek lands on a batch boundary)
                if offset >= end:
                    self._carry = pending[i:]
                    position = end
                    break
                ts_type, ts = message.timestamp()
                records.append(
                    Record(offset, ts if ts_type else None, message.key(), message.value())
                )
                position = offset + 1
            else:
                pending = []
        self._next = end
        return RangeRead(records, deleted)

    def close(self) -> None:
        self._consumer.close()

    def _seek(self, topic: str, partition: int, offset: int) -> None:
        self._consumer.assign([TopicPartition(topic, partition, offset)])
        self._at, self._next, self._carry = (topic, partition), offset, []

    def _log_start(self, topic: str, partition: int) -> int:
        low, _high = self._consumer.get_watermark_offsets(
            TopicPartition(topic, partition), timeout=10
        )
        return int(low)
