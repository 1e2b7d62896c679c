"""Which written jobs the table committer may publish, and when.

One committer per Delta table publishes the files of many jobs in one atomic
commit. Each commit also records, per (consumer group, topic, partition), an
app transaction whose version is the end offset it covers, so the table's
version ``v`` of a partition means "every offset below ``v`` is in the table
(or was dead-lettered)". That is only true if each partition's jobs are
committed in offset order, which this queue enforces. For a job of a
partition whose table version is ``v``:

- ``end <= v``: already in the table (a duplicate after a restart or a
  retry): never commit it, its files are garbage (see ``duplicates``);
- ``chain_start == v`` (the job continues the chain; ``chain_start`` is below
  ``start`` after a gap deleted by retention), or ``chain_start is None`` (the
  job store's first job of the partition, which expects nothing) and ``v`` is
  ``None`` or at most ``start``: committable, and then ``v = end``;
- otherwise: it waits for its predecessor. A job that overlaps the table
  (``start < v < end``) waits forever and shows in ``waiting()``: its files
  cannot be trimmed, so committing it would duplicate rows.

``v is None`` (nothing of the partition in the table) does *not* make any job
committable: the job ``[10, 20)`` may be written before ``[0, 10)``, and
committing it first would make ``[0, 10)`` look like a duplicate, whose
files are then deleted. Only the chain's first job can start an empty
table. A table created over a job store that already has history is started
by the caller with ``known_version(key, offset)``: the ``chain_start`` of the
first job the table is to hold.

A FAILED job (its records were dead-lettered, it wrote no files) is
``skip``-ped: it advances ``v`` when it is next in line, so its successors
are not held back forever.

A partition's jobs are planned only once ``known_version`` told what the
table holds for it (``None`` when nothing): guessing "nothing yet" for a
table not read since a restart would commit its last jobs twice.

No actor code here: the committer feeds this object and passes ``now`` (a
monotonic clock reading), so every rule is unit-tested with a fake clock.
The protocol is ``plan`` -> table commit -> ``committed(plan)`` or
``conflicted()``, with at most one plan in flight.

Files are opaque to the queue (it only counts them), but two things are
required of them, because ``duplicates`` hands files over for deletion:
they must be unique per attempt (named with the token; Delta data files are
never rewritten in place anyway), and after a restart the caller must not
delete a duplicate's file that the table references (the same attempt may be
offered again after a crash between the table commit and the job store's
update; within one process the queue recognises that case itself).
"""

from __future__ import annotations

import heapq
import math
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

# (consumer group, topic, partition): one chain of offsets in the table, whose
# version is one app transaction. Unlike actorsys.offsets.PartitionKey, it has the group.
ChainKey = tuple[str, str, int]

# Committed attempts remembered so that the same attempt offered again (a
# retransmitted notice) is recognised instead of having its files, which the
# table now holds, handed over for deletion. Retransmits come within seconds;
# older ones are caught by the caller's check against the table.
REMEMBERED_COMMITS = 4096


@dataclass(frozen=True, slots=True)
class WrittenJob:
    """One attempt of a job whose data files are written and await a commit."""

    job_id: int
    token: int
    key: ChainKey
    chain_start: int | None
    start: int
    end: int
    files: tuple[Any, ...]


@dataclass(frozen=True, slots=True)
class SkippedJob:
    """A FAILED job: no files, but its offsets are accounted for (dead-lettered)."""

    job_id: int
    key: ChainKey
    chain_start: int | None
    start: int
    end: int


Job = WrittenJob | SkippedJob


@dataclass(frozen=True)
class CommitPlan:
    """One table commit: ``jobs`` in order (offset order within a partition),
    all their ``files``, the new txn version per partition, and the FAILED
    jobs whose offsets it accounts for."""

    jobs: tuple[WrittenJob, ...]
    files: tuple[Any, ...]
    txns: dict[ChainKey, int]
    skipped: tuple[SkippedJob, ...]


@dataclass(frozen=True, slots=True)
class _Queued:
    job: Job
    since: float  # when first offered: what ``interval_s`` is measured from


