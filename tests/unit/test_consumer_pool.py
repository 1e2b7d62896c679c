"""The consumer pool's plain objects, with a fake clock: placement of partitions
on a bounded pool, and one member's batches across many partitions."""

from __future__ import annotations

import pytest

from actorsys.consumer_pool import (
    MAX_EARLY_INTERVALS,
    HandoutWindow,
    PartitionBatches,
    PoolPlacement,
)
from actorsys.messages import NewOffsets
from actorsys.offsets import OffsetInterval, PartitionKey

A, B = ("t", 0), ("t", 1)


def chunk(key: PartitionKey, start: int, count: int, generation: int) -> NewOffsets:
    interval = OffsetInterval(key[0], key[1], start, start + count)
    return NewOffsets(interval, start == 0, generation)


def batches(max_records: int = 10, linger_s: float = 1.0) -> PartitionBatches:
    return PartitionBatches(max_records, linger_s, 1.0, 8.0)


# --- placement -------------------------------------------------------------------------------


def test_partitions_spread_over_a_fixed_pool_whatever_their_number() -> None:
    pool = PoolPlacement(["m0", "m1"])
    placed = [pool.place(("t", p))[0] for p in range(64)]
    assert set(placed) == {"m0", "m1"}
    assert pool.load() == {0: 32, 1: 32}


def test_each_assignment_gets_a_new_generation_and_only_the_latest_is_current() -> None:
    pool = PoolPlacement(["m0", "m1"])
    _, first = pool.place(A)
    assert pool.is_current(A, first)
    pool.remove(A)
    _, second = pool.place(A)
    assert second > first
    assert pool.is_current(A, second) and not pool.is_current(A, first)


def test_a_dead_member_hands_its_partitions_to_its_replacement() -> None:
    pool = PoolPlacement(["m0", "m1"])
    for p in range(4):
        pool.place(("t", p))
    orphans = pool.replace("m0", "m2")
    assert orphans == [("t", 0), ("t", 2)]
    assert pool.members == ["m2", "m1"]


def test_a_member_gets_no_handout_past_its_window_until_it_confirms_one() -> None:
    window = HandoutWindow(2)
    first = window.sent(0, now=0.0)
    window.sent(0, now=0.02)
    # A member with two unconfirmed handouts waits; the other is not held up
    assert not window.open(0)
    assert window.open(1)
    window.taken(first)
    assert window.open(0)


def test_a_replaced_member_starts_with_an_empty_window_and_late_confirmations_are_ignored() -> None:
    window = HandoutWindow(1)
    stale = window.sent(0, now=0.0)
    window.reset(0)
    assert window.open(0)
    fresh = window.sent(0, now=1.0)
    window.taken(stale)  # from the member that died: changes nothing
    assert not window.open(0)
    window.taken(fresh)
    assert window.open(0)


def test_the_oldest_unconfirmed_handout_tells_how_long_a_member_has_been_silent() -> None:
    window = HandoutWindow(2)
    assert window.oldest_unconfirmed_s(now=5.0) == 0.0
    window.sent(0, now=1.0)
    taken = window.sent(1, now=3.0)
    assert window.oldest_unconfirmed_s(now=5.0) == 4.0
    window.taken(taken)
    window.reset(0)
    assert window.oldest_unconfirmed_s(now=5.0) == 0.0


def test_a_window_without_room_is_refused() -> None:
    with pytest.raises(ValueError):
        HandoutWindow(0)


def test_an_empty_pool_is_refused() -> None:
    with pytest.raises(ValueError):
        PoolPlacement([])


# --- one member's partitions ----------------------------------------------------------------


def test_partitions_are_batched_and_acked_independently() -> None:
    pb = batches(max_records=10)
    pb.assign(A, 1, 0.0)
    pb.assign(B, 2, 0.0)
    sent = pb.offsets(chunk(A, 0, 10, 1), 0.0) + pb.offsets(chunk(B, 0, 4, 2), 0.0)
    assert [(key, b.start, b.end) for key, b in sent] == [(A, 0, 10)]
    assert pb.ack(A, 0, 10)
    progress = pb.progress(A)
    assert progress is not None and progress.committable == 10 and progress.generation == 1
    assert pb.progress(B).committable is None
    # B's open batch lingers, then goes on its own
    assert [(key, b.end) for key, b in pb.due(1.0)] == [(B, 4)]


def test_a_chunk_before_its_assignment_is_kept_and_batched_when_it_arrives() -> None:
    pb = batches(max_records=5)
    assert pb.offsets(chunk(A, 0, 5, 3), 0.0) == []
    sent = pb.assign(A, 3, 0.0)
    assert [(b.start, b.end) for _, b in sent] == [(0, 5)]


def test_chunks_of_an_earlier_assignment_are_dropped() -> None:
    pb = batches(max_records=5)
    pb.assign(A, 1, 0.0)
    assert pb.revoke(A, 1)
    pb.assign(A, 2, 0.0)
    assert pb.offsets(chunk(A, 0, 5, 1), 0.0) == []
    assert pb.progress(A).unacked_batches == 0


def test_a_stale_revocation_or_assignment_changes_nothing() -> None:
    pb = batches(max_records=5)
    pb.assign(A, 2, 0.0)
    assert not pb.revoke(A, 1)
    assert pb.assign(A, 1, 0.0) == [] and pb.generation(A) == 2


def test_early_chunks_are_bounded() -> None:
    pb = batches(max_records=1)
    for i in range(MAX_EARLY_INTERVALS + 10):
        pb.offsets(chunk(A, i, 1, 7), 0.0)
    assert len(pb.assign(A, 7, 0.0)) == MAX_EARLY_INTERVALS


def test_retransmits_and_flush_cover_every_partition() -> None:
    pb = batches(max_records=100)
    pb.assign(A, 1, 0.0)
    pb.assign(B, 2, 0.0)
    pb.offsets(chunk(A, 0, 3, 1), 0.0)
    pb.offsets(chunk(B, 0, 4, 2), 0.0)
    flushed = pb.flush(0.0)
    assert sorted((key, b.end) for key, b in flushed) == [(A, 3), (B, 4)]
    assert pb.retransmits(0.5) == []
    assert sorted(key for key, _ in pb.retransmits(1.0)) == [A, B]
    pb.held(A, 0, 3, 1.0)
    assert [key for key, _ in pb.retransmits(3.0)] == [B]  # A's was postponed
    assert sorted(key for key, _ in pb.retransmits(3.0, everything=True)) == [A, B]


def test_partitions_are_idle_only_with_no_open_batch_and_none_unacked() -> None:
    pb = batches(max_records=10)
    assert pb.idle  # nothing assigned
    pb.assign(A, 1, 0.0)
    assert pb.idle
    pb.offsets(chunk(A, 0, 4, 1), 0.0)
    assert not pb.idle  # an open batch lingers
    [(_key, batch)] = pb.due(1.0)
    assert not pb.idle  # sent, not yet ACKed
    assert pb.ack(A, batch.start, batch.end)
    assert pb.idle
