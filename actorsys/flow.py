"""Back-pressure decisions of the KafkaConsumerActor (invariant 5).

In-flight work of a partition = what the KafkaConsumerActor sent to its
Consumer minus what the JobManager has ACKed (reported as cumulative
``released_*`` totals, so late or reordered reports cannot skew it). A
partition over its cap, or every partition while the total is over the total
cap, is paused; it resumes once back under half the cap, so a partition
near its cap does not flap between paused and resumed on every ACK.
"""

from __future__ import annotations

from dataclasses import dataclass

from actorsys.config import FlowConfig

TopicPartition = tuple[str, int]


@dataclass
class _Counts:
    sent_records: int = 0
    sent_bytes: int = 0
    released_records: int = 0
    released_bytes: int = 0

    @property
    def records(self) -> int:
        return self.sent_records - self.released_records

    @property
    def nbytes(self) -> int:
        return self.sent_bytes - self.released_bytes


class FlowControl:
    def __init__(self, config: FlowConfig) -> None:
        self._config = config
        self._counts: dict[TopicPartition, _Counts] = {}
        self.paused: set[TopicPartition] = set()

    def assign(self, tp: TopicPartition) -> None:
        self._counts[tp] = _Counts()
        self.paused.discard(tp)

    def revoke(self, tp: TopicPartition) -> None:
        self._counts.pop(tp, None)
        self.paused.discard(tp)

    def reset(self, tp: TopicPartition) -> None:
        """The partition's Consumer was replaced: its counters start again."""
        self.assign(tp)

    def sent(self, tp: TopicPartition, records: int, nbytes: int) -> None:
        counts = self._counts.get(tp)
        if counts is not None:
            counts.sent_records += records
            counts.sent_bytes += nbytes

    def released(self, tp: TopicPartition, records: int, nbytes: int) -> None:
        counts = self._counts.get(tp)
        if counts is not None:
            counts.released_records = max(counts.released_records, records)
            counts.released_bytes = max(counts.released_bytes, nbytes)

    def inflight(self, tp: TopicPartition) -> tuple[int, int]:
        counts = self._counts.get(tp)
        return (counts.records, counts.nbytes) if counts else (0, 0)

    def total(self) -> tuple[int, int]:
        return (
            sum(c.records for c in self._counts.values()),
            sum(c.nbytes for c in self._counts.values()),
        )

    def drained(self) -> bool:
        return all(c.records == 0 for c in self._counts.values())

    def rebalance_pauses(self) -> tuple[set[TopicPartition], set[TopicPartition]]:
        """Returns (to_pause, to_resume) and updates ``paused`` accordingly."""
        cfg = self._config
        total_records, total_bytes = self.total()
        total_over = (
            total_records >= cfg.max_inflight_records or total_bytes >= cfg.max_inflight_bytes
        )
        total_low = (
            total_records <= cfg.max_inflight_records // 2
            and total_bytes <= cfg.max_inflight_bytes // 2
        )
        to_pause: set[TopicPartition] = set()
        to_resume: set[TopicPartition] = set()
        for tp, counts in self._counts.items():
            over = (
                counts.records >= cfg.max_inflight_records_per_partition
                or counts.nbytes >= cfg.max_inflight_bytes_per_partition
            )
            low = (
                counts.records <= cfg.max_inflight_records_per_partition // 2
                and counts.nbytes <= cfg.max_inflight_bytes_per_partition // 2
            )
            if tp not in self.paused and (over or total_over):
                to_pause.add(tp)
            elif tp in self.paused and low and total_low:
                to_resume.add(tp)
        self.paused |= to_pause
        self.paused -= to_resume
        return to_pause, to_resume
