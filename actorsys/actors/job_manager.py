"""JobManager: the single authority on jobs.

Persists each batch as a job (offset chain applied in the store's
transaction), then ACKs; hands jobs to workers that ask (work pulling);
tracks attempts with tokens and leases; retries failures with backoff from a
durable delay queue; dead-letters a job's records after its last attempt.
Everything it knows it recovers from the store when it is recreated.

The state it keeps between messages lives in plain objects it drives:
``LeaseBook`` (who runs what, until when; outcomes not yet recorded),
``HeldBatches``/``ParkedBatches`` (unACKed batches, capped in bytes),
``OutputHealth`` (transient output faults pause consumption),
``Admission`` (back-pressure on new batches; the drain's quiesce),
``JobCounts`` (jobs per status between recounts) and ``Upkeep`` (when the
store chores are due; which workers are idle).
"""

from __future__ import annotations

import json
import logging
import os
import random
import time
from collections import deque
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Any

from thespian.actors import ActorExitRequest, WakeupMessage

from actorsys import metrics
from actorsys.actors.base import ActorsysActor
from actorsys.backlog import HeldBatches, ParkedBatches
from actorsys.config import AppConfig, FlowConfig
from actorsys.errors import ActorsysError, JobStoreError
from actorsys.jobs.admission import Admission
from actorsys.jobs.leases import LeaseBook, Outcome
from actorsys.jobs.model import BatchSubmission, JobKind, JobRecord, JobStatus, SubmitResult
from actorsys.jobs.open import open_job_store
from actorsys.jobs.output_health import OutputHealth
from actorsys.jobs.policy import RetryPolicy
from actorsys.jobs.store import JobStore
from actorsys.jobs.upkeep import JobCounts, Upkeep
from actorsys.logs import RateLimitedLog
from actorsys.messages import (
    AdmitHeldBatches,
    BatchAck,
    BatchHeld,
    BatchNotification,
    CommitFiles,
    CommitRejected,
    CommitterMoved,
    ComponentReady,
    ConsumerExited,
    DiscardAttempt,
    JobAssignment,
    JobDone,
    JobFailed,
    JobManagerStart,
    JobsAvailable,
    JobsCommitted,
    NoJobAvailable,
    QuiesceJobs,
    ReplaceFiles,
    ReplaceWorker,
    RequestJob,
    StartFailed,
    TableState,
    TableStateRequest,
    TopicRetention,
    WorkerLost,
    WorkerMasterMoved,
)
from actorsys.offset_chain import ChainVerdict
from actorsys.offsets import OffsetInterval
from actorsys.retention import Headroom, RetentionGuard
from actorsys.roles import Role
from actorsys.status import JobManagerStatus, RetentionStatus

log = logging.getLogger("actorsys.job_manager")

TICK_S = 1.0
MAX_PARKED_PER_PARTITION = 256
# FAILED jobs whose skips a new raw committer is sent again (newest first):
# older ones are in the table already unless over this many failed since.
MAX_SKIPS_RESENT = 1_000
# Consumers that died, remembered so that their last notifications get no ACK
# (a send to a dead actor holds a transmit slot for minutes).
EXITED_CONSUMERS_KEPT = 16
# Notifications held back (a few hundred bytes each); their Consumers resend the rest.
MAX_HELD_BATCHES = 4_096
# A JobManager silent this long is dead: its RUNNING jobs are taken back. It
# heartbeats with its store chores (every STORE_CHORES_S, see jobs/upkeep.py).
MANAGER_SILENT_S = 15.0


@dataclass
class _Publishing:
    """An attempt whose files are being published, table by table."""

    record: JobRecord
    outcome: Outcome
    pending: set[str]  # tables whose committer has not said JobsCommitted yet

    def files_of(self, table: str) -> tuple[str, ...]:
        return tuple(data for name, data in self.outcome.table_files if name == table)


def _partition_of(hour_ms: int) -> tuple[str, str]:
    moment = datetime.fromtimestamp(hour_ms / 1000, UTC)
    return moment.date().isoformat(), str(moment.hour)


def _iso_hour(hour_ms: int) -> str:
    return datetime.fromtimestamp(hour_ms / 1000, UTC).strftime("%Y-%m-%dT%H:00Z")


def _event_hours(files: tuple[str, ...]) -> tuple[dict[int, int], int]:
    """Rows per event hour (epoch ms of its start) and the newest event time
    (epoch ms) of an attempt's raw data files, from their partition and stats."""
    hours: dict[int, int] = {}
    newest = 0
    for text in files:
        doc = json.loads(text)
        values = dict(doc["partition_values"])
        day = datetime.fromisoformat(values["date"]).replace(tzinfo=UTC)
        hour_ms = int(day.timestamp() * 1000) + int(values["hour"]) * 3_600_000
        hours[hour_ms] = hours.get(hour_ms, 0) + int(doc["num_records"])
        stats = json.loads(doc["stats"])
        max_ts = stats.get("maxValues", {}).get("ts")
        if max_ts:
            ts = datetime.fromisoformat(max_ts.replace("Z", "+00:00"))
            newest = max(newest, int(ts.timestamp() * 1000))
    return hours, newest


