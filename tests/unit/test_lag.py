"""TimeLag (the age of the oldest uncommitted record) and ClientStats."""

from __future__ import annotations

import json

from actorsys.lag import MAX_ENDS, ClientStats, TimeLag

TP = ("t", 0)


def test_unknown_before_any_end_or_commit_is_known() -> None:
    lag = TimeLag()
    assert lag.seconds_behind(TP, committed=3, now=1.0) is None
    lag.seen(TP, 10, now=1.0)
    assert lag.seconds_behind(TP, committed=None, now=1.0) is None


def test_caught_up_is_zero_and_keeps_only_the_newest_end() -> None:
    lag = TimeLag()
    lag.seen(TP, 10, now=100.0)
    lag.seen(TP, 20, now=101.0)
    assert lag.seconds_behind(TP, committed=20, now=500.0) == 0.0
    assert lag.tracked_ends(TP) == 1


def test_age_counts_from_the_first_end_seen_past_the_committed_offset() -> None:
    # Given ends seen: 10 at t=100 s, 20 at t=110 s, 30 at t=120 s
    lag = TimeLag()
    for end, at in ((10, 100.0), (20, 110.0), (30, 120.0)):
        lag.seen(TP, end, now=at)
    # When offsets up to 15 are committed (the record at 15 was in the log by t=110)
    assert lag.seconds_behind(TP, committed=15, now=130.0) == 20.0
    # Then up to 20: the record at 20 was there by t=120
    assert lag.seconds_behind(TP, committed=20, now=130.0) == 10.0
    assert lag.seconds_behind(TP, committed=0, now=130.0) == 10.0  # older ends are gone


def test_an_end_seen_again_is_not_remembered_twice() -> None:
    lag = TimeLag()
    lag.seen(TP, 10, now=1.0)
    lag.seen(TP, 10, now=5.0)
    lag.seen(TP, 9, now=6.0)  # a stale answer
    assert lag.tracked_ends(TP) == 1
    assert lag.seconds_behind(TP, committed=0, now=11.0) == 10.0


def test_a_clock_step_back_is_not_negative_lag() -> None:
    lag = TimeLag()
    lag.seen(TP, 10, now=200.0)
    assert lag.seconds_behind(TP, committed=0, now=100.0) == 0.0


def test_forget_drops_a_partition() -> None:
    lag = TimeLag()
    lag.seen(TP, 10, now=1.0)
    lag.seen(("t", 1), 10, now=1.0)
    lag.forget(TP)
    assert lag.tracked_ends(TP) == 0
    assert lag.tracked_ends(("t", 1)) == 1


def test_memory_is_bounded_when_nothing_gets_committed() -> None:
    lag = TimeLag()
    for i in range(MAX_ENDS + 50):
        lag.seen(TP, i + 1, now=1_000.0 + i)
    assert lag.tracked_ends(TP) == MAX_ENDS
    # The oldest are kept: the estimate stays right for the committed position
    assert lag.seconds_behind(TP, committed=0, now=1_002.0) == 2.0


def _stats(brokers: dict[str, dict[str, object]], partitions: dict[str, dict[str, int]]) -> str:
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