class CommitQueue:
    """Written and skipped jobs per partition, released in offset order.

    Re-offered jobs (rule): one entry per job. The same attempt again (same
    token) changes nothing. Another attempt: the higher token stays queued
    (it is the one the job store considers current), the lower one is
    displaced. Both attempts wrote the same offsets, so committing either
    exactly once is correct, never both. A displaced attempt that was never
    queued is a duplicate at once. One that was queued may be in the plan in
    flight (``plan`` is a pure query, so the queue cannot tell), so it is
    held until that plan's outcome: ``committed(plan)`` with it means it is
    in the table and the newer attempt becomes the duplicate (its ``end`` is
    now at most ``v``); otherwise it becomes the duplicate.
    """

    def __init__(self, interval_s: float, max_files: int) -> None:
        if max_files < 1:
            raise ValueError(f"max_files must be at least 1, got {max_files}")
        self._interval_s = interval_s
        self._max_files = max_files
        self._versions: dict[ChainKey, int | None] = {}  # present = known
        self._queued: dict[ChainKey, dict[int, _Queued]] = {}  # by job_id
        self._duplicates: list[WrittenJob] = []
        self._displaced: list[WrittenJob] = []  # queued once, maybe in the plan in flight
        self._commits: OrderedDict[int, int] = OrderedDict()  # job_id -> committed token
        self._last_commit_at = -math.inf  # when the last successful commit began
        self.conflicts = 0

    # --- input ---------------------------------------------------------------------------

    def offer(self, job: WrittenJob, now: float) -> None:
        """A job's files are written (it ended DONE)."""
        if self._commits.get(job.job_id) == job.token:
            return  # this very attempt is in the table already: its files are not garbage
        if self._in_table(job):
            self._duplicates.append(job)
            return
        jobs = self._queued.setdefault(job.key, {})
        old = jobs.get(job.job_id)
        if old is None:
            jobs[job.job_id] = _Queued(job, now)
        elif isinstance(old.job, SkippedJob) or job.token < old.job.token:
            self._duplicates.append(job)  # never queued, so in no plan
        elif job.token > old.job.token:
            jobs[job.job_id] = _Queued(job, old.since)
            self._displaced.append(old.job)
        # else: the same attempt offered again, with the same files: keep the one entry

    def skip(self, job: SkippedJob, now: float) -> None:
        """A job ended FAILED: it advances its partition's version when next in line.

        FAILED is the job's final state (its records are in the dead-letter
        topic), so it replaces any written attempt still queued.
        """
        if self._in_table(job):
            return  # nothing to delete, nothing to commit
        jobs = self._queued.setdefault(job.key, {})
        old = jobs.get(job.job_id)
        jobs[job.job_id] = _Queued(job, now if old is None else old.since)
        if old is not None and isinstance(old.job, WrittenJob):
            self._displaced.append(old.job)

    def known_version(self, key: ChainKey, version: int | None) -> None:
        """What the table says for ``key`` (after a refresh or a restart).

        The table is the truth, even if it is behind what this queue
        committed; queued jobs it already covers become duplicates.
        """
        self._versions[key] = version
        self._sweep(key)

    # --- output --------------------------------------------------------------------------

    def duplicates(self) -> list[WrittenJob]:
        """Attempts never to be committed (their offsets are in the table, or
        another attempt of the job is kept); their files may be deleted.
        Each is returned once."""
        found, self._duplicates = self._duplicates, []
        return found

    def due(self, now: float) -> bool:
        """A commit is due when a committable job waits and the last commit
        began ``interval_s`` ago or more, or at once when ``max_files``
        committable files wait. At most one commit per interval, then, but the
        first files after a quiet spell go out at once rather than an interval
        later (a job is DONE only once committed: waiting would delay every
        job by up to an interval, and the last ones of a backlog most)."""
        prefixes = [p for p in (self._prefix(k) for k in self._queued) if p]
        if not prefixes:
            return False
        if sum(_nfiles(q.job) for p in prefixes for q in p) >= self._max_files:
            return True
        return now - self._last_commit_at >= self._interval_s

    def plan(self, now: float) -> CommitPlan | None:
        """The committable prefix of every partition, oldest jobs first, whole
        jobs only, at most ``max_files`` files; ``None`` when nothing is
        committable. Changes no state.

        A partition's prefix stops at the first job that does not fit: its
        later jobs may not overtake it. A single job with more than
        ``max_files`` files is planned alone, or it would never be committed.
        """
        prefixes = {k: p for k in self._queued if (p := self._prefix(k))}
        if not prefixes:
            return None
        heads = [(p[0].since, k, 0) for k, p in prefixes.items()]
        heapq.heapify(heads)
        jobs: list[WrittenJob] = []
        skipped: list[SkippedJob] = []
        files: list[Any] = []
        txns: dict[ChainKey, int] = {}
        while heads:
            _, key, i = heapq.heappop(heads)
            job = prefixes[key][i].job
            if isinstance(job, WrittenJob):
                if files and len(files) + len(job.files) > self._max_files:
                    continue  # this partition is full for this commit
                jobs.append(job)
                files.extend(job.files)
            else:
                skipped.append(job)
            txns[key] = job.end
            if i + 1 < len(prefixes[key]):
                heapq.heappush(heads, (prefixes[key][i + 1].since, key, i + 1))
        return CommitPlan(tuple(jobs), tuple(files), txns, tuple(skipped))

    def committed(self, plan: CommitPlan, began_at: float) -> None:
        """The table commit of ``plan``, begun at ``began_at``, succeeded:
        versions advance, its jobs leave, the next commit waits an interval."""
        self._last_commit_at = max(self._last_commit_at, began_at)
        in_plan = {(j.job_id, j.token) for j in plan.jobs}
        for job in plan.jobs:
            jobs = self._queued.get(job.key, {})
            entry = jobs.get(job.job_id)
            if entry is not None and entry.job == job:
                del jobs[job.job_id]
            self._remember(job)
        for sk in plan.skipped:
            jobs = self._queued.get(sk.key, {})
            if sk.job_id in jobs and jobs[sk.job_id].job == sk:
                del jobs[sk.job_id]
        for key, version in plan.txns.items():
            self._versions[key] = version  # what the table says now
            self._sweep(key)
        displaced, self._displaced = self._displaced, []
        for job in displaced:
            if (job.job_id, job.token) in in_plan:
                self._remember(job)
            else:
                self._duplicates.append(job)

    def conflicted(self) -> None:
        """The table commit failed: no job or version changes. The caller
        refreshes the table and calls ``known_version`` before planning again
        (another writer may have moved it). Attempts displaced meanwhile are in
        no table, so they are released as duplicates."""
        self.conflicts += 1
        self._duplicates.extend(self._displaced)
        self._displaced = []

    def forget(self, key: ChainKey) -> list[Job]:
        """Stop handling ``key``: drop its queued jobs and its known version.

        Not needed when Kafka reassigns the partition to another consumer:
        the committer is per table, not per consumer, and jobs keep arriving
        here whoever consumed them, ordered by the table's version. It is for
        when this committer hands the partition (or the table) over, or to
        drop a version believed stale (``forget`` then ``known_version``;
        until then the partition's new jobs wait). The returned jobs are not
        duplicates: whoever takes over may still commit their files.
        """
        self._versions.pop(key, None)
        return [q.job for q in self._queued.pop(key, {}).values()]

    # --- status --------------------------------------------------------------------------

    def version(self, key: ChainKey) -> int | None:
        """The known table version of ``key`` (``None``: nothing, or not known)."""
        return self._versions.get(key)

    def waiting(self) -> dict[ChainKey, int]:
        """Jobs not committable yet, per partition: waiting for a predecessor,
        or for ``known_version``. Partitions with none are left out."""
        counts = {k: len(jobs) - len(self._prefix(k)) for k, jobs in self._queued.items()}
        return {k: n for k, n in counts.items() if n}

    def __len__(self) -> int:
        return sum(len(jobs) for jobs in self._queued.values())

    # --- internals -----------------------------------------------------------------------

    def _in_table(self, job: Job) -> bool:
        version = self._versions.get(job.key)
        return version is not None and job.end <= version

    def _prefix(self, key: ChainKey) -> list[_Queued]:
        """The jobs of ``key`` committable now, in offset order."""
        if key not in self._versions:
            return []
        version = self._versions[key]
        prefix: list[_Queued] = []
        for entry in sorted(self._queued.get(key, {}).values(), key=lambda q: q.job.start):
            job = entry.job
            if job.chain_start is None:
                if version is not None and job.start < version:
                    break  # overlaps the table
            elif job.chain_start != version:
                break  # its predecessor is not in the table yet
            prefix.append(entry)
            version = job.end
        return prefix

    def _sweep(self, key: ChainKey) -> None:
        """Queued jobs of ``key`` that the table covers leave as duplicates."""
        jobs = self._queued.get(key)
        if not jobs:
            self._queued.pop(key, None)
            return
        for job_id, entry in list(jobs.items()):
            if self._in_table(entry.job):
                del jobs[job_id]
                if isinstance(entry.job, WrittenJob):
                    self._duplicates.append(entry.job)
        if not jobs:
            del self._queued[key]

    def _remember(self, job: WrittenJob) -> None:
        self._commits[job.job_id] = job.token
        self._commits.move_to_end(job.job_id)
        while len(self._commits) > REMEMBERED_COMMITS:
            self._commits.popitem(last=False)


def _nfiles(job: Job) -> int:
    return len(job.files) if isinstance(job, WrittenJob) else 0
