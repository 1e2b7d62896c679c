"""Batches the JobManager keeps without ACKing them: held and parked.

* **Held** batches arrived while too many jobs were unfinished (or the output
  cannot be written): their ACK is withheld, which is the back-pressure that
  pauses Kafka partitions.
* **Parked** batches overtook an earlier batch of their partition (Thespian
  reorders messages under load): they wait, unACKed, for the gap to close.

Neither is acknowledged, so dropping one loses nothing: its Consumer keeps it
and retransmits. Both are therefore capped in count *and bytes*, and past a
cap the newest is let go rather than memory growing with the input.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Any

from actorsys.messages import BatchNotification

Interval = tuple[str, int, int, int]  # topic, partition, start, end


def _interval(msg: BatchNotification) -> Interval:
    return (msg.topic, msg.partition, msg.start, msg.end)


class HeldBatches:
    """Notifications whose ACK is withheld, oldest first, deduplicated by interval."""

    def __init__(self, max_bytes: int) -> None:
        self._max_bytes = max_bytes
        self._held: OrderedDict[Interval, tuple[BatchNotification, Any]] = OrderedDict()
        self.nbytes = 0
        self.dropped = 0

    def hold(self, msg: BatchNotification, sender: Any) -> bool:
        """Keep ``msg`` for later; False when it did not fit (the Consumer resends it)."""
        key = _interval(msg)
        if key in self._held:
            self._held[key] = (msg, sender)
            return True
        if self._held and self.nbytes + len(msg.payload) > self._max_bytes:
            self.dropped += 1
            return False
        self._held[key] = (msg, sender)
        self.nbytes += len(msg.payload)
        return True

    def pop_oldest(self) -> tuple[BatchNotification, Any] | None:
        if not self._held:
            return None
        _key, entry = self._held.popitem(last=False)
        self.nbytes -= len(entry[0].payload)
        return entry

    def __len__(self) -> int:
        return len(self._held)


class ParkedBatches:
    """Out-of-order batches by (group, topic, partition) and start offset."""

    def __init__(self, max_per_partition: int, max_bytes: int) -> None:
        self._max_per_partition = max_per_partition
        self._max_bytes = max_bytes
        self._parked: dict[tuple[str, str, int], dict[int, tuple[BatchNotification, Any]]] = {}
        self.nbytes = 0

    def park(self, msg: BatchNotification, sender: Any) -> None:
        key = (msg.consumer_group, msg.topic, msg.partition)
        parked = self._parked.setdefault(key, {})
        previous = parked.get(msg.start)
        if previous is not None:
            self.nbytes -= len(previous[0].payload)
        parked[msg.start] = (msg, sender)
        self.nbytes += len(msg.payload)
        # Past a cap the batch furthest ahead goes first: it is needed last.
        while parked and (len(parked) > self._max_per_partition or self.nbytes > self._max_bytes):
            furthest = parked.pop(max(parked))
            self.nbytes -= len(furthest[0].payload)

    def take_next(
        self, group: str, topic: str, partition: int, next_offset: int
    ) -> tuple[BatchNotification, Any] | None:
        """The parked batch the chain now reaches (starting at or before
        ``next_offset``), if any."""
        parked = self._parked.get((group, topic, partition))
        if not parked or min(parked) > next_offset:
            return None
        entry = parked.pop(min(parked))
        self.nbytes -= len(entry[0].payload)
        return entry

    def __len__(self) -> int:
        return sum(len(p) for p in self._parked.values())
