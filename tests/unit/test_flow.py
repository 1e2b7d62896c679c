"""FlowControl: back-pressure decisions of the KafkaConsumerActor (invariant 5)."""

from __future__ import annotations

import pytest

from actorsys.config import FlowConfig
from actorsys.flow import FlowControl

A = ("t", 0)
B = ("t", 1)
C = ("u", 0)

# Per partition: 100 offsets; in total: 250.
CONFIG = FlowConfig(max_inflight_records_per_partition=100, max_inflight_records=250)


def flow(*partitions: tuple[str, int]) -> FlowControl:
    control = FlowControl(CONFIG)
    for tp in partitions:
        control.assign(tp)
    return control


def test_nothing_paused_below_the_caps() -> None:
    # Given two partitions with some work in flight, under every cap
    control = flow(A, B)
    control.sent(A, 99)
    control.sent(B, 10)
    # When pauses are rebalanced
    to_pause, to_resume = control.rebalance_pauses()
    # Then nothing changes
    assert (to_pause, to_resume) == (set(), set())
    assert control.paused == set()


@pytest.mark.parametrize("records", [100, 150], ids=["at-cap", "over-cap"])
def test_partition_at_its_own_cap_is_paused_alone(records: int) -> None:
    # Given partition A at its cap and B nearly idle
    control = flow(A, B)
    control.sent(A, records)
    control.sent(B, 1)
    # When pauses are rebalanced
    to_pause, to_resume = control.rebalance_pauses()
    # Then only A is paused
    assert to_pause == {A}
    assert to_resume == set()
    assert control.paused == {A}


def test_already_paused_partition_is_not_paused_twice() -> None:
    # Given A paused at its cap
    control = flow(A)
    control.sent(A, 100)
    control.rebalance_pauses()
    # When more arrives and pauses are rebalanced again
    control.sent(A, 10)
    to_pause, to_resume = control.rebalance_pauses()
    # Then no new pause is asked for
    assert (to_pause, to_resume) == (set(), set())
    assert control.paused == {A}


def test_total_cap_pauses_every_partition() -> None:
    # Given three partitions each under its own cap but together at the total cap
    control = flow(A, B, C)
    for tp, r in zip((A, B, C), (90, 90, 70), strict=True):
        control.sent(tp, r)
    # When pauses are rebalanced
    to_pause, _ = control.rebalance_pauses()
    # Then all of them are paused
    assert to_pause == {A, B, C}
    assert control.paused == {A, B, C}


def test_paused_partition_resumes_only_below_half_its_cap() -> None:
    # Given A paused with 100 records in flight (cap 100)
    control = flow(A)
    control.sent(A, 100)
    control.rebalance_pauses()
    # When ACKs bring it to 51 (between half and the cap)
    control.released(A, 49)
    # Then it stays paused
    assert control.rebalance_pauses() == (set(), set())
    assert control.paused == {A}
    # When ACKs bring it to exactly half (50)
    control.released(A, 50)
    # Then it resumes
    assert control.rebalance_pauses() == (set(), {A})
    assert control.paused == set()


def test_no_flapping_between_half_and_the_cap() -> None:
    # Given A paused once it reached its cap (100 records)
    control = flow(A)
    control.sent(A, 100)
    assert control.rebalance_pauses() == ({A}, set())
    released = 40
    control.released(A, released)  # 60 in flight
    # When in flight then swings between 60 and 90 records, ACK after ACK
    changes = []
    for _ in range(10):
        control.sent(A, 30)  # 90 in flight
        changes.append(control.rebalance_pauses())
        released += 30
        control.released(A, released)  # 60 in flight
        changes.append(control.rebalance_pauses())
    # Then it stays paused the whole time: no resume, no re-pause
    assert all(change == (set(), set()) for change in changes)
    assert control.paused == {A}
    assert control.inflight(A) == 60


