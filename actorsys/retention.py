"""Retention safety: pending jobs are offsets, and their records must still be
in Kafka when a worker reads them.

The KafkaConsumerActor reads each topic's ``retention.ms`` and
``retention.bytes`` at start and every few minutes (a change is picked up)
and tells the JobManager. Every tick the JobManager asks the job store when
the oldest unfinished ingestion job of each topic was stored, and this
object turns both into:

- the age of the oldest unfinished job, per topic (a lower bound on the age
  of its records: they were in the log before the job was stored);
- the headroom to retention, ``retention - age`` (None when the topic keeps
  records for ever, or its retention is not known);
- whether intake must be held back: once the headroom of any topic falls
  below ``headroom_fraction`` of its retention, no new batch is admitted, so
  the workers spend their time on the oldest jobs (they are claimed oldest
  first) instead of on new ones. Intake resumes when the headroom is back
  above twice that fraction (no flapping on every job).

``retention.bytes`` cannot be turned into a time without knowing the
topic's throughput; it is exported for the operator and not acted upon.

A plain object: the caller passes wall-clock ``now`` (epoch seconds, as the
job store's ``created_at``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Headroom:
    topic: str
    oldest_job_age_s: float  # 0 when nothing is unfinished
    retention_s: float | None  # None: records are kept for ever, or unknown
    headroom_s: float | None


class RetentionGuard:
    def __init__(self, headroom_fraction: float) -> None:
        self._fraction = headroom_fraction
        self._retention_s: dict[str, float | None] = {}
        self._held = False

    def retention(self, topic: str, retention_ms: int | None) -> bool:
        """Record a topic's retention (None or negative: unlimited); True if it changed."""
        value = None if retention_ms is None or retention_ms < 0 else retention_ms / 1000
        changed = self._retention_s.get(topic, ...) != value
        self._retention_s[topic] = value
        return changed

    def observe(self, oldest_unfinished: Mapping[str, float], now: float) -> list[Headroom]:
        """Headroom per known topic, from each topic's oldest unfinished job's
        ``created_at``; updates :attr:`holding`."""
        report = []
        for topic in sorted(set(self._retention_s) | set(oldest_unfinished)):
            created = oldest_unfinished.get(topic)
            age = max(0.0, now - created) if created is not None else 0.0
            retention = self._retention_s.get(topic)
            headroom = None if retention is None else retention - age
            report.append(Headroom(topic, age, retention, headroom))
        at_risk, recovered = False, True
        for h in report:
            if h.retention_s is None or h.headroom_s is None:
                continue
            at_risk = at_risk or h.headroom_s < self._fraction * h.retention_s
            recovered = recovered and h.headroom_s >= 2 * self._fraction * h.retention_s
        if at_risk:
            self._held = True
        elif recovered:
            self._held = False
        return report

    @property
    def holding(self) -> bool:
        """True while intake is held back for the oldest jobs to finish first."""
        return self._held
