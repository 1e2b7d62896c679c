"""Every message actors exchange: small, immutable, typed.

Thespian pickles messages between processes and hosts, and
``ActorTypeDispatcher`` routes on the bare class name to
``receiveMsg_<ClassName>``, so names are unique and classes live at module
level. No record travels in a message: the actor system carries control
(offset intervals, outcomes, status), and workers read a job's records from
Kafka themselves, so a message is a few hundred bytes whatever a job's size.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from actorsys.config import AppConfig
from actorsys.jobs.model import ReaderPosition
from actorsys.offsets import OffsetInterval
from actorsys.status import ComponentSnapshot

# Thespian's ActorAddress is opaque; typed as Any to keep this module import-light.
Address = Any


# --- start-up and wiring -----------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SupervisorStart:
    """From the daemon process: build the actor tree."""

    config: AppConfig
    bootstrap_servers: str
    daemon_pid: int
    daemon_pgid: int


@dataclass(frozen=True, slots=True)
class SupervisorReady:
    pass


@dataclass(frozen=True, slots=True)
class StartFailed:
    """A component could not start (bad handler, unreachable store, ...)."""

    role: str
    reason: str


@dataclass(frozen=True, slots=True)
class JobManagerStart:
    config: AppConfig
    bootstrap_servers: str
    worker_master: Address
    # format "delta": every table's committer, by table name (raw, agg, agg_hourly)
    committers: tuple[tuple[str, Address], ...] = ()


@dataclass(frozen=True, slots=True)
class WorkerMasterStart:
    config: AppConfig
    bootstrap_servers: str
    job_manager: Address


@dataclass(frozen=True, slots=True)
class WorkerStart:
    config: AppConfig
    bootstrap_servers: str
    job_manager: Address
    worker_master: Address
    worker_id: str
    host: str  # the host (member) name it was placed on, for status and job records


@dataclass(frozen=True, slots=True)
class HostAgentStart:
    """WorkerMaster -> the HostAgent it placed on a worker host."""

    member_id: str
    host: str
    lease_s: float


@dataclass(frozen=True, slots=True)
class Ping:
    seq: int


@dataclass(frozen=True, slots=True)
class Pong:
    member_id: str
    seq: int
    pid: int


@dataclass(frozen=True, slots=True)
class LeaderLease:
    """Sent by the leader's actors to the actors they placed, every few seconds.
    An actor whose lease lapses (the leader died or was cut off) stops itself,
    so no host keeps consuming or working for a leader that is gone."""

    valid_s: float


@dataclass(frozen=True, slots=True)
class AgentHere:
    """HostAgent -> the member's Watchdog (found by global name): drain me here."""

    agent: Address


@dataclass(frozen=True, slots=True)
class DrainHost:
    """`actorsys join` (on SIGTERM) -> its Watchdog -> the HostAgent."""


@dataclass(frozen=True, slots=True)
class HostDraining:
    """HostAgent -> WorkerMaster (-> Supervisor): this host is leaving; retire its
    workers after their current job and stop its consumer after a commit."""

    member_id: str


@dataclass(frozen=True, slots=True)
class RetireWorker:
    """WorkerMaster -> Worker: finish the current job, take no more, exit."""


@dataclass(frozen=True, slots=True)
class KafkaConsumerStart:
    config: AppConfig
    bootstrap_servers: str
    job_manager: Address
    member: str = ""  # set when placed on a member system (a second consumer daemon)

    @property
    def role(self) -> str:
        return f"kafka_consumer@{self.member}" if self.member else "kafka_consumer"


@dataclass(frozen=True, slots=True)
class ConsumerStart:
    """KafkaConsumerActor -> each Consumer of its pool, once."""

    config: AppConfig
    job_manager: Address
    kafka_consumer: Address


@dataclass(frozen=True, slots=True)
class PartitionAssigned:
    """KafkaConsumerActor -> Consumer: serve this partition from now on.
    ``generation`` is new for every assignment: messages of an earlier one,
    delivered late, are recognised and dropped."""

    topic: str
    partition: int
    generation: int


