"""A worker's range reader is built from the group consumer's settings."""

from __future__ import annotations

from confluent_kafka import Consumer

from actorsys.config import build_config
from actorsys.kafka_clients import consumer_properties
from actorsys.range_reader import reader_properties


def test_group_settings_that_assign_does_not_use_are_dropped_and_the_client_builds() -> None:
    # Given a group consumer tuned for its group (a short poll interval, a static member)
    config = build_config(
        {
            "kafka": {
                "topics": ["t"],
                "properties": {
                    "max.poll.interval.ms": "10000",
                    "heartbeat.interval.ms": "1000",
                    "group.instance.id": "member-1",
                    "fetch.max.bytes": "4194304",
                },
            }
        }
    )
    props = reader_properties(consumer_properties(config, "127.0.0.1:9"))
    # Then the reader keeps the cluster and fetch tuning, never commits or resets,
    # joins no group, and librdkafka accepts the result
    assert props["fetch.max.bytes"] == "4194304"
    assert props["enable.auto.commit"] == "false"
    assert props["auto.offset.reset"] == "error"
    for key in ("max.poll.interval.ms", "group.instance.id", "session.timeout.ms"):
        assert key not in props
    Consumer(props).close()
