"""The simulator against the real embedded broker: what it reports is what Kafka holds."""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable, Iterator

import pytest
from confluent_kafka.admin import AdminClient

from actorsys.embedded_broker import EmbeddedBroker
from actorsys.errors import BrokerError
from actorsys.kafka_clients import create_topic_if_missing
from actorsys.netutil import free_port
from actorsys.simulator import DeliveryError, ProduceReport, produce
from tests.support.checks import consume_all

pytestmark = pytest.mark.integration

_quiet = logging.getLogger("tests.kafka")


def test_report_matches_what_kafka_holds(
    broker: EmbeddedBroker, topic: str, is_valid_reading: Callable[[bytes | None], bool]
) -> None:
    # Given a fresh topic with 3 partitions
    partitions = 3

    # When 20,000 records with 1 % malformed are produced as fast as possible
    report = produce(
        broker.bootstrap_servers,
        topic,
        devices=200,
        rate=0,
        count=20_000,
        malformed_ratio=0.01,
        partitions=partitions,
        seed=1234,
    )

    # Then the report adds up
    assert report.produced == 20_000
    assert report.valid + report.malformed == 20_000
    assert sum(report.malformed_by_kind.values()) == report.malformed
    assert 100 < report.malformed < 300  # 1 % of 20,000, give or take 5 sigma
    assert len(report.malformed_positions) == report.malformed
    assert set(report.end_offsets) == set(range(partitions))
    assert sum(report.end_offsets.values()) == 20_000  # fresh topic: offsets start at 0

    # And consuming everything back finds exactly the reported records
    records, watermarks = consume_all(broker.bootstrap_servers, topic, report.end_offsets)
    assert len(records) == 20_000
    assert watermarks == report.end_offsets
    assert len({(p, o) for p, o, _, _ in records}) == 20_000
    for partition in range(partitions):
        offsets = sorted(o for p, o, _, _ in records if p == partition)
        assert offsets == list(range(report.end_offsets[partition]))
    malformed_found = {(p, o) for p, o, _, value in records if not is_valid_reading(value)}
    assert malformed_found == report.malformed_positions

    # And every device's records stay in one partition (keyed by device id)
    partitions_of_key: dict[bytes | None, set[int]] = {}
    for partition, _, key, _ in records:
        partitions_of_key.setdefault(key, set()).add(partition)
    assert all(len(found) == 1 for found in partitions_of_key.values())


def test_scaled_event_time_and_late_records_reach_kafka(
    broker: EmbeddedBroker, topic: str, is_valid_reading: Callable[[bytes | None], bool]
) -> None:
    # Given event time at 3600x wall time from a fixed epoch, with 20 % of
    # records late by up to 10 minutes of event time
    epoch_ms, late_max_ms = 1_700_000_000_000, 600_000

    # When 4,000 records are produced at 2,000/s (about 2 wall s: 2 event-time hours)
    report = produce(
        broker.bootstrap_servers,
        topic,
        devices=20,
        rate=2_000,
        count=4_000,
        malformed_ratio=0.0,
        partitions=2,
        seed=99,
        time_scale=3600,
        late_ratio=0.2,
        late_max_s=late_max_ms / 1000,
        epoch_ms=epoch_ms,
    )

    # Then the report counts about a fifth late and a range of hours, not seconds
    assert 600 < report.late < 1_000  # 20 % of 4,000, give or take 5 sigma
    assert report.event_ms_range is not None
    low, high = report.event_ms_range
    assert epoch_ms - late_max_ms <= low <= epoch_ms
    assert high - epoch_ms >= 0.9 * 3_600_000  # at least 0.9 wall s passed: 0.9 event h
    assert high - epoch_ms <= report.elapsed_s * 3_600_000 + 1_000

    # And what Kafka holds has exactly that range, and valid readings only
    records, _ = consume_all(broker.bootstrap_servers, topic, report.end_offsets)
    assert len(records) == 4_000
    assert all(is_valid_reading(value) for _, _, _, value in records)
    stamps = [json.loads(value or b"")["ts"] for _, _, _, value in records]
    assert (min(stamps), max(stamps)) == report.event_ms_range


