"""PartitionBatcher (cutting batches) and AckTracker (ACKs, retransmits, the
committable offset), driven with an explicit fake clock: ``now`` is passed in."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from actorsys.batching import AckTracker, Batch, PartitionBatcher
from actorsys.messages import NewOffsets
from actorsys.offsets import OffsetInterval


def chunk(start: int, count: int, *, first: bool = False) -> NewOffsets:
    """The new offsets ``[start, start + count)`` of partition t[0]."""
    return NewOffsets(OffsetInterval("t", 0, start, start + count), first, 1)


# No example database on disk, no per-example deadline (slow CI machines).
PROPERTY = settings(database=None, deadline=None)


def batch(start: int, end: int) -> Batch:
    return Batch(start, end, False)


# --- PartitionBatcher: cutting by count and linger ----------------------------------


def test_batch_is_cut_when_the_record_count_reaches_the_cap() -> None:
    # Given a batcher capped at 10 records
    batcher = PartitionBatcher(max_records=10, linger_s=60)
    # When chunks of 5 records arrive
    first = batcher.add(chunk(0, 5), now=0.0)
    second = batcher.add(chunk(5, 5), now=0.1)
    # Then nothing is cut below the cap, and the batch closes exactly at it
    assert first == []
    assert len(second) == 1
    assert (second[0].start, second[0].end, second[0].record_count) == (0, 10, 10)
    assert batcher.open_records == 0


@pytest.mark.parametrize("chunk_records", [1, 3, 7, 10, 25])
def test_a_chunk_that_would_overflow_closes_the_open_batch_first(chunk_records: int) -> None:
    # Given a 10-record cap
    batcher = PartitionBatcher(max_records=10, linger_s=60)
    # When many equal chunks arrive
    batches = []
    for i in range(20):
        batches += batcher.add(chunk(i * chunk_records, chunk_records), 0.0)
    # Then no batch holds more than the cap (unless one chunk alone is bigger), and
    # each holds as many whole chunks as fit
    assert batches
    for b in batches:
        assert b.record_count == max(chunk_records, (10 // chunk_records) * chunk_records)
    # And together they cover the offsets without a hole or an overlap
    assert [b.start for b in batches[1:]] == [b.end for b in batches[:-1]]


def test_an_oversized_chunk_becomes_one_batch_on_its_own() -> None:
    # Given an empty batcher capped at 10 offsets
    batcher = PartitionBatcher(max_records=10, linger_s=60)
    # When a single interval of 50 offsets arrives
    closed = batcher.add(chunk(0, 50), 0.0)
    # Then it is one batch (intervals are never split: the KafkaConsumerActor cuts them)
    assert [(b.start, b.end, b.record_count) for b in closed] == [(0, 50, 50)]


def test_linger_closes_a_batch_that_never_fills() -> None:
    # Given a batch opened at t=100 with a 0.5 s linger
    batcher = PartitionBatcher(max_records=1000, linger_s=0.5)
    assert batcher.add(chunk(0, 3), now=100.0) == []
    # When the clock has not yet reached the linger
    # Then it is not due
    assert batcher.due(100.49) is None
    assert batcher.open_records == 3
    # When it has
    due = batcher.due(100.5)
    # Then it is cut
    assert due is not None
    assert (due.start, due.end, due.record_count) == (0, 3, 3)
    assert batcher.open_records == 0


def test_linger_counts_from_the_first_chunk_not_the_last() -> None:
    # Given a batch opened at t=0 and topped up at t=0.4 (linger 0.5 s)
    batcher = PartitionBatcher(max_records=1000, linger_s=0.5)
    batcher.add(chunk(0, 1), now=0.0)
    batcher.add(chunk(1, 1), now=0.4)
    # When the clock reads 0.5 (only 0.1 s after the last chunk)
    due = batcher.due(0.5)
    # Then the batch is due: a steady trickle cannot postpone it forever
    assert due is not None
    assert due.record_count == 2


def test_idle_partition_has_nothing_due_and_nothing_to_flush() -> None:
    # Given a batcher that never received a chunk
    batcher = PartitionBatcher(max_records=10, linger_s=0.5)
    # When asked long after
    # Then nothing is due or flushed (no empty batches)
    assert batcher.due(1e9) is None
    assert batcher.flush() is None


def test_linger_of_the_next_batch_restarts_from_its_own_first_chunk() -> None:
    # Given a batch cut by linger at t=1
    batcher = PartitionBatcher(max_records=1000, linger_s=1.0)
    batcher.add(chunk(0, 1), now=0.0)
    assert batcher.due(1.0) is not None
    # When the next chunk arrives at t=5
    batcher.add(chunk(1, 1), now=5.0)
    # Then the new batch is not due before t=6
    assert batcher.due(5.9) is None
    assert batcher.due(6.0) is not None


def test_flush_cuts_the_open_batch_at_once() -> None:
    # Given an open batch far from every cap
    batcher = PartitionBatcher(max_records=1000, linger_s=60)
    batcher.add(chunk(10, 4), now=0.0)
    # When it is flushed (shutdown, revocation)
    flushed = batcher.flush()
    # Then it is returned whole and the batcher is empty
    assert flushed is not None
    assert (flushed.start, flushed.end, flushed.record_count) == (10, 14, 4)
    assert batcher.flush() is None
    assert batcher.due(1e9) is None


def test_position_jump_closes_the_open_batch_first() -> None:
    # Given an open batch covering [0, 5)
    batcher = PartitionBatcher(max_records=1000, linger_s=60)
    batcher.add(chunk(0, 5), now=0.0)
    # When the next chunk starts at 20 (a seek), not 5
    closed = batcher.add(chunk(20, 3), now=1.0)
    # Then [0, 5) is cut first and never claims offsets it did not read
    assert [(b.start, b.end) for b in closed] == [(0, 5)]
    # And the new batch starts at the jump
    rest = batcher.flush()
    assert rest is not None
    assert (rest.start, rest.end) == (20, 23)


def test_position_jump_backwards_also_closes_the_open_batch() -> None:
    # Given an open batch covering [50, 60)
    batcher = PartitionBatcher(max_records=1000, linger_s=60)
    batcher.add(chunk(50, 10), now=0.0)
    # When a chunk starts back at 40
    closed = batcher.add(chunk(40, 2), now=0.0)
    # Then the open batch is cut before the rewound chunk is taken in
    assert [(b.start, b.end) for b in closed] == [(50, 60)]


def test_starts_assignment_chunk_closes_the_open_batch_even_when_contiguous() -> None:
    # Given an open batch covering [0, 5)
    batcher = PartitionBatcher(max_records=1000, linger_s=60)
    batcher.add(chunk(0, 5), now=0.0)
    # When the next chunk starts at 5 but is the first of a new assignment
    closed = batcher.add(chunk(5, 2, first=True), now=0.0)
    # Then the old batch is cut (and does not start an assignment) ...
    assert len(closed) == 1
    assert (closed[0].start, closed[0].end, closed[0].starts_assignment) == (0, 5, False)
    # ... and the new batch carries the flag
    rest = batcher.flush()
    assert rest is not None
    assert (rest.start, rest.end, rest.starts_assignment) == (5, 7, True)


def test_starts_assignment_applies_to_its_batch_only() -> None:
    # Given a batch opened by a starts_assignment chunk and cut by count
    batcher = PartitionBatcher(max_records=4, linger_s=60)
    closed = batcher.add(chunk(0, 2, first=True), 0.0) + batcher.add(chunk(2, 2), 0.0)
    # When the next batch is built from ordinary chunks
    closed += batcher.add(chunk(4, 4), 0.0)
    # Then only the first batch carries the flag
    assert [(b.start, b.starts_assignment) for b in closed] == [(0, True), (4, False)]


def test_one_chunk_can_close_two_batches() -> None:
    # Given an open batch [0, 3) under a 5-record cap
    batcher = PartitionBatcher(max_records=5, linger_s=60)
    batcher.add(chunk(0, 3), 0.0)
    # When a chunk after a jump fills a batch by itself
    closed = batcher.add(chunk(100, 6), 0.0)
    # Then both the old and the new batch are returned, in that order
    assert [(b.start, b.end) for b in closed] == [(0, 3), (100, 106)]
    assert batcher.flush() is None


@PROPERTY
@given(
    counts=st.lists(st.integers(min_value=1, max_value=30), min_size=1, max_size=60),
    max_records=st.integers(min_value=1, max_value=50),
)
def test_batches_tile_the_chunks_exactly(counts: list[int], max_records: int) -> None:
    # Given contiguous chunks of arbitrary sizes
    batcher = PartitionBatcher(max_records=max_records, linger_s=60)
    chunks, position = [], 0
    for count in counts:
        chunks.append(chunk(position, count))
        position += count
    # When all are added and the rest flushed
    batches = [b for c in chunks for b in batcher.add(c, 0.0)]
    if (last := batcher.flush()) is not None:
        batches.append(last)
    # Then the batches cover [0, position) contiguously, with every offset once
    assert batches[0].start == 0
    assert batches[-1].end == position
    assert all(a.end == b.start for a, b in itertools.pairwise(batches))
    assert sum(b.record_count for b in batches) == position
    # And a batch exceeds the cap only when it is one oversized chunk, and
    # closes early only when the next chunk would not have fitted
    for b, nxt in itertools.pairwise(batches):
        sizes = [c.record_count for c in chunks if b.start <= c.interval.start < b.end]
        assert b.record_count <= max_records or len(sizes) == 1
        following = next(c for c in chunks if c.interval.start == nxt.start)
        assert b.record_count >= max_records or (
            b.record_count + following.record_count > max_records
        )


# --- AckTracker: the committable offset -----------------------------------------------------


def tracker_with(*batches: Batch) -> AckTracker:
    tracker = AckTracker(ack_timeout_s=2.0, max_ack_timeout_s=30.0)
    for b in batches:
        tracker.track(b, now=0.0)
    return tracker


THREE = (batch(0, 10), batch(10, 20), batch(20, 30))


def test_committable_is_none_before_any_ack() -> None:
    # Given batches tracked and none ACKed
    tracker = tracker_with(*THREE)
    # Then there is nothing to commit
    assert tracker.committable is None
    # And an empty tracker has nothing either
    assert tracker_with().committable is None


def test_committable_follows_acks_in_order() -> None:
    # Given three contiguous batches
    tracker = tracker_with(*THREE)
    # When they are ACKed in order
    # Then the committable offset is each one's end
    for b in THREE:
        assert tracker.ack(b.start, b.end)
        assert tracker.committable == b.end


def test_first_unacked_batch_bounds_the_committable_offset() -> None:
    # Given three batches of which only the last two are ACKed
    tracker = tracker_with(*THREE)
    tracker.ack(20, 30)
    tracker.ack(10, 20)
    # Then nothing past the unACKed first batch's start may be committed
    assert tracker.committable == 0
    # When the first is ACKed too
    tracker.ack(0, 10)
    # Then the whole prefix is committable
    assert tracker.committable == 30


def test_gap_in_the_middle_holds_the_committable_offset_back() -> None:
    # Given the first and the last of three batches ACKed
    tracker = tracker_with(*THREE)
    tracker.ack(0, 10)
    tracker.ack(20, 30)
    # Then the committable offset stops at the unACKed middle batch
    assert tracker.committable == 10


@pytest.mark.parametrize("order", list(itertools.permutations(range(4))))
def test_committable_is_the_end_of_the_contiguous_acked_prefix_in_every_order(
    order: tuple[int, ...],
) -> None:
    # Given four contiguous batches
    batches = [batch(i * 10, i * 10 + 10) for i in range(4)]
    tracker = tracker_with(*batches)
    acked: set[int] = set()
    # When they are ACKed in this order
    for i in order:
        tracker.ack(batches[i].start, batches[i].end)
        acked.add(i)
        # Then committable is the end of the ACKed prefix, bounded by the first unACKed
        prefix = 0
        while prefix in acked:
            prefix += 1
        expected = batches[prefix - 1].end if prefix else 0
        assert tracker.committable == expected
    assert tracker.committable == 40


@PROPERTY
@given(st.permutations(range(8)), st.lists(st.integers(1, 20), min_size=8, max_size=8))
def test_committable_never_passes_an_unacked_batch_nor_moves_back(
    order: list[int], sizes: list[int]
) -> None:
    # Given eight contiguous batches of arbitrary sizes
    bounds = list(itertools.accumulate([0, *sizes]))
    batches = [batch(bounds[i], bounds[i + 1]) for i in range(8)]
    tracker = tracker_with(*batches)
    previous = None
    acked: set[int] = set()
    # When they are ACKed in any order
    for i in order:
        tracker.ack(batches[i].start, batches[i].end)
        acked.add(i)
        committable = tracker.committable
        # Then it never exceeds the start of an unACKed batch ...
        assert committable is not None
        assert all(committable <= batches[j].start for j in range(8) if j not in acked)
        # ... and never moves backwards
        assert previous is None or committable >= previous
        previous = committable
    assert tracker.committable == bounds[-1]


def test_duplicate_ack_returns_false_and_changes_nothing() -> None:
    # Given a batch ACKed once
    tracker = tracker_with(batch(0, 10), batch(10, 20))
    assert tracker.ack(0, 10) is True
    state = (tracker.committable, tracker.released_records, len(tracker))
    # When the same ACK arrives again, and an ACK for a range never sent
    again = tracker.ack(0, 10)
    unknown = tracker.ack(0, 20)
    # Then both are refused and nothing moved
    assert again is False
    assert unknown is False
    assert state == (10, 10, 1)
    after = (tracker.committable, tracker.released_records, len(tracker))
    assert after == state


def test_released_total_accumulates_acked_offsets() -> None:
    # Given three batches of different sizes
    tracker = tracker_with(batch(0, 10), batch(10, 15), batch(15, 18))
    assert tracker.released_records == 0
    # When two of them are ACKed (out of order)
    tracker.ack(15, 18)
    tracker.ack(0, 10)
    # Then the released total is theirs, whatever the committable offset
    assert tracker.released_records == 13


def test_inflight_counts_what_is_not_acked_yet() -> None:
    # Given three tracked batches
    tracker = tracker_with(batch(0, 10), batch(10, 15), batch(15, 18))
    assert (tracker.inflight_records, len(tracker)) == (18, 3)
    # When the middle one is ACKed
    tracker.ack(10, 15)
    # Then it no longer counts as in flight
    assert (tracker.inflight_records, len(tracker)) == (13, 2)
    # And released + in flight is everything tracked
    assert tracker.released_records + tracker.inflight_records == 18


# --- AckTracker: retransmits --------------------------------------------------------------


def test_nothing_is_retransmitted_before_the_ack_timeout() -> None:
    # Given a batch sent at t=10 with a 2 s ACK timeout
    tracker = AckTracker(ack_timeout_s=2.0, max_ack_timeout_s=30.0)
    tracker.track(batch(0, 10), now=10.0)
    # When the clock reads just under 12
    # Then nothing is due
    assert tracker.due_retransmits(11.99) == []
    assert tracker.retransmits == 0


def test_retransmit_schedule_doubles_up_to_the_max() -> None:
    # Given a batch sent at t=0, timeout 1 s, max 5 s, never ACKed
    tracker = AckTracker(ack_timeout_s=1.0, max_ack_timeout_s=5.0)
    b = batch(0, 10)
    tracker.track(b, now=0.0)
    # When the clock advances in small steps
    sent_at = []
    for step in range(0, 4000):
        now = step / 100
        if tracker.due_retransmits(now) == [b]:
            sent_at.append(now)
    # Then retransmits come after 1, then 2, 4, 5, 5, ... seconds
    gaps = [round(b - a, 2) for a, b in itertools.pairwise([0.0, *sent_at])]
    assert gaps[:6] == [1.0, 2.0, 4.0, 5.0, 5.0, 5.0]
    assert all(gap == 5.0 for gap in gaps[3:])
    assert tracker.retransmits == len(sent_at)


def test_retransmit_returns_only_overdue_batches_in_offset_order() -> None:
    # Given batches sent at t=0, t=1 and t=2 (timeout 2 s)
    tracker = AckTracker(ack_timeout_s=2.0, max_ack_timeout_s=30.0)
    a, b, c = batch(0, 10), batch(10, 20), batch(20, 30)
    tracker.track(a, 0.0)
    tracker.track(b, 1.0)
    tracker.track(c, 2.0)
    # When the clock reads 3
    due = tracker.due_retransmits(3.0)
    # Then the two overdue ones are returned, oldest first
    assert due == [a, b]
    assert tracker.retransmits == 2


def test_acked_batch_is_never_retransmitted() -> None:
    # Given a batch ACKed before its timeout
    tracker = AckTracker(ack_timeout_s=2.0, max_ack_timeout_s=30.0)
    tracker.track(batch(0, 10), 0.0)
    tracker.ack(0, 10)
    # When the clock passes the timeout
    # Then nothing is retransmitted
    assert tracker.due_retransmits(100.0) == []


def test_retransmit_everything_sends_each_unacked_batch_once() -> None:
    # Given two batches far from their timeout
    tracker = AckTracker(ack_timeout_s=2.0, max_ack_timeout_s=30.0)
    tracker.track(batch(0, 10), 0.0)
    tracker.track(batch(10, 20), 0.0)
    # When everything is retransmitted at once, as the Consumer does for a new JobManager
    everything = tracker.due_retransmits(float("inf"))
    # Then each batch is sent once, stays tracked, and still bounds the committable offset
    assert [(b.start, b.end) for b in everything] == [(0, 10), (10, 20)]
    assert len(tracker) == 2
    assert tracker.committable is None
    tracker.ack(10, 20)
    assert tracker.committable == 0


def test_batch_resent_to_a_new_job_manager_is_still_retransmitted_on_timeout() -> None:
    # Given a batch sent at t=0 and resent to a new JobManager at t=1 (everything at once)
    tracker = AckTracker(ack_timeout_s=2.0, max_ack_timeout_s=30.0)
    tracker.track(batch(0, 10), 0.0)
    assert len(tracker.resend_all(1.0)) == 1
    # When that resend is lost and no ACK ever comes, even an hour later
    later = tracker.due_retransmits(3600.0)
    # Then the batch is retransmitted again
    assert [(b.start, b.end) for b in later] == [(0, 10)]


def test_a_held_batch_is_retransmitted_only_after_the_longest_timeout() -> None:
    # Given a batch sent at t=0 (2 s ACK timeout, 30 s at most)
    tracker = AckTracker(ack_timeout_s=2.0, max_ack_timeout_s=30.0)
    tracker.track(batch(0, 10), 0.0)
    # When the JobManager says it holds it, at t=1
    tracker.postpone(0, 10, 1.0)
    # Then it is not resent at the usual timeout, but still is after the longest one
    assert tracker.due_retransmits(5.0) == []
    assert [(b.start, b.end) for b in tracker.due_retransmits(31.0)] == [(0, 10)]
    # And postponing a batch that was ACKed meanwhile changes nothing
    assert tracker.ack(0, 10)
    tracker.postpone(0, 10, 40.0)
    assert len(tracker) == 0
