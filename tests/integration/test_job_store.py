"""The JobStore contract, run against SQLite and the real PostgreSQL.

PostgreSQL tests need the server at 127.0.0.1:5432 (trust auth, database
``test``); each test gets a fresh schema, dropped afterwards. If the server is
down they fail, on purpose: CI has it, and a skipped store is an untested one.
"""

from __future__ import annotations

import itertools
import sqlite3
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import closing, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import psycopg
import pytest
from psycopg import sql

from actorsys.errors import ConfigError, JobStoreError
from actorsys.jobs.model import BatchSubmission, JobKind, JobStatus, ReaderPosition
from actorsys.jobs.open import open_job_store
from actorsys.jobs.schema import LATEST_VERSION
from actorsys.jobs.sqlstore import AFFINITY_WINDOW
from actorsys.jobs.store import JobStore
from actorsys.offset_chain import ChainVerdict

PG_URL = "postgresql://postgres@127.0.0.1:5432/test"
T0 = 1_700_000_000.0  # wall-clock "now" of every test, shifted as needed
GROUP, TOPIC = "group-a", "iot"


@dataclass
class Backend:
    url: str
    raw: Callable[[str], list[tuple[Any, ...]]]  # one statement, outside any store


@contextmanager
def _sqlite_backend(tmp_path: Path) -> Iterator[Backend]:
    db_file = tmp_path / "jobs.db"

    def raw(statement: str) -> list[tuple[Any, ...]]:
        with closing(sqlite3.connect(db_file)) as conn, conn:
            return conn.execute(statement).fetchall()

    yield Backend(f"sqlite:///{db_file}", raw)  # tmp_path is absolute: sqlite:////tmp/...


@contextmanager
def _postgres_backend() -> Iterator[Backend]:
    schema = f"actorsys_test_{uuid.uuid4().hex[:12]}"

    def admin() -> psycopg.Connection[tuple[Any, ...]]:
        try:
            return psycopg.connect(PG_URL, autocommit=True, connect_timeout=5)
        except psycopg.OperationalError as exc:
            reason = " ".join(str(exc).split())
        # Outside the except block, so the report is this one line, not a chain.
        pytest.fail(
            f"PostgreSQL at {PG_URL} is unreachable ({reason}); start it with:"
            " pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start",
            pytrace=False,
        )

    def raw(statement: str) -> list[tuple[Any, ...]]:
        with admin() as conn:
            conn.execute(sql.SQL("SET search_path TO {}").format(sql.Identifier(schema)))
            cursor = conn.execute(statement.encode())
            return cursor.fetchall() if cursor.description else []

    with admin() as conn:
        conn.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(schema)))
    try:
        yield Backend(f"{PG_URL}?schema={schema}", raw)
    finally:
        with admin() as conn:
            conn.execute(sql.SQL("DROP SCHEMA {} CASCADE").format(sql.Identifier(schema)))


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Backend]:
    with _sqlite_backend(tmp_path) if request.param == "sqlite" else _postgres_backend() as db:
        yield db


@pytest.fixture
def open_store(backend: Backend) -> Iterator[Callable[[], JobStore]]:
    """Opens another store (another connection) on the same database; all are
    closed at the end of the test, before the database is dropped."""
    opened: list[JobStore] = []

    def open_one() -> JobStore:
        opened.append(open_job_store(backend.url))
        return opened[-1]

    yield open_one
    for store in opened:
        store.close()


@pytest.fixture
def job_store(open_store: Callable[[], JobStore]) -> JobStore:
    return open_store()


def batch(
    start: int,
    end: int,
    *,
    partition: int = 0,
    starts_assignment: bool | None = None,
    group: str = GROUP,
) -> BatchSubmission:
    """A batch as a Consumer sends it; by default the one at offset 0 starts its
    assignment (a new chain begins only with such a batch)."""
    first = start == 0 if starts_assignment is None else starts_assignment
    return BatchSubmission(group, TOPIC, partition, start, end, end - start, first)


def cut(end: int, steps: tuple[int, ...]) -> list[tuple[int, int]]:
    """[0, end) as consecutive batches whose sizes cycle through ``steps``."""
    bounds = [0]
    while bounds[-1] < end:
        bounds.append(min(end, bounds[-1] + steps[(len(bounds) - 1) % len(steps)]))
    return list(itertools.pairwise(bounds))


def stored_job(store: JobStore, start: int, end: int, partition: int = 0) -> int:
    result = store.submit_batch(batch(start, end, partition=partition), T0)
    assert result.job_id is not None
    return result.job_id


# -- the offset chain through submit_batch ----------------------------------------


def test_first_batch_ever_is_stored_as_pending_job(job_store: JobStore) -> None:
    # Given an empty store
    # When the first batch of a partition arrives (its assignment's first)
    result = job_store.submit_batch(batch(100, 110, starts_assignment=True), T0)
    # Then it is stored whole and next_offset moves to its end
    assert (result.verdict, result.next_offset, result.gap) == (ChainVerdict.STORE, 110, 0)
    assert result.job_id is not None
    job = job_store.get(result.job_id)
    assert job is not None
    assert (job.status, job.start_offset, job.end_offset, job.record_count) == (
        JobStatus.PENDING,
        100,
        110,
        10,
    )
    assert (job.attempts, job.created_at, job.output_files) == (0, T0, ())


