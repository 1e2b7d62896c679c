"""JobManager: the single authority on jobs.

Persists each batch as a job (offset chain applied in the store's
transaction), then ACKs; hands jobs to workers that ask (work pulling);
tracks attempts with tokens and leases; retries failures with backoff from a
durable delay queue; dead-letters a job's records after its last attempt.
Everything it knows it recovers from the store when it is recreated.
"""

from __future__ import annotations

import logging
import os
import random
import time
from collections import OrderedDict
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from thespian.actors import ActorExitRequest, ActorTypeDispatcher, WakeupMessage

from actorsys import metrics
from actorsys.actors.lifeline import ParentWatch
from actorsys.config import AppConfig
from actorsys.errors import ActorsysError, JobStoreError
from actorsys.jobs.model import BatchSubmission, JobStatus, SubmitResult
from actorsys.jobs.open import open_job_store
from actorsys.jobs.policy import RetryPolicy
from actorsys.jobs.store import JobStore
from actorsys.logs import RateLimitedLog
from actorsys.messages import (
    BatchAck,
    BatchHeld,
    BatchNotification,
    ComponentReady,
    ComponentStatus,
    JobAssignment,
    JobDone,
    JobFailed,
    JobManagerStart,
    JobsAvailable,
    JobsQuiesced,
    NoJobAvailable,
    QuiesceJobs,
    ReplaceWorker,
    RequestJob,
    StartFailed,
    WorkerLost,
    WorkerMasterMoved,
)
from actorsys.offset_chain import ChainVerdict

log = logging.getLogger("actorsys.job_manager")

TICK_S = 1.0
MAX_PARKED_PER_PARTITION = 256
HEARTBEAT_EVERY_TICKS = 2
ORPHAN_CHECK_EVERY_TICKS = 5
# A JobManager silent this long is dead: its RUNNING jobs are taken back.
MANAGER_SILENT_S = 15.0


@dataclass(frozen=True, slots=True)
class _Lease:
    job_id: int
    token: int
    worker: Any  # the worker's address
    host: str
    deadline: float  # monotonic


@dataclass
class _Quiesce:
    deadline: float
    reply_to: Any


