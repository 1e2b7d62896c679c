"""Every Prometheus metric of actorsys, declared in one place, and the small
helpers the actors call to update them.

How metrics cross processes
---------------------------
Every actor is a process of its own. They all write their metrics with
prometheus-client's *multiprocess mode*: each process updates its own
memory-mapped files under ``PROMETHEUS_MULTIPROC_DIR`` (a plain memory write,
no message, no lock shared with other processes), and the daemon's HTTP
thread merges the files on each scrape (``actorsys.web.MultiProcessView``). The
daemon sets that variable before it starts the actor system, so every actor
process inherits it. Measured: an update costs a few microseconds, against
about two milliseconds for one Thespian message, so a collecting actor would
cost more than it saves (see ``scripts/bench_metrics.py``).

Rules this module keeps
-----------------------
- Nothing is created at import: the metric objects of a process are made on
  its first update, and only when ``PROMETHEUS_MULTIPROC_DIR`` is set. Without
  it (unit tests, the CLI) every helper is a no-op and nothing is written.
- Each gauge declares how values of several processes combine:
  ``livesum`` for per-process facts (memory, process count: a process's
  share vanishes when it dies); ``livemostrecent`` for facts one actor owns
  (the KafkaConsumerActor's partitions, the JobManager's job counts): the
  latest write wins, so a restarted actor takes over at once, and the dead
  one's file is dropped; ``livemax`` for the constant build info. Counters
  and histograms add up over every process, dead ones included (their
  counts happened). ``live*`` files of dead processes are removed at
  scrape time (``mark_process_dead``) so no stale gauge survives its writer.
- Multiprocess mode cannot delete a labelled series. A series that must
  disappear (a revoked partition) is set to NaN, a *tombstone*, and
  ``actorsys.web.MultiProcessView`` leaves NaN gauge samples out of the exposition.
- Labels are bounded: topic, partition, host, role, table (raw, agg,
  agg_hourly) and small enums (reason, status, verdict, kind, outcome,
  operation, error). Never job ids, offsets, paths or event hours.
"""

from __future__ import annotations

import contextlib
import math
import os
import re
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Literal, get_args

import psutil
from prometheus_client import Counter, Gauge, Histogram, values

from actorsys.roles import Role

MULTIPROC_DIR_ENV = "PROMETHEUS_MULTIPROC_DIR"

Kind = Literal["counter", "gauge", "histogram"]

# Every label name in use; each has a small, bounded set of values.
LABELS = frozenset(
    {
        "topic",
        "partition",
        "host",
        "role",
        "reason",
        "status",
        "verdict",
        "kind",
        "outcome",
        "operation",
        "error",
        "version",
        "table",
    }
)
FRAME_REJECT_REASONS = ("bad_mac", "too_large", "malformed")
# The process roles of `actorsys_process_resident_memory_bytes{role}`.
ROLES = (
    Role.DAEMON,
    Role.SUPERVISOR,
    Role.KAFKA_CONSUMER,
    Role.CONSUMER,
    Role.JOB_MANAGER,
    Role.WORKER_MASTER,
    Role.WORKER,
    Role.COMMITTER,
)
# The multiprocess modes a gauge may have: the live ones, whose series go
# with their process.
GaugeMode = Literal["livesum", "livemostrecent", "livemax"]
GAUGE_MODES: frozenset[str] = frozenset(get_args(GaugeMode))
_NAME = re.compile(r"^actorsys_[a-z][a-z0-9_]*[a-z0-9]$")


@dataclass(frozen=True, slots=True)
class MetricSpec:
    """One metric: its name, type, help text, labels and how processes combine."""

    name: str
    kind: Kind
    help: str
    labels: tuple[str, ...] = ()
    mode: GaugeMode | Literal[""] = ""  # gauges only: prometheus-client's multiprocess_mode
    buckets: tuple[float, ...] = ()  # histograms only

    def __post_init__(self) -> None:
        if not _NAME.match(self.name):
            raise ValueError(f"{self.name}: metric names are actorsys_snake_case")
        if not self.help.strip():
            raise ValueError(f"{self.name}: every metric has help text")
        if (self.kind == "counter") != self.name.endswith("_total"):
            raise ValueError(f"{self.name}: counters, and only counters, end in _total")
        if self.kind == "histogram" and not self.name.endswith(("_seconds", "_bytes")):
            raise ValueError(f"{self.name}: histograms are in base units (_seconds, _bytes)")
        if (self.kind == "gauge") != (self.mode in GAUGE_MODES):
            raise ValueError(f"{self.name}: gauges need a live multiprocess mode")
        if (self.kind == "histogram") != bool(self.buckets):
            raise ValueError(f"{self.name}: histograms, and only histograms, have buckets")
        unknown = set(self.labels) - LABELS
        if unknown:
            raise ValueError(f"{self.name}: unbounded or unknown labels {sorted(unknown)}")

    @property
    def exposed_names(self) -> tuple[str, ...]:
        """The sample names this metric shows in the exposition."""
        if self.kind == "histogram":
            return (f"{self.name}_bucket", f"{self.name}_sum", f"{self.name}_count")
        return (self.name,)