@dataclass(frozen=True, slots=True)
class PartitionRevoked:
    """KafkaConsumerActor -> Consumer: forget this partition (its unACKed
    batches too: uncommitted, they are read again by its next owner)."""

    topic: str
    partition: int
    generation: int


@dataclass(frozen=True, slots=True)
class WorkerHello:
    """Worker -> WorkerMaster once started: where it runs."""

    worker_id: str
    host: str
    pid: int


@dataclass(frozen=True, slots=True)
class ComponentReady:
    role: str


@dataclass(frozen=True, slots=True)
class JobManagerMoved:
    """The JobManager was recreated: send to this address from now on."""

    job_manager: Address


@dataclass(frozen=True, slots=True)
class WorkerMasterMoved:
    """The WorkerMaster was recreated: notify this address from now on."""

    worker_master: Address


# --- records and batches -----------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class NewOffsets:
    """One interval of an ``OffsetsHandout``: the partition's log holds
    ``interval`` now (learnt from the broker's end offsets; no record is
    read here).

    The first interval after an assignment starts at the assignment's start
    position (``starts_assignment``). At most ``batching.max_records`` long.
    """

    interval: OffsetInterval
    starts_assignment: bool
    generation: int  # of the partition's assignment (PartitionAssigned)

    @property
    def record_count(self) -> int:
        """Offsets in the interval: an upper bound on its records (transaction
        markers and compacted records leave holes)."""
        return self.interval.size


@dataclass(frozen=True, slots=True)
class OffsetsHandout:
    """KafkaConsumerActor -> Consumer: the new offsets of the member's
    partitions since the last handout, in one message (not one per partition
    per tick), answered with ``HandoutTaken`` (see ``HandoutWindow``)."""

    seq: int
    intervals: tuple[NewOffsets, ...]


@dataclass(frozen=True, slots=True)
class HandoutTaken:
    """Consumer -> KafkaConsumerActor: handout ``seq`` was batched."""

    seq: int


@dataclass(frozen=True, slots=True)
class ConsumerExited:
    """KafkaConsumerActor -> JobManager: this Consumer of the pool died (its
    replacement reads its partitions again); nothing more is sent to it."""

    consumer: Address


@dataclass(frozen=True, slots=True)
class TopicRetention:
    """KafkaConsumerActor -> JobManager, at start and whenever it changes: how
    long the topic keeps records (None: for ever, or not known). Pending jobs
    are offsets, so their records must outlive them in Kafka."""

    topic: str
    retention_ms: int | None
    retention_bytes: int | None


@dataclass(frozen=True, slots=True)
class BatchNotification:
    """Consumer -> JobManager, retransmitted until ACKed (the JobManager is idempotent)."""

    consumer_group: str
    interval: OffsetInterval
    record_count: int
    starts_assignment: bool


@dataclass(frozen=True, slots=True)
class BatchAck:
    """JobManager -> Consumer: ``interval`` is persisted (or was already)."""

    interval: OffsetInterval


@dataclass(frozen=True, slots=True)
class BatchHeld:
    """JobManager -> Consumer: received, but held back (too many unfinished jobs).
    Not an ACK: the Consumer keeps it and retransmits, only much later."""

    interval: OffsetInterval


@dataclass(frozen=True, slots=True)
class PartitionProgress:
    """Consumer -> KafkaConsumerActor whenever its ACKed work changes.

    ``committable`` is the end of the contiguous ACKed prefix (None before any
    ACK). ``released_records`` is the cumulative total of offsets ACKed by the
    JobManager: the KafkaConsumerActor subtracts it from what it has handed
    out, which stays right however late this message arrives.
    """

    topic: str
    partition: int
    committable: int | None
    released_records: int
    unacked_batches: int
    generation: int  # of the assignment it reports on: older ones are ignored


