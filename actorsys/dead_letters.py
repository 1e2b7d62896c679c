"""The dead-letter sink the worker gives its handler (invariant 4).

A rejected record is produced, with its original key and value, to the
dead-letter topic; its headers say why and where it came from::

    error           the human-readable detail
    reason          the short reason word (not_json, wrong_type, ...)
    source_topic    source_partition    source_offset

``DeadLetterSink.reject`` receives only the record, which does not carry its
topic and partition, so a sink is made per job: the worker creates one
``KafkaDeadLetterSink`` around its long-lived producer for each job, runs
the handler, then calls :meth:`KafkaDeadLetterSink.flush` before it reports
the job done. A failed or timed-out delivery raises there, the attempt fails
and the job is retried, so a dead letter is never lost (it may be sent twice).
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable
from typing import Any, Protocol

from confluent_kafka import KafkaError, KafkaException

from actorsys.config import dead_letter_topic_for
from actorsys.errors import ActorsysError
from actorsys.records import Record


class DeadLetterError(ActorsysError):
    """A dead letter could not be queued or delivered; the job must be retried."""


class ProducerLike(Protocol):
    """The part of ``confluent_kafka.Producer`` the sink uses."""

    def produce(
        self,
        topic: str,
        value: bytes | None = ...,
        key: bytes | None = ...,
        *,
        headers: list[tuple[str, str | bytes | None]] = ...,  # as confluent_kafka's stubs
        on_delivery: Callable[[Any, Any], None] = ...,
    ) -> None: ...

    def poll(self, timeout: float = ...) -> int: ...

    def flush(self, timeout: float = ...) -> int: ...


class KafkaDeadLetterSink:
    """Send one job's rejected records to the dead-letter topic."""

    def __init__(
        self,
        producer: ProducerLike,
        source_topic: str,
        source_partition: int,
        *,
        dead_letter_topic: str = "",  # kafka.dead_letter_topic ("": the default)
        queue_full_timeout_s: float = 30.0,
    ) -> None:
        self._producer = producer
        self._source_topic = source_topic
        self._source_partition = source_partition
        self.topic = dead_letter_topic_for(source_topic, dead_letter_topic)
        self._queue_full_timeout_s = queue_full_timeout_s
        self._by_reason: Counter[str] = Counter()
        self._pending = 0
        self._failures: list[str] = []

    def reject(self, record: Record, reason: str, detail: str) -> None:
        """Queue ``record`` for the dead-letter topic; delivery is checked by flush."""
        headers: list[tuple[str, str | bytes | None]] = [
            ("error", detail.encode()),
            ("reason", reason.encode()),
            ("source_topic", self._source_topic.encode()),
            ("source_partition", str(self._source_partition).encode()),
            ("source_offset", str(record.offset).encode()),
        ]
        offset = record.offset

        def on_delivery(err: Any, _msg: Any) -> None:
            self._pending -= 1
            if err is not None:
                self._failures.append(f"offset {offset}: {err}")

        deadline = time.monotonic() + self._queue_full_timeout_s
        value = record.value
        while True:
            try:
                self._producer.produce(
                    self.topic,
                    value=value,
                    key=record.key,
                    headers=headers,
                    on_delivery=on_delivery,
                )
                break
            except BufferError:
                # librdkafka's local queue is full: serve delivery reports so
                # it drains, and try again until the deadline.
                if time.monotonic() >= deadline:
                    raise DeadLetterError(
                        f"dead letter for {self._source_topic}[{self._source_partition}]"
                        f"@{offset}: producer queue still full after "
                        f"{self._queue_full_timeout_s:g} s"
                    ) from None
                self._producer.poll(0.1)
            except KafkaException as exc:  # e.g. the record is too large for the producer
                if value is not None and _too_large(exc):
                    # Never let one huge record fail its whole job forever: the dead
                    # letter keeps its key and provenance headers, and says how many
                    # value bytes it had to drop (the original is still in the topic).
                    headers.append(("value_dropped_bytes", str(len(value)).encode()))
                    value = None
                    continue
                raise DeadLetterError(
                    f"dead letter for {self._source_topic}[{self._source_partition}]"
                    f"@{offset} could not be queued: {exc}"
                ) from exc
        self._pending += 1
        self._by_reason[reason] += 1
        # Serve delivery callbacks as we go so they do not pile up until flush.
        self._producer.poll(0)

    def rejected_by_reason(self) -> dict[str, int]:
        """How many records this sink was given, per reason word."""
        return dict(self._by_reason)

    def flush(self, timeout_s: float) -> None:
        """Wait until every dead letter is delivered; raise DeadLetterError if not."""
        deadline = time.monotonic() + timeout_s
        # Judge by this sink's own count of outstanding sends, not by what
        # producer.flush() returns: that counts the producer's whole queue.
        while self._pending > 0:
            remaining_s = deadline - time.monotonic()
            if remaining_s <= 0:
                break
            self._producer.flush(remaining_s)
        if self._failures:
            raise DeadLetterError(
                f"{len(self._failures)} dead letter(s) to {self.topic!r} failed: "
                + "; ".join(self._failures[:5])
            )
        if self._pending > 0:
            raise DeadLetterError(
                f"{self._pending} dead letter(s) to {self.topic!r} not delivered "
                f"within {timeout_s:g} s"
            )


def _too_large(exc: KafkaException) -> bool:
    error = exc.args[0] if exc.args else None
    return isinstance(error, KafkaError) and error.code() == KafkaError.MSG_SIZE_TOO_LARGE
