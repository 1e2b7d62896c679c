"""Worker: runs the configured job handler on one job at a time.

Pulls work: asks the JobManager for a job when told jobs are available and
again after each job. A job is an offset interval; the worker reads its
records from Kafka itself (:class:`actorsys.range_reader.RangeReader`, one
``assign()`` consumer per worker, reused), so no record crosses the actor
system and workers on any host add fetch and parse capacity. Blocking in
the handler is fine here (nothing else runs in this process); the
JobManager's lease covers a worker that hangs. Dead letters are flushed
before ``JobDone`` so none is lost.
"""

from __future__ import annotations

import logging
import os
import time
import traceback
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from pathlib import Path
from typing import Any

from confluent_kafka import KafkaException
from thespian.actors import ActorExitRequest, WakeupMessage

from actorsys import metrics
from actorsys.actors.base import ActorsysActor
from actorsys.dead_letters import KafkaDeadLetterSink
from actorsys.errors import ActorsysError
from actorsys.handlers import load_handler_factory
from actorsys.handlers.api import HandlerResult, HandlerSettings, JobHandler, JobInput
from actorsys.job_requests import JobRequests
from actorsys.jobs.output_health import is_transient
from actorsys.kafka_clients import consumer_properties, dead_letter_producer
from actorsys.logs import KafkaClientLog
from actorsys.messages import (
    DiscardAttempt,
    JobAssignment,
    JobAvailable,
    JobDone,
    JobFailed,
    JobManagerMoved,
    NoJobAvailable,
    RequestJob,
    RetireWorker,
    WorkerHello,
    WorkerStart,
)
from actorsys.offsets import OffsetInterval
from actorsys.range_reader import RangeRead, RangeReader, reader_properties
from actorsys.records import Record
from actorsys.roles import Role

log = logging.getLogger("actorsys.worker")

ASK_AGAIN_AFTER_S = 5.0
TICK_S = 1.0
# A job's range must be read within this share of its lease (the rest is for the handler).
READ_SHARE_OF_LEASE = 0.5


class _JobFailure(Exception):
    """The job's handler (or its dead-letter flush) raised; carries the job."""

    def __init__(self, job: JobInput) -> None:
        super().__init__(job.job_id)
        self.job = job