def test_batch_in_order_is_stored(job_store: JobStore) -> None:
    # Given a stored batch [0, 10)
    first = stored_job(job_store, 0, 10)
    # When the next batch starts at 10
    result = job_store.submit_batch(batch(10, 25), T0)
    # Then it is stored as a second job
    assert (result.verdict, result.next_offset) == (ChainVerdict.STORE, 25)
    assert result.job_id is not None and result.job_id > first


@pytest.mark.parametrize(("start", "end"), [(0, 10), (3, 8)])
def test_duplicate_stores_nothing(job_store: JobStore, start: int, end: int) -> None:
    # Given a stored batch [0, 10)
    stored_job(job_store, 0, 10)
    # When a retransmit (or any batch below next_offset) arrives
    result = job_store.submit_batch(batch(start, end), T0)
    # Then it is acknowledged again but nothing is stored
    assert (result.verdict, result.job_id, result.next_offset) == (ChainVerdict.DUPLICATE, None, 10)
    assert len(job_store.list_jobs()) == 1


def test_overlap_stores_only_the_new_records(job_store: JobStore) -> None:
    # Given a stored batch [0, 10)
    stored_job(job_store, 0, 10)
    # When a batch covering [5, 15) arrives
    result = job_store.submit_batch(batch(5, 15), T0)
    # Then the job holds [10, 15) only, its record count trimmed alike
    assert (result.verdict, result.next_offset) == (ChainVerdict.TRIM, 15)
    assert result.job_id is not None
    job = job_store.get(result.job_id)
    assert job is not None
    assert (job.start_offset, job.end_offset, job.record_count) == (10, 15, 5)


def test_out_of_order_batch_stores_nothing(job_store: JobStore) -> None:
    # Given a stored batch [0, 10)
    stored_job(job_store, 0, 10)
    # When [20, 30) arrives although [10, 20) has not
    result = job_store.submit_batch(batch(20, 30), T0)
    # Then nothing is stored and next_offset stays where it was
    assert (result.verdict, result.job_id, result.next_offset) == (
        ChainVerdict.OUT_OF_ORDER,
        None,
        10,
    )
    assert len(job_store.list_jobs()) == 1
    assert job_store.next_offsets(GROUP) == {(TOPIC, 0): 10}


def test_first_batch_after_assignment_past_next_offset_is_stored_with_gap(
    job_store: JobStore,
) -> None:
    # Given a stored batch [0, 10)
    stored_job(job_store, 0, 10)
    # When the first batch after a new assignment starts at 20
    result = job_store.submit_batch(batch(20, 30, starts_assignment=True), T0)
    # Then it is stored and the 10 skipped offsets are reported
    assert (result.verdict, result.next_offset, result.gap) == (ChainVerdict.GAP, 30, 10)
    assert result.job_id is not None
    job = job_store.get(result.job_id)
    assert job is not None and (job.start_offset, job.end_offset) == (20, 30)


def test_next_offset_is_persisted_per_group_topic_and_partition(
    job_store: JobStore, open_store: Callable[[], JobStore]
) -> None:
    # Given batches on two partitions and in two consumer groups
    stored_job(job_store, 0, 10, partition=0)
    stored_job(job_store, 0, 7, partition=1)
    job_store.submit_batch(batch(50, 60, group="group-b", starts_assignment=True), T0)
    job_store.close()
    # When the store is reopened
    reopened = open_store()
    # Then each chain resumes where it stopped
    assert reopened.next_offsets(GROUP) == {(TOPIC, 0): 10, (TOPIC, 1): 7}
    assert reopened.next_offsets("group-b") == {(TOPIC, 0): 60}
    assert reopened.next_offsets("nobody") == {}
    assert reopened.submit_batch(batch(0, 10), T0).verdict is ChainVerdict.DUPLICATE


def test_a_batch_that_overtook_the_first_of_a_new_chain_waits_and_nothing_is_lost(
    job_store: JobStore,
) -> None:
    # Given an empty store
    # When the second batch of a new assignment arrives before the first
    early = job_store.submit_batch(batch(10, 20, starts_assignment=False), T0)
    # Then it waits (not ACKed), and the first one still starts the chain
    assert early.verdict is ChainVerdict.OUT_OF_ORDER and early.job_id is None
    assert job_store.submit_batch(batch(0, 10), T0).verdict is ChainVerdict.STORE
    assert job_store.submit_batch(batch(10, 20), T0).verdict is ChainVerdict.STORE
    assert job_store.next_offsets(GROUP) == {(TOPIC, 0): 20}


