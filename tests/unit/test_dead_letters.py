"""KafkaDeadLetterSink against a fake producer: headers, counts, flush outcomes."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest
from confluent_kafka import KafkaError, KafkaException

from actorsys.config import KafkaConfig, dead_letter_topic_for
from actorsys.dead_letters import DeadLetterError, KafkaDeadLetterSink
from actorsys.errors import ActorsysError
from actorsys.records import Record


@dataclass
class Sent:
    topic: str
    key: bytes | None
    value: bytes | None
    headers: list[tuple[str, str | bytes | None]]
    on_delivery: Callable[[Any, Any], None]


class FakeProducer:
    """Queues sends; delivers them on poll/flush as ``outcome`` says.

    ``outcome`` is "ok" (deliver), "fail" (deliver with an error), "hang"
    (never deliver) or "refuse" (produce raises, as for a message too large
    to send). ``full_for`` makes the next N produce calls raise
    BufferError, as librdkafka does when its local queue is full.
    """

    def __init__(self, outcome: str = "ok", full_for: int = 0) -> None:
        self.outcome = outcome
        self.full_for = full_for
        self.sent: list[Sent] = []
        self.queue: list[Sent] = []
        self.flush_timeouts: list[float] = []

    def produce(
        self,
        topic: str,
        value: bytes | None = None,
        key: bytes | None = None,
        *,
        headers: list[tuple[str, str | bytes | None]] | None = None,
        on_delivery: Callable[[Any, Any], None] | None = None,
    ) -> None:
        # Optional only to match ProducerLike; the sink always passes both
        assert headers is not None and on_delivery is not None
        if self.full_for > 0:
            self.full_for -= 1
            raise BufferError("Local: Queue full")
        if self.outcome == "refuse":
            raise KafkaException(KafkaError(KafkaError.MSG_SIZE_TOO_LARGE))
        sent = Sent(topic, key, value, headers, on_delivery)
        self.sent.append(sent)
        self.queue.append(sent)

    def poll(self, timeout: float = 0) -> int:
        if self.outcome == "hang":
            return 0
        delivered, self.queue = self.queue, []
        for sent in delivered:
            error = KafkaError(KafkaError._MSG_TIMED_OUT) if self.outcome == "fail" else None
            sent.on_delivery(error, None)
        return len(delivered)

    def flush(self, timeout: float = -1) -> int:
        self.flush_timeouts.append(timeout)
        self.poll(timeout)
        return len(self.queue)


def _sink(producer: FakeProducer, **kwargs: Any) -> KafkaDeadLetterSink:
    return KafkaDeadLetterSink(producer, "iot.telemetry", 4, **kwargs)


def test_dead_letter_topic_defaults_to_source_dot_dlq() -> None:
    # Given / When / Then: unset ("") means <topic>.dlq; a configured name wins,
    # for the sink and the config alike (one rule)
    assert dead_letter_topic_for("iot.telemetry") == "iot.telemetry.dlq"
    assert dead_letter_topic_for("iot.telemetry", "all-rejects") == "all-rejects"
    assert _sink(FakeProducer()).topic == "iot.telemetry.dlq"
    assert _sink(FakeProducer(), dead_letter_topic="all-rejects").topic == "all-rejects"
    named = KafkaConfig(dead_letter_topic="all-rejects")
    assert named.dead_letter_topic_for("iot.telemetry") == "all-rejects"


def test_reject_sends_original_key_and_value_with_provenance_headers() -> None:
    # Given a sink for partition 4 of iot.telemetry
    producer = FakeProducer()
    sink = _sink(producer)

    # When two records are rejected, one a tombstone with no key
    sink.reject(Record(41, 123, b"dev-1", b"{oops"), "not_json", "value is not JSON: ünïcode")
    sink.reject(Record(42, None, None, None), "tombstone", "record value is null")

    # Then each goes to the DLQ with key and value as they were, None kept None
    assert [(s.topic, s.key, s.value) for s in producer.sent] == [
        ("iot.telemetry.dlq", b"dev-1", b"{oops"),
        ("iot.telemetry.dlq", None, None),
    ]
    # And the headers are utf-8 strings saying why and where from
    assert dict(producer.sent[0].headers) == {
        "error": "value is not JSON: ünïcode".encode(),
        "reason": b"not_json",
        "source_topic": b"iot.telemetry",
        "source_partition": b"4",
        "source_offset": b"41",
    }
    assert dict(producer.sent[1].headers)["source_offset"] == b"42"


def test_counts_are_kept_per_reason() -> None:
    # Given a sink / When records are rejected for various reasons
    sink = _sink(FakeProducer())
    for offset, reason in enumerate(["not_json", "wrong_type", "not_json", "tombstone"]):
        sink.reject(Record(offset, None, None, b"x"), reason, "detail")

    # Then the counts per reason add up, and the caller gets a copy
    counts = sink.rejected_by_reason()
    assert counts == {"not_json": 2, "wrong_type": 1, "tombstone": 1}
    counts["not_json"] = 99
    assert sink.rejected_by_reason()["not_json"] == 2


def test_flush_returns_once_everything_is_delivered() -> None:
    # Given three queued dead letters on a producer that delivers
    producer = FakeProducer()
    sink = _sink(producer, dead_letter_topic="rejects")
    for offset in range(3):
        sink.reject(Record(offset, None, b"k", b"v"), "not_json", "detail")

    # When the worker flushes / Then nothing is raised and nothing is outstanding
    sink.flush(5.0)
    assert producer.queue == []
    assert {s.topic for s in producer.sent} == {"rejects"}


def test_flush_without_dead_letters_does_not_touch_the_producer() -> None:
    # Given a sink that was given nothing / When flushed / Then the producer is not waited on
    producer = FakeProducer(outcome="hang")
    _sink(producer).flush(5.0)
    assert producer.flush_timeouts == []


def test_flush_raises_when_a_delivery_failed() -> None:
    # Given a producer whose deliveries fail
    sink = _sink(FakeProducer(outcome="fail"))
    sink.reject(Record(9, None, None, b"v"), "not_json", "detail")

    # When / Then flush raises an actorsys error naming the offset, so the job is retried
    with pytest.raises(DeadLetterError, match="offset 9") as caught:
        sink.flush(5.0)
    assert isinstance(caught.value, ActorsysError)


def test_flush_raises_when_delivery_does_not_finish_in_time() -> None:
    # Given a producer that never delivers
    producer = FakeProducer(outcome="hang")
    sink = _sink(producer)
    sink.reject(Record(1, None, None, b"v"), "not_json", "detail")

    # When / Then flush gives up at its deadline and says how many are outstanding
    with pytest.raises(DeadLetterError, match="1 dead letter"):
        sink.flush(0.05)
    assert producer.flush_timeouts and all(t <= 0.05 for t in producer.flush_timeouts)


def test_a_full_producer_queue_is_drained_and_retried() -> None:
    # Given a producer whose queue is full for the next two attempts
    producer = FakeProducer(full_for=2)
    sink = _sink(producer)

    # When a record is rejected / Then it is queued once the queue drains
    sink.reject(Record(5, None, None, b"v"), "not_json", "detail")
    assert len(producer.sent) == 1
    sink.flush(1.0)


def test_a_queue_that_stays_full_raises_at_the_deadline() -> None:
    # Given a producer whose queue never drains
    producer = FakeProducer(full_for=10**9)
    sink = _sink(producer, queue_full_timeout_s=0.0)

    # When / Then reject raises rather than block forever or drop the record
    with pytest.raises(DeadLetterError, match="queue still full"):
        sink.reject(Record(5, None, None, b"v"), "not_json", "detail")
    assert sink.rejected_by_reason() == {}


def test_a_record_the_producer_refuses_raises_dead_letter_error() -> None:
    # Given a producer that refuses the message outright (e.g. too large)
    sink = _sink(FakeProducer(outcome="refuse"))

    # When / Then the refusal becomes a DeadLetterError naming the source offset
    with pytest.raises(DeadLetterError, match=r"iot.telemetry\[4\]@8"):
        sink.reject(Record(8, None, None, b"v" * 10), "not_json", "detail")
