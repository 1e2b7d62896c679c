"""Kafka client settings, built in one place, and the clients made from them."""

from __future__ import annotations

from typing import Any

from confluent_kafka import Producer

from actorsys.config import AppConfig
from actorsys.logs import KafkaClientLog


def consumer_properties(config: AppConfig, bootstrap_servers: str) -> dict[str, str]:
    """The librdkafka consumer settings, built in one place.

    Offsets are stored and committed only by actorsys (never auto-committed),
    and the consumer is tuned so it does not idle when its queue fills
    (``fetch.queue.backoff.ms``: librdkafka's default 1000 ms cost 3x
    throughput in measurements; see ARCHITECTURE.md).
    """
    kafka = config.kafka
    props = {
        "bootstrap.servers": bootstrap_servers,
        "group.id": kafka.group_id,
        "enable.auto.commit": "false",
        "enable.auto.offset.store": "false",
        "auto.offset.reset": kafka.auto_offset_reset,
        "session.timeout.ms": str(kafka.session_timeout_ms),
        "partition.assignment.strategy": kafka.partition_assignment_strategy,
        "fetch.queue.backoff.ms": "10",
        # Bound librdkafka's own prefetch queue: it is memory too (invariant 5).
        "queued.max.messages.kbytes": "16384",
        "statistics.interval.ms": "0",
        # A broker closing idle connections is normal; do not log each one.
        "log.connection.close": "false",
    }
    props.update(kafka.properties)
    return props


def producer_properties(config: AppConfig, bootstrap_servers: str) -> dict[str, str]:
    """Producer settings for dead letters: durable, ordered, no silent loss."""
    props = {
        "bootstrap.servers": bootstrap_servers,
        "acks": "all",
        "linger.ms": "5",
        "log.connection.close": "false",
    }
    # Pass through only keys that make sense for producers too (security, etc.).
    for key, value in config.kafka.properties.items():
        if key.startswith(("security.", "sasl.", "ssl.", "client.")):
            props[key] = value
    props.update(config.kafka.producer_properties)
    return props


def dead_letter_producer(config: AppConfig, bootstrap_servers: str) -> Producer:
    """The producer a worker (or the JobManager) sends dead letters with."""
    props: dict[str, Any] = dict(producer_properties(config, bootstrap_servers))
    props["logger"] = KafkaClientLog()
    return Producer(props)
