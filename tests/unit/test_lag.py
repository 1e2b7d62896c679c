"""TimeLag (the age of the oldest uncommitted record) and ClientStats."""

from __future__ import annotations

import json

import msgpack

from actorsys.lag import MAX_CHUNKS, ClientStats, TimeLag

TP = ("t", 0)


def _record(offset: int, timestamp_ms: int | None) -> bytes:
    return msgpack.packb((offset, timestamp_ms, b"k", b"v"), use_bin_type=True)


def test_caught_up_is_zero() -> None:
    lag = TimeLag()
    lag.consumed(TP, 10, _record(0, 1_000_000))
    assert lag.seconds_behind(TP, committed=10, high_watermark=10, now=5_000.0) == 0.0
    assert lag.tracked_chunks(TP) == 0  # committed chunks are dropped


def test_unknown_until_committed_and_high_watermark_are_known() -> None:
    lag = TimeLag()
    assert lag.seconds_behind(TP, committed=None, high_watermark=10, now=1.0) is None
    assert lag.seconds_behind(TP, committed=3, high_watermark=None, now=1.0) is None


def test_age_of_the_first_record_of_the_oldest_uncommitted_poll() -> None:
    # Given three polls: [0, 10) at t=100 s, [10, 20) at t=110 s, [20, 30) at t=120 s
    lag = TimeLag()
    lag.consumed(TP, 10, _record(0, 100_000))
    lag.consumed(TP, 20, _record(10, 110_000))
    lag.consumed(TP, 30, _record(20, 120_000))
    # When offsets up to 15 are committed (inside the second poll)
    # Then the age is that of the second poll's first record
    assert lag.seconds_behind(TP, committed=15, high_watermark=30, now=130.0) == 20.0
    # And once the second poll is wholly committed, the third one's
    assert lag.seconds_behind(TP, committed=20, high_watermark=30, now=130.0) == 10.0
    assert lag.tracked_chunks(TP) == 1


def test_nothing_polled_past_the_commit_counts_from_when_the_watermark_moved() -> None:
    # Given a partition caught up at offset 10
    lag = TimeLag()
    assert lag.seconds_behind(TP, committed=10, high_watermark=10, now=50.0) == 0.0
    # When the high watermark moves past it and nothing is polled (paused)
    assert lag.seconds_behind(TP, committed=10, high_watermark=25, now=60.0) == 0.0
    # Then the age grows from the moment it was first seen behind
    assert lag.seconds_behind(TP, committed=10, high_watermark=30, now=64.5) == 4.5
    # And being caught up again resets it
    assert lag.seconds_behind(TP, committed=30, high_watermark=30, now=70.0) == 0.0
    assert lag.seconds_behind(TP, committed=30, high_watermark=31, now=80.0) == 0.0


def test_records_without_timestamp_fall_back_to_the_watermark_clock() -> None:
    lag = TimeLag()
    lag.consumed(TP, 10, _record(0, None))
    assert lag.seconds_behind(TP, committed=0, high_watermark=10, now=7.0) == 0.0
    assert lag.seconds_behind(TP, committed=0, high_watermark=10, now=9.0) == 2.0


def test_a_producer_clock_ahead_of_ours_is_not_negative_lag() -> None:
    lag = TimeLag()
    lag.consumed(TP, 10, _record(0, 200_000))
    assert lag.seconds_behind(TP, committed=0, high_watermark=10, now=100.0) == 0.0


def test_forget_drops_a_partition() -> None:
    lag = TimeLag()
    lag.consumed(TP, 10, _record(0, 100_000))
    lag.consumed(("t", 1), 10, _record(0, 100_000))
    lag.forget(TP)
    assert lag.tracked_chunks(TP) == 0
    assert lag.tracked_chunks(("t", 1)) == 1


def test_memory_is_bounded_when_nothing_gets_committed() -> None:
    lag = TimeLag()
    for i in range(MAX_CHUNKS + 50):
        lag.consumed(TP, i + 1, _record(i, 1_000 + i))
    assert lag.tracked_chunks(TP) == MAX_CHUNKS
    # The oldest are kept: the estimate stays right for the committed position
    assert lag.seconds_behind(TP, committed=0, high_watermark=MAX_CHUNKS + 50, now=2.0) == 1.0


def _stats(brokers: dict, partitions: dict) -> str:
    return json.dumps({"brokers": brokers, "topics": {"t": {"partitions": partitions}}})


def test_client_stats_counts_real_brokers_up_and_reads_committed_offsets() -> None:
    stats = ClientStats()
    assert stats.broker_ok is None  # before the first report
    stats.update(
        _stats(
            {
                "h:9092/1": {"nodeid": 1, "state": "UP"},
                "h:9093/2": {"nodeid": 2, "state": "DOWN"},
                "GroupCoordinator": {"nodeid": -1, "state": "UP"},
            },
            {
                "0": {"committed_offset": 20},
                "1": {"committed_offset": -1001},
                "-1": {"committed_offset": -1001},
            },
        )
    )
    assert stats.brokers_up == 1
    assert stats.broker_ok is True
    assert stats.committed == {("t", 0): 20}


def test_client_stats_all_brokers_down_until_the_next_report() -> None:
    stats = ClientStats()
    stats.update(_stats({"h:9092/1": {"nodeid": 1, "state": "UP"}}, {}))
    stats.all_brokers_down()
    assert stats.broker_ok is False
    stats.update(_stats({"h:9092/1": {"nodeid": 1, "state": "UP"}}, {}))
    assert stats.broker_ok is True


def test_client_stats_ignores_garbage() -> None:
    stats = ClientStats()
    stats.update("not json")
    assert stats.broker_ok is None
