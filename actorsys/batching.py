"""Pure logic of the per-partition Consumer: cutting batches, tracking the
unACKed ones, and the offset that may be committed.

No actor code here: the Consumer actor feeds these objects and passes ``now``
(a monotonic clock reading), so every rule is unit-tested with a fake clock.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, replace

from actorsys.messages import NewOffsets


@dataclass(frozen=True, slots=True)
class Batch:
    """An offset interval of one partition: what a job is."""

    start: int
    end: int
    starts_assignment: bool

    @property
    def record_count(self) -> int:
        return self.end - self.start


class PartitionBatcher:
    """Joins contiguous offset intervals into batches cut by count and linger.

    An interval that would push the open batch past ``max_records`` closes it
    first, so with intervals no longer than a batch (the KafkaConsumerActor
    cuts them so) a batch never exceeds ``max_records``.
    """

    def __init__(self, max_records: int, linger_s: float) -> None:
        self._max_records = max_records
        self._linger_s = linger_s
        self._start = 0
        self._end = 0
        self._open = False
        self._opened_at = 0.0
        self._starts_assignment = False

    @property
    def open_records(self) -> int:
        return self._end - self._start if self._open else 0

    def add(self, offsets: NewOffsets, now: float) -> list[Batch]:
        """Add an interval; returns the batches it closed (zero, one or two)."""
        closed: list[Batch] = []
        interval = offsets.interval
        if self._open and (interval.start != self._end or offsets.starts_assignment):
            # The position jumped (a restart from the ACKed prefix): never let one
            # batch claim offsets that were not handed out in it.
            closed.append(self._cut())
        elif self._open and interval.end - self._start > self._max_records:
            closed.append(self._cut())
        if not self._open:
            self._open = True
            self._start = interval.start
            self._opened_at = now
            self._starts_assignment = offsets.starts_assignment
        self._end = interval.end
        if self._end - self._start >= self._max_records:
            closed.append(self._cut())
        return closed

    def due(self, now: float) -> Batch | None:
        """The open batch if it has lingered long enough (idle partitions flush too)."""
        if self._open and now - self._opened_at >= self._linger_s:
            return self._cut()
        return None

    def flush(self) -> Batch | None:
        return self._cut() if self._open else None

    def _cut(self) -> Batch:
        batch = Batch(self._start, self._end, self._starts_assignment)
        self._open = False
        self._starts_assignment = False
        return batch


@dataclass(frozen=True, slots=True)
class _Unacked:
    batch: Batch
    retransmit_at: float
    timeout_s: float
    sends: int


class AckTracker:
    """Batches sent to the JobManager and not yet ACKed, in offset order.

    Retransmits each on timeout with exponential backoff, and computes the
    committable offset: the end of the contiguous ACKed prefix (invariant 1).
    ``released_records`` is the cumulative total of ACKed offsets, which the
    KafkaConsumerActor subtracts from what it handed out to know what is in flight.
    """

    def __init__(self, ack_timeout_s: float, max_ack_timeout_s: float) -> None:
        self._ack_timeout_s = ack_timeout_s
        self._max_ack_timeout_s = max_ack_timeout_s
        self._unacked: OrderedDict[tuple[int, int], _Unacked] = OrderedDict()
        self._acked_end: int | None = None
        self.released_records = 0
        self.retransmits = 0

    def track(self, batch: Batch, now: float) -> None:
        key = (batch.start, batch.end)
        self._unacked[key] = _Unacked(batch, now + self._ack_timeout_s, self._ack_timeout_s, 1)

    def ack(self, start: int, end: int) -> bool:
        """Record an ACK; False when it matches nothing (a duplicate ACK)."""
        entry = self._unacked.pop((start, end), None)
        if entry is None:
            return False
        self.released_records += entry.batch.record_count
        if self._acked_end is None or end > self._acked_end:
            self._acked_end = end
        return True

    @property
    def committable(self) -> int | None:
        """End of the contiguous ACKed prefix: the oldest unACKed batch's start
        bounds it, whatever later batches were ACKed."""
        if self._unacked:
            oldest_start = next(iter(self._unacked.values())).batch.start
            if self._acked_end is None or self._acked_end <= oldest_start:
                return self._acked_end
            return oldest_start
        return self._acked_end

    def postpone(self, start: int, end: int, now: float) -> None:
        """The JobManager holds this batch on purpose: retransmit it only after
        the longest timeout (still retransmitted, in case the JobManager dies)."""
        entry = self._unacked.get((start, end))
        if entry is not None:
            self._unacked[(start, end)] = replace(
                entry,
                retransmit_at=now + self._max_ack_timeout_s,
                timeout_s=self._max_ack_timeout_s,
            )

    def due_retransmits(self, now: float) -> list[Batch]:
        """Batches whose ACK is overdue; each is rescheduled with a doubled timeout."""
        return self._resend(now, lambda entry: entry.retransmit_at <= now)

    def resend_all(self, now: float) -> list[Batch]:
        """Every unACKed batch, now (the JobManager was replaced); each stays
        scheduled for a further retransmission should this one be lost too."""
        return self._resend(now, lambda entry: True)

    def _resend(self, now: float, due: Callable[[_Unacked], bool]) -> list[Batch]:
        resent: list[Batch] = []
        for key, entry in self._unacked.items():
            if due(entry):
                timeout = min(entry.timeout_s * 2, self._max_ack_timeout_s)
                self._unacked[key] = replace(
                    entry, retransmit_at=now + timeout, timeout_s=timeout, sends=entry.sends + 1
                )
                resent.append(entry.batch)
        self.retransmits += len(resent)
        return resent

    @property
    def inflight_records(self) -> int:
        return sum(e.batch.record_count for e in self._unacked.values())

    def __len__(self) -> int:
        return len(self._unacked)
