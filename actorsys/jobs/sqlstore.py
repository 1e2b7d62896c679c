"""The JobStore logic shared by the SQL backends (SQLite and PostgreSQL).

Every method of ``JobStore`` is written here once, as SQL that both dialects
accept (``?`` placeholders; the PostgreSQL adapter rewrites them). A backend
supplies only what the dialects force apart: how to open a transaction, the
row-locking clauses, the driver's exception types and the column types of
the schema (see ``actorsys.jobs.schema``).

Layout: ``jobs`` holds one small row per job (an offset interval, its
status and attempts: about two hundred bytes whatever the job's size);
``partition_offsets`` the offset chain. Records are never stored: a worker
reads its job's interval from Kafka.
"""

from __future__ import annotations

import json
import threading
from abc import ABC, abstractmethod
from collections.abc import Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, contextmanager
from typing import Any

from actorsys.errors import JobStoreError
from actorsys.jobs.dialect import Dialect, Row, Tx, one_line
from actorsys.jobs.model import (
    BatchSubmission,
    ClaimedJob,
    JobKind,
    JobRecord,
    JobStatus,
    ReaderPosition,
    SubmitResult,
    check_transition,
)
from actorsys.jobs.schema import ensure_schema
from actorsys.offset_chain import ChainVerdict, decide

# Status literals are inlined (never bound) where a partial index depends on
# them: a query planner can only use "WHERE status = 'PENDING'" indexes when
# it sees the literal.
PENDING, RUNNING, DONE, FAILED = (f"'{s.value}'" for s in JobStatus)

_JOB_COLUMNS = (
    "id, consumer_group, topic, partition_id, start_offset, end_offset, record_count, "
    "status, attempts, created_at, started_at, finished_at, "
    "next_attempt_at, last_error, worker, output_files, replay_base, chain_start, kind, window_ms"
)

# A worker asking for work gets the job that continues where its range reader
# stands, which reads on from what librdkafka prefetched, unless this many
# older jobs wait: moves to other partitions stay rare, and no partition waits
# behind more than this many jobs of the others.
AFFINITY_WINDOW = 32

RECOVERED_REASON = "interrupted: the job manager restarted while it was RUNNING"
EXPIRED_REASON = "interrupted: the job manager that ran it stopped (no heartbeat)"

# The SQL below guards each move with "WHERE status = <source>"; check once, at
# import, that the state machine in model.py allows every one of them.
for _source, _target in (
    (JobStatus.PENDING, JobStatus.RUNNING),  # claim_next, claim
    (JobStatus.RUNNING, JobStatus.DONE),  # complete
    (JobStatus.RUNNING, JobStatus.PENDING),  # fail_attempt (retry), requeue, recover_running
    (JobStatus.RUNNING, JobStatus.FAILED),  # fail_attempt (last attempt)
    (JobStatus.FAILED, JobStatus.PENDING),  # retry_failed
):
    check_transition(0, _source, _target)