class Worker(ActorsysActor):
    ROLE = Role.WORKER
    PARENT = "its WorkerMaster"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._start: WorkerStart | None = None
        self._job_manager: Any = None
        self._handler: JobHandler | None = None
        self._producer: Any = None
        self._reader: RangeReader | None = None
        self._requests = JobRequests(ASK_AGAIN_AFTER_S)
        self._host = os.uname().nodename
        self._retiring = False
        self._lease_suspect = False
        self._job_thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="job")

    def name(self) -> str:
        return self._start.worker_id if self._start else str(self.ROLE)

    def receiveMsg_WorkerStart(self, msg: WorkerStart, sender: Any) -> None:
        self._start = msg
        self._job_manager = msg.job_manager
        self._host = msg.host
        output = msg.config.output
        try:
            factory = load_handler_factory(output.effective_handler)
            handler = factory(
                HandlerSettings(Path(output.dir), output.metrics, dict(output.options))
            )
            self._producer = dead_letter_producer(msg.config, msg.bootstrap_servers)
            reader = reader_properties(consumer_properties(msg.config, msg.bootstrap_servers))
            self._reader = RangeReader({**reader, "logger": KafkaClientLog()})
        except (ActorsysError, KafkaException) as exc:
            # Never half started: without its handler a worker asks for no job.
            log.error("%s cannot start: %s", msg.worker_id, exc)
            return
        self._handler = handler
        # On the job thread, not waited for: the first job queues behind it.
        self._job_thread.submit(_warm_up, handler, msg.worker_id)
        self.send(sender, WorkerHello(msg.worker_id, self._host, os.getpid()))
        metrics.process_memory(self.ROLE)
        self._ask()
        self.wakeupAfter(timedelta(seconds=TICK_S))

    def receiveMsg_WakeupMessage(self, msg: WakeupMessage, sender: Any) -> None:
        if self.exit_if_orphaned():
            return
        lapsed = self.lease_lapsed()
        if lapsed and self._lease_suspect:
            log.warning("%s: the leader has been silent past its lease; exiting", self.name())
            self.send(self.myAddress, ActorExitRequest())
            return
        # A long job (or a dead-letter flush against a frozen broker) may have kept
        # us from reading the leases queued meanwhile: they come before our next
        # tick, so only a lease still lapsed then means the leader is gone.
        self._lease_suspect = lapsed
        metrics.process_memory(self.ROLE)
        if self._requests.outstanding:
            self._ask()  # a request went unanswered: ask again once it is overdue
        self.wakeupAfter(timedelta(seconds=TICK_S))

    def receiveMsg_JobManagerMoved(self, msg: JobManagerMoved, sender: Any) -> None:
        self._job_manager = msg.job_manager
        self._requests.forget()
        self._ask()

    def receiveMsg_JobAvailable(self, msg: JobAvailable, sender: Any) -> None:
        self._requests.woken()
        self._ask()

    def receiveMsg_NoJobAvailable(self, msg: NoJobAvailable, sender: Any) -> None:
        again = self._requests.no_job()
        if self._retiring:
            self.send(self.myAddress, ActorExitRequest())
            return
        if again:
            self._ask()

    def receiveMsg_RetireWorker(self, msg: RetireWorker, sender: Any) -> None:
        """Take no more jobs; leave once the request in flight (if any) is answered."""
        self._retiring = True
        if not self._requests.outstanding:
            self.send(self.myAddress, ActorExitRequest())

    def receiveMsg_JobAssignment(self, msg: JobAssignment, sender: Any) -> None:
        self._requests.assigned()  # it asks again when this job is done
        assert self._start is not None and self._handler is not None
        started = time.monotonic()
        sink = self._sink(msg.interval.topic, msg.interval.partition)
        try:
            # Run the job on the worker's own thread and wait for it: on Thespian's
            # deep call stack CPython 3.11+ allocates and frees a stack chunk on
            # nearly every call, which made the same handler 3x slower (measured).
            _job, result, deleted = self._job_thread.submit(self._run_job, msg, sink).result()
        except Exception as exc:  # a handler's failure fails this attempt, nothing more
            failure: BaseException = exc
            if isinstance(exc, _JobFailure):
                failure = exc.__cause__ or exc
            detail = "".join(traceback.format_exception_only(failure)).strip()
            transient = is_transient(failure)
            log.warning(
                "job %d attempt %d failed%s: %s",
                msg.job_id,
                msg.token,
                " (transient: the output cannot be written)" if transient else "",
                detail,
            )
            # Nothing is discarded here: this attempt may be stale (another one may
            # already have succeeded with the same output). Only the JobManager can
            # tell, and it says so with a DiscardAttempt once the job is FAILED.
            self.send(
                sender,
                JobFailed(
                    msg.job_id,
                    msg.token,
                    self._start.worker_id,
                    self._host,
                    detail,
                    time.monotonic() - started,
                    transient,
                ),
            )
        else:
            self.send(
                sender,
                JobDone(
                    msg.job_id,
                    msg.token,
                    self._start.worker_id,
                    self._host,
                    result.output_files,
                    result.valid_records,
                    result.invalid_records,
                    time.monotonic() - started,
                    tuple(sorted(sink.rejected_by_reason().items())),
                    result.table_files,
                    result.removes,
                    deleted,
                ),
            )
        self._ask()

    def _run_job(
        self, msg: JobAssignment, sink: KafkaDeadLetterSink
    ) -> tuple[JobInput, Any, tuple[int, int] | None]:
        assert self._handler is not None and self._start is not None
        if msg.kind == "compact":
            job = _job_input(msg.job_id, msg.interval, [], msg.token)
            return job, self._compact(msg), None
        read = self._read(msg.interval)
        job = _job_input(msg.job_id, msg.interval, read.records, msg.token)
        try:
            result = self._handler.handle(job, sink)
            sink.flush(30.0)
        except Exception as exc:
            raise _JobFailure(job) from exc
        return job, result, read.deleted

    def _read(self, interval: OffsetInterval) -> RangeRead:
        """The job's records, from Kafka; raises RangeUnavailable (transient)."""
        assert self._reader is not None and self._start is not None
        timeout_s = self._start.config.jobs.job_timeout_s * READ_SHARE_OF_LEASE
        read = self._reader.read(
            interval.topic, interval.partition, interval.start, interval.end, timeout_s
        )
        if read.deleted is not None:
            first, last = read.deleted
            log.error(
                "%s[%d]: offsets [%d, %d) were deleted by retention before their job "
                "ran; %d offset(s) lost, the rest of [%d, %d) is processed",
                interval.topic,
                interval.partition,
                first,
                last,
                last - first,
                interval.start,
                interval.end,
            )
        return read

    def _compact(self, msg: JobAssignment) -> HandlerResult:
        """Rewrite one closed hour of ``raw`` into few sorted files, and compute
        its final aggregates; the committers publish them (nothing here does)."""
        from datetime import UTC, datetime

        from deltalake import DeltaTable

        from actorsys.tables.compaction import compact_hour

        assert self._start is not None and msg.window_ms is not None
        output, tables = self._start.config.output, self._start.config.tables
        root = Path(output.dir)
        hour = datetime.fromtimestamp(msg.window_ms / 1000, UTC)
        date = hour.date().isoformat()
        raw = DeltaTable(str(root / "raw"))
        selector = [("date", "=", date), ("hour", "=", str(hour.hour))]
        prefix = str(root / "raw") + "/"
        inputs = sorted(uri.removeprefix(prefix) for uri in raw.file_uris(selector))
        result = compact_hour(
            root / "raw",
            root / "agg",
            root / "agg_hourly",
            date,
            hour.hour,
            inputs,
            output.metrics,
            job_id=msg.job_id,
            attempt=msg.token,
            version=msg.job_id,
            target_file_bytes=tables.compaction_target_mb * 1024 * 1024,
            row_group_rows=tables.row_group_rows,
            memory_limit=f"{tables.compaction_memory_mb}MB",
        )
        files = (
            *(("raw", f.to_json()) for f in result.raw),
            *(("agg", f.to_json()) for f in result.agg),
            *(("agg_hourly", f.to_json()) for f in result.agg_hourly),
        )
        return HandlerResult((), result.rows, 0, table_files=files, removes=result.removes)

    def receiveMsg_DiscardAttempt(self, msg: DiscardAttempt, sender: Any) -> None:
        """The JobManager recorded the job FAILED with this attempt's token: let
        the handler remove what it wrote (if it can), so the job's records are
        only in the dead-letter topic."""
        self._dead_letter(msg)
        discard = getattr(self._handler, "discard", None)
        if discard is None:
            return
        job = _job_input(msg.job_id, msg.interval, [])
        try:
            discard(job)
        except Exception as exc:  # best effort: the job's records are dead-lettered anyway
            log.warning("job %d: discarding the failed job's output: %s", msg.job_id, exc)

    def _dead_letter(self, msg: DiscardAttempt) -> None:
        """Every record of the FAILED job goes to the dead-letter topic, read again
        from Kafka. If that fails the job stays FAILED in the store, where
        `actorsys jobs retry` can replay it (its records are in Kafka until retention)."""
        if msg.kind != "ingest" or self._producer is None or self._start is None:
            return
        sink = self._sink(msg.interval.topic, msg.interval.partition)
        try:
            read = self._job_thread.submit(self._read, msg.interval).result()
            for record in read.records:
                sink.reject(record, "job_failed", msg.error)
            sink.flush(30.0)
        except ActorsysError as exc:
            log.error(
                "job %d: dead-lettering its records failed (it stays FAILED for "
                "`actorsys jobs retry`): %s",
                msg.job_id,
                exc,
            )
            return
        metrics.dead_letters(sink.rejected_by_reason().items())

    def _sink(self, topic: str, partition: int) -> KafkaDeadLetterSink:
        assert self._start is not None
        return KafkaDeadLetterSink(
            self._producer,
            topic,
            partition,
            dead_letter_topic=self._start.config.kafka.dead_letter_topic,
        )

    def _ask(self) -> None:
        if self._start is None or self._handler is None:
            return
        if self._retiring:
            self.send(self.myAddress, ActorExitRequest())
            return
        if not self._requests.ask(time.monotonic()):
            return
        position = self._reader.position if self._reader is not None else None
        self.send(self._job_manager, RequestJob(self._start.worker_id, self._host, position))

    def receiveMsg_ActorExitRequest(self, msg: ActorExitRequest, sender: Any) -> None:
        self._job_thread.shutdown(wait=False)
        if self._reader is not None:
            self._reader.close()
        if self._producer is not None:
            self._producer.flush(5)


def _warm_up(handler: JobHandler, worker_id: str) -> None:
    """The handler's optional ``warm_up()``; its failure only costs the warm-up."""
    warm_up = getattr(handler, "warm_up", None)
    if warm_up is None:
        return
    try:
        warm_up()
    except Exception as exc:  # a third-party handler's: never fatal here
        log.warning("%s: handler warm_up() failed: %s: %s", worker_id, type(exc).__name__, exc)


def _job_input(
    job_id: int, interval: OffsetInterval, records: Sequence[Record], attempt: int = 0
) -> JobInput:
    """A job as its handler receives it (the handler API keeps four plain fields)."""
    return JobInput(
        job_id, interval.topic, interval.partition, interval.start, interval.end, records, attempt
    )
