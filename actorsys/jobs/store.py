"""The job store interface. SQLite and PostgreSQL implement it; one
contract test suite (tests/integration/test_job_store.py) runs against both.

Every method is one transaction. Methods raise ``JobStoreError`` when the
store cannot be reached or cannot persist; callers retry later and, while
that lasts, withhold ACKs (nothing is acknowledged that is not persisted).
Times are wall-clock epoch seconds passed in by the caller (``now``), so
tests control them; the JobManager schedules with a monotonic clock and
only persists wall times for people and for restarts.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Protocol

from actorsys.jobs.model import (
    BatchSubmission,
    ClaimedJob,
    JobRecord,
    JobStatus,
    ReaderPosition,
    SubmitResult,
)


class JobStore(Protocol):
    def submit_batch(self, batch: BatchSubmission, now: float) -> SubmitResult:
        """Apply the offset chain (``actorsys.offset_chain.decide``) against the
        stored ``next_offset`` of (group, topic, partition) and, when the verdict
        stores, insert a PENDING job (its offset interval: trimmed to what is
        new on TRIM) and advance ``next_offset`` to ``batch.end`` — all in one
        transaction. No record is stored: workers read them from Kafka."""
        ...

    def claim_next(
        self,
        worker: str,
        now: float,
        max_running_compactions: int = 1,
        reader_at: ReaderPosition | None = None,
    ) -> ClaimedJob | None:
        """Oldest PENDING job whose ``next_attempt_at`` is due (or unset) moves
        to RUNNING with ``attempts + 1``; returns it with its token. Ingestion
        jobs come first; a compaction only while fewer than
        ``max_running_compactions`` run. With ``reader_at``, the due ingestion
        job that starts there is taken instead, unless ``AFFINITY_WINDOW``
        older due ingestion jobs wait."""
        ...

    def submit_compaction(self, table: str, window_ms: int, now: float) -> int | None:
        """A PENDING compaction job for the hour starting at ``window_ms`` (epoch
        ms) of ``table``, unless one is PENDING or RUNNING already (None)."""
        ...

    def claim(self, job_id: int, worker: str, now: float) -> ClaimedJob | None:
        """Like ``claim_next`` for one job id; ``None`` if it is not PENDING."""
        ...

    def complete(self, job_id: int, token: int, output_files: Sequence[str], now: float) -> bool:
        """RUNNING -> DONE if ``token`` is the current attempt.
        Returns False (and changes nothing) for a stale token or a job that is
        not RUNNING."""
        ...

    def fail_attempt(
        self,
        job_id: int,
        token: int,
        error: str,
        retry_at: float | None,
        now: float,
        counts_attempt: bool = True,
    ) -> JobStatus | None:
        """RUNNING -> PENDING with ``next_attempt_at = retry_at``, or -> FAILED when
        ``retry_at`` is None. Records ``last_error``. Returns the new status, or
        None for a stale token. ``counts_attempt=False`` (a transient fault: full
        disk, broker down) leaves the job's retry budget as it was."""
        ...

    def requeue(self, job_id: int, token: int, reason: str, now: float) -> bool:
        """RUNNING -> PENDING now (its worker was lost or its lease expired)."""
        ...

    def recover_running(self, now: float, owner: str | None = None) -> int:
        """At JobManager start: RUNNING jobs go back to PENDING — all of them, or
        only those whose worker name starts with ``owner + "/"`` (this daemon's,
        when several daemons share the store). Returns how many."""
        ...

    def heartbeat(self, owner: str, now: float) -> None:
        """Record that the JobManager ``owner`` is alive (every few seconds)."""
        ...

    def requeue_orphaned(self, silent_since: float, now: float) -> int:
        """RUNNING jobs claimed by a JobManager whose last heartbeat is older
        than ``silent_since`` (wall clock) go back to PENDING: it died, and
        nobody else would ever run them. Returns how many."""
        ...

    def retry_failed(self, job_id: int | None, now: float) -> int:
        """FAILED -> PENDING for one job, or all when None. ``attempts`` is kept
        (tokens are never reused); ``replay_base`` records it, so the job gets a
        full retry budget again."""
        ...

    def get(self, job_id: int) -> JobRecord | None: ...

    def list_jobs(self, status: JobStatus | None = None, limit: int = 100) -> list[JobRecord]:
        """Newest first."""
        ...

    def oldest_unfinished(self, consumer_group: str) -> Mapping[str, float]:
        """Per topic, the ``created_at`` of the group's oldest PENDING or RUNNING
        ingestion job (topics with none are absent): retention safety."""
        ...

    def count_by_status(self) -> Mapping[JobStatus, int]:
        """Every status, zero included. Cheap (an index): the JobManager recounts
        unfinished jobs from here every tick, since other JobManagers sharing the
        store finish jobs too."""
        ...

    def next_offsets(self, consumer_group: str) -> Mapping[tuple[str, int], int]: ...

    def next_due_at(self) -> float | None:
        """Earliest ``next_attempt_at`` of a PENDING job that has one (a durable
        delay queue), or None."""
        ...

    def purge_done_before(self, before: float) -> int:
        """Delete DONE jobs finished before ``before``; returns how many."""
        ...

    def close(self) -> None: ...