SPECS: dict[str, MetricSpec] = {}


def _declare(spec: MetricSpec) -> MetricSpec:
    if spec.name in SPECS:
        raise ValueError(f"{spec.name} is declared twice")
    SPECS[spec.name] = spec
    return spec


def _counter(name: str, help: str, labels: tuple[str, ...] = ()) -> MetricSpec:
    return _declare(MetricSpec(name, "counter", help, labels))


def _gauge(name: str, help: str, labels: tuple[str, ...] = (), *, mode: GaugeMode) -> MetricSpec:
    return _declare(MetricSpec(name, "gauge", help, labels, mode=mode))


def _histogram(
    name: str, help: str, labels: tuple[str, ...], *, buckets: tuple[float, ...]
) -> MetricSpec:
    return _declare(MetricSpec(name, "histogram", help, labels, buckets=buckets))


TP = ("topic", "partition")
_LATENCY_BUCKETS = (0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)
_JOB_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600)

# --- Kafka side (KafkaConsumerActor) --------------------------------------------------------

RECORDS_CONSUMED = _counter(
    "actorsys_records_consumed_total",
    "Offsets of the partition's log handed to the Consumer actor of their partition, "
    "to be cut into jobs (the workers read the records).",
    TP,
)
ASSIGNED_PARTITIONS = _gauge(
    "actorsys_assigned_partitions",
    "Partitions currently assigned to this daemon's Kafka consumer.",
    mode="livemostrecent",
)
COMMITTED_OFFSET = _gauge(
    "actorsys_committed_offset",
    "Last offset this daemon committed for the partition (the next offset to read).",
    TP,
    mode="livemostrecent",
)
HIGH_WATERMARK = _gauge(
    "actorsys_high_watermark_offset",
    "The partition's log end (offset of the next record to be produced), as last "
    "learnt from the broker (end-offset queries, and fetches of idle partitions).",
    TP,
    mode="livemostrecent",
)
LAG_RECORDS = _gauge(
    "actorsys_consumer_lag_records",
    "Records between the committed offset and the high watermark: what is not yet "
    "safely stored as jobs.",
    TP,
    mode="livemostrecent",
)
LAG_SECONDS = _gauge(
    "actorsys_consumer_lag_seconds",
    "Estimated age of the oldest record not yet committed (0 when caught up): the time "
    "since the first log end past the committed offset was seen (a lower bound).",
    TP,
    mode="livemostrecent",
)
PARTITION_PAUSED = _gauge(
    "actorsys_partition_paused",
    "1 while the partition is held back by back-pressure (too much unacknowledged work: "
    "no more of its offsets are handed out), else 0.",
    TP,
    mode="livemostrecent",
)
INFLIGHT_RECORDS = _gauge(
    "actorsys_inflight_records",
    "Offsets handed out to be cut into jobs and not yet acknowledged as stored jobs.",
    TP,
    mode="livemostrecent",
)
COMMITS = _counter(
    "actorsys_commits_total",
    "Offset commits the group coordinator accepted.",
)
COMMIT_FAILURES = _counter(
    "actorsys_commit_failures_total",
    "Offset commits that failed (retried at the next housekeeping tick).",
)
REBALANCES = _counter(
    "actorsys_rebalances_total",
    "Consumer group rebalance callbacks, by kind (assign, revoke, lost).",
    ("kind",),
)
KAFKA_ERRORS = _counter(
    "actorsys_kafka_errors_total",
    "Errors the Kafka client reported, by librdkafka error name; _TRANSPORT and "
    "_ALL_BROKERS_DOWN are lost broker connections.",
    ("error",),
)
BROKERS_UP = _gauge(
    "actorsys_kafka_brokers_up",
    "Brokers the Kafka consumer is connected to, from librdkafka statistics.",
    mode="livemostrecent",
)

# --- batches (Consumer actors) --------------------------------------------------------------

BATCHES_SENT = _counter(
    "actorsys_batches_sent_total",
    "Batches cut and sent to the JobManager (first sends only).",
    TP,
)
BATCHES_RETRANSMITTED = _counter(
    "actorsys_batches_retransmitted_total",
    "Batches sent again because their ACK did not arrive in time.",
    TP,
)
ACK_LATENCY = _histogram(
    "actorsys_ack_latency_seconds",
    "Time from a batch's first send to the JobManager's ACK (stored as a job).",
    ("topic",),
    buckets=_LATENCY_BUCKETS,
)

