"""The daemon's progress line: what `actorsys run` shows every few seconds.

A plain object: it is fed the same status snapshot `actorsys status` shows
(see ``Daemon.status``) with ``now``, and returns the line when one is due,
so it is unit-tested with a fake clock and hand-made snapshots.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


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

    def update(self, status: dict[str, Any], now: float) -> Progress | None:
        records_in, rows_out = _records_in(status), _rows_written(status)
        if self._last is None:
            self._last = (now, records_in, rows_out)
            return None
        at, last_in, last_out = self._last
        elapsed = now - at
        if elapsed < self._every_s:
            return None
        self._last = (now, records_in, rows_out)
        partitions = _partitions(status)
        jobs = _job_manager(status).get("jobs", {})
        behind = [p["seconds_behind"] for p in partitions if p.get("seconds_behind") is not None]
        return Progress(
            # A restarted component counts from 0 again: never a negative rate.
            records_in_per_s=max(0, records_in - last_in) / elapsed,
            records_out_per_s=max(0, rows_out - last_out) / elapsed,
            lag_records=sum(p.get("lag") or 0 for p in partitions),
            lag_s=max(behind) if behind else None,
            pending=jobs.get("PENDING", 0),
            running=jobs.get("RUNNING", 0),
            failed=jobs.get("FAILED", 0),
            files_committed=_files_committed(status),
            rows_written=rows_out,
            partitions=len(partitions),
            paused=sum(1 for p in partitions if p.get("paused")),
        )


def _kafka_consumers(status: dict[str, Any]) -> list[dict[str, Any]]:
    # "kafka_consumer" is the leader's; "kafka_consumer@<member>" one on another host.
    components = status.get("components", {})
    return [c for role, c in components.items() if role.startswith("kafka_consumer")]


def _partitions(status: dict[str, Any]) -> list[dict[str, Any]]:
    return [p for c in _kafka_consumers(status) for p in c.get("partitions", [])]


def _records_in(status: dict[str, Any]) -> int:
    return sum(int(c.get("records_consumed", 0)) for c in _kafka_consumers(status))


def _job_manager(status: dict[str, Any]) -> dict[str, Any]:
    manager: dict[str, Any] = status.get("components", {}).get("job_manager", {})
    return manager


def _rows_written(status: dict[str, Any]) -> int:
    return int(_job_manager(status).get("rows_ingested", 0))


def _files_committed(status: dict[str, Any]) -> int:
    return int(_job_manager(status).get("files_ingested", 0))