@dataclass(frozen=True, slots=True)
class FlushPartitions:
    """KafkaConsumerActor -> Consumer: cut every open batch now (draining)."""


# --- jobs --------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class JobsAvailable:
    """JobManager -> WorkerMaster: there are PENDING jobs due."""


@dataclass(frozen=True, slots=True)
class JobAvailable:
    """WorkerMaster -> idle Workers: ask the JobManager for work."""


@dataclass(frozen=True, slots=True)
class RequestJob:
    """Worker -> JobManager. ``reader_at``: where the worker's range reader
    stands, so the job that continues there can be preferred."""

    worker_id: str
    host: str
    reader_at: ReaderPosition | None = None


@dataclass(frozen=True, slots=True)
class NoJobAvailable:
    pass


@dataclass(frozen=True, slots=True)
class JobAssignment:
    """JobManager -> Worker. ``token`` is the attempt number. A compaction's
    ``interval`` is its job row's: topic "", partition -1, the hour in epoch ms."""

    job_id: int
    token: int
    interval: OffsetInterval
    kind: str = "ingest"  # or "compact": rewrite one closed event-time hour
    window_ms: int | None = None  # the hour of a compaction (epoch ms of its start)


@dataclass(frozen=True, slots=True)
class JobDone:
    job_id: int
    token: int
    worker_id: str
    host: str
    output_files: tuple[str, ...]
    valid_records: int
    invalid_records: int
    duration_s: float
    dead_letters_by_reason: tuple[tuple[str, int], ...] = ()
    # (table, DataFile JSON): to be published by that table's committer first.
    table_files: tuple[tuple[str, str], ...] = ()
    # Compactions: the raw files they rewrote (removed in the same commit).
    removes: tuple[str, ...] = ()
    # Offsets of the job retention had deleted before the worker could read
    # them ([start, end)): logged and counted by the JobManager, never skipped silently.
    deleted: tuple[int, int] | None = None


@dataclass(frozen=True, slots=True)
class JobFailed:
    job_id: int
    token: int
    worker_id: str
    host: str
    error: str
    duration_s: float
    # An environment fault (full disk, I/O error, broker unreachable), not bad
    # records: retried with backoff without using up the job's attempts.
    transient: bool = False


@dataclass(frozen=True, slots=True)
class DiscardAttempt:
    """JobManager -> a Worker: the job is FAILED. Send its records (read again
    from Kafka) to the dead-letter topic with ``error``, and remove what its
    final attempt wrote. Decided only by the JobManager, only for the attempt
    whose token is current, so a stale attempt can never delete the output of
    one that succeeded."""

    job_id: int
    token: int
    interval: OffsetInterval
    error: str = ""
    kind: str = "ingest"  # compactions have no records of their own to dead-letter


@dataclass(frozen=True, slots=True)
class CommitterStart:
    """Supervisor -> Committer: publish the files of ``tables`` under the output dir."""

    config: AppConfig
    tables: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class CommitFiles:
    """JobManager -> Committer: an attempt wrote these data files; publish them
    (in offset order per partition) and say so with ``JobsCommitted``."""

    job_id: int
    token: int
    consumer_group: str
    interval: OffsetInterval
    chain_start: int | None
    files: tuple[str, ...]  # DataFile JSON
    # The job ended FAILED (its records are dead-lettered; no files): its offsets
    # advance the partition's chain when it is next in line; nothing is replied.
    failed: bool = False
    table: str = "raw"  # ingestion writes the raw table only
    # A FAILED job put back with `actorsys jobs retry`: the chain may be past
    # its offsets already (its skip was committed), so it is published on its
    # own, once (see TableCommitter.commit_files).
    replay: bool = False