def test_concurrent_stores_assign_every_offset_to_exactly_one_job(
    open_store: Callable[[], JobStore],
) -> None:
    # Given two stores (two connections) and two consumers that cut the same
    # offsets [0, 600) into 120 batches each, of different sizes, so they keep
    # overtaking each other (duplicates and overlaps both happen)
    stores, end = [open_store(), open_store()], 600
    plans = [cut(end, steps) for steps in ((3, 7), (5,))]
    # Each round starts both submissions together: left free, one thread
    # would win SQLite's lock for its whole plan (the busy handler sleeps).
    next_round = threading.Barrier(len(stores), timeout=30)
    errors: list[BaseException] = []
    verdicts: list[ChainVerdict] = []

    def consume(store: JobStore, plan: list[tuple[int, int]]) -> None:
        try:
            for start, stop in plan:
                next_round.wait()
                verdicts.append(store.submit_batch(batch(start, stop), T0).verdict)
        except BaseException as exc:  # reported by the main thread
            errors.append(exc)
            next_round.abort()  # release the other thread at once

    threads = [
        threading.Thread(target=consume, args=pair) for pair in zip(stores, plans, strict=True)
    ]
    # When both submit at the same time, round after round
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert not any(t.is_alive() for t in threads) and not errors, errors
    # Then every batch was acknowledged and the jobs tile [0, 300) exactly
    assert ChainVerdict.OUT_OF_ORDER not in verdicts
    jobs = sorted(stores[0].list_jobs(limit=1000), key=lambda j: j.start_offset)
    assert [j.start_offset for j in jobs[1:]] == [j.end_offset for j in jobs[:-1]]
    assert (jobs[0].start_offset, jobs[-1].end_offset) == (0, end)
    offsets = [o for j in jobs for o in range(j.start_offset, j.end_offset)]
    assert offsets == list(range(end))
    assert sum(j.record_count for j in jobs) == end
    assert stores[1].next_offsets(GROUP) == {(TOPIC, 0): end}


# -- claiming and the end of attempts ------------------------------------------------


def test_claim_next_takes_the_oldest_pending_job_first(job_store: JobStore) -> None:
    # Given three jobs stored one after the other
    ids = [stored_job(job_store, 0, 10, partition=p) for p in (2, 0, 1)]
    # When workers claim until nothing is left
    claimed = [job_store.claim_next(f"host/w{i}", T0 + 1) for i in range(4)]
    # Then they get the jobs oldest first, RUNNING, with token 1
    assert [c.record.id for c in claimed if c] == ids and claimed[3] is None
    first = claimed[0]
    assert first is not None
    assert (first.token, first.record.status, first.record.attempts) == (1, JobStatus.RUNNING, 1)
    assert (first.record.worker, first.record.started_at) == ("host/w0", T0 + 1)


def test_a_worker_gets_the_job_that_continues_where_its_reader_stands(
    job_store: JobStore,
) -> None:
    # Given jobs of three partitions stored in turns; partition 2's second one
    # retries in 60 s
    ids = {
        (p, s): stored_job(job_store, s, s + 10, partition=p) for s in (0, 10) for p in (0, 1, 2)
    }
    retrying = job_store.claim(ids[(2, 10)], "host/w", T0)
    assert retrying is not None
    job_store.fail_attempt(retrying.record.id, retrying.token, "boom", T0 + 60, T0)
    # When a worker whose reader stands at partition 1, offset 10 asks
    claimed = job_store.claim_next("host/w1", T0, reader_at=ReaderPosition(TOPIC, 1, 10))
    # Then it gets partition 1's [10, 20), though older jobs wait
    assert claimed is not None and claimed.record.id == ids[(1, 10)]
    # And readers standing where no due job starts get the oldest, in order
    elsewhere = (
        ReaderPosition(TOPIC, 1, 20),  # no job there yet
        ReaderPosition(TOPIC, 2, 10),  # its job is not due
        ReaderPosition("other-topic", 0, 0),
    )
    got = [job_store.claim_next("host/w2", T0, reader_at=at) for at in elsewhere]
    assert [c.record.id if c else None for c in got] == [ids[(0, 0)], ids[(1, 0)], ids[(2, 0)]]


def test_the_continuing_job_waits_once_a_window_of_older_jobs_waits(job_store: JobStore) -> None:
    # Given AFFINITY_WINDOW - 1 jobs of partition 0, then partition 1's [0, 10)
    # and [10, 20) stored after them
    for i in range(AFFINITY_WINDOW - 1):
        stored_job(job_store, i * 10, (i + 1) * 10)
    first = stored_job(job_store, 0, 10, partition=1)
    second = stored_job(job_store, 10, 20, partition=1)
    # When a worker whose reader stands at partition 1, offset 10 asks
    claimed = job_store.claim_next("host/w", T0, reader_at=ReaderPosition(TOPIC, 1, 10))
    # Then it gets the oldest job: AFFINITY_WINDOW older jobs wait
    assert claimed is not None and claimed.record.start_offset == 0
    assert claimed.record.partition == 0
    # And once one fewer waits, the continuing job again
    again = job_store.claim_next("host/w", T0, reader_at=ReaderPosition(TOPIC, 1, 10))
    assert again is not None and again.record.id == second
    assert job_store.get(first) is not None


def test_claim_by_id_only_takes_a_pending_job(job_store: JobStore) -> None:
    # Given two pending jobs
    first, second = stored_job(job_store, 0, 10), stored_job(job_store, 10, 20)
    # When the second one is claimed by id, twice
    claimed = job_store.claim(second, "host/w", T0)
    # Then the first claim gets it and the second finds it no longer PENDING
    assert claimed is not None and claimed.record.id == second and claimed.token == 1
    assert job_store.claim(second, "host/w", T0) is None
    assert job_store.claim(999_999, "host/w", T0) is None
    assert job_store.claim_next("host/w", T0) is not None  # the first is untouched
    assert job_store.get(first) is not None