# --- jobs (JobManager) ----------------------------------------------------------------------

OFFSET_CHAIN = _counter(
    "actorsys_offset_chain_total",
    "Batches the JobManager judged against the offset chain, by verdict (store, "
    "duplicate, trim, gap, out_of_order).",
    ("topic", "verdict"),
)
SKIPPED_OFFSETS = _counter(
    "actorsys_skipped_offsets_total",
    "Offsets never read: deleted by retention before their job's worker read them, "
    "or skipped because a batch after an assignment started past the chain.",
    ("topic",),
)
OLDEST_UNFINISHED_AGE = _gauge(
    "actorsys_oldest_unfinished_job_age_seconds",
    "Age of the topic's oldest PENDING or RUNNING ingestion job (0 when none): a "
    "lower bound on the age of records that must still be in Kafka.",
    ("topic",),
    mode="livemostrecent",
)
TOPIC_RETENTION = _gauge(
    "actorsys_topic_retention_seconds",
    "The topic's retention.ms, in seconds, as the broker reports it (absent: unlimited "
    "or unknown).",
    ("topic",),
    mode="livemostrecent",
)
RETENTION_HEADROOM = _gauge(
    "actorsys_retention_headroom_seconds",
    "retention.ms minus the age of the oldest unfinished job: how long before Kafka may "
    "delete records a pending job still needs (absent: unlimited retention).",
    ("topic",),
    mode="livemostrecent",
)
JOBS = _gauge(
    "actorsys_jobs",
    "Jobs in the job store, by status (PENDING, RUNNING, DONE, FAILED).",
    ("status",),
    mode="livemostrecent",
)
HELD_BATCHES = _gauge(
    "actorsys_held_batches",
    "Batches whose ACK the JobManager withholds because too many jobs are unfinished.",
    mode="livemostrecent",
)
JOB_STORE_UP = _gauge(
    "actorsys_job_store_up",
    "1 when the job store answered and persisted without error since the last check, else 0.",
    mode="livemostrecent",
)
JOB_STORE_ERRORS = _counter(
    "actorsys_job_store_errors_total",
    "Job store operations that failed, by operation (submit, claim, complete, fail, count).",
    ("operation",),
)
JOB_ATTEMPTS = _counter(
    "actorsys_job_attempts_total",
    "Job attempts started (a job handed to a worker).",
)
JOB_ATTEMPT_FAILURES = _counter(
    "actorsys_job_attempt_failures_total",
    "Job attempts that failed, by reason (handler_error, worker_lost, timeout).",
    ("reason",),
)
JOB_RETRIES = _counter(
    "actorsys_job_retries_total",
    "Failed attempts put back to PENDING to run again after a backoff.",
)
JOBS_FINISHED = _counter(
    "actorsys_jobs_finished_total",
    "Jobs that reached a final status (DONE, or FAILED after their last attempt).",
    ("status",),
)
JOB_DURATION = _histogram(
    "actorsys_job_duration_seconds",
    "How long a job attempt ran in its worker, by outcome (done, failed).",
    ("outcome",),
    buckets=_JOB_BUCKETS,
)
STALE_COMPLETIONS = _counter(
    "actorsys_stale_completions_total",
    "Completions or failures rejected because they came from a superseded attempt.",
)
RECORDS_WRITTEN = _counter(
    "actorsys_records_written_total",
    "Valid records written by the job handler, counted once per job when it is recorded DONE.",
)
READER_SEEKS = _counter(
    "actorsys_range_reader_seeks_total",
    "Job ranges a worker's reader began with a seek rather than where it stood: a move "
    "to another partition (or a restart), which throws away what librdkafka had fetched.",
)
DEAD_LETTERS = _counter(
    "actorsys_dead_letters_total",
    "Records sent to the dead-letter topic, by reason; counted once per job when it is "
    "recorded DONE, or FAILED (reason job_failed: all its records).",
    ("reason",),
)

# --- workers (WorkerMaster) -----------------------------------------------------------------

WORKERS = _gauge(
    "actorsys_workers",
    "Workers running and registered, by host.",
    ("host",),
    mode="livemostrecent",
)
WORKERS_REPLACED = _counter(
    "actorsys_workers_replaced_total",
    "Workers that exited (crashed, killed or overran a lease) and were replaced.",
)

# --- tables (format "delta") ----------------------------------------------------------------

