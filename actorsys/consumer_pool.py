"""A bounded pool of Consumer actors serving any number of partitions.

Plain objects, no actor code: the KafkaConsumerActor and the Consumer actors
feed them and pass ``now`` (a monotonic clock reading), so every rule is
unit-tested with a fake clock.

- :class:`PoolPlacement` (KafkaConsumerActor side): which pool member serves
  which partition. The pool has a configured size (``batching.consumers``),
  so the number of processes does not grow with the assignment.
- :class:`HandoutWindow` (KafkaConsumerActor side): how many handouts of
  new offsets each member may have unconfirmed.
- :class:`PartitionBatches` (Consumer side): one member's partitions, each
  with its batcher and its unACKed batches.

Every assignment of a partition gets a new *generation*. Thespian can deliver
messages between two actors out of order under load, so an interval may
arrive before the assignment it belongs to (kept until it does), or after its
partition was revoked and assigned again (dropped: the new assignment hands
its offsets out again, from the committed offset).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Generic, TypeVar

from actorsys.batching import AckTracker, Batch, PartitionBatcher
from actorsys.messages import NewOffsets
from actorsys.offsets import PartitionKey

Member = TypeVar("Member")

# Intervals kept per partition for an assignment not seen yet; past it they are
# dropped (never a buffer without bound: they are handed out again on restart).
MAX_EARLY_INTERVALS = 64


class PoolPlacement(Generic[Member]):
    """Partition -> pool member, least-loaded first; a new generation per assignment."""

    def __init__(self, members: list[Member]) -> None:
        if not members:
            raise ValueError("a consumer pool needs at least one member")
        self._members = list(members)
        self._placed: dict[PartitionKey, tuple[int, int]] = {}  # key -> (member, generation)
        self._generation = 0

    @property
    def members(self) -> list[Member]:
        return list(self._members)

    def place(self, key: PartitionKey) -> tuple[Member, int]:
        """Give ``key`` to the member serving the fewest partitions (placed again,
        it moves: a new generation either way)."""
        self._placed.pop(key, None)
        load = [0] * len(self._members)
        for index, _ in self._placed.values():
            load[index] += 1
        index = min(range(len(self._members)), key=lambda i: (load[i], i))
        self._generation += 1
        self._placed[key] = (index, self._generation)
        return self._members[index], self._generation

    def remove(self, key: PartitionKey) -> tuple[Member, int] | None:
        placed = self._placed.pop(key, None)
        return None if placed is None else (self._members[placed[0]], placed[1])

    def index_of(self, member: Member) -> int:
        return self._members.index(member)

    def member_of(self, key: PartitionKey) -> tuple[Member, int] | None:
        placed = self._placed.get(key)
        return None if placed is None else (self._members[placed[0]], placed[1])

    def is_current(self, key: PartitionKey, generation: int) -> bool:
        placed = self._placed.get(key)
        return placed is not None and placed[1] == generation

    def replace(self, old: Member, new: Member) -> list[PartitionKey]:
        """``old`` died and ``new`` takes its place: the partitions it served,
        which must be placed again (new generations: re-read from the ACKed prefix)."""
        index = self._members.index(old)
        self._members[index] = new
        return sorted(key for key, (i, _) in self._placed.items() if i == index)

    def load(self) -> dict[int, int]:
        counts = dict.fromkeys(range(len(self._members)), 0)
        for index, _ in self._placed.values():
            counts[index] += 1
        return counts


class HandoutWindow:
    """Handouts (``OffsetsHandout``) each pool member has not confirmed yet;
    at most ``size`` per member.

    Why a window: a Thespian process has 20 transmits in flight at most, and
    every further send waits behind them. A send to a process that died
    occupies its slot for up to five minutes (connection refused, retried 35 s
    later, then 70 s...). Handing out every tick (20 ms) to a member that was
    killed filled the KafkaConsumerActor's queue in 9 s (measured: 950 queued,
    Thespian's tx-only mode), and then nothing it sent arrived, nor did it
    read progress: commits stopped for the whole assignment. With a window, a
    dead member holds ``size`` slots; a slow one gets fewer, larger handouts
    (what waits is offsets in the log, not messages in a queue).
    """

    def __init__(self, size: int) -> None:
        if size < 1:
            raise ValueError("a handout window holds at least one handout")
        self._size = size
        self._unconfirmed: dict[int, dict[int, float]] = {}  # member -> seq -> sent at
        self._seq = 0

    def open(self, member: int) -> bool:
        return len(self._unconfirmed.get(member, {})) < self._size

    def sent(self, member: int, now: float) -> int:
        """Record a handout to ``member``; returns its sequence number."""
        self._seq += 1
        self._unconfirmed.setdefault(member, {})[self._seq] = now
        return self._seq

    def taken(self, seq: int) -> None:
        """The member confirmed handout ``seq`` (unknown ones are ignored: a
        confirmation from a member since replaced)."""
        for handouts in self._unconfirmed.values():
            if handouts.pop(seq, None) is not None:
                return

    def reset(self, member: int) -> None:
        """The member was replaced: its unconfirmed handouts die with it."""
        self._unconfirmed.pop(member, None)

    def oldest_unconfirmed_s(self, now: float) -> float:
        """Age of the oldest unconfirmed handout (0.0 when none waits)."""
        ages = [now - at for handouts in self._unconfirmed.values() for at in handouts.values()]
        return max(ages, default=0.0)


@dataclass(frozen=True, slots=True)
class Progress:
    """What the KafkaConsumerActor needs to know about one partition."""

    topic: str
    partition: int
    generation: int
    committable: int | None
    released_records: int
    unacked_batches: int


@dataclass
class _Partition:
    generation: int
    batcher: PartitionBatcher
    acks: AckTracker


@dataclass
class PartitionBatches:
    """One Consumer's partitions: cuts each one's batches, tracks their ACKs.

    Methods return what to send: batches (to the JobManager) as
    ``(key, batch)`` pairs, and the keys whose progress changed (to report to
    the KafkaConsumerActor with :meth:`progress`).
    """

    max_records: int
    linger_s: float
    ack_timeout_s: float
    max_ack_timeout_s: float
    _partitions: dict[PartitionKey, _Partition] = field(default_factory=dict)
    _early: dict[PartitionKey, list[NewOffsets]] = field(default_factory=dict)

    def __contains__(self, key: PartitionKey) -> bool:
        return key in self._partitions

    def assigned(self) -> list[PartitionKey]:
        return sorted(self._partitions)

    def generation(self, key: PartitionKey) -> int | None:
        part = self._partitions.get(key)
        return None if part is None else part.generation

    def assign(
        self, key: PartitionKey, generation: int, now: float
    ) -> list[tuple[PartitionKey, Batch]]:
        """Start (or restart) ``key`` at ``generation``; intervals that came early
        for it are batched now, those of older generations dropped."""
        current = self._partitions.get(key)
        if current is not None and current.generation >= generation:
            return []  # a late, stale assignment
        self._partitions[key] = _Partition(
            generation,
            PartitionBatcher(self.max_records, self.linger_s),
            AckTracker(self.ack_timeout_s, self.max_ack_timeout_s),
        )
        early = [c for c in self._early.pop(key, []) if c.generation >= generation]
        later = [c for c in early if c.generation > generation]
        if later:
            self._early[key] = later
        sent: list[tuple[PartitionKey, Batch]] = []
        for offsets in sorted((c for c in early if c.generation == generation), key=_start):
            sent += self.offsets(offsets, now)
        return sent

    def revoke(self, key: PartitionKey, generation: int) -> bool:
        """Forget ``key`` (its unACKed batches too: uncommitted, they are read
        again by whoever owns it next). False for a stale revocation."""
        part = self._partitions.get(key)
        if part is None or part.generation > generation:
            return False
        del self._partitions[key]
        self._early.pop(key, None)
        return True

    def offsets(self, offsets: NewOffsets, now: float) -> list[tuple[PartitionKey, Batch]]:
        key = offsets.interval.key
        part = self._partitions.get(key)
        if part is None or offsets.generation > part.generation:
            early = self._early.setdefault(key, [])
            if len(early) < MAX_EARLY_INTERVALS:
                early.append(offsets)
            return []
        if offsets.generation < part.generation:
            return []  # of an earlier assignment: handed out again by this one
        return self._track(key, part, part.batcher.add(offsets, now), now)

    def ack(self, key: PartitionKey, start: int, end: int) -> bool:
        """True when the ACK released a batch (the partition's progress changed)."""
        part = self._partitions.get(key)
        return part is not None and part.acks.ack(start, end)

    def held(self, key: PartitionKey, start: int, end: int, now: float) -> None:
        part = self._partitions.get(key)
        if part is not None:
            part.acks.postpone(start, end, now)

    def due(self, now: float) -> list[tuple[PartitionKey, Batch]]:
        """Batches that lingered long enough, across every partition."""
        sent: list[tuple[PartitionKey, Batch]] = []
        for key, part in self._partitions.items():
            if (batch := part.batcher.due(now)) is not None:
                sent += self._track(key, part, [batch], now)
        return sent

    def flush(self, now: float) -> list[tuple[PartitionKey, Batch]]:
        """Cut every open batch now (draining)."""
        sent: list[tuple[PartitionKey, Batch]] = []
        for key, part in self._partitions.items():
            if (batch := part.batcher.flush()) is not None:
                sent += self._track(key, part, [batch], now)
        return sent

    def retransmits(self, now: float, everything: bool = False) -> list[tuple[PartitionKey, Batch]]:
        """UnACKed batches due again (all of them when the JobManager moved)."""
        resent: list[tuple[PartitionKey, Batch]] = []
        for key, part in self._partitions.items():
            due = part.acks.resend_all(now) if everything else part.acks.due_retransmits(now)
            resent += [(key, batch) for batch in due]
        return resent

    @property
    def idle(self) -> bool:
        """No open batch and no unACKed one: nothing a tick could do."""
        return all(
            part.batcher.open_records == 0 and len(part.acks) == 0
            for part in self._partitions.values()
        )

    def progress(self, key: PartitionKey) -> Progress | None:
        part = self._partitions.get(key)
        if part is None:
            return None
        return Progress(
            key[0],
            key[1],
            part.generation,
            part.acks.committable,
            part.acks.released_records,
            len(part.acks),
        )

    def _track(
        self, key: PartitionKey, part: _Partition, batches: list[Batch], now: float
    ) -> list[tuple[PartitionKey, Batch]]:
        for batch in batches:
            part.acks.track(batch, now)
        return [(key, batch) for batch in batches]


def _start(offsets: NewOffsets) -> int:
    return offsets.interval.start
