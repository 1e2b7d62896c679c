"""Every case of the offset chain's ``decide`` (invariant 2), without a store."""

from __future__ import annotations

import pytest

from actorsys.offset_chain import ChainDecision, ChainVerdict, decide


def test_first_batch_ever_is_stored_from_its_start_when_it_starts_an_assignment() -> None:
    # Given a partition with no next_offset yet
    # When the first batch of an assignment arrives
    decision = decide(42, 50, None, True)
    # Then it is stored from its own start
    assert decision == ChainDecision(ChainVerdict.STORE, 42)


def test_a_batch_that_overtook_the_first_one_of_a_new_chain_waits() -> None:
    # Given a partition with no next_offset yet
    # When a later batch arrives before the one that starts the assignment
    decision = decide(50, 60, None, False)
    # Then it waits for it (stored first, it would turn [42, 50) into a duplicate)
    assert decision.verdict is ChainVerdict.OUT_OF_ORDER


def test_batch_that_continues_the_chain_is_stored() -> None:
    # Given next_offset 10 / When the batch starts at 10 / Then it is stored whole
    assert decide(10, 20, 10, False) == ChainDecision(ChainVerdict.STORE, 10)


@pytest.mark.parametrize(
    ("start", "end"),
    [
        (0, 10),  # a retransmit of the last batch: end == next_offset
        (0, 5),  # an older batch: end < next_offset
        (9, 10),  # a one-offset tail already covered
    ],
)
@pytest.mark.parametrize("starts_assignment", [False, True])
def test_batch_already_covered_is_a_duplicate(
    start: int, end: int, starts_assignment: bool
) -> None:
    # Given next_offset 10
    # When a batch lies entirely below it
    decision = decide(start, end, 10, starts_assignment)
    # Then it is a duplicate: acknowledged again, nothing stored
    assert decision == ChainDecision(ChainVerdict.DUPLICATE, start)


@pytest.mark.parametrize("starts_assignment", [False, True])
def test_overlapping_batch_is_trimmed_to_next_offset(starts_assignment: bool) -> None:
    # Given next_offset 10
    # When a batch covers [5, 15)
    decision = decide(5, 15, 10, starts_assignment)
    # Then only [10, 15) is kept
    assert decision == ChainDecision(ChainVerdict.TRIM, 10)


def test_first_batch_after_assignment_may_start_past_next_offset() -> None:
    # Given next_offset 10
    # When the first batch after an assignment starts at 25
    decision = decide(25, 30, 10, True)
    # Then it is stored, and the 15 skipped offsets are counted
    assert decision == ChainDecision(ChainVerdict.GAP, 25, gap=15)


def test_batch_past_next_offset_mid_assignment_is_out_of_order() -> None:
    # Given next_offset 10
    # When a later batch overtakes the one starting at 10
    decision = decide(20, 30, 10, False)
    # Then nothing is stored and the batch is not acknowledged yet
    assert decision == ChainDecision(ChainVerdict.OUT_OF_ORDER, 20)


@pytest.mark.parametrize(("start", "end"), [(5, 5), (6, 5)])
def test_empty_or_inverted_interval_is_rejected(start: int, end: int) -> None:
    # Given an interval that covers no offset / When decided / Then it is a caller bug
    with pytest.raises(ValueError, match="empty or inverted"):
        decide(start, end, None, False)


@pytest.mark.parametrize(
    ("verdict", "acks", "stores"),
    [
        (ChainVerdict.STORE, True, True),
        (ChainVerdict.TRIM, True, True),
        (ChainVerdict.GAP, True, True),
        (ChainVerdict.DUPLICATE, True, False),
        (ChainVerdict.OUT_OF_ORDER, False, False),
    ],
)
def test_which_verdicts_ack_and_which_store(
    verdict: ChainVerdict, acks: bool, stores: bool
) -> None:
    # Given each verdict / Then only OUT_OF_ORDER withholds the ACK and only
    # STORE, TRIM and GAP persist a job
    assert (verdict.acks, verdict.stores) == (acks, stores)