COMPACTIONS = _counter(
    "actorsys_compactions_total",
    "Compactions of closed event-time hours, by outcome: done (the hour rewritten into few "
    "sorted files and its final aggregates published, once per job), retried (an attempt "
    "failed and runs again), failed (the job FAILED after its last attempt).",
    ("outcome",),
)
OPEN_WINDOWS = _gauge(
    "actorsys_open_windows",
    "Event-time hours of the raw table that still hold uncompacted ingestion files.",
    mode="livemostrecent",
)
WATERMARK = _gauge(
    "actorsys_watermark_seconds",
    "The partition's event-time watermark as a Unix time: the newest event time (ts) among "
    "the rows it has committed to the raw table, as the JobManager's windows see it. "
    "time() minus this is how far event time lags.",
    TP,
    mode="livemostrecent",
)
LATE_RECORDS = _counter(
    "actorsys_late_records_total",
    "Valid records committed to the raw table for an event hour that was already closed for "
    "their partition (its watermark past the hour's end plus tables.allowed_lateness_s) or "
    "compacted: such an hour is compacted again. Counted per job and hour from the rows of "
    "its files (after a restart, compactions before it are known only through watermarks).",
    ("topic",),
)
TABLE_FILES = _gauge(
    "actorsys_table_files",
    "Data files in the table's current version, as its Committer last committed or read it.",
    ("table",),
    mode="livemostrecent",
)
TABLE_BYTES = _gauge(
    "actorsys_table_bytes",
    "Bytes of the data files in the table's current version (Delta add sizes).",
    ("table",),
    mode="livemostrecent",
)
TABLE_FILES_PER_CLOSED_HOUR = _gauge(
    "actorsys_table_files_per_closed_hour",
    "The most data files any closed event hour of the table holds; an hour counts as closed "
    "once it holds compacted files (so every hour of agg and agg_hourly). Above the "
    "compaction's own output it counts late ingestion files waiting for recompaction.",
    ("table",),
    mode="livemostrecent",
)
TABLE_COMMIT_LATENCY = _histogram(
    "actorsys_table_commit_seconds",
    "Time of one successful Delta commit by the table's Committer, by kind (append: "
    "ingestion files and offsets; replace: a compaction, including its refresh).",
    ("table", "kind"),
    buckets=_LATENCY_BUCKETS,
)
TABLE_COMMITS = _counter(
    "actorsys_table_commits_total",
    "Delta commits the table's Committer attempted, by kind (append, replace) and outcome "
    "(done; conflict: another writer committed first, re-checked and retried; rejected: a "
    "file vanished or a compaction's files were already replaced).",
    ("table", "kind", "outcome"),
)
TABLE_FILES_ADDED = _counter(
    "actorsys_table_files_added_total",
    "Data files added to the table by successful commits, by kind (append, replace); over "
    'actorsys_table_commits_total{outcome="done"}, the files per commit.',
    ("table", "kind"),
)

# --- the actor transport (every process with a Thespian endpoint) ---------------------------

FRAMES_REJECTED = _counter(
    "actorsys_transport_frames_rejected_total",
    "Frames between actor systems dropped before anything was deserialized, by reason "
    "(bad_mac: not signed with the cluster key; too_large: over the frame size cap; "
    "malformed: no valid length header).",
    ("reason",),
)

# --- processes (every actor, and the daemon) ------------------------------------------------

ACTOR_RESTARTS = _counter(
    "actorsys_actor_restarts_total",
    "Top-level actors the Supervisor recreated after they exited, by role.",
    ("role",),
)
PROCESS_RSS = _gauge(
    "actorsys_process_resident_memory_bytes",
    "Resident memory of this host's actorsys processes, summed by role.",
    ("role",),
    mode="livesum",
)
PROCESSES = _gauge(
    "actorsys_processes",
    "Live actorsys processes on this host, by role.",
    ("role",),
    mode="livesum",
)
READY = _gauge(
    "actorsys_ready",
    "1 when the daemon is ready (/readyz answers 200), else 0.",
    mode="livemostrecent",
)
BUILD_INFO = _gauge(
    "actorsys_build_info",
    "Always 1; the label says which actorsys version runs.",
    ("version",),
    mode="livemax",
)

ACK_OUTCOMES = ("done", "failed")
COMPACTION_OUTCOMES = ("done", "retried", "failed")
TABLE_COMMIT_KINDS = ("append", "replace")
TABLE_COMMIT_OUTCOMES = ("done", "conflict", "rejected")
ATTEMPT_FAILURE_REASONS = ("handler_error", "worker_lost", "timeout")
_MEMORY_EVERY_S = 2.0


# --- the live objects of one process --------------------------------------------------------


class _Live:
    """The metric objects of this process, made on its first update."""

    def __init__(self) -> None:
        self.metrics: dict[str, Any] = {spec.name: _make(spec) for spec in SPECS.values()}
        self._children: dict[tuple[str, tuple[str, ...]], Any] = {}
        self.memory_at: dict[str, float] = {}

    def child(self, spec: MetricSpec, *labels: object) -> Any:
        """The labelled series, cached (``labels()`` costs more than the update)."""
        key = (spec.name, tuple(str(v) for v in labels))
        found = self._children.get(key)
        if found is None:
            metric = self.metrics[spec.name]
            found = self._children[key] = metric.labels(*key[1]) if spec.labels else metric
        return found


