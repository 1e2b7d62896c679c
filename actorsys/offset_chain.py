"""The offset chain (invariant 2): every offset belongs to exactly one job.

A batch covers ``[start, end)`` of one partition, where ``start`` is the
consumer's position when the batch began. The job store keeps
``next_offset`` per (consumer group, topic, partition) and applies
``decide`` inside the transaction that inserts the job, so the rule holds
however many consumers, retransmits and rebalances race.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass


class ChainVerdict(enum.Enum):
    STORE = "store"  # start == next_offset (or the first batch of an assignment, nothing known yet)
    DUPLICATE = "duplicate"  # end <= next_offset: ACK again, store nothing
    TRIM = "trim"  # start < next_offset < end: store [next_offset, end)
    GAP = "gap"  # first batch after assignment starts past next_offset
    OUT_OF_ORDER = "out_of_order"  # an earlier batch is missing: do not ACK yet

    @property
    def acks(self) -> bool:
        return self is not ChainVerdict.OUT_OF_ORDER

    @property
    def stores(self) -> bool:
        return self in (ChainVerdict.STORE, ChainVerdict.TRIM, ChainVerdict.GAP)


@dataclass(frozen=True, slots=True)
class ChainDecision:
    verdict: ChainVerdict
    store_from: int  # first offset to keep (== start unless TRIM)
    gap: int = 0  # offsets skipped by a GAP


def decide(start: int, end: int, next_offset: int | None, starts_assignment: bool) -> ChainDecision:
    """Apply the offset-chain rules to a batch ``[start, end)``."""
    if end <= start:
        raise ValueError(f"empty or inverted interval [{start}, {end})")
    if next_offset is None:
        # Nothing stored for this partition yet: only the batch that starts an
        # assignment may begin the chain. A later batch that overtook it (actor
        # messages can be reordered) waits: stored first, it would make the
        # earlier one look like a duplicate, and that one's records would be lost.
        if starts_assignment:
            return ChainDecision(ChainVerdict.STORE, start)
        return ChainDecision(ChainVerdict.OUT_OF_ORDER, start)
    if end <= next_offset:
        return ChainDecision(ChainVerdict.DUPLICATE, start)
    if start < next_offset:
        return ChainDecision(ChainVerdict.TRIM, next_offset)
    if start == next_offset:
        return ChainDecision(ChainVerdict.STORE, start)
    if starts_assignment:
        return ChainDecision(ChainVerdict.GAP, start, gap=start - next_offset)
    return ChainDecision(ChainVerdict.OUT_OF_ORDER, start)
