"""Reading offset intervals straight from the real broker with a reused
assign() consumer: exactly the records of each range, in order, whether
ranges follow one another or jump."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from actorsys.embedded_broker import EmbeddedBroker
from actorsys.kafka_clients import create_topic_if_missing
from actorsys.range_reader import RangeReader, RangeUnavailable, reader_properties
from actorsys.simulator import produce

pytestmark = pytest.mark.integration


@contextmanager
def _reader(broker: EmbeddedBroker, truncation_grace_s: float = 10.0) -> Iterator[RangeReader]:
    reader = RangeReader(
        reader_properties({"bootstrap.servers": broker.bootstrap_servers, "group.id": "g"}),
        truncation_grace_s=truncation_grace_s,
    )
    try:
        yield reader
    finally:
        reader.close()


def _one_partition(broker: EmbeddedBroker, topic: str, count: int, seed: int) -> int:
    """``count`` records in a new one-partition topic; its end offset."""
    create_topic_if_missing(broker.bootstrap_servers, topic, 1)
    report = produce(
        broker.bootstrap_servers, topic, devices=20, rate=0, count=count,
        malformed_ratio=0.0, partitions=1, seed=seed,
    )  # fmt: skip
    return report.end_offsets[0]


def test_ranges_read_exactly_their_records_in_order(
    tmp_path: Path, broker: EmbeddedBroker, topic: str
) -> None:
    # Given 20,000 records in one partition
    end = _one_partition(broker, topic, 20_000, seed=5)
    with _reader(broker) as reader:
        # When ranges that follow one another are read, then one that jumps back
        began = time.perf_counter()
        ranges = [(s, min(s + 5_000, end)) for s in range(0, end, 5_000)]
        reads = [reader.read(topic, 0, s, e, 30) for s, e in ranges]
        took = time.perf_counter() - began
        back = reader.read(topic, 0, 1_234, 1_240, 30)
    # Then each holds exactly its offsets, with the producer's values
    for (s, e), read in zip(ranges, reads, strict=True):
        assert [r.offset for r in read.records] == list(range(s, e))
        assert read.deleted is None
    assert [r.offset for r in back.records] == list(range(1_234, 1_240))
    assert all(r.value for read in reads for r in read.records)
    print(f"read {end:,} records in {took:.2f}s ({end / took:,.0f} records/s)")


def test_a_range_past_the_end_of_the_log_is_unavailable_not_short(
    tmp_path: Path, broker: EmbeddedBroker, topic: str
) -> None:
    end = _one_partition(broker, topic, 100, seed=6)
    with _reader(broker) as reader:
        with pytest.raises(RangeUnavailable, match=r"only up to 100 read"):
            reader.read(topic, 0, 50, end + 10, 2)
        # And the reader still works afterwards
        assert [r.offset for r in reader.read(topic, 0, 0, 3, 30).records] == [0, 1, 2]


def test_a_range_the_log_no_longer_reaches_is_reported_deleted_after_the_grace(
    tmp_path: Path, broker: EmbeddedBroker, topic: str
) -> None:
    # Given a log of 100 records, and a job's range [50, 110): its last ten offsets
    # were in the log when the job was cut (a truncated or recreated log has lost them)
    end = _one_partition(broker, topic, 100, seed=7)
    with _reader(broker, truncation_grace_s=1.0) as reader:
        # When it is read and fetch responses keep putting the log's end at 100
        read = reader.read(topic, 0, 50, end + 10, 30)
        # Then the records there are returned and the exact missing range reported
        assert [r.offset for r in read.records] == list(range(50, 100))
        assert read.deleted == (100, 110)
        # And the reader seeks afresh for the next range
        assert [r.offset for r in reader.read(topic, 0, 0, 3, 30).records] == [0, 1, 2]


def test_a_frozen_broker_makes_a_range_at_the_log_end_unavailable_never_deleted(
    tmp_path: Path, broker: EmbeddedBroker, topic: str
) -> None:
    # Given a reader that has read a log of 100 records to its end (the high
    # watermark it caches from the fetch responses says 100)
    end = _one_partition(broker, topic, 100, seed=8)
    with _reader(broker, truncation_grace_s=1.0) as reader:
        assert len(reader.read(topic, 0, 0, end, 30).records) == end
        # When the broker freezes and the next range, [100, 150), is read: the
        # cached end stays at 100, but no fetch answer says so any more
        broker.pause()
        try:
            with pytest.raises(RangeUnavailable, match="broker does not answer"):
                reader.read(topic, 0, end, end + 50, 20)
        finally:
            broker.resume()
        # Then nothing was given up: once the broker is back and the log has those
        # records, the same range reads them all
        produce(
            broker.bootstrap_servers, topic, devices=20, rate=0, count=50,
            malformed_ratio=0.0, partitions=1, seed=9,
        )  # fmt: skip
        read = reader.read(topic, 0, end, end + 50, 30)
        assert [r.offset for r in read.records] == list(range(end, end + 50))
        assert read.deleted is None
