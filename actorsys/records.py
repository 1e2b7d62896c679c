"""One Kafka record as a job handler sees it."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Record:
    """One Kafka record, read by the worker that runs its job."""

    offset: int
    timestamp_ms: int | None
    key: bytes | None
    value: bytes | None
