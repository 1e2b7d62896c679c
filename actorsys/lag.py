"""Where the Kafka consumer stands: how far behind in time, and what
librdkafka's statistics say about brokers and committed offsets.

Plain objects the KafkaConsumerActor drives; the caller passes ``now``.

Time lag, the way Kafka Lag Exporter means it: the age of the oldest record
not yet committed. The KafkaConsumerActor reads no record (workers do), so it
estimates that age from when it first saw each end offset of the log: the
record at the committed offset was in the log when the first end offset
past it was seen, so it is at least that old. The estimate errs low: by the
end-offset polling interval for a live stream, and for records already in
the log when the partition was assigned, by how old they were then.
"""

from __future__ import annotations

import json
from collections import deque
from dataclasses import dataclass, field

from actorsys.offsets import PartitionKey

# End offsets remembered per partition. Only the oldest uncommitted one
# matters; past this many (commits failing for a long time) newer ones are not
# remembered, and the estimate keeps counting from the oldest.
MAX_ENDS = 10_000


class TimeLag:
    """Per partition: end offsets seen and not yet committed, oldest first."""

    def __init__(self) -> None:
        self._ends: dict[PartitionKey, deque[tuple[int, float]]] = {}

    def seen(self, tp: PartitionKey, end: int, now: float) -> None:
        """The log of ``tp`` was seen to end at ``end`` (exclusive) at ``now``
        (wall-clock epoch seconds)."""
        ends = self._ends.setdefault(tp, deque())
        if (not ends or end > ends[-1][0]) and len(ends) < MAX_ENDS:
            ends.append((end, now))

    def forget(self, tp: PartitionKey) -> None:
        """Revoked, or handed out again from the committed offset after a restart."""
        self._ends.pop(tp, None)

    def seconds_behind(self, tp: PartitionKey, committed: int | None, now: float) -> float | None:
        """Estimated age in seconds of the record at ``committed``; None when
        unknown. ``now`` is wall-clock epoch seconds."""
        if committed is None:
            return None
        ends = self._ends.get(tp)
        if not ends:
            return None
        # Keep the newest end even when committed: it says "caught up".
        while len(ends) > 1 and ends[0][0] <= committed:
            ends.popleft()
        end, seen_at = ends[0]
        if end <= committed:
            return 0.0
        return max(0.0, now - seen_at)

    def tracked_ends(self, tp: PartitionKey) -> int:
        return len(self._ends.get(tp, ()))


@dataclass
class ClientStats:
    """The parts of librdkafka's statistics (``stats_cb`` JSON) actorsys reads."""

    brokers_up: int | None = None  # None until the first report
    committed: dict[PartitionKey, int] = field(default_factory=dict)

    def update(self, stats_json: str) -> None:
        try:
            doc = json.loads(stats_json)
        except ValueError:
            return
        brokers = doc.get("brokers") or {}
        # Real brokers have a node id; bootstrap and logical (coordinator) entries have -1.
        self.brokers_up = sum(
            1 for b in brokers.values() if b.get("nodeid", -1) >= 0 and b.get("state") == "UP"
        )
        committed: dict[PartitionKey, int] = {}
        for topic, t in (doc.get("topics") or {}).items():
            for key, p in (t.get("partitions") or {}).items():
                offset = p.get("committed_offset", -1001)
                if key != "-1" and isinstance(offset, int) and offset >= 0:
                    committed[(topic, int(key))] = offset
        self.committed = committed

    def all_brokers_down(self) -> None:
        self.brokers_up = 0

    @property
    def broker_ok(self) -> bool | None:
        """False when connected to no broker; None before the first report."""
        return None if self.brokers_up is None else self.brokers_up > 0