class JobManager(ActorTypeDispatcher):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._config: AppConfig | None = None
        self._bootstrap_servers = ""
        self._store: JobStore | None = None
        self._worker_master: Any = None
        self._supervisor: Any = None
        self._leases: dict[str, _Lease] = {}  # by worker id
        self._unfinished = 0  # PENDING + RUNNING, for the cap
        # Notifications held back while the cap is reached, deduplicated by interval.
        self._held: OrderedDict[tuple[str, int, int, int], tuple[BatchNotification, Any]] = (
            OrderedDict()
        )
        self._quiesce: _Quiesce | None = None
        self._retry: RetryPolicy | None = None
        self._rng = random.Random()
        self._errors = RateLimitedLog(log)
        self._dead_letters: Any = None
        self._store_errors_at_push = 0  # for store_ok: no store error since the last push
        self._owner = ""
        # Out-of-order batches waiting for their predecessor, by partition and start.
        self._parked: dict[tuple[str, str, int], dict[int, tuple[BatchNotification, Any]]] = {}
        self._ticks = 0
        self._parent = ParentWatch()
        self.stats = {
            "batches_stored": 0,
            "duplicates": 0,
            "trimmed": 0,
            "gaps": 0,
            "out_of_order": 0,
            "stale_completions": 0,
            "jobs_done": 0,
            "jobs_failed": 0,
            "attempts_failed": 0,
            "store_errors": 0,
        }

    # --- start-up ---------------------------------------------------------------------------

    def receiveMsg_JobManagerStart(self, msg: JobManagerStart, sender: Any) -> None:
        self._config = msg.config
        self._bootstrap_servers = msg.bootstrap_servers
        self._worker_master = msg.worker_master
        self._supervisor = sender
        jobs = msg.config.jobs
        self._retry = RetryPolicy(
            jobs.max_attempts, jobs.retry_backoff_initial_s, jobs.retry_backoff_max_s
        )
        try:
            # Jobs are claimed in this JobManager's name: after a restart it takes
            # back only its own, when several daemons share one store.
            daemon = msg.config.daemon
            self._owner = f"{daemon.host_name or os.uname().nodename}:{daemon.admin_port}"
            self._store = open_job_store(jobs.store)
            self._store.heartbeat(self._owner, time.time())
            recovered = self._store.recover_running(time.time(), owner=self._owner)
            self._unfinished = self._count_unfinished()
        except ActorsysError as exc:
            self.send(sender, StartFailed("job_manager", str(exc)))
            return
        if recovered:
            log.info("recovered %d job(s) that were running; they will run again", recovered)
        self.send(sender, ComponentReady("job_manager"))
        self.send(self._worker_master, JobsAvailable())
        self.wakeupAfter(timedelta(seconds=TICK_S))

    def receiveMsg_WorkerMasterMoved(self, msg: WorkerMasterMoved, sender: Any) -> None:
        self._worker_master = msg.worker_master
        # The old pool is gone with its master: its jobs run again elsewhere.
        for worker_id in list(self._leases):
            self.receiveMsg_WorkerLost(WorkerLost(worker_id), sender)
        self.send(self._worker_master, JobsAvailable())

    def _count_unfinished(self) -> int:
        assert self._store is not None
        counts = self._store.count_by_status()
        return counts.get(JobStatus.PENDING, 0) + counts.get(JobStatus.RUNNING, 0)

    # --- batches in -------------------------------------------------------------------------

    def receiveMsg_BatchNotification(self, msg: BatchNotification, sender: Any) -> None:
        if self._store is None:
            return  # not started: no ACK, the Consumer retransmits
        if self._unfinished >= self._config.flow.max_pending_jobs:  # type: ignore[union-attr]
            # Back-pressure: hold the ACK. Consumers stop at their caps, so this
            # holds at most the configured in-flight bytes.
            self._held[(msg.topic, msg.partition, msg.start, msg.end)] = (msg, sender)
            # Say so, or the Consumer would resend it on every ACK timeout.
            self.send(sender, BatchHeld(msg.topic, msg.partition, msg.start, msg.end))
            return
        self._persist(msg, sender)

    def _persist(self, msg: BatchNotification, sender: Any) -> bool:
        """Submit a batch, then any parked batches the chain now reaches, in order.
        False when the store could not persist (nothing ACKed)."""
        result = self._submit(msg, sender)
        key = (msg.consumer_group, msg.topic, msg.partition)
        while result is not None and result.verdict is not ChainVerdict.OUT_OF_ORDER:
            parked = self._parked.get(key)
            if not parked or min(parked) > result.next_offset:
                break
            result = self._submit(*parked.pop(min(parked)))
        return result is not None

    def _submit(self, msg: BatchNotification, sender: Any) -> SubmitResult | None:
        assert self._store is not None
        try:
            result = self._store.submit_batch(
                BatchSubmission(
                    msg.consumer_group,
                    msg.topic,
                    msg.partition,
                    msg.start,
                    msg.end,
                    msg.record_count,
                    msg.payload,
                    msg.starts_assignment,
                ),
                time.time(),
            )
        except JobStoreError as exc:
            # Nothing persisted, so nothing ACKed: the Consumer will retransmit.
            self.stats["store_errors"] += 1
            metrics.store_error("submit")
            self._errors.log(logging.ERROR, "submit", "job store cannot persist: %s", exc)
            return None
        verdict = result.verdict
        metrics.chain_verdict(msg.topic, verdict.value, result.gap)
        key = (msg.consumer_group, msg.topic, msg.partition)
        if verdict is ChainVerdict.OUT_OF_ORDER:
            # An earlier batch is still on its way (actor messages can overtake one
            # another under load): park this one, unACKed, until the gap closes,
            # instead of making its Consumer wait for a retransmission.
            self.stats["out_of_order"] += 1
            parked = self._parked.setdefault(key, {})
            parked[msg.start] = (msg, sender)
            if len(parked) > MAX_PARKED_PER_PARTITION:  # the Consumer retransmits it anyway
                parked.pop(max(parked))
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
                msg.topic,
                msg.partition,
                msg.start - result.gap,
                msg.start,
                msg.start,
            )
        if verdict.stores:
            self.stats["batches_stored"] += 1
            self._unfinished += 1
            self.send(self._worker_master, JobsAvailable())
        self.send(sender, BatchAck(msg.topic, msg.partition, msg.start, msg.end))
        return result

    def _release_held(self) -> None:
        cap = self._config.flow.max_pending_jobs  # type: ignore[union-attr]
        while self._held and self._unfinished < cap:
            _key, (msg, sender) = self._held.popitem(last=False)
            if not self._persist(msg, sender):
                break

    # --- jobs out ----------------------------------------------------------------------------

    def receiveMsg_RequestJob(self, msg: RequestJob, sender: Any) -> None:
        if self._store is None or self._quiesce is not None or msg.worker_id in self._leases:
            self.send(sender, NoJobAvailable())
            return
        try:
            claimed = self._store.claim_next(
                f"{self._owner}/{msg.host}/{msg.worker_id}", time.time()
            )
        except JobStoreError as exc:
            self.stats["store_errors"] += 1
            metrics.store_error("claim")
            self._errors.log(logging.ERROR, "claim", "job store cannot claim: %s", exc)
            self.send(sender, NoJobAvailable())
            return
        if claimed is None:
            self.send(sender, NoJobAvailable())
            return
        job = claimed.record
        timeout = self._config.jobs.job_timeout_s  # type: ignore[union-attr]
        self._leases[msg.worker_id] = _Lease(
            job.id, claimed.token, sender, msg.host, time.monotonic() + timeout
        )
        metrics.job_attempt_started()
        self.send(
            sender,
            JobAssignment(
                job.id,
                claimed.token,
                job.topic,
                job.partition,
                job.start_offset,
                job.end_offset,
                claimed.payload,
            ),
        )

    def receiveMsg_JobDone(self, msg: JobDone, sender: Any) -> None:
        metrics.job_attempt_ran("done", msg.duration_s)
        self._end_lease(msg.worker_id, msg.job_id)
        try:
            accepted = self._store.complete(
                msg.job_id,
                msg.token,
                msg.output_files,  # type: ignore[union-attr]
                time.time(),
            )
        except JobStoreError as exc:
            # The job stays RUNNING; its lease expiry will run it again (idempotent).
            self.stats["store_errors"] += 1
            metrics.store_error("complete")
            self._errors.log(
                logging.ERROR, "complete", "cannot record job %d done: %s", msg.job_id, exc
            )
            return
        if not accepted:
            self.stats["stale_completions"] += 1
            metrics.stale_completion()
            log.warning(
                "rejected a stale completion of job %d (token %d) from %s/%s",
                msg.job_id,
                msg.token,
                msg.host,
                msg.worker_id,
            )
            return
        self.stats["jobs_done"] += 1
        metrics.job_finished("DONE")
        metrics.records_written(msg.valid_records)
        metrics.dead_letters(msg.dead_letters_by_reason)
        self._job_finished()

    def receiveMsg_JobFailed(self, msg: JobFailed, sender: Any) -> None:
        metrics.job_attempt_ran("failed", msg.duration_s)
        metrics.job_attempt_failed("handler_error")
        self._end_lease(msg.worker_id, msg.job_id)
        self._fail_attempt(msg.job_id, msg.token, msg.error)

    def _fail_attempt(self, job_id: int, token: int, error: str) -> None:
        assert self._store is not None and self._retry is not None
        now = time.time()
        try:
            # The retry budget counts attempts since the job's last replay.
            record = self._store.get(job_id)
            attempt = token - (record.replay_base if record is not None else 0)
            delay = self._retry.delay_after(attempt, self._rng)
            status = self._store.fail_attempt(
                job_id, token, error, None if delay is None else now + delay, now
            )
        except JobStoreError as exc:
            self.stats["store_errors"] += 1
            metrics.store_error("fail")
            self._errors.log(logging.ERROR, "fail", "cannot record job %d failure: %s", job_id, exc)
            return
        if status is None:
            self.stats["stale_completions"] += 1
            metrics.stale_completion()
            return
        self.stats["attempts_failed"] += 1
        if status is JobStatus.FAILED:
            self.stats["jobs_failed"] += 1
            metrics.job_finished("FAILED")
            log.error("job %d FAILED after %d attempt(s): %s", job_id, token, error)
            self._dead_letter_job(job_id, error)
            self._job_finished()
        else:
            metrics.job_retry_scheduled()
            log.warning(
                "job %d attempt %d failed, retry in %.1fs: %s", job_id, token, delay or 0, error
            )

    def _job_finished(self) -> None:
        self._unfinished = max(0, self._unfinished - 1)
        self._release_held()
        self._check_quiesced()

    def _end_lease(self, worker_id: str, job_id: int) -> None:
        lease = self._leases.get(worker_id)
        if lease is not None and lease.job_id == job_id:
            del self._leases[worker_id]

    def receiveMsg_WorkerLost(self, msg: WorkerLost, sender: Any) -> None:
        lease = self._leases.pop(msg.worker_id, None)
        if lease is not None:
            metrics.job_attempt_failed("worker_lost")
            self._fail_attempt(
                lease.job_id,
                lease.token,
                f"worker {lease.host}/{msg.worker_id} died while running the job",
            )
            self._check_quiesced()

    def _dead_letter_job(self, job_id: int, error: str) -> None:
        """After the last attempt, every record of the job goes to the dead-letter topic."""
        from actorsys.dead_letters import KafkaDeadLetterSink
        from actorsys.kafka_clients import dead_letter_producer
        from actorsys.records import decode_records

        assert self._store is not None and self._config is not None
        record = self._store.get(job_id)
        payload = self._store.payload(job_id)
        if record is None or payload is None:
            return
        try:
            if self._dead_letters is None:
                self._dead_letters = dead_letter_producer(self._config, self._bootstrap_servers)
            sink = KafkaDeadLetterSink(
                self._dead_letters,
                record.topic,
                record.partition,
                dead_letter_topic=self._config.kafka.dead_letter_topic or None,
            )
            for rec in decode_records(payload):
                sink.reject(rec, "job_failed", error)
            sink.flush(30.0)
            metrics.dead_letters(sink.rejected_by_reason().items())
        except ActorsysError as exc:
            log.error(
                "job %d: dead-lettering its records failed (they stay in the job store "
                "for `actorsys jobs retry`): %s",
                job_id,
                exc,
            )

    # --- periodic ----------------------------------------------------------------------------

    def receiveMsg_WakeupMessage(self, msg: WakeupMessage, sender: Any) -> None:
        if self._store is None:
            return
        if self._parent.orphaned():
            log.warning("the Supervisor is gone; closing the job store and exiting")
            self.send(self.myAddress, ActorExitRequest())
            return
        self._ticks += 1
        if self._ticks % HEARTBEAT_EVERY_TICKS == 0:
            self._heartbeat()
        if self._ticks % ORPHAN_CHECK_EVERY_TICKS == 0:
            self._requeue_orphaned()
        now = time.monotonic()
        for worker_id, lease in list(self._leases.items()):
            if lease.deadline <= now:
                del self._leases[worker_id]
                log.warning(
                    "job %d overran its lease on %s/%s; replacing the worker",
                    lease.job_id,
                    lease.host,
                    worker_id,
                )
                self.send(self._worker_master, ReplaceWorker(worker_id))
                metrics.job_attempt_failed("timeout")
                self._fail_attempt(
                    lease.job_id, lease.token, f"timed out after {self._config.jobs.job_timeout_s}s"
                )  # type: ignore[union-attr]
        self._release_held()
        try:
            due = self._store.next_due_at()
            pending = self._store.count_by_status().get(JobStatus.PENDING, 0)
        except JobStoreError:
            self.stats["store_errors"] += 1
            metrics.store_error("count")
            due, pending = None, 0
        if pending and (due is None or due <= time.time()):
            self.send(self._worker_master, JobsAvailable())
        self._check_quiesced()
        self._push_status()
        self.wakeupAfter(timedelta(seconds=TICK_S))

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
            log.warning(
                "requeued %d job(s) of a job manager that stopped (no heartbeat for %.0fs)",
                count,
                MANAGER_SILENT_S,
            )
            self._unfinished = self._count_unfinished()
            self.send(self._worker_master, JobsAvailable())

    # --- draining ----------------------------------------------------------------------------

    def receiveMsg_QuiesceJobs(self, msg: QuiesceJobs, sender: Any) -> None:
        self._quiesce = _Quiesce(time.monotonic() + msg.deadline_s, sender)
        self._check_quiesced()

    def _check_quiesced(self) -> None:
        q = self._quiesce
        if q is None or q.reply_to is None:
            return
        if self._leases and time.monotonic() < q.deadline:
            return
        self.send(q.reply_to, JobsQuiesced(still_running=len(self._leases)))
        q.reply_to = None

    def receiveMsg_ActorExitRequest(self, msg: ActorExitRequest, sender: Any) -> None:
        if self._store is not None:
            self._store.close()
        if self._dead_letters is not None:
            self._dead_letters.flush(5)

    # --- inspection --------------------------------------------------------------------------

    def _push_status(self) -> None:
        try:
            counts = {s.value: n for s, n in self._store.count_by_status().items()}  # type: ignore[union-attr]
        except JobStoreError:
            counts = {}
            self.stats["store_errors"] += 1
            metrics.store_error("count")
        # Ready means the store answered, and nothing failed on it since the last push.
        store_ok = self.stats["store_errors"] == self._store_errors_at_push
        self._store_errors_at_push = self.stats["store_errors"]
        metrics.job_manager_state(counts, len(self._held), store_ok)
        metrics.process_memory("job_manager")
        running_by_host: dict[str, int] = {}
        for lease in self._leases.values():
            running_by_host[lease.host] = running_by_host.get(lease.host, 0) + 1
        self.send(
            self._supervisor,
            ComponentStatus(
                "job_manager",
                {
                    "jobs": counts,
                    "running_by_host": running_by_host,
                    "held_batches": len(self._held),
                    "unfinished": self._unfinished,
                    "store_ok": store_ok,
                    **self.stats,
                },
            ),
        )

    def receiveUnrecognizedMessage(self, msg: Any, sender: Any) -> None:
        log.debug("job manager ignores %s", type(msg).__name__)