@dataclass(frozen=True, slots=True)
class _Unrecorded:
    """An attempt's outcome the store could not record yet (retried every tick)."""

    worker_id: str
    worker: Any  # where a DiscardAttempt goes, if the job ends FAILED (None: unknown)
    host: str
    outcome: Outcome


class JobManager(ActorsysActor):
    ROLE = Role.JOB_MANAGER

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._config: AppConfig | None = None
        self._bootstrap_servers = ""
        self._store: JobStore | None = None
        self._worker_master: Any = None
        self._supervisor: Any = None
        self._committers: dict[str, Any] = {}  # format "delta": each table's committer
        # Attempts whose files the committers have not published yet, by (job,
        # token): their jobs stay RUNNING (a job is DONE once its rows are in).
        self._awaiting_commit: dict[tuple[int, int], _Publishing] = {}
        self._windows: Any = None  # WindowTracker (format "delta")
        self._leases = LeaseBook()
        # Outcomes reported by workers that the store has not recorded, by (job, token).
        self._unrecorded: dict[tuple[int, int], _Unrecorded] = {}
        # Jobs per status (PENDING + RUNNING for the intake cap): moved by this
        # JobManager's transitions, recounted from the store with its chores
        # (other JobManagers sharing the store, and the CLI, move jobs too).
        self._counts = JobCounts()
        self._upkeep = Upkeep()
        self._held = HeldBatches(MAX_HELD_BATCHES)
        self._parked = ParkedBatches(MAX_PARKED_PER_PARTITION)
        # Consumers that died: never answered again (see ConsumerExited).
        self._exited_consumers: deque[Any] = deque(maxlen=EXITED_CONSUMERS_KEPT)
        self._output = OutputHealth(1.0, 300.0)
        self._admission = Admission()
        self._retention = RetentionGuard(FlowConfig().retention_headroom_fraction)
        self._headroom: list[Headroom] = []
        self._retry: RetryPolicy | None = None
        self._rng = random.Random()
        self._errors = RateLimitedLog(log)
        self._dead_letters: Any = None
        self._store_errors_at_push = 0  # for store_ok: no store error since the last push
        self._owner = ""
        self.stats = {
            "batches_stored": 0,
            "duplicates": 0,
            "trimmed": 0,
            "gaps": 0,
            "offsets_deleted_before_read": 0,
            "out_of_order": 0,
            "stale_completions": 0,
            "jobs_done": 0,
            "jobs_failed": 0,
            "attempts_failed": 0,
            "transient_failures": 0,
            "store_errors": 0,
            "rows_ingested": 0,  # valid records in the output (ingestion jobs)
            "files_ingested": 0,
        }

    # --- start-up ---------------------------------------------------------------------------

    def receiveMsg_JobManagerStart(self, msg: JobManagerStart, sender: Any) -> None:
        self._config = msg.config
        self._bootstrap_servers = msg.bootstrap_servers
        self._worker_master = msg.worker_master
        self._committers = dict(msg.committers)
        self._supervisor = sender
        jobs, flow = msg.config.jobs, msg.config.flow
        self._retry = RetryPolicy(
            jobs.max_attempts, jobs.retry_backoff_initial_s, jobs.retry_backoff_max_s
        )
        self._output = OutputHealth(jobs.retry_backoff_initial_s, jobs.retry_backoff_max_s)
        self._admission.max_pending_jobs = flow.max_pending_jobs
        self._retention = RetentionGuard(flow.retention_headroom_fraction)
        try:
            # Jobs are claimed in this JobManager's name: after a restart it takes
            # back only its own, when several daemons share one store.
            daemon = msg.config.daemon
            self._owner = f"{daemon.host_name or os.uname().nodename}:{daemon.admin_port}"
            self._store = open_job_store(jobs.store)
            self._store.heartbeat(self._owner, time.time())
            recovered = self._store.recover_running(time.time(), owner=self._owner)
            self._counts.recounted(self._store.count_by_status())
        except ActorsysError as exc:
            self.send(sender, StartFailed(self.ROLE, str(exc)))
            return
        if recovered:
            log.info("recovered %d job(s) that were running; they will run again", recovered)
        if msg.config.output.format == "delta":
            from actorsys.tables.windows import WindowTracker

            tables = msg.config.tables
            self._windows = WindowTracker(
                int(tables.allowed_lateness_s * 1000),
                tables.idle_partition_s,
                tables.recompact_delay_s,
            )
            if "raw" in self._committers:  # where event time stands, from the table
                self.send(self._committers["raw"], TableStateRequest("raw"))
                self._resend_skips()
        self.send(sender, ComponentReady(self.ROLE))
        self._wake_workers()
        self.wakeupAfter(timedelta(seconds=TICK_S))

    def receiveMsg_CommitterMoved(self, msg: CommitterMoved, sender: Any) -> None:
        """A new committer knows nothing: hand it every unpublished attempt again
        (it publishes each once: the table's txn versions say what is in)."""
        self._committers[msg.table] = msg.committer
        for (job_id, token), publishing in list(self._awaiting_commit.items()):
            if msg.table in publishing.pending:
                self._publish(job_id, token, publishing, msg.table)
        if msg.table == "raw":
            self._resend_skips()

    def _resend_skips(self) -> None:
        """A committer that is new (a restart of it, or of the daemon) never
        saw the skips of the FAILED ingestion jobs: the newest are sent again,
        or a FAILED job whose skip was not yet committed would hold its
        partition's later jobs back for ever. The committer ignores those the
        table covers already."""
        assert self._store is not None and self._config is not None
        try:
            failed = self._store.list_jobs(JobStatus.FAILED, limit=MAX_SKIPS_RESENT)
        except JobStoreError as exc:
            self._store_error("list", "job store: %s", exc)
            return
        for record in failed:
            if record.consumer_group == self._config.kafka.group_id:
                self._skip_in_table(record)

    def receiveMsg_TableState(self, msg: TableState, sender: Any) -> None:
        if self._windows is None:
            return
        dirty: dict[tuple[str, int], list[int]] = {}
        for topic, partition, hour_ms, _rows in msg.dirty:
            dirty.setdefault((topic, partition), []).append(hour_ms)
        watermarks = {(topic, partition): ms for topic, partition, ms in msg.watermarks}
        self._windows.restore(watermarks, dirty, time.monotonic())
        for (topic, partition), event_ms in watermarks.items():
            metrics.watermark(topic, partition, event_ms)

    def receiveMsg_JobsCommitted(self, msg: JobsCommitted, sender: Any) -> None:
        for job_id, token in msg.jobs:
            publishing = self._awaiting_commit.get((job_id, token))
            if publishing is not None:
                publishing.pending.discard(msg.table)
                if publishing.record.kind is JobKind.COMPACT and msg.table == "raw":
                    # The hour's rows are compacted: now publish its final aggregates.
                    for table in ("agg", "agg_hourly"):
                        if publishing.files_of(table):
                            publishing.pending.add(table)
                            self._publish(job_id, token, publishing, table)
                if publishing.pending:
                    continue
                del self._awaiting_commit[(job_id, token)]
                self._published(publishing)
            outcome = publishing.outcome if publishing is not None else Outcome(done=True)
            committed = replace(outcome, committed=True)
            self._unrecorded[(job_id, token)] = _Unrecorded("", None, "", committed)
            self._record(job_id, token)

    def _published(self, publishing: _Publishing) -> None:
        """Every table holds the attempt's files: event time moves on (ingestion),
        or the hour is compacted."""
        if self._windows is None:
            return
        record, now = publishing.record, time.monotonic()
        if record.kind is JobKind.INGEST:
            self._ingested(publishing.outcome)
        if record.kind is JobKind.COMPACT and record.window_ms is not None:
            self._windows.compacted(record.window_ms, now)
            metrics.compaction_done()
            return
        hours, newest = _event_hours(publishing.files_of("raw"))
        if hours:
            key = (record.topic, record.partition)
            late = sum(rows for hour, rows in hours.items() if self._windows.late(key, hour))
            self._windows.committed(key, hours, newest, now)
            metrics.late_records(record.topic, late)
            metrics.watermark(record.topic, record.partition, self._windows.watermark(key))

    def receiveMsg_CommitRejected(self, msg: CommitRejected, sender: Any) -> None:
        if self._awaiting_commit.pop((msg.job_id, msg.token), None) is None:
            return
        log.warning("job %d: its files cannot be published (%s); it runs again",
                    msg.job_id, msg.reason)  # fmt: skip
        outcome = Outcome(done=False, error=msg.reason, transient=msg.transient)
        self._report("", None, "", msg.job_id, msg.token, outcome)

    def receiveMsg_WorkerMasterMoved(self, msg: WorkerMasterMoved, sender: Any) -> None:
        self._worker_master = msg.worker_master
        # The old pool is gone with its master: its jobs run again elsewhere.
        for lease in self._leases:
            self.receiveMsg_WorkerLost(WorkerLost(lease.worker_id), sender)
        self._wake_workers()

    # --- batches in -------------------------------------------------------------------------

    def _accepting(self) -> bool:
        """Otherwise a new batch's ACK is withheld: back-pressure (see Admission)."""
        return self._admission.accepting(
            self._counts.unfinished, self._output.healthy, not self._retention.holding
        )

    def receiveMsg_TopicRetention(self, msg: TopicRetention, sender: Any) -> None:
        if self._retention.retention(msg.topic, msg.retention_ms):
            log.info(
                "topic %s keeps records for %s (retention.bytes %s): pending jobs are held "
                "to it",
                msg.topic,
                "ever" if msg.retention_ms is None or msg.retention_ms < 0
                else f"{msg.retention_ms / 1000:.0f}s",
                msg.retention_bytes if msg.retention_bytes is not None else "unlimited",
            )  # fmt: skip

    def _check_retention(self) -> None:
        """The oldest unfinished job of each topic against its retention: metrics,
        and intake held back before the headroom runs out (see RetentionGuard)."""
        assert self._store is not None and self._config is not None
        try:
            oldest = self._store.oldest_unfinished(self._config.kafka.group_id)
        except JobStoreError as exc:
            self._store_error("count", "job store: %s", exc)
            return
        was_holding = self._retention.holding
        self._headroom = self._retention.observe(oldest, time.time())
        for h in self._headroom:
            metrics.retention_state(h.topic, h.oldest_job_age_s, h.retention_s, h.headroom_s)
        if self._retention.holding and not was_holding:
            worst = min(
                (h for h in self._headroom if h.headroom_s is not None),
                key=lambda h: h.headroom_s or 0.0,
            )
            log.warning(
                "the oldest unfinished job of %s is %.0fs old, %.0fs before its retention "
                "(%.0fs) may delete its records: new batches are held back until the oldest "
                "jobs are done",
                worst.topic,
                worst.oldest_job_age_s,
                worst.headroom_s or 0.0,
                worst.retention_s or 0.0,
            )
        elif was_holding and not self._retention.holding:
            log.info("retention headroom is back: new batches are admitted again")
            self._release_held()

    def receiveMsg_BatchNotification(self, msg: BatchNotification, sender: Any) -> None:
        if self._store is None:
            return  # not started: no ACK, the Consumer retransmits
        if not self._accepting():
            # Held at most up to the consumers' in-flight byte cap; past it the
            # batch is let go (unACKed, so its Consumer sends it again later).
            self._held.hold(msg, sender)
            # Say so, or the Consumer would resend it on every ACK timeout.
            self._answer(sender, BatchHeld(msg.interval))
            return
        self._persist(msg, sender)

    def receiveMsg_ConsumerExited(self, msg: ConsumerExited, sender: Any) -> None:
        self._exited_consumers.append(msg.consumer)
        dropped = self._held.forget_sender(msg.consumer) + self._parked.forget_sender(msg.consumer)
        if dropped:
            log.info("dropped %d held or parked batch(es) of a consumer that exited (its "
                     "partitions are read again)", dropped)  # fmt: skip

    def _answer(self, consumer: Any, message: BatchAck | BatchHeld) -> None:
        if consumer not in self._exited_consumers:
            self.send(consumer, message)

    def _persist(self, msg: BatchNotification, sender: Any) -> bool:
        """Submit a batch, then any parked batches the chain now reaches, in order.
        False when the store could not persist (nothing ACKed)."""
        result = self._submit(msg, sender)
        while result is not None and result.verdict is not ChainVerdict.OUT_OF_ORDER:
            parked = self._parked.take_next(
                msg.consumer_group, msg.interval.topic, msg.interval.partition, result.next_offset
            )
            if parked is None:
                break
            result = self._submit(*parked)
        return result is not None

    def _submit(self, msg: BatchNotification, sender: Any) -> SubmitResult | None:
        assert self._store is not None
        interval = msg.interval
        try:
            result = self._store.submit_batch(
                BatchSubmission(
                    msg.consumer_group,
                    interval.topic,
                    interval.partition,
                    interval.start,
                    interval.end,
                    msg.record_count,
                    msg.starts_assignment,
                ),
                time.time(),
            )
        except JobStoreError as exc:
            # Nothing persisted, so nothing ACKed: the Consumer will retransmit.
            self._store_error("submit", "job store cannot persist: %s", exc)
            return None
        verdict = result.verdict
        metrics.chain_verdict(interval.topic, verdict.value, result.gap)
        if verdict is ChainVerdict.OUT_OF_ORDER:
            # An earlier batch is still on its way (actor messages can overtake one
            # another under load): park this one, unACKed, until the gap closes,
            # instead of making its Consumer wait for a retransmission.
            self.stats["out_of_order"] += 1
            self._parked.park(msg, sender)
            return result
        if verdict is ChainVerdict.DUPLICATE:
            self.stats["duplicates"] += 1
        elif verdict is ChainVerdict.TRIM:
            self.stats["trimmed"] += 1
        elif verdict is ChainVerdict.GAP:
            self.stats["gaps"] += 1
            log.warning(
                "%s[%d]: offsets [%d, %d) were never read (deleted by retention or a "
                "reset); continuing at %d",
                interval.topic,
                interval.partition,
                interval.start - result.gap,
                interval.start,
                interval.start,
            )
        if verdict.stores:
            self.stats["batches_stored"] += 1
            self._counts.added()
            # Busy workers ask when they finish: only idle ones are woken (one
            # message fewer per job, times the workers, while all are busy).
            self._wake_idle_workers()
        self._answer(sender, BatchAck(interval))
        return result

    def _release_held(self) -> None:
        while self._held and self._accepting():
            entry = self._held.pop_oldest()
            if entry is None or not self._persist(*entry):
                break

    # --- jobs out ----------------------------------------------------------------------------

    def receiveMsg_RequestJob(self, msg: RequestJob, sender: Any) -> None:
        if self._store is None or not self._admission.hands_out_jobs:
            # Not started (its start wakes every worker), or quiescing (for good).
            self.send(sender, NoJobAvailable())
            return
        claimed = None
        if not self._leases.holds(msg.worker_id):  # held: its outcome is not recorded yet
            try:
                assert self._config is not None
                claimed = self._store.claim_next(
                    f"{self._owner}/{msg.host}/{msg.worker_id}",
                    time.time(),
                    self._config.tables.max_running_compactions,
                    msg.reader_at,
                )
            except JobStoreError as exc:
                self._store_error("claim", "job store cannot claim: %s", exc)
        if claimed is None:
            # Idle until told jobs are available: by the next batch stored, or by
            # the tick once a waiting job is due (see _wake_idle_workers).
            self._upkeep.worker_idle(msg.worker_id)
            self.send(sender, NoJobAvailable())
            return
        self._counts.moved(JobStatus.PENDING, JobStatus.RUNNING)
        self._upkeep.worker_busy(msg.worker_id)
        job = claimed.record
        assert self._config is not None
        deadline = time.monotonic() + self._config.jobs.job_timeout_s
        self._leases.grant(msg.worker_id, sender, msg.host, job.id, claimed.token, deadline)
        metrics.job_attempt_started()
        self.send(
            sender,
            JobAssignment(
                job.id,
                claimed.token,
                _interval(job),
                job.kind.value,
                job.window_ms,
            ),
        )

    # --- outcomes ----------------------------------------------------------------------------

    def receiveMsg_JobDone(self, msg: JobDone, sender: Any) -> None:
        metrics.job_attempt_ran("done", msg.duration_s)
        if msg.deleted is not None:
            self._deleted_before_read(msg)
        outcome = Outcome(
            done=True,
            output_files=msg.output_files,
            valid_records=msg.valid_records,
            dead_letters_by_reason=msg.dead_letters_by_reason,
            table_files=msg.table_files,
            removes=msg.removes,
        )
        self._report(msg.worker_id, sender, msg.host, msg.job_id, msg.token, outcome)

    def _deleted_before_read(self, msg: JobDone) -> None:
        """Counted like offsets a reset skipped (a gap in the chain), never silently."""
        assert msg.deleted is not None
        first, end = msg.deleted
        self.stats["gaps"] += 1
        self.stats["offsets_deleted_before_read"] += end - first
        record = self._store.get(msg.job_id) if self._store is not None else None
        topic = record.topic if record is not None else "?"
        metrics.offsets_deleted_before_read(topic, end - first)
        log.error(
            "job %d (%s[%s]): offsets [%d, %d) were deleted by retention before it ran",
            msg.job_id,
            topic,
            record.partition if record is not None else "?",
            first,
            end,
        )

    def receiveMsg_JobFailed(self, msg: JobFailed, sender: Any) -> None:
        metrics.job_attempt_ran("failed", msg.duration_s)
        metrics.job_attempt_failed("transient" if msg.transient else "handler_error")
        outcome = Outcome(done=False, error=msg.error, transient=msg.transient)
        self._report(msg.worker_id, sender, msg.host, msg.job_id, msg.token, outcome)

    def receiveMsg_WorkerLost(self, msg: WorkerLost, sender: Any) -> None:
        self._upkeep.worker_busy(msg.worker_id)
        lease = self._leases.pop(msg.worker_id)
        if lease is None or lease.outcome is not None:
            return  # nothing running there, or it finished and awaits recording
        metrics.job_attempt_failed("worker_lost")
        error = f"worker {lease.host}/{msg.worker_id} died while running the job"
        self._report(msg.worker_id, None, lease.host, lease.job_id, lease.token, _failed(error))
        self._check_quiesced()

    def _report(
        self, worker_id: str, worker: Any, host: str, job_id: int, token: int, outcome: Outcome
    ) -> None:
        """A worker (or lease expiry, or a lost worker) ended an attempt: record it.
        Until the store has recorded it the lease stays (it must not expire into
        a second failure) and the outcome is retried every tick, so a store
        error at completion never leaves a job RUNNING for ever."""
        self._leases.report(worker_id, job_id, outcome)
        self._unrecorded[(job_id, token)] = _Unrecorded(worker_id, worker, host, outcome)
        self._record(job_id, token)

    def _record(self, job_id: int, token: int) -> None:
        entry = self._unrecorded[(job_id, token)]
        try:
            if entry.outcome.done:
                self._record_done(job_id, token, entry)
            else:
                self._record_failure(job_id, token, entry)
        except JobStoreError as exc:
            operation = "complete" if entry.outcome.done else "fail"
            self._store_error(
                operation, "cannot record job %d (retried every tick): %s", job_id, exc
            )
            return
        del self._unrecorded[(job_id, token)]
        self._leases.end(entry.worker_id, job_id)
        self._check_quiesced()

    def _record_done(self, job_id: int, token: int, entry: _Unrecorded) -> None:
        assert self._store is not None
        outcome = entry.outcome
        if not outcome.committed and "raw" in self._committers:
            record = self._store.get(job_id)
            if record is None:
                return
            # Written, not yet published: the worker is free, the job stays RUNNING.
            # An ingestion job with no rows (every record dead-lettered) is published
            # too, without files: its offsets must still advance the table's chain,
            # or the partition's next jobs would wait for it for ever.
            if outcome.table_files or record.kind is JobKind.INGEST:
                publishing = _Publishing(record, outcome, {"raw"})
                self._awaiting_commit[(job_id, token)] = publishing
                self._publish(job_id, token, publishing, "raw")
                return
        if not self._store.complete(job_id, token, outcome.output_files, time.time()):
            self._stale(job_id, token, entry)
            return
        self._counts.moved(JobStatus.RUNNING, JobStatus.DONE)
        self.stats["jobs_done"] += 1
        metrics.job_finished("DONE")
        if "raw" not in self._committers:  # plain Parquet: every job ingests
            self._ingested(outcome)
        if self._windows is not None and not outcome.table_files:
            record = self._store.get(job_id)  # an empty compaction: nothing to publish
            if record is not None and record.window_ms is not None:
                self._windows.compacted(record.window_ms, time.monotonic())
                metrics.compaction_done()
        metrics.records_written(outcome.valid_records)
        metrics.dead_letters(outcome.dead_letters_by_reason)
        if self._output.succeeded():
            log.info("the output is writable again; resuming consumption")
        self._job_finished()

    def _ingested(self, outcome: Outcome) -> None:
        """An ingestion job's rows and files are in the output (for the status;
        a compaction rewrites rows, it adds none)."""
        self.stats["rows_ingested"] += outcome.valid_records
        self.stats["files_ingested"] += len(outcome.output_files)

    def _publish(self, job_id: int, token: int, publishing: _Publishing, table: str) -> None:
        """Hand one table's part of an attempt to that table's committer."""
        record, files = publishing.record, publishing.files_of(table)
        committer = self._committers.get(table)
        if committer is None:
            return
        if record.kind is JobKind.COMPACT:
            assert record.window_ms is not None
            day, hour = _partition_of(record.window_ms)
            removes = publishing.outcome.removes if table == "raw" else None
            message: Any = ReplaceFiles(
                job_id, token, (("date", day), ("hour", hour)), removes, files, table
            )
        else:
            message = _commit_files(record, token, files)
        self.send(committer, message)

    def _record_failure(self, job_id: int, token: int, entry: _Unrecorded) -> None:
        assert self._store is not None and self._retry is not None
        outcome, now = entry.outcome, time.time()
        record = self._store.get(job_id)
        if outcome.transient:
            delay: float | None = self._output.transient_failure(outcome.error, time.monotonic())
        else:
            # The retry budget counts attempts since the job's last replay.
            attempt = token - (record.replay_base if record is not None else 0)
            delay = self._retry.delay_after(attempt, self._rng)
        status = self._store.fail_attempt(
            job_id,
            token,
            outcome.error,
            None if delay is None else now + delay,
            now,
            counts_attempt=not outcome.transient,
        )
        if status is None:
            self._stale(job_id, token, entry)
            return
        self._counts.moved(JobStatus.RUNNING, status)
        self.stats["attempts_failed"] += 1
        if record is not None and record.kind is JobKind.COMPACT:
            metrics.compaction_failed(final=status is JobStatus.FAILED)
        if outcome.transient:
            self.stats["transient_failures"] += 1
            metrics.job_retry_scheduled()
            self._errors.log(
                logging.WARNING,
                "transient",
                "the output cannot be written (%s): consumption paused; job %d retried in "
                "%.1fs without using an attempt",
                outcome.error,
                job_id,
                delay or 0,
            )
        elif status is JobStatus.FAILED:
            self.stats["jobs_failed"] += 1
            metrics.job_finished("FAILED")
            log.error("job %d FAILED after %d attempt(s): %s", job_id, token, outcome.error)
            if self._windows is not None and record is not None and record.window_ms is not None:
                self._windows.compaction_failed(record.window_ms)
            if record is not None:
                self._discard(entry, token, record, outcome.error)
                self._skip_in_table(record)
            self._job_finished()
        else:
            metrics.job_retry_scheduled()
            log.warning(
                "job %d attempt %d failed, retry in %.1fs: %s",
                job_id,
                token,
                delay or 0,
                outcome.error,
            )

    def _skip_in_table(self, record: JobRecord) -> None:
        """A FAILED ingestion job wrote nothing, but the raw table's chain must
        account for its offsets (its records are dead-lettered), or the
        partition's later jobs would wait for it for ever."""
        committer = self._committers.get("raw")
        if committer is None or record.kind is not JobKind.INGEST:
            return
        self.send(committer, _commit_files(record, record.attempts, (), failed=True))

    def _discard(self, entry: _Unrecorded, token: int, record: JobRecord, error: str) -> None:
        """The job ended FAILED with this (current) token: its records go to the
        dead-letter topic and its final attempt's output goes. The worker that
        ran it does both; if that worker is gone, a worker the WorkerMaster picks."""
        discard = DiscardAttempt(
            record.id,
            token,
            _interval(record),
            error,
            record.kind.value,
        )
        target = entry.worker if entry.worker is not None else self._worker_master
        self.send(target, discard)

    def _stale(self, job_id: int, token: int, entry: _Unrecorded) -> None:
        self.stats["stale_completions"] += 1
        metrics.stale_completion()
        log.warning(
            "rejected a stale %s of job %d (token %d) from %s/%s",
            "completion" if entry.outcome.done else "failure",
            job_id,
            token,
            entry.host,
            entry.worker_id,
        )

    def _job_finished(self) -> None:
        self._release_held()
        self._check_quiesced()

    def _store_error(self, operation: str, message: str, *args: Any) -> None:
        self.stats["store_errors"] += 1
        metrics.store_error(operation)
        self._errors.log(logging.ERROR, operation, message, *args)

    # --- periodic ----------------------------------------------------------------------------

    def receiveMsg_WakeupMessage(self, msg: WakeupMessage, sender: Any) -> None:
        """Every TICK_S: what lives in memory. The store is asked only with the
        chores (every STORE_CHORES_S) or when an idle worker may have a job due."""
        if self._store is None:
            return
        if self.exit_if_orphaned("closing the job store and exiting"):
            return
        now = time.monotonic()
        for job_id, token in list(self._unrecorded):
            self._record(job_id, token)
        self._expire_leases()
        self._schedule_compactions()
        chores = self._upkeep.store_chores_due(now)
        if chores:
            self._heartbeat()
            self._requeue_orphaned()
            self._recount()
        if chores or self._retention.holding:  # holding: released as soon as it may be
            self._check_retention()
        self._release_held()
        # A lost JobAvailable, or a job another JobManager made due, is found with
        # the chores; a worker told "no job" while jobs wait (a retry's backoff,
        # the compaction limit) is woken once one is due.
        if chores and self._counts[JobStatus.PENDING]:
            self._wake_workers()
        elif self._upkeep.workers_idle and self._counts[JobStatus.PENDING] and self._jobs_due():
            self._wake_idle_workers()
        self._check_quiesced()
        self._push_status()
        self.wakeupAfter(timedelta(seconds=TICK_S))

    def _wake_idle_workers(self) -> None:
        if self._upkeep.workers_idle:
            self._wake_workers()

    def _wake_workers(self) -> None:
        self._upkeep.woken()
        self.send(self._worker_master, JobsAvailable())

    def _jobs_due(self) -> bool:
        assert self._store is not None
        try:
            due = self._store.next_due_at()
        except JobStoreError as exc:
            self._store_error("count", "job store: %s", exc)
            return False
        return due is None or due <= time.time()

    def _recount(self) -> None:
        assert self._store is not None
        try:
            self._counts.recounted(self._store.count_by_status())
        except JobStoreError as exc:
            self._store_error("count", "job store: %s", exc)

    def _schedule_compactions(self) -> None:
        """Closed hours become durable compaction jobs (one at a time per hour)."""
        if self._windows is None or self._store is None:
            return
        for hour_ms in self._windows.due_compactions(time.monotonic()):
            try:
                created = self._store.submit_compaction("raw", hour_ms, time.time())
            except JobStoreError as exc:
                self._store_error("submit", "cannot store a compaction job: %s", exc)
                return
            self._windows.compacting(hour_ms)
            if created is not None:
                self._counts.added()
                log.info("event hour %s is closed: compaction job %d", _iso_hour(hour_ms), created)
                self._wake_workers()

    def _expire_leases(self) -> None:
        assert self._config is not None
        for lease in self._leases.expired(time.monotonic()):
            log.warning(
                "job %d overran its lease on %s/%s; replacing the worker",
                lease.job_id,
                lease.host,
                lease.worker_id,
            )
            self.send(self._worker_master, ReplaceWorker(lease.worker_id))
            metrics.job_attempt_failed("timeout")
            error = f"timed out after {self._config.jobs.job_timeout_s}s"
            # The replaced worker may still be running: a DiscardAttempt goes to
            # the WorkerMaster (a fresh worker), never to it.
            self._unrecorded[(lease.job_id, lease.token)] = _Unrecorded(
                lease.worker_id, None, lease.host, _failed(error)
            )
            self._record(lease.job_id, lease.token)

    def _heartbeat(self) -> None:
        assert self._store is not None
        try:
            self._store.heartbeat(self._owner, time.time())
        except JobStoreError as exc:
            self._errors.log(logging.ERROR, "heartbeat", "job store: %s", exc)

    def _requeue_orphaned(self) -> None:
        """RUNNING jobs of a JobManager that stopped heartbeating (its daemon died,
        possibly on another host sharing this store) would never finish: take
        them back. Their late completions, if any, carry stale tokens."""
        assert self._store is not None
        try:
            count = self._store.requeue_orphaned(time.time() - MANAGER_SILENT_S, time.time())
        except JobStoreError as exc:
            self._errors.log(logging.ERROR, "orphans", "job store: %s", exc)
            return
        if count:
            self._counts.moved(JobStatus.RUNNING, JobStatus.PENDING, count)
            log.warning(
                "requeued %d job(s) of a job manager that stopped (no heartbeat for %.0fs)",
                count,
                MANAGER_SILENT_S,
            )
            self._wake_workers()

    # --- draining ----------------------------------------------------------------------------

    def receiveMsg_AdmitHeldBatches(self, msg: AdmitHeldBatches, sender: Any) -> None:
        self._admission.admit_held()
        self._release_held()

    def receiveMsg_QuiesceJobs(self, msg: QuiesceJobs, sender: Any) -> None:
        self._admission.quiesce(sender, msg.deadline_s, time.monotonic())
        self._check_quiesced()

    def _check_quiesced(self) -> None:
        busy = len(self._leases) + len(self._awaiting_commit)
        reply = self._admission.quiesce_reply(busy, time.monotonic())
        if reply is not None:
            self.send(*reply)

    def receiveMsg_ActorExitRequest(self, msg: ActorExitRequest, sender: Any) -> None:
        if self._store is not None:
            self._store.close()
        if self._dead_letters is not None:
            self._dead_letters.flush(5)

    # --- inspection --------------------------------------------------------------------------

    def _push_status(self) -> None:
        """Sent when it changed, or every few seconds (see push_status)."""
        by_status = self._counts.by_status()
        # Ready means the store answered, and nothing failed on it since the last tick.
        store_ok = self.stats["store_errors"] == self._store_errors_at_push
        self._store_errors_at_push = self.stats["store_errors"]
        metrics.job_manager_state(by_status, len(self._held), store_ok)
        if self._windows is not None:
            metrics.open_windows(self._windows.open_windows())
        snapshot = JobManagerStatus(
            jobs=by_status,
            running_by_host=self._leases.running_by_host(),
            held_batches=len(self._held),
            parked_batches=len(self._parked),
            unfinished=self._counts.unfinished,
            unrecorded_outcomes=len(self._unrecorded),
            awaiting_commit=len(self._awaiting_commit),
            open_windows=self._windows.open_windows() if self._windows else 0,
            output_ok=self._output.healthy,
            output_error=self._output.last_error if not self._output.healthy else "",
            store_ok=store_ok,
            retention_hold=self._retention.holding,
            retention=tuple(
                RetentionStatus(
                    h.topic,
                    round(h.oldest_job_age_s, 1),
                    h.retention_s,
                    None if h.headroom_s is None else round(h.headroom_s, 1),
                )
                for h in self._headroom
            ),
            counters=dict(self.stats),
        )
        self.push_status(self._supervisor, snapshot)


def _commit_files(
    record: JobRecord, token: int, files: tuple[str, ...], failed: bool = False
) -> CommitFiles:
    return CommitFiles(
        record.id,
        token,
        record.consumer_group,
        _interval(record),
        record.chain_start,
        files,
        failed,
        replay=record.replay_base > 0 and not failed,
    )


def _interval(record: JobRecord) -> OffsetInterval:
    """The offsets a job row stands for (a compaction's: its hour, in epoch ms)."""
    return OffsetInterval(record.topic, record.partition, record.start_offset, record.end_offset)


def _failed(error: str) -> Outcome:
    return Outcome(done=False, error=error)