def test_retry_delay_is_respected_and_reported(job_store: JobStore) -> None:
    # Given a job whose first attempt failed with a retry in 60 s
    job_id = stored_job(job_store, 0, 10)
    claimed = job_store.claim_next("host/w", T0)
    assert claimed is not None
    status = job_store.fail_attempt(job_id, claimed.token, "boom", T0 + 60, T0)
    assert status is JobStatus.PENDING
    # When workers ask for work before and at the due time
    early = job_store.claim_next("host/w", T0 + 59)
    due_at = job_store.next_due_at()
    on_time = job_store.claim_next("host/w", T0 + 60)
    # Then the job waits, its due time is reported, and it is claimed when due
    assert early is None and due_at == T0 + 60
    assert on_time is not None and on_time.token == 2
    assert job_store.next_due_at() is None


def test_stale_token_is_rejected_and_changes_nothing(job_store: JobStore) -> None:
    # Given a job on its second attempt (the first worker was presumed lost)
    job_id = stored_job(job_store, 0, 10)
    first = job_store.claim_next("host/w1", T0)
    assert first is not None and job_store.requeue(job_id, first.token, "lease expired", T0)
    second = job_store.claim_next("host/w2", T0 + 1)
    assert second is not None and second.token == 2
    before = job_store.get(job_id)
    # When the first worker reports back with its old token
    outcomes = (
        job_store.complete(job_id, first.token, ["x.parquet"], T0 + 2),
        job_store.fail_attempt(job_id, first.token, "late", None, T0 + 2),
        job_store.requeue(job_id, first.token, "late", T0 + 2),
    )
    # Then every report is rejected and the job is as it was
    assert outcomes == (False, None, False)
    assert job_store.get(job_id) == before


def test_only_a_running_job_can_complete(job_store: JobStore) -> None:
    # Given a PENDING job / When it is completed with a plausible token
    job_id = stored_job(job_store, 0, 10)
    # Then nothing happens
    assert not job_store.complete(job_id, 0, [], T0)
    assert not job_store.complete(job_id, 1, [], T0)
    assert not job_store.complete(999_999, 1, [], T0)
    job = job_store.get(job_id)
    assert job is not None and job.status is JobStatus.PENDING


def test_complete_records_outputs(job_store: JobStore) -> None:
    # Given a running job
    job_id = stored_job(job_store, 0, 10)
    claimed = job_store.claim_next("host/w", T0)
    assert claimed is not None
    # When it completes
    done = job_store.complete(job_id, claimed.token, ["a.parquet", "b.parquet"], T0 + 5)
    # Then it is DONE with its outputs
    job = job_store.get(job_id)
    assert done and job is not None
    assert (job.status, job.finished_at, job.output_files) == (
        JobStatus.DONE,
        T0 + 5,
        ("a.parquet", "b.parquet"),
    )


def test_last_failed_attempt_makes_the_job_failed(job_store: JobStore) -> None:
    # Given a running job
    job_id = stored_job(job_store, 0, 10)
    claimed = job_store.claim_next("host/w", T0)
    assert claimed is not None
    # When its attempt fails with no retry left
    status = job_store.fail_attempt(job_id, claimed.token, "bad schema", None, T0 + 3)
    # Then it is FAILED, with the error, and no longer claimable
    job = job_store.get(job_id)
    assert status is JobStatus.FAILED and job is not None
    assert (job.status, job.last_error, job.finished_at) == (JobStatus.FAILED, "bad schema", T0 + 3)
    assert job_store.claim_next("host/w", T0 + 10**6) is None


def test_requeue_makes_the_job_claimable_at_once(job_store: JobStore) -> None:
    # Given a running job whose worker was lost
    job_id = stored_job(job_store, 0, 10)
    claimed = job_store.claim_next("host/w", T0)
    assert claimed is not None
    # When it is requeued
    assert job_store.requeue(job_id, claimed.token, "worker lost", T0 + 1)
    # Then it is PENDING with the reason, and the next claim gets it
    job = job_store.get(job_id)
    assert job is not None and (job.status, job.last_error) == (JobStatus.PENDING, "worker lost")
    again = job_store.claim_next("host/w2", T0 + 1)
    assert again is not None and again.record.id == job_id


def test_recover_running_puts_every_running_job_back(job_store: JobStore) -> None:
    # Given two RUNNING jobs and one PENDING job, as a crash would leave them
    ids = [stored_job(job_store, 0, 10, partition=p) for p in range(3)]
    assert job_store.claim(ids[0], "w", T0) and job_store.claim(ids[1], "w", T0)
    # When the JobManager starts
    recovered = job_store.recover_running(T0 + 1)
    # Then both running jobs are PENDING again and nothing else moved
    assert recovered == 2
    assert job_store.count_by_status()[JobStatus.PENDING] == 3
    assert job_store.recover_running(T0 + 2) == 0