def _make(spec: MetricSpec) -> Any:
    # registry=None: multiprocess metrics are read from the files, never from a registry.
    if spec.kind == "counter":
        return Counter(spec.name, spec.help, spec.labels, registry=None)
    if spec.kind == "gauge":
        assert spec.mode, "MetricSpec.__post_init__ gives every gauge a live mode"
        return Gauge(
            spec.name,
            spec.help,
            spec.labels,
            registry=None,
            multiprocess_mode=spec.mode,
        )
    return Histogram(spec.name, spec.help, spec.labels, registry=None, buckets=spec.buckets)


_live: _Live | None = None


def _get() -> _Live | None:
    """This process's metrics, or None when metrics are off (no multiprocess dir)."""
    global _live
    if _live is not None:
        return _live
    if not os.environ.get(MULTIPROC_DIR_ENV):
        return None
    # prometheus-client picks in-process or file-backed values when it is first
    # imported. The daemon imports it before it sets the directory (and actor
    # processes are forked from it), so choose file-backed values here, once.
    if not getattr(values.ValueClass, "_multiprocess", False):
        values.ValueClass = values.MultiProcessValue()  # type: ignore[no-untyped-call]  # prometheus_client.values is untyped
    _live = _Live()
    return _live


def enabled() -> bool:
    return _get() is not None


# --- helpers: Kafka side --------------------------------------------------------------------


def records_consumed(topic: str, partition: int, records: int) -> None:
    if (m := _get()) is not None:
        m.child(RECORDS_CONSUMED, topic, partition).inc(records)


def partition_state(
    topic: str,
    partition: int,
    *,
    committed: int | None,
    high_watermark: int | None,
    inflight_records: int,
    paused: bool,
    seconds_behind: float | None,
) -> None:
    """Everything per partition, set on the KafkaConsumerActor's housekeeping tick.
    Unknown values (None) leave their gauge as it was."""
    if (m := _get()) is None:
        return
    m.child(INFLIGHT_RECORDS, topic, partition).set(inflight_records)
    m.child(PARTITION_PAUSED, topic, partition).set(1 if paused else 0)
    if high_watermark is not None:
        m.child(HIGH_WATERMARK, topic, partition).set(high_watermark)
    if committed is not None:
        m.child(COMMITTED_OFFSET, topic, partition).set(committed)
        if high_watermark is not None:
            m.child(LAG_RECORDS, topic, partition).set(max(0, high_watermark - committed))
    if seconds_behind is not None:
        m.child(LAG_SECONDS, topic, partition).set(max(0.0, seconds_behind))


_PARTITION_GAUGES = (
    COMMITTED_OFFSET,
    HIGH_WATERMARK,
    LAG_RECORDS,
    LAG_SECONDS,
    PARTITION_PAUSED,
    INFLIGHT_RECORDS,
)


def partition_removed(topic: str, partition: int) -> None:
    """The partition was revoked or lost: its series leave the exposition."""
    if (m := _get()) is None:
        return
    for spec in _PARTITION_GAUGES:
        m.child(spec, topic, partition).set(math.nan)  # a tombstone, see the module doc


def consumer_state(assigned_partitions: int, brokers_up: int | None) -> None:
    if (m := _get()) is None:
        return
    m.child(ASSIGNED_PARTITIONS).set(assigned_partitions)
    if brokers_up is not None:
        m.child(BROKERS_UP).set(brokers_up)


def commit_succeeded() -> None:
    if (m := _get()) is not None:
        m.child(COMMITS).inc()


def commit_failed() -> None:
    if (m := _get()) is not None:
        m.child(COMMIT_FAILURES).inc()


def rebalance(kind: str) -> None:
    if (m := _get()) is not None:
        m.child(REBALANCES, kind).inc()


def kafka_error(name: str) -> None:
    if (m := _get()) is not None:
        m.child(KAFKA_ERRORS, name).inc()


# --- helpers: batches -----------------------------------------------------------------------


def batch_sent(topic: str, partition: int) -> None:
    if (m := _get()) is not None:
        m.child(BATCHES_SENT, topic, partition).inc()


def batches_retransmitted(topic: str, partition: int, count: int) -> None:
    if (m := _get()) is not None:
        m.child(BATCHES_RETRANSMITTED, topic, partition).inc(count)


