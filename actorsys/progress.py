"""The daemon's progress line: what `actorsys run` shows every few seconds.

A plain object: it is fed the same status snapshots `actorsys status` shows
(a ``StatusDocument``) with ``now``, and returns the line when one is due,
so it is unit-tested with a fake clock and hand-made snapshots.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from actorsys.status import StatusDocument


@dataclass(frozen=True, slots=True)
class Progress:
    """One reading of the daemon's progress (rates over the last interval)."""

    records_in_per_s: float  # offsets handed out to be cut into jobs
    records_out_per_s: float  # rows written to the tables
    lag_records: int
    lag_s: float | None  # the partition furthest behind, in seconds
    pending: int
    running: int
    failed: int
    files_committed: int
    rows_written: int
    partitions: int
    paused: int

    def line(self) -> str:
        lag_s = "-" if self.lag_s is None else f"{self.lag_s:.0f}s"
        return (
            f"in {self.records_in_per_s:,.0f}/s  out {self.records_out_per_s:,.0f}/s  "
            f"lag {self.lag_records:,} rec {lag_s}  "
            f"jobs {self.pending} pending {self.running} running {self.failed} failed  "
            f"committed {self.files_committed:,} files {self.rows_written:,} rows  "
            f"paused {self.paused}/{self.partitions}"
        )

    def fields(self) -> dict[str, Any]:
        return {
            "records_in_per_s": round(self.records_in_per_s, 1),
            "records_out_per_s": round(self.records_out_per_s, 1),
            "lag_records": self.lag_records,
            "lag_s": None if self.lag_s is None else round(self.lag_s, 1),
            "jobs_pending": self.pending,
            "jobs_running": self.running,
            "jobs_failed": self.failed,
            "files_committed": self.files_committed,
            "rows_written": self.rows_written,
            "partitions": self.partitions,
            "partitions_paused": self.paused,
        }


class ProgressReporter:
    """Every ``every_s``, a ``Progress`` from the latest status snapshot."""

    def __init__(self, every_s: float) -> None:
        self._every_s = every_s
        self._last: tuple[float, int, int] | None = None  # when, records in, rows out

    def update(self, status: StatusDocument, now: float) -> Progress | None:
        manager = status.job_manager()
        records_in = sum(c.records_consumed for c in status.kafka_consumers().values())
        rows_out = manager.rows_ingested
        if self._last is None:
            self._last = (now, records_in, rows_out)
            return None
        at, last_in, last_out = self._last
        elapsed = now - at
        if elapsed < self._every_s:
            return None
        self._last = (now, records_in, rows_out)
        partitions = status.partitions()
        behind = [p.seconds_behind for p in partitions if p.seconds_behind is not None]
        return Progress(
            # A restarted component counts from 0 again: never a negative rate.
            records_in_per_s=max(0, records_in - last_in) / elapsed,
            records_out_per_s=max(0, rows_out - last_out) / elapsed,
            lag_records=sum(p.lag or 0 for p in partitions),
            lag_s=max(behind) if behind else None,
            pending=manager.jobs.get("PENDING", 0),
            running=manager.jobs.get("RUNNING", 0),
            failed=manager.jobs.get("FAILED", 0),
            files_committed=manager.files_ingested,
            rows_written=rows_out,
            partitions=len(partitions),
            paused=sum(1 for p in partitions if p.paused),
        )