def test_recover_running_of_one_owner_leaves_other_daemons_jobs(job_store: JobStore) -> None:
    # Given RUNNING jobs of two daemons sharing the store
    ids = [stored_job(job_store, 0, 10, partition=p) for p in range(3)]
    assert job_store.claim(ids[0], "hostA:1900/worker-1", T0)
    assert job_store.claim(ids[1], "hostA:1901/worker-1", T0)
    assert job_store.claim(ids[2], "hostA:1900/worker-2", T0)
    # When the first daemon restarts and recovers its own
    recovered = job_store.recover_running(T0 + 1, owner="hostA:1900")
    # Then only its two jobs are PENDING; the other daemon's job still runs
    assert recovered == 2
    assert job_store.get(ids[1]).status is JobStatus.RUNNING
    assert {job_store.get(i).status for i in (ids[0], ids[2])} == {JobStatus.PENDING}


def test_requeue_orphaned_takes_back_jobs_of_a_silent_job_manager(job_store: JobStore) -> None:
    # Given two job managers sharing the store, one of which stopped heartbeating
    job_store.heartbeat("dead:1", T0)
    job_store.heartbeat("live:1", T0 + 100)
    ids = [stored_job(job_store, 0, 10, partition=p) for p in range(3)]
    assert job_store.claim(ids[0], "dead:1/h/worker-1", T0)
    assert job_store.claim(ids[1], "live:1/h/worker-1", T0 + 100)
    assert job_store.claim(ids[2], "never-seen:1/h/worker-1", T0 + 100)
    # When jobs of managers silent since before T0 + 50 are taken back
    assert job_store.requeue_orphaned(T0 + 50, T0 + 101) == 2
    # Then the dead (and the never-heard-of) manager's jobs are PENDING, with a reason
    old = job_store.get(ids[0])
    assert old.status is JobStatus.PENDING and "no heartbeat" in (old.last_error or "")
    assert job_store.get(ids[2]).status is JobStatus.PENDING
    assert job_store.get(ids[1]).status is JobStatus.RUNNING
    # And a heartbeat moves forward on the same row
    job_store.heartbeat("dead:1", T0 + 200)
    assert job_store.claim_next("x", T0 + 201) is not None


def test_retry_failed_one_and_all(job_store: JobStore) -> None:
    # Given three FAILED jobs and one DONE job
    ids = [stored_job(job_store, 0, 10, partition=p) for p in range(4)]
    for job_id in ids:
        claimed = job_store.claim(job_id, "w", T0)
        assert claimed is not None
        if job_id == ids[3]:
            job_store.complete(job_id, claimed.token, [], T0)
        else:
            job_store.fail_attempt(job_id, claimed.token, "boom", None, T0)
    # When one is retried, then all
    one = job_store.retry_failed(ids[0], T0 + 1)
    not_failed = job_store.retry_failed(ids[3], T0 + 1)
    rest = job_store.retry_failed(None, T0 + 1)
    # Then each FAILED job is PENDING once more, its retry budget counted afresh
    # from a base, while its attempt numbers (tokens) go on: never reused
    assert (one, not_failed, rest) == (1, 0, 2)
    for job_id in ids[:3]:
        job = job_store.get(job_id)
        assert job is not None and job.status is JobStatus.PENDING
        assert (job.attempts, job.replay_base) == (1, 1)
    assert job_store.retry_failed(None, T0 + 2) == 0
    retried = job_store.claim(ids[0], "w", T0 + 3)
    assert retried is not None and retried.record.start_offset == 0
    assert retried.token == 2
    # And a completion carrying the pre-replay token is rejected
    assert not job_store.complete(ids[0], 1, [], T0 + 4)
    assert job_store.complete(ids[0], 2, [], T0 + 4)


# -- reading, purging, schema, reopening ---------------------------------------------------


def test_list_count_and_get(job_store: JobStore) -> None:
    # Given three jobs, one of them RUNNING
    ids = [stored_job(job_store, 0, 10, partition=p) for p in range(3)]
    assert job_store.claim(ids[1], "w", T0)
    # When they are listed and counted
    # Then lists are newest first, filtered and limited; counts cover every status
    assert [j.id for j in job_store.list_jobs()] == ids[::-1]
    assert [j.id for j in job_store.list_jobs(JobStatus.PENDING)] == [ids[2], ids[0]]
    assert [j.id for j in job_store.list_jobs(limit=1)] == [ids[2]]
    assert job_store.list_jobs(JobStatus.FAILED) == []
    assert job_store.count_by_status() == {
        JobStatus.PENDING: 2,
        JobStatus.RUNNING: 1,
        JobStatus.DONE: 0,
        JobStatus.FAILED: 0,
    }
    assert job_store.get(ids[0]) == job_store.list_jobs(JobStatus.PENDING)[1]
    assert job_store.get(999_999) is None


def test_purge_done_before_deletes_only_old_done_jobs(job_store: JobStore) -> None:
    # Given jobs DONE at T0+100 and T0+200, and one still PENDING
    old, new, pending = (stored_job(job_store, 0, 10, partition=p) for p in range(3))
    for job_id, finished in ((old, T0 + 100), (new, T0 + 200)):
        claimed = job_store.claim(job_id, "w", T0)
        assert claimed is not None and job_store.complete(job_id, claimed.token, [], finished)
    # When DONE jobs finished before T0+150 are purged
    purged = job_store.purge_done_before(T0 + 150)
    # Then only the old one is gone
    assert purged == 1
    assert job_store.get(old) is None
    assert job_store.get(new) is not None and job_store.get(pending) is not None