def test_rate_limit_paces_production(broker: EmbeddedBroker, topic: str) -> None:
    # Given a rate of 4,000 records/s
    # When 4,000 records are produced
    report = produce(
        broker.bootstrap_servers,
        topic,
        devices=10,
        rate=4_000,
        count=4_000,
        malformed_ratio=0.0,
        partitions=1,
    )

    # Then it takes about a second: never faster than the rate, not much slower
    assert report.produced == 4_000
    assert 0.9 <= report.elapsed_s < 5.0


def test_stop_event_ends_an_unbounded_run(broker: EmbeddedBroker, topic: str) -> None:
    # Given an unbounded run (count 0) and a stop event set once 10,000 are produced
    stop = threading.Event()
    totals: list[int] = []

    def on_progress(produced: int) -> None:
        totals.append(produced)
        if produced >= 10_000:
            stop.set()

    # When it runs
    report = produce(
        broker.bootstrap_servers,
        topic,
        devices=10,
        rate=0,
        count=0,
        malformed_ratio=0.05,
        partitions=2,
        stop=stop,
        progress=on_progress,
    )

    # Then it stops soon after, with every produced record delivered and reported
    assert 10_000 <= report.produced < 50_000
    assert sum(report.end_offsets.values()) == report.produced
    assert totals == sorted(totals) and totals[-1] == report.produced


def test_create_topic_if_missing_is_idempotent(broker: EmbeddedBroker, topic: str) -> None:
    # Given a topic that does not exist
    # When it is created twice
    created_first = create_topic_if_missing(broker.bootstrap_servers, topic, 5)
    created_again = create_topic_if_missing(broker.bootstrap_servers, topic, 2)

    # Then the first call creates it with 5 partitions and the second leaves it alone
    assert (created_first, created_again) == (True, False)
    admin = AdminClient({"bootstrap.servers": broker.bootstrap_servers}, logger=_quiet)
    assert len(admin.list_topics(timeout=5).topics[topic].partitions) == 5


def test_unreachable_broker_fails_fast_with_one_line(topic: str) -> None:
    # Given a port nothing listens on
    bootstrap = f"127.0.0.1:{free_port()}"

    # When producing to it with a 2 s timeout
    started = time.monotonic()
    with pytest.raises(BrokerError, match="cannot reach Kafka") as failure:
        produce(
            bootstrap,
            topic,
            devices=1,
            rate=0,
            count=10,
            malformed_ratio=0,
            partitions=1,
            timeout_s=2,
        )

    # Then it gives up within the bound, with one line
    assert time.monotonic() - started < 10
    assert "\n" not in str(failure.value)


@pytest.fixture
def own_broker() -> Iterator[EmbeddedBroker]:
    with EmbeddedBroker() as embedded:
        yield embedded


def test_undelivered_records_raise(own_broker: EmbeddedBroker, topic: str) -> None:
    # Given a broker that freezes right after the first records are queued,
    # and records that expire after 1 s
    def freeze_broker(produced: int) -> None:
        if not own_broker.paused:
            own_broker.pause()

    # When records are produced
    # Then the undelivered ones are an error, not a silent loss
    try:
        with pytest.raises(DeliveryError, match="not delivered"):
            produce(
                own_broker.bootstrap_servers,
                topic,
                devices=10,
                rate=0,
                count=20_000,
                malformed_ratio=0,
                partitions=1,
                progress=freeze_broker,
                producer_config={"message.timeout.ms": 1_000},
            )
    finally:
        own_broker.resume()


def test_report_is_frozen(broker: EmbeddedBroker, topic: str) -> None:
    # Given a report
    report: ProduceReport = produce(
        broker.bootstrap_servers,
        topic,
        devices=1,
        rate=0,
        count=10,
        malformed_ratio=0,
        partitions=1,
    )

    # When someone tries to change it
    # Then it refuses
    with pytest.raises(AttributeError):
        report.produced = 0  # type: ignore[misc]  # deliberately writes a frozen field
    assert report.records_per_s > 0
    assert report.summary().startswith(f"produced 10 records to {topic} (10 valid, 0 malformed)")