class SqlJobStore(ABC):
    """``JobStore`` over one DB-API connection; subclasses bind the driver.

    One instance is safe to share between threads (a lock serialises its
    transactions); concurrency across processes is the database's job.
    """

    dialect: Dialect
    driver_errors: tuple[type[BaseException], ...]

    def __init__(self, label: str) -> None:
        self._label = label  # names the store in every error (no password)
        self._lock = threading.Lock()

    # -- what a backend provides -------------------------------------------

    @abstractmethod
    def _begin(self, write: bool) -> AbstractContextManager[Tx]:
        """Open a transaction: committed when the block ends, rolled back on error.
        ``write`` asks for the write lock up front where the backend has one."""

    @abstractmethod
    def _close(self) -> None: ...

    # -- transaction plumbing ----------------------------------------------

    @contextmanager
    def _tx(self, operation: str, write: bool = True) -> Iterator[Tx]:
        """One transaction per method; driver errors leave as ``JobStoreError``."""
        with self._lock:
            try:
                with self._begin(write) as tx:
                    yield tx
            except self.driver_errors as exc:
                raise JobStoreError(f"{self._label}: {operation}: {one_line(exc)}") from exc

    def _migrate(self, now: float) -> None:
        with self._tx("schema upgrade") as tx:
            ensure_schema(tx, self.dialect, self._label, now)

    def close(self) -> None:
        with self._lock:
            try:
                self._close()
            except self.driver_errors as exc:
                raise JobStoreError(f"{self._label}: close: {one_line(exc)}") from exc

    def __enter__(self) -> SqlJobStore:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self._label!r})"

    # -- submissions: the offset chain ---------------------------------------

    def submit_batch(self, batch: BatchSubmission, now: float) -> SubmitResult:
        key = (batch.consumer_group, batch.topic, batch.partition)
        where = "consumer_group = ? AND topic = ? AND partition_id = ?"
        with self._tx("submit_batch") as tx:
            # Create the partition's row if this is its first batch, then lock
            # it: racing JobManagers queue here, so each one decides against
            # the next_offset the previous one committed.
            tx.run(
                "INSERT INTO partition_offsets (consumer_group, topic, partition_id, next_offset)"
                " VALUES (?, ?, ?, NULL) ON CONFLICT DO NOTHING",
                key,
            )
            row = tx.one(
                f"SELECT next_offset FROM partition_offsets WHERE {where}{self.dialect.row_lock}",
                key,
            )
            current: int | None = row[0] if row else None
            decision = decide(batch.start, batch.end, current, batch.starts_assignment)
            if not decision.verdict.stores:
                # DUPLICATE and OUT_OF_ORDER only happen once next_offset is known.
                return SubmitResult(decision.verdict, None, current if current is not None else 0)

            record_count = batch.record_count
            if decision.verdict is ChainVerdict.TRIM:
                record_count = batch.end - decision.store_from
            inserted = tx.one(
                "INSERT INTO jobs (consumer_group, topic, partition_id, start_offset, end_offset,"
                " record_count, status, attempts, created_at, output_files,"
                f" chain_start) VALUES (?, ?, ?, ?, ?, ?, {PENDING}, 0, ?, '[]', ?)"
                " RETURNING id",
                (*key, decision.store_from, batch.end, record_count, now, current),
            )
            assert inserted is not None  # INSERT ... RETURNING always yields the row
            job_id = int(inserted[0])
            tx.run(f"UPDATE partition_offsets SET next_offset = ? WHERE {where}", (batch.end, *key))
        return SubmitResult(decision.verdict, job_id, batch.end, decision.gap)

    # -- claiming --------------------------------------------------------------

    _CLAIM_SET = (
        f"UPDATE jobs SET status = {RUNNING}, attempts = attempts + 1, started_at = ?,"
        " finished_at = NULL, next_attempt_at = NULL, worker = ?"
    )

    def claim_next(
        self,
        worker: str,
        now: float,
        max_running_compactions: int = 1,
        reader_at: ReaderPosition | None = None,
    ) -> ClaimedJob | None:
        due = f"status = {PENDING} AND (next_attempt_at IS NULL OR next_attempt_at <= ?)"
        # Ingestion first (it is what keeps data fresh and Kafka's retention
        # honest); compactions fill idle workers, a bounded number at a time, so
        # they never take the whole pool.
        oldest_due = (
            f"SELECT id FROM jobs WHERE {due}"
            " AND (kind = 'ingest' OR (SELECT COUNT(*) FROM jobs AS r"
            f" WHERE r.kind = 'compact' AND r.status = {RUNNING}) < ?)"
            " ORDER BY CASE WHEN kind = 'ingest' THEN 0 ELSE 1 END, id"
            f" LIMIT 1{self.dialect.skip_locked}"
        )
        with self._tx("claim_next") as tx:
            row = None
            if reader_at is not None:
                continuing = (
                    f"SELECT id FROM jobs AS c WHERE {due} AND kind = 'ingest'"
                    " AND topic = ? AND partition_id = ? AND start_offset = ?"
                    f" AND (SELECT COUNT(*) FROM (SELECT 1 FROM jobs AS o WHERE {due}"
                    " AND o.kind = 'ingest' AND o.id < c.id LIMIT ?) AS older) < ?"
                    f" LIMIT 1{self.dialect.skip_locked}"
                )
                row = tx.one(
                    f"{self._CLAIM_SET} WHERE id = ({continuing}) RETURNING {_JOB_COLUMNS}",
                    (
                        now,
                        worker,
                        now,
                        reader_at.topic,
                        reader_at.partition,
                        reader_at.offset,
                        now,
                        AFFINITY_WINDOW,
                        AFFINITY_WINDOW,
                    ),
                )
            if row is None:
                row = tx.one(
                    f"{self._CLAIM_SET} WHERE id = ({oldest_due}) RETURNING {_JOB_COLUMNS}",
                    (now, worker, now, max_running_compactions),
                )
            return self._claimed(tx, row)

    def submit_compaction(self, table: str, window_ms: int, now: float) -> int | None:
        """A durable compaction job for one event-time hour of ``table``, unless
        one for that hour is unfinished already (returns None then)."""
        with self._tx("submit_compaction") as tx:
            busy = tx.one(
                "SELECT id FROM jobs WHERE kind = 'compact' AND window_ms = ?"
                f" AND consumer_group = ? AND status IN ({PENDING}, {RUNNING})",
                (window_ms, table),
            )
            if busy is not None:
                return None
            row = tx.one(
                "INSERT INTO jobs (consumer_group, topic, partition_id, start_offset, end_offset,"
                " record_count, status, attempts, created_at, output_files,"
                f" kind, window_ms) VALUES (?, '', -1, ?, ?, 0, {PENDING}, 0, ?, '[]',"
                " 'compact', ?) RETURNING id",
                (table, window_ms, window_ms + 3_600_000, now, window_ms),
            )
            assert row is not None
            return int(row[0])

    def claim(self, job_id: int, worker: str, now: float) -> ClaimedJob | None:
        """Claims a PENDING job even if its ``next_attempt_at`` lies ahead: the
        caller picked this job on purpose."""
        with self._tx("claim") as tx:
            row = tx.one(
                f"{self._CLAIM_SET} WHERE id = ? AND status = {PENDING} RETURNING {_JOB_COLUMNS}",
                (now, worker, job_id),
            )
            return self._claimed(tx, row)

    @staticmethod
    def _claimed(tx: Tx, row: Row | None) -> ClaimedJob | None:
        if row is None:
            return None
        record = _record(row)
        return ClaimedJob(record, record.attempts)

    # -- the end of an attempt ---------------------------------------------------

    @staticmethod
    def _end_attempt(tx: Tx, job_id: int, token: int, target: JobStatus, **changes: Any) -> bool:
        """RUNNING -> ``target`` (setting the ``changes`` columns) if ``token`` is
        the current attempt; a stale token or a job that is not RUNNING matches
        no row and changes nothing."""
        assignments = "".join(f", {column} = ?" for column in changes)
        changed = tx.run(
            f"UPDATE jobs SET status = '{target.value}'{assignments}"
            f" WHERE id = ? AND status = {RUNNING} AND attempts = ?",
            (*changes.values(), job_id, token),
        )
        return changed == 1

    def complete(self, job_id: int, token: int, output_files: Sequence[str], now: float) -> bool:
        outputs = json.dumps(list(output_files))
        with self._tx("complete") as tx:
            return self._end_attempt(
                tx, job_id, token, JobStatus.DONE, finished_at=now, output_files=outputs
            )

    def fail_attempt(
        self,
        job_id: int,
        token: int,
        error: str,
        retry_at: float | None,
        now: float,
        counts_attempt: bool = True,
    ) -> JobStatus | None:
        target = JobStatus.FAILED if retry_at is None else JobStatus.PENDING
        finished_at = now if target is JobStatus.FAILED else None
        changes: dict[str, Any] = {
            "last_error": error,
            "next_attempt_at": retry_at,
            "finished_at": finished_at,
        }
        with self._tx("fail_attempt") as tx:
            moved = self._end_attempt(tx, job_id, token, target, **changes)
            if moved and not counts_attempt:
                # Tokens (attempt numbers) still grow, so a stale worker stays
                # rejected; the retry budget counts from replay_base, which moves
                # along: a transient fault costs the job no attempt.
                tx.run("UPDATE jobs SET replay_base = replay_base + 1 WHERE id = ?", (job_id,))
            return target if moved else None

    def requeue(self, job_id: int, token: int, reason: str, now: float) -> bool:
        with self._tx("requeue") as tx:
            return self._end_attempt(tx, job_id, token, JobStatus.PENDING, last_error=reason)

    def recover_running(self, now: float, owner: str | None = None) -> int:
        sql = (
            f"UPDATE jobs SET status = {PENDING}, next_attempt_at = NULL, last_error = ?"
            f" WHERE status = {RUNNING}"
        )
        with self._tx("recover_running") as tx:
            if owner is None:
                return tx.run(sql, (RECOVERED_REASON,))
            # Worker names are "<owner>/<worker id>": only this daemon's own jobs.
            return tx.run(f"{sql} AND worker LIKE ?", (RECOVERED_REASON, f"{owner}/%"))

    def heartbeat(self, owner: str, now: float) -> None:
        with self._tx("heartbeat") as tx:
            # Portable upsert: both SQLite and PostgreSQL know ON CONFLICT ... DO UPDATE.
            tx.run(
                "INSERT INTO job_managers (owner, heartbeat_at) VALUES (?, ?)"
                " ON CONFLICT (owner) DO UPDATE SET heartbeat_at = excluded.heartbeat_at",
                (owner, now),
            )

    def requeue_orphaned(self, silent_since: float, now: float) -> int:
        # RUNNING jobs are claimed as "<owner>/<host>/<worker>"; an owner whose
        # heartbeat is older than silent_since (or was never recorded) is gone.
        with self._tx("requeue_orphaned") as tx:
            return tx.run(
                f"UPDATE jobs SET status = {PENDING}, next_attempt_at = NULL, last_error = ?"
                f" WHERE status = {RUNNING} AND NOT EXISTS (SELECT 1 FROM job_managers m"
                # The pattern's "/%" is a parameter: a literal % means different
                # things to the two drivers' placeholder syntaxes.
                " WHERE jobs.worker LIKE m.owner || ? AND m.heartbeat_at >= ?)",
                (EXPIRED_REASON, "/%", silent_since),
            )

    def retry_failed(self, job_id: int | None, now: float) -> int:
        # Attempts never go back: a token (the attempt number) is never reused, so
        # a worker of an attempt before the replay is still rejected. The replay
        # starts a fresh count of attempts from the base.
        reset = (
            f"UPDATE jobs SET status = {PENDING}, replay_base = attempts, next_attempt_at = NULL,"
            f" finished_at = NULL WHERE status = {FAILED}"
        )
        with self._tx("retry_failed") as tx:
            if job_id is None:
                return tx.run(reset)
            return tx.run(f"{reset} AND id = ?", (job_id,))

    # -- reading ------------------------------------------------------------------

    def get(self, job_id: int) -> JobRecord | None:
        with self._tx("get", write=False) as tx:
            row = tx.one(f"SELECT {_JOB_COLUMNS} FROM jobs WHERE id = ?", (job_id,))
        return _record(row) if row else None

    def list_jobs(self, status: JobStatus | None = None, limit: int = 100) -> list[JobRecord]:
        if limit < 1:
            raise ValueError(f"limit must be at least 1, not {limit}")
        with self._tx("list_jobs", write=False) as tx:
            if status is None:
                rows = tx.all(f"SELECT {_JOB_COLUMNS} FROM jobs ORDER BY id DESC LIMIT ?", (limit,))
            else:
                rows = tx.all(
                    f"SELECT {_JOB_COLUMNS} FROM jobs WHERE status = ? ORDER BY id DESC LIMIT ?",
                    (JobStatus(status).value, limit),
                )
        return [_record(row) for row in rows]

    def oldest_unfinished(self, consumer_group: str) -> Mapping[str, float]:
        with self._tx("oldest_unfinished", write=False) as tx:
            rows = tx.all(
                "SELECT topic, MIN(created_at) FROM jobs"
                f" WHERE status IN ({PENDING}, {RUNNING}) AND kind = 'ingest'"
                " AND consumer_group = ? GROUP BY topic",
                (consumer_group,),
            )
        return {topic: float(created) for topic, created in rows}

    def count_by_status(self) -> Mapping[JobStatus, int]:
        """Every status is present, zero included (gauges want all four)."""
        with self._tx("count_by_status", write=False) as tx:
            rows = tx.all("SELECT status, COUNT(*) FROM jobs GROUP BY status")
        counts = dict.fromkeys(JobStatus, 0)
        counts.update({JobStatus(status): int(n) for status, n in rows})
        return counts

    def next_offsets(self, consumer_group: str) -> Mapping[tuple[str, int], int]:
        with self._tx("next_offsets", write=False) as tx:
            rows = tx.all(
                "SELECT topic, partition_id, next_offset FROM partition_offsets"
                " WHERE consumer_group = ? AND next_offset IS NOT NULL",
                (consumer_group,),
            )
        return {(topic, int(partition)): int(offset) for topic, partition, offset in rows}

    def next_due_at(self) -> float | None:
        with self._tx("next_due_at", write=False) as tx:
            row = tx.one(
                f"SELECT MIN(next_attempt_at) FROM jobs WHERE status = {PENDING}"
                " AND next_attempt_at IS NOT NULL"
            )
        return float(row[0]) if row and row[0] is not None else None

    def purge_done_before(self, before: float) -> int:
        with self._tx("purge_done_before") as tx:
            return tx.run(f"DELETE FROM jobs WHERE status = {DONE} AND finished_at < ?", (before,))


def _record(row: Row) -> JobRecord:
    (
        job_id,
        group,
        topic,
        partition,
        start,
        end,
        count,
        status,
        attempts,
        created_at,
        started_at,
        finished_at,
        next_attempt_at,
        last_error,
        worker,
        outputs,
        replay_base,
        chain_start,
        kind,
        window_ms,
    ) = row
    return JobRecord(
        id=int(job_id),
        consumer_group=group,
        topic=topic,
        partition=int(partition),
        start_offset=int(start),
        end_offset=int(end),
        record_count=int(count),
        status=JobStatus(status),
        attempts=int(attempts),
        created_at=float(created_at),
        started_at=_opt_float(started_at),
        finished_at=_opt_float(finished_at),
        next_attempt_at=_opt_float(next_attempt_at),
        last_error=last_error,
        worker=worker,
        output_files=tuple(json.loads(outputs)),
        replay_base=int(replay_base),
        chain_start=None if chain_start is None else int(chain_start),
        kind=JobKind(kind),
        window_ms=None if window_ms is None else int(window_ms),
    )


def _opt_float(value: Any) -> float | None:
    return None if value is None else float(value)
