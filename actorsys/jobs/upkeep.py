"""What the JobManager knows between store queries, and when it asks again.

The JobManager ticks every second for what lives in its memory: leases that
expire, event hours that close, a drain's deadline. Its store statements
(heartbeat, orphaned jobs, the count per status, the oldest unfinished job)
and its status push used to run on that tick as well; that fixed cost per
second was most of what made its CPU per job grow with the job size (bigger
jobs, fewer of them in the same seconds). Now:

- ``JobCounts`` keeps the jobs per status from the JobManager's own
  transitions (submitted, claimed, done, failed, requeued), so the count is
  exact at every moment for what this JobManager did; a recount from the store
  every ``STORE_CHORES_S`` takes in what others did (JobManagers sharing the
  store, ``actorsys jobs retry``).
- ``Upkeep`` says when the store chores are due, and whether idle workers
  should be woken (a worker that was told "no job" while jobs wait: a retry
  not yet due, the compaction limit).

Plain objects: the JobManager passes ``now`` (monotonic seconds) and does what
they return.
"""

from __future__ import annotations

from collections.abc import Mapping

from actorsys.jobs.model import JobStatus

# Store chores every this many seconds. The heartbeat is one of them: a
# JobManager silent for MANAGER_SILENT_S (three periods) is taken for dead.
STORE_CHORES_S = 5.0


class JobCounts:
    """Jobs per status, as this JobManager last counted and then moved them."""

    def __init__(self) -> None:
        self._by_status: dict[JobStatus, int] = dict.fromkeys(JobStatus, 0)

    def recounted(self, counts: Mapping[JobStatus, int]) -> None:
        """The store's own count replaces what was kept (every status present)."""
        self._by_status = dict.fromkeys(JobStatus, 0)
        self._by_status.update(counts)

    def added(self, count: int = 1) -> None:
        """New jobs, PENDING."""
        self._by_status[JobStatus.PENDING] += count

    def moved(self, source: JobStatus, target: JobStatus, count: int = 1) -> None:
        """``count`` jobs went from ``source`` to ``target``. Never below zero: a
        job another JobManager moved first is set right by the next recount."""
        self._by_status[source] = max(0, self._by_status[source] - count)
        self._by_status[target] += count

    def __getitem__(self, status: JobStatus) -> int:
        return self._by_status[status]

    @property
    def unfinished(self) -> int:
        """PENDING + RUNNING: what the intake cap counts."""
        return self._by_status[JobStatus.PENDING] + self._by_status[JobStatus.RUNNING]

    def by_status(self) -> dict[str, int]:
        return {status.value: n for status, n in self._by_status.items()}


class Upkeep:
    def __init__(self, store_every_s: float = STORE_CHORES_S) -> None:
        self.store_every_s = store_every_s
        self._store_chores_at: float | None = None
        self._idle_workers: set[str] = set()

    def store_chores_due(self, now: float) -> bool:
        """True on the first call, then once per ``store_every_s``."""
        if self._store_chores_at is not None and now - self._store_chores_at < self.store_every_s:
            return False
        self._store_chores_at = now
        return True

    # --- idle workers ---------------------------------------------------------------------

    def worker_idle(self, worker_id: str) -> None:
        """The worker asked and was told there is no job for it."""
        self._idle_workers.add(worker_id)

    def worker_busy(self, worker_id: str) -> None:
        """The worker got a job, or is gone."""
        self._idle_workers.discard(worker_id)

    @property
    def workers_idle(self) -> bool:
        return bool(self._idle_workers)

    def woken(self) -> None:
        """Every worker was told jobs are available: each asks again, and is idle
        again only if it is told "no job" again."""
        self._idle_workers.clear()