class AckTimer:
    """When each unACKed batch of one partition was first sent, to observe
    the ACK latency. Holds one float per unACKed batch (bounded by the
    in-flight caps); a retransmit keeps the first send's time."""

    def __init__(self, topic: str) -> None:
        self._topic = topic
        self._sent_at: dict[tuple[int, int], float] = {}

    def sent(self, start: int, end: int, now: float) -> None:
        self._sent_at.setdefault((start, end), now)

    def acked(self, start: int, end: int, now: float) -> None:
        sent_at = self._sent_at.pop((start, end), None)
        if sent_at is not None and (m := _get()) is not None:
            m.child(ACK_LATENCY, self._topic).observe(now - sent_at)


# --- helpers: jobs --------------------------------------------------------------------------


def chain_verdict(topic: str, verdict: str, skipped_offsets: int = 0) -> None:
    if (m := _get()) is None:
        return
    m.child(OFFSET_CHAIN, topic, verdict).inc()
    if skipped_offsets:
        m.child(SKIPPED_OFFSETS, topic).inc(skipped_offsets)


def offsets_deleted_before_read(topic: str, count: int) -> None:
    """Retention deleted a job's offsets before its worker read them."""
    if (m := _get()) is not None:
        m.child(SKIPPED_OFFSETS, topic).inc(count)


def retention_state(
    topic: str, oldest_job_age_s: float, retention_s: float | None, headroom_s: float | None
) -> None:
    if (m := _get()) is None:
        return
    m.child(OLDEST_UNFINISHED_AGE, topic).set(oldest_job_age_s)
    m.child(TOPIC_RETENTION, topic).set(float("nan") if retention_s is None else retention_s)
    m.child(RETENTION_HEADROOM, topic).set(float("nan") if headroom_s is None else headroom_s)


def store_error(operation: str) -> None:
    if (m := _get()) is not None:
        m.child(JOB_STORE_ERRORS, operation).inc()


def job_attempt_started() -> None:
    if (m := _get()) is not None:
        m.child(JOB_ATTEMPTS).inc()


def job_attempt_ran(outcome: str, duration_s: float) -> None:
    """A worker reported an attempt ``done`` or ``failed`` after ``duration_s``."""
    if (m := _get()) is not None:
        m.child(JOB_DURATION, outcome).observe(duration_s)


def job_attempt_failed(reason: str) -> None:
    if (m := _get()) is not None:
        m.child(JOB_ATTEMPT_FAILURES, reason).inc()


def job_retry_scheduled() -> None:
    if (m := _get()) is not None:
        m.child(JOB_RETRIES).inc()


def job_finished(status: str) -> None:
    if (m := _get()) is not None:
        m.child(JOBS_FINISHED, status).inc()


def records_written(count: int) -> None:
    if (m := _get()) is not None:
        m.child(RECORDS_WRITTEN).inc(count)


def range_reader_seeked() -> None:
    if (m := _get()) is not None:
        m.child(READER_SEEKS).inc()


def dead_letters(by_reason: Iterable[tuple[str, int]]) -> None:
    """Records a job sent to the dead-letter topic, as (reason, count) pairs."""
    if (m := _get()) is None:
        return
    for reason, count in by_reason:
        m.child(DEAD_LETTERS, reason).inc(count)


def stale_completion() -> None:
    if (m := _get()) is not None:
        m.child(STALE_COMPLETIONS).inc()


def job_manager_state(jobs_by_status: Mapping[str, int], held_batches: int, store_ok: bool) -> None:
    """Set on the JobManager's tick. Every status gets a value, 0 included."""
    if (m := _get()) is None:
        return
    if jobs_by_status or store_ok:
        for status in ("PENDING", "RUNNING", "DONE", "FAILED"):
            m.child(JOBS, status).set(jobs_by_status.get(status, 0))
    m.child(HELD_BATCHES).set(held_batches)
    m.child(JOB_STORE_UP).set(1 if store_ok else 0)


# --- helpers: workers and processes ---------------------------------------------------------


class WorkerGauge:
    """Workers per host, as the WorkerMaster sees them; a host whose last
    worker left reads 0 (not a stale count)."""

    def __init__(self) -> None:
        self._hosts: set[str] = set()

    def update(self, by_host: Mapping[str, int]) -> None:
        if (m := _get()) is None:
            return
        self._hosts |= set(by_host)
        for host in self._hosts:
            m.child(WORKERS, host).set(by_host.get(host, 0))


def worker_replaced() -> None:
    if (m := _get()) is not None:
        m.child(WORKERS_REPLACED).inc()


def actor_restarted(role: str) -> None:
    if (m := _get()) is not None:
        m.child(ACTOR_RESTARTS, role).inc()


