"""Back-pressure decisions of the KafkaConsumerActor (invariant 5).

In-flight work of a partition = the offsets the KafkaConsumerActor handed to
its Consumer minus what the JobManager has ACKed (reported as a cumulative
``released_records`` total, so late or reordered reports cannot skew it). A
partition over its cap, or every partition while the total is over the total
cap, is paused: no more of its offsets are handed out (the group consumer
never fetches records, so nothing is buffered meanwhile). It resumes once back
under half the cap, so a partition near its cap does not flap on every ACK.
"""

from __future__ import annotations

from dataclasses import dataclass

from actorsys.config import FlowConfig
from actorsys.offsets import PartitionKey


@dataclass
class _Counts:
    sent_records: int = 0
    released_records: int = 0

    @property
    def records(self) -> int:
        return self.sent_records - self.released_records


class FlowControl:
    def __init__(self, config: FlowConfig) -> None:
        self._config = config
        self._counts: dict[PartitionKey, _Counts] = {}
        self.paused: set[PartitionKey] = set()

    def assign(self, tp: PartitionKey) -> None:
        self._counts[tp] = _Counts()
        self.paused.discard(tp)

    def revoke(self, tp: PartitionKey) -> None:
        self._counts.pop(tp, None)
        self.paused.discard(tp)

    def reset(self, tp: PartitionKey) -> None:
        """The partition's Consumer was replaced: its counters start again."""
        self.assign(tp)

    def sent(self, tp: PartitionKey, records: int) -> None:
        counts = self._counts.get(tp)
        if counts is not None:
            counts.sent_records += records

    def released(self, tp: PartitionKey, records: int) -> None:
        counts = self._counts.get(tp)
        if counts is not None:
            counts.released_records = max(counts.released_records, records)

    def inflight(self, tp: PartitionKey) -> int:
        counts = self._counts.get(tp)
        return counts.records if counts else 0

    def total(self) -> int:
        return sum(c.records for c in self._counts.values())

    def drained(self) -> bool:
        return all(c.records == 0 for c in self._counts.values())

    def rebalance_pauses(self) -> tuple[set[PartitionKey], set[PartitionKey]]:
        """Returns (to_pause, to_resume) and updates ``paused`` accordingly."""
        cfg = self._config
        total = self.total()
        total_over = total >= cfg.max_inflight_records
        total_low = total <= cfg.max_inflight_records // 2
        per_partition = cfg.max_inflight_records_per_partition
        to_pause: set[PartitionKey] = set()
        to_resume: set[PartitionKey] = set()
        for tp, counts in self._counts.items():
            over = counts.records >= per_partition
            low = counts.records <= per_partition // 2
            if tp not in self.paused and (over or total_over):
                to_pause.add(tp)
            elif tp in self.paused and low and total_low:
                to_resume.add(tp)
        self.paused |= to_pause
        self.paused -= to_resume
        return to_pause, to_resume
