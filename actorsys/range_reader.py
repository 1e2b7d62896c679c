"""Reading one partition's offset interval ``[start, end)`` straight from Kafka.

The building block of a data path in which a job is its offset interval
alone and the worker that runs it reads the records itself, as Spark's Kafka
source and Flink's split readers do: a consumer with ``assign()`` and a start
offset, never a member of the consumer group, created once and reused. A job
that starts where the previous one ended keeps what librdkafka prefetched.

Records deleted before their job ran are never skipped silently: below the
log start (retention), ``auto.offset.reset`` is ``error`` here and the broker
says OFFSET_OUT_OF_RANGE; above the log end (a truncated or recreated log;
the embedded broker answers such fetches with nothing at all), the high
watermark of the fetch responses stays at or below the position for
``TRUNCATION_GRACE_S``, twice, with the broker answering in between. Either
way the range reports the exact offsets it could not read.

The answer in between matters: the high watermark is the one cached from the
last fetch response, and a broker that stopped answering (frozen, cut off)
sends none, so a log that grew meanwhile would look truncated. A range is
reported deleted only once a metadata request was answered and the fetches
that followed still put the log's end below it; a broker that does not
answer makes the range unavailable (retried later), never deleted.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from confluent_kafka import Consumer, KafkaError, KafkaException, Message, TopicPartition

from actorsys import metrics
from actorsys.errors import ActorsysError
from actorsys.jobs.model import ReaderPosition
from actorsys.records import Record

CONSUME_BATCH = 10_000
POLL_S = 0.2
# A log that ends below a job's range (fetch responses report a high watermark
# at or below where the range still needs records) was truncated: a leader
# elected uncleanly, the topic recreated. A new leader may report a lower high
# watermark for a moment, so the range is given up only once this persists.
TRUNCATION_GRACE_S = 10.0
# How long the broker has to answer the metadata request that confirms it is
# there before a range is given up (see the module docstring).
BROKER_CHECK_TIMEOUT_S = 2.0


class RangeUnavailable(ActorsysError):
    """The range could not be read completely before the deadline: the broker
    is unreachable or slow, which says nothing about the job's records."""

    transient = True


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
    # Group membership settings mean nothing to assign(), and some are checked
    # against one another (max.poll.interval.ms >= session.timeout.ms).
    for key in (
        "partition.assignment.strategy",
        "session.timeout.ms",
        "heartbeat.interval.ms",
        "max.poll.interval.ms",
        "group.instance.id",
        "group.protocol",
        "group.remote.assignor",
    ):
        props.pop(key, None)
    props.update(
        {
            # librdkafka wants a group id even for assign(); this one never joins.
            "group.id": f"{consumer_properties.get('group.id', 'actorsys')}.range-reader",
            "enable.auto.commit": "false",
            "enable.auto.offset.store": "false",
            "auto.offset.reset": "error",
            "enable.partition.eof": "true",
            # A job's range is known to be in the log, so a fetch has nothing
            # to wait for: with librdkafka's default (500 ms) the embedded broker
            # held every first fetch after a move to another partition that
            # long (measured: 522 ms per 5,000-record range when ranges take
            # turns over 4 partitions, 32 ms at 20).
            "fetch.wait.max.ms": "20",
        }
    )
    return props


