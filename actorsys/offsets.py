"""Where records are in Kafka: a partition's key, and an interval of its offsets.

A job is defined by its offset interval: the Consumer hands one out, the
JobManager stores it, a worker reads it from Kafka and the committer records
its end in the table. The messages that carry one (``NewOffsets``,
``BatchNotification``, ``JobAssignment``, ``CommitFiles``...) hold an
:class:`OffsetInterval` rather than four loose fields, so an interval is
checked once, where it is made, and reads the same everywhere.
"""

from __future__ import annotations

from dataclasses import dataclass

# (topic, partition). Not confluent_kafka's TopicPartition: a plain, hashable
# tuple, used as a dictionary key wherever something is tracked per partition.
PartitionKey = tuple[str, int]


@dataclass(frozen=True, slots=True)
class OffsetInterval:
    """The half-open interval ``[start, end)`` of the offsets of one partition.

    Empty when ``start == end``. Offsets are an upper bound on records:
    transaction markers and compacted records leave holes.
    """

    topic: str
    partition: int
    start: int
    end: int

    def __post_init__(self) -> None:
        if self.start < 0:
            raise ValueError(f"{self}: start must not be negative")
        if self.end < self.start:
            raise ValueError(f"{self}: end must not be below start")

    @property
    def key(self) -> PartitionKey:
        """The partition the interval is of."""
        return (self.topic, self.partition)

    @property
    def size(self) -> int:
        """How many offsets the interval holds."""
        return self.end - self.start

    def __str__(self) -> str:
        return f"{self.topic}[{self.partition}][{self.start}, {self.end})"