def process_memory(role: str) -> None:
    """This process's resident memory under ``role``; at most every 2 s, so it
    can be called from any tick."""
    if (m := _get()) is None:
        return
    now = time.monotonic()
    if now - m.memory_at.get(role, -math.inf) < _MEMORY_EVERY_S:
        return
    m.memory_at[role] = now
    with contextlib.suppress(psutil.Error):
        m.child(PROCESS_RSS, role).set(psutil.Process().memory_info().rss)
        m.child(PROCESSES, role).set(1)


def daemon_ready(ready: bool) -> None:
    if (m := _get()) is not None:
        m.child(READY).set(1 if ready else 0)


def build_info(version: str) -> None:
    if (m := _get()) is not None:
        m.child(BUILD_INFO, version).set(1)


def frame_rejected(reason: str) -> None:
    """A frame from another actor system was dropped unread (see FRAMES_REJECTED)."""
    if (m := _get()) is not None:
        m.child(FRAMES_REJECTED, reason).inc()


# Label values known in advance, so every series exists (at 0) before its first
# event: alerts built on rate() or absent() misfire on a series that is missing.
DEAD_LETTER_REASONS = (
    "not_json",
    "invalid_utf8",
    "not_object",
    "missing_field",
    "wrong_type",
    "not_finite",
    "ts_out_of_range",
    "tombstone",
    "empty",
    "too_large",
    "job_failed",
)
JOB_STORE_OPERATIONS = ("submit", "claim", "complete", "fail", "count")
ATTEMPT_FAILURE_REASONS_ALL = (*ATTEMPT_FAILURE_REASONS, "transient")
# The roles the Supervisor recreates when they exit.
ROLES_RESTARTED = (Role.JOB_MANAGER, Role.WORKER_MASTER, Role.KAFKA_CONSUMER, Role.COMMITTER)
REBALANCE_KINDS = ("assign", "revoke", "lost")
CHAIN_VERDICTS = ("store", "duplicate", "trim", "gap", "out_of_order")


def initialise(topics: Iterable[str]) -> None:
    """Create every counter and histogram series whose labels are known up front,
    at 0. Called once by the daemon at start; per-partition series are created
    when a partition is assigned (``partition_assigned``), per-table ones when
    the table's Committer starts (``table_opened``)."""
    if (m := _get()) is None:
        return
    topics = tuple(topics)
    known: dict[MetricSpec, Iterable[tuple[object, ...]]] = {
        COMMITS: [()],
        COMMIT_FAILURES: [()],
        COMPACTIONS: [(o,) for o in COMPACTION_OUTCOMES],
        LATE_RECORDS: [(t,) for t in topics],
        JOB_ATTEMPTS: [()],
        JOB_RETRIES: [()],
        STALE_COMPLETIONS: [()],
        RECORDS_WRITTEN: [()],
        READER_SEEKS: [()],
        WORKERS_REPLACED: [()],
        REBALANCES: [(k,) for k in REBALANCE_KINDS],
        JOB_STORE_ERRORS: [(op,) for op in JOB_STORE_OPERATIONS],
        JOB_ATTEMPT_FAILURES: [(r,) for r in ATTEMPT_FAILURE_REASONS_ALL],
        JOBS_FINISHED: [("DONE",), ("FAILED",)],
        DEAD_LETTERS: [(r,) for r in DEAD_LETTER_REASONS],
        ACTOR_RESTARTS: [(r,) for r in ROLES_RESTARTED],
        FRAMES_REJECTED: [(r,) for r in FRAME_REJECT_REASONS],
        OFFSET_CHAIN: [(t, v) for t in topics for v in CHAIN_VERDICTS],
        SKIPPED_OFFSETS: [(t,) for t in topics],
        ACK_LATENCY: [(t,) for t in topics],
        JOB_DURATION: [(o,) for o in ACK_OUTCOMES],
    }
    for spec, label_sets in known.items():
        for labels in label_sets:
            child = m.child(spec, *labels)
            if spec.kind == "counter":
                child.inc(0)


def partition_assigned(topic: str, partition: int) -> None:
    """The partition's counters exist at 0 from its assignment on."""
    if (m := _get()) is None:
        return
    for spec in (RECORDS_CONSUMED, BATCHES_SENT, BATCHES_RETRANSMITTED):
        m.child(spec, topic, partition).inc(0)


# --- helpers: tables (format "delta") ---------------------------------------------------------


def compaction_done() -> None:
    """A compaction job finished: its hour is published in every table."""
    if (m := _get()) is not None:
        m.child(COMPACTIONS, "done").inc()


def compaction_failed(final: bool) -> None:
    """A compaction attempt failed: ``final`` when the job is now FAILED, else
    it runs again."""
    if (m := _get()) is not None:
        m.child(COMPACTIONS, "failed" if final else "retried").inc()


def open_windows(count: int) -> None:
    if (m := _get()) is not None:
        m.child(OPEN_WINDOWS).set(count)