def test_resumed_partition_is_not_paused_again_until_it_reaches_the_cap() -> None:
    # Given A paused at its cap, then resumed at half of it
    control = flow(A)
    control.sent(A, 100)
    control.rebalance_pauses()
    control.released(A, 50)
    assert control.rebalance_pauses() == (set(), {A})
    # When in flight climbs back to 99
    control.sent(A, 49)
    # Then it keeps running
    assert control.rebalance_pauses() == (set(), set())
    # When it reaches the cap again
    control.sent(A, 1)
    # Then it is paused again
    assert control.rebalance_pauses() == ({A}, set())


def test_total_hysteresis_keeps_everything_paused_until_half_the_total() -> None:
    # Given three partitions paused by the total cap (250 records)
    control = flow(A, B, C)
    for tp in (A, B, C):
        control.sent(tp, 84)
    assert control.rebalance_pauses()[0] == {A, B, C}
    # When A drains completely but the total is still 168 (> 125)
    control.released(A, 84)
    # Then nothing resumes, even A, which is itself idle
    assert control.rebalance_pauses() == (set(), set())
    # When B drains too: total 84 (<= 125), and each is under half its own cap
    control.released(B, 84)
    # Then A and B resume, but C (84 > 50) stays paused on its own cap's half
    assert control.rebalance_pauses() == (set(), {A, B})
    assert control.paused == {C}


def test_released_totals_are_cumulative_and_the_max_wins() -> None:
    # Given 100 offsets sent to A
    control = flow(A)
    control.sent(A, 100)
    # When progress reports arrive out of order: 60, then a stale 20, then 40
    control.released(A, 60)
    control.released(A, 20)
    control.released(A, 40)
    # Then in flight is what was sent minus the largest total seen
    assert control.inflight(A) == 40
    # When a late duplicate of the latest report arrives
    control.released(A, 60)
    # Then nothing changes
    assert control.inflight(A) == 40


def test_inflight_and_total_sum_sent_minus_released() -> None:
    # Given work sent to two partitions and part of it released
    control = flow(A, B)
    control.sent(A, 10)
    control.sent(A, 5)
    control.sent(B, 7)
    control.released(B, 3)
    # Then the per-partition and total counts agree
    assert control.inflight(A) == 15
    assert control.inflight(B) == 4
    assert control.total() == 19
    assert not control.drained()
    # When everything is released
    control.released(A, 15)
    control.released(B, 7)
    # Then the flow is drained
    assert control.total() == 0
    assert control.drained()


def test_revoke_forgets_the_partition_and_its_pause() -> None:
    # Given A paused at its cap
    control = flow(A, B)
    control.sent(A, 100)
    control.rebalance_pauses()
    # When A is revoked
    control.revoke(A)
    # Then it no longer counts, is not paused, and late reports for it are ignored
    assert A not in control.paused
    assert control.inflight(A) == 0
    assert control.total() == 0
    control.sent(A, 500)
    control.released(A, 1)
    assert control.inflight(A) == 0
    assert control.rebalance_pauses() == (set(), set())
    # And revoking an unknown partition is harmless
    control.revoke(("nope", 9))


def test_reset_starts_the_counters_again_and_unpauses() -> None:
    # Given A paused with 100 records in flight and 30 released
    control = flow(A)
    control.sent(A, 130)
    control.released(A, 30)
    control.rebalance_pauses()
    assert control.paused == {A}
    # When its Consumer is replaced
    control.reset(A)
    # Then A starts from zero, unpaused, and the new Consumer's small totals count
    assert control.paused == set()
    assert control.inflight(A) == 0
    control.sent(A, 10)
    control.released(A, 4)
    assert control.inflight(A) == 6


def test_reassign_starts_from_zero() -> None:
    # Given A with work in flight
    control = flow(A)
    control.sent(A, 40)
    # When it is assigned again
    control.assign(A)
    # Then its counts start over
    assert control.inflight(A) == 0
    assert control.drained()
