"""Job states and the one table of moves between them."""

from __future__ import annotations

import enum
from dataclasses import dataclass

from actorsys.errors import InvalidTransition
from actorsys.offset_chain import ChainVerdict


class JobKind(enum.StrEnum):
    INGEST = "ingest"  # an offset interval of one partition, into the tables
    COMPACT = "compact"  # one closed event-time hour of a table, rewritten


class JobStatus(enum.StrEnum):
    PENDING = "PENDING"
    RUNNING = "RUNNING"
    DONE = "DONE"
    FAILED = "FAILED"


ALLOWED_TRANSITIONS: frozenset[tuple[JobStatus, JobStatus]] = frozenset(
    {
        (JobStatus.PENDING, JobStatus.RUNNING),  # claimed by a worker
        (JobStatus.RUNNING, JobStatus.DONE),  # handler succeeded
        (JobStatus.RUNNING, JobStatus.PENDING),  # attempt failed (retry later) or worker lost
        (JobStatus.RUNNING, JobStatus.FAILED),  # last attempt failed
        (JobStatus.FAILED, JobStatus.PENDING),  # operator replay (`actorsys jobs retry`)
    }
)


def check_transition(job_id: int, current: JobStatus, target: JobStatus) -> None:
    if (current, target) not in ALLOWED_TRANSITIONS:
        raise InvalidTransition(job_id, current.value, target.value)


@dataclass(frozen=True, slots=True)
class ReaderPosition:
    """Where a worker's range reader stands: the next offset it would return of
    one partition. The job that starts there reads on from what librdkafka has
    already fetched; any other job costs the reader a move to another
    partition, and the prefetched records are thrown away."""

    topic: str
    partition: int
    offset: int


@dataclass(frozen=True, slots=True)
class BatchSubmission:
    """A batch offered to the store by the JobManager (one job if stored)."""

    consumer_group: str
    topic: str
    partition: int
    start: int
    end: int
    record_count: int
    starts_assignment: bool = False


@dataclass(frozen=True, slots=True)
class SubmitResult:
    verdict: ChainVerdict
    job_id: int | None  # set when a job was stored
    next_offset: int  # the partition's next_offset after this submission
    gap: int = 0  # offsets skipped (GAP only)


@dataclass(frozen=True, slots=True)
class JobRecord:
    """A job's row: an offset interval and its attempts, never its records."""

    id: int
    consumer_group: str
    topic: str
    partition: int
    start_offset: int
    end_offset: int
    record_count: int
    status: JobStatus
    attempts: int
    created_at: float  # wall-clock epoch seconds, for people
    started_at: float | None
    finished_at: float | None
    next_attempt_at: float | None  # wall-clock epoch seconds: survives restarts
    last_error: str | None
    worker: str | None  # "owner/host/worker-id" of the current or last attempt
    output_files: tuple[str, ...]
    # `attempts` when the job was last replayed (`actorsys jobs retry`): attempts
    # never reset, so tokens stay unique; the retry budget counts from here.
    replay_base: int = 0
    # The partition's next_offset before this job was stored (None: its first job).
    # Equal to start_offset but after a gap (offsets deleted before they were read):
    # table commits publish a partition's jobs in this chain's order.
    chain_start: int | None = None
    kind: JobKind = JobKind.INGEST
    window_ms: int | None = None  # compaction jobs: the hour's start (epoch ms)


@dataclass(frozen=True, slots=True)
class ClaimedJob:
    """A job handed to a worker. ``token`` is the attempt number: a
    completion carrying an older token is rejected."""

    record: JobRecord
    token: int