def watermark(topic: str, partition: int, event_ms: int | None) -> None:
    """The partition's watermark (epoch ms) moved, or was restored; None or 0
    (no event time known) leaves the gauge as it was."""
    if event_ms and (m := _get()) is not None:
        m.child(WATERMARK, topic, partition).set(event_ms / 1000)


def late_records(topic: str, count: int) -> None:
    if count and (m := _get()) is not None:
        m.child(LATE_RECORDS, topic).inc(count)


def table_opened(table: str, kinds: Iterable[str] = TABLE_COMMIT_KINDS) -> None:
    """The table's Committer started: its counters and histograms exist at 0,
    for the ``kinds`` of commit it makes."""
    if (m := _get()) is None:
        return
    for kind in kinds:
        m.child(TABLE_COMMIT_LATENCY, table, kind)
        m.child(TABLE_FILES_ADDED, table, kind).inc(0)
        for outcome in TABLE_COMMIT_OUTCOMES:
            m.child(TABLE_COMMITS, table, kind, outcome).inc(0)


def table_commit(
    table: str, kind: str, outcome: str, duration_s: float | None = None, files: int = 0
) -> None:
    """One commit attempt; a ``done`` one with its duration and files added."""
    if (m := _get()) is None:
        return
    m.child(TABLE_COMMITS, table, kind, outcome).inc()
    if outcome == "done":
        if duration_s is not None:
            m.child(TABLE_COMMIT_LATENCY, table, kind).observe(duration_s)
        m.child(TABLE_FILES_ADDED, table, kind).inc(files)


# An ingestion file's name; every other data file is a compaction's output
# (the rule the Committer's TableStateRequest uses too).
INGESTION_FILE_PREFIX = "part-"


class TableFiles:
    """The data files of one table's current version, per event hour, kept up
    to date from its Committer's own commits, so that the table gauges need no
    listing of the table per commit.

    ``reset`` takes a full listing (at start, and whenever a commit does not
    follow the version known here: another writer committed, or a vacuum
    wrote its own commits); ``changed`` applies one commit and says False when
    it cannot (a version gap, or removing a file not known here): list again.
    Holds one int per active file; an hour is its path's directory
    (``date=…/hour=…``).
    """

    def __init__(self, table: str) -> None:
        self.table = table
        self.version: int | None = None
        self._hours: dict[str, dict[str, int]] = {}  # hour -> path -> size
        self._compacted: dict[str, int] = {}  # hour -> its compaction files (only if > 0)
        self._files = 0
        self._bytes = 0

    def reset(self, version: int, files: Iterable[tuple[str, int]]) -> None:
        self._hours, self._compacted = {}, {}
        self._files = self._bytes = 0
        self._add(files)
        self.version = version

    def changed(
        self, version: int, added: Iterable[tuple[str, int]], removed: Iterable[str] = ()
    ) -> bool:
        if self.version is None or version != self.version + 1:
            return False
        removed = set(removed)
        if any(path not in self._hours.get(_hour_dir(path), ()) for path in removed):
            return False
        for path in removed:
            hour = _hour_dir(path)
            self._bytes -= self._hours[hour].pop(path)
            self._files -= 1
            if not self._hours[hour]:
                del self._hours[hour]
            if not _ingestion_file(path):
                self._compacted[hour] -= 1
                if not self._compacted[hour]:
                    del self._compacted[hour]
        self._add(added)
        self.version = version
        return True

    def totals(self) -> tuple[int, int, int]:
        """Files, bytes, and the most files of any closed (compacted) hour."""
        per_closed_hour = max((len(self._hours[hour]) for hour in self._compacted), default=0)
        return self._files, self._bytes, per_closed_hour

    def publish(self) -> None:
        if (m := _get()) is None:
            return
        files, nbytes, per_closed_hour = self.totals()
        m.child(TABLE_FILES, self.table).set(files)
        m.child(TABLE_BYTES, self.table).set(nbytes)
        m.child(TABLE_FILES_PER_CLOSED_HOUR, self.table).set(per_closed_hour)

    def _add(self, files: Iterable[tuple[str, int]]) -> None:
        for path, size in files:
            hour = _hour_dir(path)
            known = self._hours.setdefault(hour, {})
            if path in known:  # the same file twice: a replace, not an add
                self._bytes -= known[path]
            else:
                self._files += 1
                if not _ingestion_file(path):
                    self._compacted[hour] = self._compacted.get(hour, 0) + 1
            known[path] = size
            self._bytes += size


def _hour_dir(path: str) -> str:
    return path.rpartition("/")[0]


def _ingestion_file(path: str) -> bool:
    return path.rpartition("/")[2].startswith(INGESTION_FILE_PREFIX)