def test_schema_is_versioned_and_a_newer_one_is_refused(
    backend: Backend, open_store: Callable[[], JobStore]
) -> None:
    # Given a store at the latest schema, opened twice (the second open changes nothing)
    open_store().close()
    open_store().close()
    assert backend.raw("SELECT MAX(version), COUNT(*) FROM schema_version") == [
        (LATEST_VERSION, LATEST_VERSION)
    ]
    # When a newer actorsys has upgraded it
    backend.raw(
        "INSERT INTO schema_version (version, description, applied_at)"
        f" VALUES ({LATEST_VERSION + 1}, 'from the future', 0)"
    )
    # Then this code refuses to open it, in one line
    with pytest.raises(JobStoreError, match=r"schema version \d+ is newer than") as caught:
        open_store()
    assert "\n" not in str(caught.value)


def test_reopen_preserves_everything(
    job_store: JobStore, open_store: Callable[[], JobStore]
) -> None:
    # Given jobs in every state, one of them waiting for a retry
    ids = [stored_job(job_store, 0, 10, partition=p) for p in range(4)]
    running, done, failed, delayed = (job_store.claim(i, "host/w", T0 + 1) for i in ids)
    assert running and done and failed and delayed
    job_store.complete(done.record.id, done.token, ["out.parquet"], T0 + 2)
    job_store.fail_attempt(failed.record.id, failed.token, "bad", None, T0 + 2)
    job_store.fail_attempt(delayed.record.id, delayed.token, "later", T0 + 30, T0 + 2)
    before = job_store.list_jobs()
    job_store.close()
    # When the store is reopened
    reopened = open_store()
    # Then every job, due time and next_offset is as it was
    assert reopened.list_jobs() == before
    assert reopened.next_due_at() == T0 + 30
    assert reopened.next_offsets(GROUP) == {(TOPIC, p): 10 for p in range(4)}


def test_closed_store_raises_job_store_error(job_store: JobStore) -> None:
    # Given a closed store / When it is used / Then callers see the one error type
    job_store.close()
    with pytest.raises(JobStoreError):
        job_store.count_by_status()


@pytest.mark.postgres
def test_postgres_store_reconnects_after_losing_its_connection() -> None:
    # Given a PostgreSQL store whose server connection is killed (a restart, a failover)
    victim = f"actorsys-victim-{uuid.uuid4().hex[:8]}"
    with (
        _postgres_backend() as pg,
        closing(open_job_store(f"{pg.url}&application_name={victim}")) as store,
    ):
        stored_job(store, 0, 10)
        pg.raw(
            "SELECT pg_terminate_backend(pid, 5000) FROM pg_stat_activity"
            f" WHERE application_name = '{victim}'"
        )
        # When the JobManager calls it, fails, and retries as it does on any JobStoreError
        with pytest.raises(JobStoreError, match="count_by_status"):
            store.count_by_status()
        counts = store.count_by_status()
        # Then the retry reaches the server again and nothing was lost
        assert counts[JobStatus.PENDING] == 1
        assert store.submit_batch(batch(10, 20), T0).verdict is ChainVerdict.STORE


# -- the database backs the offset chain -------------------------------------------


def _insert_job(
    backend: Backend, start: int, end: int, group: str = GROUP, *, with_payload: bool = False
) -> None:
    """One jobs row through raw SQL, as a bug or a hand-made fix would add it;
    ``with_payload``: as versions before 7 stored jobs (with their records)."""
    columns, values = "", ""
    if with_payload:
        columns, values = ", payload_bytes", ", 3"
    backend.raw(
        "INSERT INTO jobs (consumer_group, topic, partition_id, start_offset, end_offset,"
        f" record_count, status, created_at{columns})"
        f" VALUES ('{group}', '{TOPIC}', 0, {start}, {end}, {end - start}, 'PENDING', {T0}"
        f"{values})"
    )
    if with_payload:
        backend.raw("INSERT INTO job_payloads (job_id, payload) SELECT MAX(id), 'abc' FROM jobs")


INTEGRITY_ERRORS = (sqlite3.IntegrityError, psycopg.IntegrityError)


def test_a_second_job_with_the_same_start_offset_is_refused_by_the_database(
    backend: Backend, job_store: JobStore
) -> None:
    # Given a job for [0, 10) stored through the offset chain
    stored_job(job_store, 0, 10)
    # When a second row for the same group, topic, partition and start is inserted
    # Then the database refuses it, whatever its end
    with pytest.raises(INTEGRITY_ERRORS, match=r"(?i)unique|duplicate"):
        _insert_job(backend, 0, 5)
    # while another start, or the same start in another group, is fine
    _insert_job(backend, 10, 20)
    _insert_job(backend, 0, 10, group="group-b")
    assert backend.raw("SELECT COUNT(*) FROM jobs") == [(3,)]