class RangeReader:
    def __init__(
        self, properties: Mapping[str, Any], truncation_grace_s: float = TRUNCATION_GRACE_S
    ) -> None:
        self._consumer = Consumer(dict(properties))
        self._truncation_grace_s = truncation_grace_s
        self._at: tuple[str, int] | None = None  # the partition assigned now
        self._next: int | None = None  # the offset the consumer will return next
        self._carry: list[Message] = []  # consumed past the last range's end

    def read(self, topic: str, partition: int, start: int, end: int, timeout_s: float) -> RangeRead:
        """The records of ``[start, end)``; raises RangeUnavailable past ``timeout_s``."""
        if (topic, partition) != self._at or start != self._next:
            self._seek(topic, partition, start)
            metrics.range_reader_seeked()
        deadline = time.monotonic() + timeout_s
        records: list[Record] = []
        deleted: tuple[int, int] | None = None
        pending, self._carry = self._carry, []
        position = start
        log_ended_at: float | None = None  # since when the log ends at or below position
        broker_answered = False  # since log_ended_at, a request was answered
        while position < end:
            if not pending:
                now = time.monotonic()
                if self._log_ends_at_or_below(topic, partition, position):
                    log_ended_at = log_ended_at if log_ended_at is not None else now
                    if now - log_ended_at >= self._truncation_grace_s:
                        if broker_answered:
                            deleted, position = (position, end), end
                            break
                        # The end is cached from the last fetch response: make sure
                        # the broker answers, then give the fetches another grace.
                        self._check_broker(topic, partition, start, end, position)
                        broker_answered, log_ended_at = True, time.monotonic()
                else:
                    log_ended_at, broker_answered = None, False
                if now >= deadline:
                    self._at = None  # the consumer's position is unknown now
                    raise RangeUnavailable(
                        f"{topic}[{partition}] [{start}, {end}): only up to {position} "
                        f"read within {timeout_s:.0f}s"
                    )
                try:
                    # No more than the range still needs: consume() returns once it
                    # has them instead of waiting POLL_S for a full batch that a
                    # live log does not hold yet (measured 0.2 s -> 0.014-0.031 s
                    # per range at the log's end).
                    wanted = min(CONSUME_BATCH, end - position)
                    pending = self._consumer.consume(wanted, timeout=POLL_S)
                except KafkaException as exc:
                    raise RangeUnavailable(f"{topic}[{partition}]: {exc}") from exc
            for i, message in enumerate(pending):
                error = message.error()
                if error is not None:
                    if error.code() == KafkaError._PARTITION_EOF:
                        eof_at = message.offset()  # None: librdkafka did not say where
                        if eof_at is not None and eof_at >= end:  # the range ends in a hole
                            position = end
                        continue
                    if error.code() == KafkaError._AUTO_OFFSET_RESET:
                        # Deleted (retention) below the log start, or gone above
                        # the log end (the partition was truncated or recreated).
                        low = self._log_start(topic, partition)
                        resume_at = min(low, end) if low > position else end
                        deleted = (position, resume_at)
                        position = resume_at
                        if position < end:
                            self._seek(topic, partition, position)
                        pending = []
                        break
                    raise RangeUnavailable(f"{topic}[{partition}]: {error}")
                offset = message.offset()
                assert offset is not None, "librdkafka gives every consumed record its offset"
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
        if deleted is not None:
            self._at = None  # after an offset error the next read seeks afresh
        return RangeRead(records, deleted)

    @property
    def position(self) -> ReaderPosition | None:
        """Where the next read continues without a seek (None: nowhere yet)."""
        if self._at is None or self._next is None:
            return None
        return ReaderPosition(self._at[0], self._at[1], self._next)

    def close(self) -> None:
        self._consumer.close()

    def _seek(self, topic: str, partition: int, offset: int) -> None:
        self._consumer.assign([TopicPartition(topic, partition, offset)])
        self._at, self._next, self._carry = (topic, partition), offset, []

    def _check_broker(self, topic: str, partition: int, start: int, end: int, at: int) -> None:
        """Raises RangeUnavailable unless the broker answers a metadata request."""
        try:
            self._consumer.list_topics(topic, timeout=BROKER_CHECK_TIMEOUT_S)
        except KafkaException as exc:
            self._at = None  # the consumer's position is unknown now
            raise RangeUnavailable(
                f"{topic}[{partition}] [{start}, {end}): only up to {at} read, and the "
                f"broker does not answer ({exc})"
            ) from exc

    def _log_ends_at_or_below(self, topic: str, partition: int, position: int) -> bool:
        """Whether the last fetch response put the log's end at or below ``position``
        (the cached high watermark; unknown before the first response)."""
        _low, high = self._consumer.get_watermark_offsets(
            TopicPartition(topic, partition), cached=True
        )
        return 0 <= high <= position

    def _log_start(self, topic: str, partition: int) -> int:
        low, _high = self._consumer.get_watermark_offsets(
            TopicPartition(topic, partition), timeout=10
        )
        return int(low)
