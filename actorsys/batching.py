"""Pure logic of the per-partition Consumer: cutting batches, tracking the
unACKed ones, and the offset that may be committed.

No actor code here: the Consumer actor feeds these objects and passes ``now``
(a monotonic clock reading), so every rule is unit-tested with a fake clock.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, replace

from actorsys.messages import RecordChunk


@dataclass(frozen=True, slots=True)
class Batch:
    start: int
    end: int
    record_count: int
    payload: bytes
    starts_assignment: bool

    @property
    def nbytes(self) -> int:
        return len(self.payload)


class PartitionBatcher:
    """Joins record chunks into batches cut by record count, bytes and linger.

    A chunk that would push the open batch past ``max_records`` or
    ``max_bytes`` closes it first, so with chunks no larger than a batch (the
    KafkaConsumerActor cuts them so) a batch never exceeds ``max_records``;
    only a single chunk larger than ``max_bytes`` makes a batch over it.
    """

    def __init__(self, max_records: int, max_bytes: int, linger_s: float) -> None:
        self._max_records = max_records
        self._max_bytes = max_bytes
        self._linger_s = linger_s
        self._parts: list[bytes] = []
        self._start = 0
        self._end = 0
        self._count = 0
        self._nbytes = 0
        self._opened_at = 0.0
        self._starts_assignment = False

    @property
    def open_records(self) -> int:
        return self._count

    @property
    def open_bytes(self) -> int:
        return self._nbytes

    def add(self, chunk: RecordChunk, now: float) -> list[Batch]:
        """Add a chunk; returns the batches it closed (zero, one or two)."""
        closed: list[Batch] = []
        if self._count and (chunk.start != self._end or chunk.starts_assignment):
            # The position jumped (a seek after a restart): never let one batch
            # claim offsets it did not read.
            closed.append(self._cut())
        elif self._count and (
            self._count + chunk.record_count > self._max_records
            or self._nbytes + len(chunk.payload) > self._max_bytes
        ):
            closed.append(self._cut())
        if not self._count:
            self._start = chunk.start
            self._opened_at = now
            self._starts_assignment = chunk.starts_assignment
        self._parts.append(chunk.payload)
        self._end = chunk.end
        self._count += chunk.record_count
        self._nbytes += len(chunk.payload)
        if self._count >= self._max_records or self._nbytes >= self._max_bytes:
            closed.append(self._cut())
        return closed

    def due(self, now: float) -> Batch | None:
        """The open batch if it has lingered long enough (idle partitions flush too)."""
        if self._count and now - self._opened_at >= self._linger_s:
            return self._cut()
        return None

    def flush(self) -> Batch | None:
        return self._cut() if self._count else None

    def _cut(self) -> Batch:
        batch = Batch(
            self._start, self._end, self._count, b"".join(self._parts), self._starts_assignment
        )
        self._parts = []
        self._count = 0
        self._nbytes = 0
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
    ``released_*`` are cumulative totals of ACKed work, which the
    KafkaConsumerActor subtracts from what it sent to know what is in flight.
    """

    def __init__(self, ack_timeout_s: float, max_ack_timeout_s: float) -> None:
        self._ack_timeout_s = ack_timeout_s
        self._max_ack_timeout_s = max_ack_timeout_s
        self._unacked: OrderedDict[tuple[int, int], _Unacked] = OrderedDict()
        self._acked_end: int | None = None
        self.released_records = 0
        self.released_bytes = 0
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
        self.released_bytes += entry.batch.nbytes
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

    @property
    def inflight_bytes(self) -> int:
        return sum(e.batch.nbytes for e in self._unacked.values())

    def __len__(self) -> int:
        return len(self._unacked)
