"""Where the Kafka consumer stands: how far behind in time, and what
librdkafka's statistics say about brokers and committed offsets.

Plain objects the KafkaConsumerActor drives; the caller passes ``now``.

Time lag, the way Kafka Lag Exporter means it: the age of the oldest record
not yet committed. The exact answer needs that record's timestamp; actorsys
approximates it with what it already holds, without reading Kafka again:

- caught up (committed offset >= high watermark): 0;
- records past the committed offset were polled: ``now`` minus the Kafka
  timestamp of the *first record of the oldest poll not wholly committed*.
  That record is at or before the committed position, so the estimate errs
  high by at most the span of one poll's records;
- nothing past the committed offset was polled yet (the partition is
  paused, just assigned, or the fetch is in flight): the time since the high
  watermark was first seen past the committed offset. The record is at
  least that old, so this errs low by at most one status tick.

Kafka timestamps are the producer's clock (CreateTime) unless the topic uses
LogAppendTime; skew between that clock and this host's shows up as lag.
"""

from __future__ import annotations

import json
from collections import deque
from dataclasses import dataclass, field

import msgpack

TopicPartition = tuple[str, int]

# Chunks remembered per partition. Only the oldest matters; past this many
# (commits failing for a long time) newer ones are not remembered, and once
# the remembered ones are committed the estimate falls back to the
# high-watermark clock.
MAX_CHUNKS = 10_000


@dataclass(slots=True)
class _Chunk:
    end: int  # one past the chunk's last offset
    first_record: bytes  # the first record, still packed: decoded only when needed


class TimeLag:
    """Per partition: the polled chunks not yet wholly committed, oldest first."""

    def __init__(self) -> None:
        self._chunks: dict[TopicPartition, deque[_Chunk]] = {}
        self._behind_since: dict[TopicPartition, float] = {}

    def consumed(self, tp: TopicPartition, end: int, first_record: bytes) -> None:
        """One poll's records of ``tp`` up to ``end`` (exclusive) were handed on;
        ``first_record`` is the first of them as packed by ``actorsys.records``."""
        chunks = self._chunks.setdefault(tp, deque())
        if len(chunks) < MAX_CHUNKS:
            chunks.append(_Chunk(end, first_record))

    def forget(self, tp: TopicPartition) -> None:
        """Revoked, or re-read from the committed offset after a restart."""
        self._chunks.pop(tp, None)
        self._behind_since.pop(tp, None)

    def seconds_behind(
        self, tp: TopicPartition, committed: int | None, high_watermark: int | None, now: float
    ) -> float | None:
        """Estimated age in seconds of the record at ``committed``; None when
        unknown. ``now`` is wall-clock epoch seconds."""
        if committed is None or high_watermark is None:
            return None
        chunks = self._chunks.get(tp)
        while chunks and chunks[0].end <= committed:
            chunks.popleft()
        if committed >= high_watermark:
            self._behind_since.pop(tp, None)
            return 0.0
        if chunks:
            timestamp_ms = _timestamp_ms(chunks[0].first_record)
            if timestamp_ms is not None:
                self._behind_since.pop(tp, None)
                return max(0.0, now - timestamp_ms / 1000)
        return now - self._behind_since.setdefault(tp, now)

    def tracked_chunks(self, tp: TopicPartition) -> int:
        return len(self._chunks.get(tp, ()))


def _timestamp_ms(packed: bytes) -> int | None:
    try:
        _offset, timestamp_ms, _key, _value = msgpack.unpackb(packed, use_list=False, raw=True)
    except (ValueError, msgpack.UnpackException):
        return None
    return timestamp_ms if isinstance(timestamp_ms, int) and timestamp_ms > 0 else None


@dataclass
class ClientStats:
    """The parts of librdkafka's statistics (``stats_cb`` JSON) actorsys reads."""

    brokers_up: int | None = None  # None until the first report
    committed: dict[TopicPartition, int] = field(default_factory=dict)

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
        committed: dict[TopicPartition, int] = {}
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