@dataclass(frozen=True, slots=True)
class ReplaceFiles:
    """JobManager -> the Committer: one compaction's commit to ``table``. ``removes``
    (raw: exactly the files it read; agg tables: everything in ``partition``)
    leave and ``files`` arrive in one atomic commit; refused if a file to remove
    is gone already (another compaction won): the attempt then runs again."""

    job_id: int
    token: int
    partition: tuple[tuple[str, str], ...]  # (("date", "2026-12-01"), ("hour", "7"))
    removes: tuple[str, ...] | None  # None: whatever the partition holds
    files: tuple[str, ...]  # DataFile JSON
    table: str


@dataclass(frozen=True, slots=True)
class TableStateRequest:
    """JobManager -> the Committer, at start: what the table (raw) holds that
    is not compacted yet."""

    table: str = "raw"


@dataclass(frozen=True, slots=True)
class TableState:
    """Committer -> JobManager: per (topic, partition), the newest event time in
    the table and the hours that still hold ingestion files (not compacted)."""

    watermarks: tuple[tuple[str, int, int], ...]  # topic, partition, epoch ms
    dirty: tuple[tuple[str, int, int, int], ...]  # topic, partition, hour ms, rows


@dataclass(frozen=True, slots=True)
class JobsCommitted:
    """Committer -> JobManager: these attempts' offsets are in the table now
    (committed by this commit, or already there: a duplicate whose files went)."""

    table: str
    jobs: tuple[tuple[int, int], ...]  # (job id, token)
    version: int


@dataclass(frozen=True, slots=True)
class CommitRejected:
    """Committer -> JobManager: this attempt's files cannot be published (one is
    missing or changed, or the commit failed): the attempt fails and the job
    runs again. ``transient``: an output fault (a full disk), which costs the
    job no attempt."""

    job_id: int
    token: int
    reason: str
    transient: bool = False


@dataclass(frozen=True, slots=True)
class CommitterMoved:
    """The Committer was recreated: send ``table``'s files to it, and send
    again what is unpublished (one message per table it writes)."""

    committer: Address
    table: str = "raw"


@dataclass(frozen=True, slots=True)
class WorkerLost:
    """WorkerMaster -> JobManager: put this worker's job back."""

    worker_id: str


@dataclass(frozen=True, slots=True)
class ReplaceWorker:
    """JobManager -> WorkerMaster: this worker overran its lease; replace it."""

    worker_id: str


# --- control and inspection --------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Drain:
    """Daemon -> Supervisor: stop polling, ACK and commit open work, let running
    jobs finish within ``grace_s``, then answer ``Drained``."""

    grace_s: float


@dataclass(frozen=True, slots=True)
class StopConsuming:
    """Supervisor -> KafkaConsumerActor (first step of a drain)."""

    deadline_s: float


@dataclass(frozen=True, slots=True)
class ConsumingStopped:
    committed: tuple[tuple[str, int, int], ...]
    clean: bool  # every open batch was ACKed and committed before the deadline


@dataclass(frozen=True, slots=True)
class AdmitHeldBatches:
    """Supervisor -> JobManager: the daemon is draining, so persist and ACK every
    batch, held ones included, past ``max_pending_jobs``. Consuming has stopped,
    so back-pressure has nothing left to slow; what is held is already bounded
    by the in-flight byte cap; and every batch ACKed now is committed before
    exit instead of being read again after the restart."""


@dataclass(frozen=True, slots=True)
class QuiesceJobs:
    """Supervisor -> JobManager: hand out no more jobs; answer when none runs."""

    deadline_s: float


@dataclass(frozen=True, slots=True)
class JobsQuiesced:
    still_running: int


@dataclass(frozen=True, slots=True)
class Drained:
    clean: bool
    detail: str


@dataclass(frozen=True, slots=True)
class ComponentStatus:
    """Pushed to the Supervisor about once a second; answers `actorsys status`."""

    role: str  # the component key (see actorsys.status)
    data: ComponentSnapshot


@dataclass(frozen=True, slots=True)
class StatusRequest:
    pass


@dataclass(frozen=True, slots=True)
class StatusReport:
    components: Mapping[str, ComponentSnapshot]
