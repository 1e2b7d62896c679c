"""Batches the JobManager keeps without ACKing them: held and parked.

* **Held** batches arrived while too many jobs were unfinished (or the output
  cannot be written): their ACK is withheld, which is the back-pressure that
  stops the KafkaConsumerActor handing out more offsets.
* **Parked** batches overtook an earlier batch of their partition (Thespian
  reorders messages under load): they wait, unACKed, for the gap to close.

Neither is acknowledged, so dropping one loses nothing: its Consumer keeps it
and retransmits. When that Consumer exited, its batches are dropped at once:
its partitions are read again by its replacement, and an ACK sent to a dead
actor would hold one of the JobManager's 20 Thespian transmit slots for
minutes (see ``HandoutWindow``). A notification is an offset interval of a few hundred bytes;
both are still capped in count, and past a cap the newest is let go rather
than memory growing with the input.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Any

from actorsys.messages import BatchNotification
from actorsys.offsets import OffsetInterval


class HeldBatches:
    """Notifications whose ACK is withheld, oldest first, deduplicated by interval."""

    def __init__(self, max_batches: int) -> None:
        self._max_batches = max_batches
        self._held: OrderedDict[OffsetInterval, tuple[BatchNotification, Any]] = OrderedDict()
        self.dropped = 0

    def hold(self, msg: BatchNotification, sender: Any) -> bool:
        """Keep ``msg`` for later; False when it did not fit (the Consumer resends it)."""
        key = msg.interval
        if key in self._held:
            self._held[key] = (msg, sender)
            return True
        if len(self._held) >= self._max_batches:
            self.dropped += 1
            return False
        self._held[key] = (msg, sender)
        return True

    def pop_oldest(self) -> tuple[BatchNotification, Any] | None:
        if not self._held:
            return None
        _key, entry = self._held.popitem(last=False)
        return entry

    def forget_sender(self, sender: Any) -> int:
        """Drop what ``sender`` (a Consumer that exited) sent; how many."""
        gone = [key for key, (_msg, held_by) in self._held.items() if held_by == sender]
        for key in gone:
            del self._held[key]
        return len(gone)

    def __len__(self) -> int:
        return len(self._held)


class ParkedBatches:
    """Out-of-order batches by (group, topic, partition) and start offset."""

    def __init__(self, max_per_partition: int) -> None:
        self._max_per_partition = max_per_partition
        self._parked: dict[tuple[str, str, int], dict[int, tuple[BatchNotification, Any]]] = {}

    def park(self, msg: BatchNotification, sender: Any) -> None:
        interval = msg.interval
        key = (msg.consumer_group, interval.topic, interval.partition)
        parked = self._parked.setdefault(key, {})
        parked[interval.start] = (msg, sender)
        # Past the cap the batch furthest ahead goes first: it is needed last.
        while len(parked) > self._max_per_partition:
            parked.pop(max(parked))

    def take_next(
        self, group: str, topic: str, partition: int, next_offset: int
    ) -> tuple[BatchNotification, Any] | None:
        """The parked batch the chain now reaches (starting at or before
        ``next_offset``), if any."""
        parked = self._parked.get((group, topic, partition))
        if not parked or min(parked) > next_offset:
            return None
        return parked.pop(min(parked))

    def forget_sender(self, sender: Any) -> int:
        """Drop what ``sender`` (a Consumer that exited) sent; how many."""
        dropped = 0
        for parked in self._parked.values():
            gone = [start for start, (_msg, parked_by) in parked.items() if parked_by == sender]
            for start in gone:
                del parked[start]
            dropped += len(gone)
        return dropped

    def __len__(self) -> int:
        return sum(len(p) for p in self._parked.values())