def _open_at_version(backend: Backend, monkeypatch: pytest.MonkeyPatch, version: int) -> None:
    """Create the database as actorsys with migrations 1..version only did."""
    from actorsys.jobs import schema

    with monkeypatch.context() as patch:
        patch.setattr(schema, "MIGRATIONS", schema.MIGRATIONS[:version])
        patch.setattr(schema, "LATEST_VERSION", version)
        with closing(open_job_store(backend.url)):
            pass
    # Rows as that version wrote them (today's INSERT names other columns).
    _insert_job(backend, 0, 10, with_payload=True)
    backend.raw(
        "INSERT INTO partition_offsets (consumer_group, topic, partition_id, next_offset)"
        f" VALUES ('{GROUP}', '{TOPIC}', 0, 10)"
    )
    assert backend.raw("SELECT MAX(version) FROM schema_version") == [(version,)]


def _open_at_version_3(backend: Backend, monkeypatch: pytest.MonkeyPatch) -> None:
    _open_at_version(backend, monkeypatch, 3)


def test_a_version_6_database_keeps_its_jobs_as_offset_intervals(
    backend: Backend, open_store: Callable[[], JobStore], monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given a database of the schema that stored each job's records with it
    _open_at_version(backend, monkeypatch, 6)
    # When this code opens it
    store = open_store()
    # Then the pending job keeps its interval (all a worker needs to read it
    # from Kafka), and the stored records are gone with their table
    assert backend.raw("SELECT MAX(version) FROM schema_version") == [(LATEST_VERSION,)]
    [job] = store.list_jobs()
    assert (job.start_offset, job.end_offset, job.status) == (0, 10, JobStatus.PENDING)
    assert store.submit_batch(batch(10, 20), T0).verdict is ChainVerdict.STORE
    claimed = store.claim_next("host/w", T0)
    assert claimed is not None and claimed.record.id == job.id
    with pytest.raises(Exception, match="job_payloads"):
        backend.raw("SELECT COUNT(*) FROM job_payloads")


def test_a_version_3_database_is_upgraded_with_the_unique_index(
    backend: Backend, open_store: Callable[[], JobStore], monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given a database written by the previous schema, holding a job
    _open_at_version_3(backend, monkeypatch)
    # When this code opens it
    store = open_store()
    # Then it is at the latest version, its job intact, and the index enforces
    assert backend.raw("SELECT MAX(version) FROM schema_version") == [(LATEST_VERSION,)]
    assert [(j.start_offset, j.end_offset) for j in store.list_jobs()] == [(0, 10)]
    assert store.submit_batch(batch(10, 20), T0).verdict is ChainVerdict.STORE
    with pytest.raises(INTEGRITY_ERRORS):
        _insert_job(backend, 10, 15)


def test_an_upgrade_over_twin_jobs_fails_and_changes_nothing(
    backend: Backend, open_store: Callable[[], JobStore], monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given a version 3 database in which two jobs start at the same offset
    _open_at_version_3(backend, monkeypatch)
    _insert_job(backend, 0, 5, with_payload=True)
    # When this code opens it / Then it refuses, in one line, rather than hide the twins
    with pytest.raises(JobStoreError, match="schema upgrade") as caught:
        open_store()
    assert "\n" not in str(caught.value)
    # and the upgrade was rolled back whole
    assert backend.raw("SELECT MAX(version) FROM schema_version") == [(3,)]
    assert backend.raw("SELECT COUNT(*) FROM jobs") == [(2,)]


# -- PostgreSQL sessions: durable, bounded, kept alive --------------------------------


def _show(store: JobStore, setting: str) -> str:
    conn = store._conn  # type: ignore[attr-defined]  # the store's own session
    row = conn.execute(f"SHOW {setting}").fetchone()
    assert row is not None
    return str(row[0])


def _conninfo(store: JobStore) -> dict[str, str]:
    """The libpq parameters the store's connection was made with."""
    conn = store._conn  # type: ignore[attr-defined]  # the PostgreSQL store's private connection
    return {o.keyword.decode(): (o.val or b"").decode() for o in conn.pgconn.info}


@pytest.mark.postgres
def test_postgres_sessions_commit_synchronously_time_out_and_keep_alive() -> None:
    with _postgres_backend() as pg, closing(open_job_store(pg.url)) as store:
        # Given a store opened with the defaults / Then its session is set up
        assert _show(store, "synchronous_commit") == "on"
        assert _show(store, "statement_timeout") == "30s"
        assert _show(store, "lock_timeout") == "10s"
        info = _conninfo(store)
        assert {k: info[k] for k in ("keepalives", "keepalives_idle")} == {
            "keepalives": "1",
            "keepalives_idle": "30",
        }
        assert (info["keepalives_interval"], info["keepalives_count"]) == ("10", "3")


@pytest.mark.postgres
def test_postgres_session_settings_in_the_url_win() -> None:
    with _postgres_backend() as pg:
        url = (
            f"{pg.url}&statement_timeout_ms=4000&keepalives_idle=7"
            "&options=-clock_timeout%3D1234&application_name=actorsys-url-wins"
        )
        # Given a URL that sets a timeout through our parameter, another
        # through libpq's options, and one keepalive parameter
        with closing(open_job_store(url)) as store:
            # Then each wins over its default and the others keep theirs
            assert _show(store, "statement_timeout") == "4s"
            assert _show(store, "lock_timeout") == "1234ms"
            assert _show(store, "synchronous_commit") == "on"
            assert _show(store, "application_name") == "actorsys-url-wins"
            info = _conninfo(store)
            assert (info["keepalives_idle"], info["keepalives_count"]) == ("7", "3")


@pytest.mark.postgres
def test_postgres_call_behind_a_held_lock_fails_in_bounded_time() -> None:
    with (
        _postgres_backend() as pg,
        closing(open_job_store(f"{pg.url}&lock_timeout_ms=200")) as store,
        psycopg.connect(PG_URL, connect_timeout=5) as holder,
    ):
        schema = dict(parse_qsl(urlsplit(pg.url).query))["schema"]
        # Given another session holding a lock the store needs, and not letting go
        holder.execute(sql.SQL("SET search_path TO {}").format(sql.Identifier(schema)))
        holder.execute("LOCK TABLE partition_offsets IN ACCESS EXCLUSIVE MODE")
        # When the JobManager stores a batch / Then it fails soon, instead of hanging
        started = time.monotonic()
        with pytest.raises(JobStoreError, match="lock timeout"):
            store.submit_batch(batch(0, 10), T0)
        assert time.monotonic() - started < 5
        # and once the lock is gone, the retry goes through
        holder.rollback()
        assert store.submit_batch(batch(0, 10), T0).verdict is ChainVerdict.STORE


@pytest.mark.parametrize("value", ["abc", "-1", ""])
def test_a_bad_timeout_parameter_is_a_config_error(value: str) -> None:
    # No server needed: the URL is checked before connecting.
    with pytest.raises(ConfigError, match="statement_timeout_ms"):
        open_job_store(f"{PG_URL}?statement_timeout_ms={value}")


def test_each_job_records_where_the_offset_chain_stood_before_it(job_store: JobStore) -> None:
    # Given a partition's first job, the next one, and one after a gap (offsets
    # 20..29 deleted before they were read)
    job_store.submit_batch(batch(0, 10), T0)
    job_store.submit_batch(batch(10, 20), T0)
    assert job_store.submit_batch(batch(30, 40, starts_assignment=True), T0).gap == 10
    # Then each job says where the chain stood: table commits follow that order
    chain = {j.start_offset: j.chain_start for j in job_store.list_jobs()}
    assert chain == {0: None, 10: 10, 30: 20}


HOUR_MS = 3_600_000


def test_compaction_jobs_are_durable_one_at_a_time_per_hour_and_yield_to_ingestion(
    job_store: JobStore,
) -> None:
    # Given a compaction job of an hour, and an ingestion job stored after it
    first = job_store.submit_compaction("raw", 10 * HOUR_MS, T0)
    assert first is not None
    assert job_store.submit_compaction("raw", 10 * HOUR_MS, T0) is None  # one per hour
    job_store.submit_batch(batch(0, 10), T0)
    # When workers claim, Then ingestion comes first, then the compaction
    ingest = job_store.claim_next("w1", T0)
    compact = job_store.claim_next("w2", T0)
    assert ingest is not None and ingest.record.kind is JobKind.INGEST
    assert compact is not None and compact.record.kind is JobKind.COMPACT
    assert compact.record.window_ms == 10 * HOUR_MS
    # And at most one compaction runs at a time
    job_store.submit_compaction("raw", 11 * HOUR_MS, T0)
    assert job_store.claim_next("w3", T0) is None
    # And once done, its hour may be compacted again (late records re-open it)
    assert job_store.complete(compact.record.id, compact.token, [], T0)
    assert job_store.submit_compaction("raw", 10 * HOUR_MS, T0) is not None
    assert job_store.claim_next("w3", T0) is not None


def _open_when_released(release: Any, path: str, answers: Any) -> None:
    release.wait()
    try:
        open_job_store(f"sqlite:///{path}").close()
        answers.put("opened")
    except JobStoreError as exc:
        answers.put(str(exc))


def test_processes_that_open_one_new_sqlite_store_at_once_all_open_it(tmp_path: Path) -> None:
    # Given six processes released at once onto a database file that does not
    # exist yet (daemons sharing a job store, started together), 60 times. Two
    # that switch the new file to WAL together deadlock, and SQLite answers one
    # "database is locked" at once, without waiting: before the fix 14 rounds
    # in 50 failed.
    import multiprocessing

    import actorsys.jobs.sqlite  # noqa: F401  (imported once, here: the openers start in step)

    ctx = multiprocessing.get_context("fork")
    openers_per_round = 6
    failures: list[str] = []
    for round_no in range(60):
        path = str(tmp_path / f"{round_no}" / "jobs.db")
        release, answers = ctx.Barrier(openers_per_round), ctx.Queue()
        openers = [
            ctx.Process(target=_open_when_released, args=(release, path, answers))
            for _ in range(openers_per_round)
        ]
        for opener in openers:
            opener.start()
        for opener in openers:
            opener.join(timeout=30)
            assert opener.exitcode == 0
        # Then every process opened it: none was told the database is locked
        failures += [a for a in (answers.get(timeout=5) for _ in openers) if a != "opened"]
    assert failures == []
