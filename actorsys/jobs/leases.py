"""Leases: which worker runs which attempt of which job, until when.

A plain object the JobManager drives; every method that needs the time takes
``now`` (a monotonic reading), so lease expiry is unit-tested with a fake clock.

A lease ends only once the attempt's outcome is *recorded* in the job store.
A worker that reported its outcome while the store could not record it keeps
its lease, marked ``reported``: the outcome is retried on every tick, and
expiry never fails an attempt whose worker already finished it. That keeps a
job recoverable whatever the store does at completion.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, replace
from typing import Any


@dataclass(frozen=True, slots=True)
class Outcome:
    """What a worker reported for its attempt, kept until the store records it."""

    done: bool
    error: str = ""
    transient: bool = False
    output_files: tuple[str, ...] = ()
    valid_records: int = 0
    dead_letters_by_reason: tuple[tuple[str, int], ...] = ()
    # Table data files (table, DataFile JSON) the table's committer must publish
    # before the job is DONE; ``committed`` once it has.
    table_files: tuple[tuple[str, str], ...] = ()
    removes: tuple[str, ...] = ()  # a compaction's inputs, removed by its raw commit
    committed: bool = False


@dataclass(frozen=True, slots=True)
class Lease:
    job_id: int
    token: int
    worker: Any  # the worker's actor address
    worker_id: str
    host: str
    deadline: float  # monotonic
    outcome: Outcome | None = None  # reported by the worker, not yet recorded


class LeaseBook:
    """One lease per worker at most; looked up by worker id."""

    def __init__(self) -> None:
        self._by_worker: dict[str, Lease] = {}

    def grant(
        self, worker_id: str, worker: Any, host: str, job_id: int, token: int, deadline: float
    ) -> Lease:
        lease = Lease(job_id, token, worker, worker_id, host, deadline)
        self._by_worker[worker_id] = lease
        return lease

    def holds(self, worker_id: str) -> bool:
        return worker_id in self._by_worker

    def get(self, worker_id: str) -> Lease | None:
        return self._by_worker.get(worker_id)

    def find(self, job_id: int, token: int) -> Lease | None:
        return next(
            (
                lease
                for lease in self._by_worker.values()
                if lease.job_id == job_id and lease.token == token
            ),
            None,
        )

    def report(self, worker_id: str, job_id: int, outcome: Outcome) -> Lease | None:
        """The worker finished its attempt; keep the lease until it is recorded."""
        lease = self._by_worker.get(worker_id)
        if lease is None or lease.job_id != job_id:
            return None
        lease = self._by_worker[worker_id] = replace(lease, outcome=outcome)
        return lease

    def end(self, worker_id: str, job_id: int) -> Lease | None:
        """The attempt's outcome is recorded (or the attempt is given up)."""
        lease = self._by_worker.get(worker_id)
        if lease is None or lease.job_id != job_id:
            return None
        return self._by_worker.pop(worker_id)

    def pop(self, worker_id: str) -> Lease | None:
        return self._by_worker.pop(worker_id, None)

    def expired(self, now: float) -> list[Lease]:
        """Leases past their deadline whose worker never reported: removed and
        returned, so their attempt is failed once."""
        gone = [
            lease
            for lease in self._by_worker.values()
            if lease.outcome is None and lease.deadline <= now
        ]
        for lease in gone:
            del self._by_worker[lease.worker_id]
        return gone

    def unrecorded(self) -> list[Lease]:
        """Leases whose outcome the store has not recorded yet."""
        return [lease for lease in self._by_worker.values() if lease.outcome is not None]

    def running_by_host(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for lease in self._by_worker.values():
            counts[lease.host] = counts.get(lease.host, 0) + 1
        return counts

    def __iter__(self) -> Iterator[Lease]:
        return iter(list(self._by_worker.values()))

    def __len__(self) -> int:
        return len(self._by_worker)
