"""CommitQueue: which written jobs a table commit publishes, in offset order per
partition, driven with an explicit fake clock (``now`` is a plain float)."""

from __future__ import annotations

import itertools
import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from actorsys.tables.commit_queue import (
    REMEMBERED_COMMITS,
    ChainKey,
    CommitPlan,
    CommitQueue,
    SkippedJob,
    WrittenJob,
)

A: ChainKey = ("g", "t", 0)
B: ChainKey = ("g", "t", 1)

# No example database on disk, no per-example deadline (slow CI machines).
PROPERTY = settings(database=None, deadline=None)


def written(
    job_id: int,
    start: int,
    end: int,
    *,
    key: ChainKey = A,
    token: int = 1,
    chain_start: int | None = None,
    first: bool = False,
    files: int = 1,
) -> WrittenJob:
    """A job of ``key`` over ``[start, end)`` whose files name the attempt. Its
    chain expected ``chain_start`` (default ``start``), nothing if ``first``."""
    chain = None if first else start if chain_start is None else chain_start
    names = tuple(f"{key[2]}/{start}-{end}.{token}.{i}.parquet" for i in range(files))
    return WrittenJob(job_id, token, key, chain, start, end, names)


def skipped(job_id: int, start: int, end: int, *, key: ChainKey = A) -> SkippedJob:
    return SkippedJob(job_id, key, start, start, end)


def queue(interval_s: float = 10.0, max_files: int = 100) -> CommitQueue:
    return CommitQueue(interval_s=interval_s, max_files=max_files)


# --- order ---------------------------------------------------------------------------------


def test_interleaved_partitions_commit_each_in_offset_order() -> None:
    # Given two partitions, A empty in the table (its chain's first job is 1) and B at 100
    q = queue()
    q.known_version(A, None)
    q.known_version(B, 100)
    a1, a2 = written(1, 0, 10, first=True), written(3, 10, 20)
    b1, b2 = written(2, 100, 150, key=B), written(4, 150, 200, key=B)
    # When their jobs are offered interleaved, a later one of each first
    for now, job in enumerate([a2, b2, a1, b1]):
        q.offer(job, float(now))
    plan = q.plan(now=20.0)
    # Then one plan holds all four, each partition's in offset order
    assert plan is not None
    assert [j for j in plan.jobs if j.key == A] == [a1, a2]
    assert [j for j in plan.jobs if j.key == B] == [b1, b2]
    assert plan.txns == {A: 20, B: 200}
    assert sorted(plan.files) == sorted(f for j in (a1, a2, b1, b2) for f in j.files)
    assert plan.skipped == ()
    # And once committed the versions advance and the queue is empty
    q.committed(plan, began_at=0.0)
    assert (q.version(A), q.version(B), len(q)) == (20, 200, 0)
    assert q.plan(now=30.0) is None
    assert q.duplicates() == []


def test_later_job_waits_for_its_predecessor() -> None:
    # Given a partition at version 0
    q = queue()
    q.known_version(A, 0)
    # When the job [10, 20) is written before [0, 10)
    q.offer(written(2, 10, 20), now=0.0)
    # Then nothing is committable, however long it waits
    assert q.plan(now=1000.0) is None
    assert not q.due(now=1000.0)
    assert q.waiting() == {A: 1}
    # When its predecessor arrives
    q.offer(written(1, 0, 10), now=1000.0)
    plan = q.plan(now=1000.0)
    # Then both commit, in order
    assert plan is not None
    assert [(j.start, j.end) for j in plan.jobs] == [(0, 10), (10, 20)]
    assert plan.txns == {A: 20}
    assert q.waiting() == {}


def test_plan_changes_no_state() -> None:
    # Given committable jobs
    q = queue()
    q.known_version(A, 0)
    q.offer(written(1, 0, 10), now=0.0)
    # When planned twice / Then the same plan comes back and the job is still queued
    assert q.plan(now=1.0) == q.plan(now=2.0)
    assert len(q) == 1
    assert q.version(A) == 0


def test_partition_whose_table_version_is_unknown_waits() -> None:
    # Given a queue that has not read the table for A yet (just restarted)
    q = queue()
    # When A's job is offered
    q.offer(written(1, 0, 10, first=True), now=0.0)
    # Then it is not committed on a guess: it waits for known_version
    assert q.plan(now=100.0) is None
    assert not q.due(now=100.0)
    assert q.waiting() == {A: 1}
    # When the table says it holds nothing of A / Then the job is committable
    q.known_version(A, None)
    plan = q.plan(now=100.0)
    assert plan is not None
    assert plan.txns == {A: 10}


def test_empty_table_starts_only_with_the_chains_first_job() -> None:
    # Given a table with nothing of A
    q = queue()
    q.known_version(A, None)
    # When [10, 20) is written before the chain's first job [0, 10)
    second = written(2, 10, 20)
    q.offer(second, now=0.0)
    # Then it waits: committed first, it would turn [0, 10) into a "duplicate"
    assert q.plan(now=100.0) is None
    assert q.waiting() == {A: 1}
    # When the first job arrives / Then both commit, in order
    first = written(1, 0, 10, first=True)
    q.offer(first, now=1.0)
    plan = q.plan(now=100.0)
    assert plan is not None
    assert plan.jobs == (first, second)


def test_table_created_over_an_existing_chain_is_started_by_the_caller() -> None:
    # Given a job store with history (chains expect offsets) and a new table
    q = queue()
    q.known_version(A, None)
    q.offer(written(8, 500, 600), now=0.0)
    q.offer(written(7, 400, 500), now=0.0)
    assert q.plan(now=100.0) is None
    # When the caller starts the table where its first job's chain starts
    q.known_version(A, 400)
    plan = q.plan(now=100.0)
    # Then the chain is committed from there
    assert plan is not None
    assert [j.job_id for j in plan.jobs] == [7, 8]
    assert plan.txns == {A: 600}


# --- duplicates, gaps, skipped jobs ----------------------------------------------------------


def test_jobs_already_in_the_table_after_a_restart_are_duplicates() -> None:
    # Given a restarted committer whose table holds A up to 20, and old jobs queued
    q = queue()
    old_queued = written(1, 0, 10)
    q.offer(old_queued, now=0.0)
    # When it learns the version, and more covered jobs are offered
    q.known_version(A, 20)
    old_offered = written(2, 10, 20, token=3)
    q.offer(old_offered, now=1.0)
    new = written(3, 20, 30)
    q.offer(new, now=2.0)
    # Then the covered ones are duplicates, reported once, and leave the queue
    assert q.duplicates() == [old_queued, old_offered]
    assert q.duplicates() == []
    assert len(q) == 1
    # And the next job continues from the table's version
    plan = q.plan(now=100.0)
    assert plan is not None
    assert plan.jobs == (new,)
    assert plan.txns == {A: 30}


def test_job_after_a_retention_gap_continues_the_chain() -> None:
    # Given A at version 10, and offsets [10, 50) deleted by retention before being read
    q = queue()
    q.known_version(A, 10)
    # When the next job starts at 50 but its chain expected 10
    after_gap = written(1, 50, 60, chain_start=10)
    q.offer(after_gap, now=0.0)
    plan = q.plan(now=100.0)
    # Then it is committable, and the version jumps past the gap
    assert plan is not None
    assert plan.jobs == (after_gap,)
    assert plan.txns == {A: 60}


def test_job_whose_chain_expected_another_offset_waits() -> None:
    # Given A at version 10
    q = queue()
    q.known_version(A, 10)
    # When a job expected its chain at 40 (the job for [10, 40) is still running)
    q.offer(written(2, 50, 60, chain_start=40), now=0.0)
    # Then it waits
    assert q.plan(now=100.0) is None
    assert q.waiting() == {A: 1}


def test_first_job_of_a_chain_follows_whatever_the_table_holds() -> None:
    # Given A at version 10 (the job store knew nothing when the job was stored)
    q = queue()
    q.known_version(A, 10)
    # When the chain's first job starts at or past 10
    first = written(1, 12, 20, first=True)
    q.offer(first, now=0.0)
    # Then it is committable
    plan = q.plan(now=100.0)
    assert plan is not None
    assert plan.jobs == (first,)


def test_job_overlapping_the_table_waits_forever() -> None:
    # Given A at version 10
    q = queue()
    q.known_version(A, 10)
    # When a chain's first job covers [5, 20): its files cannot be trimmed
    q.offer(written(1, 5, 20, first=True), now=0.0)
    # Then it is never committed, and shows as waiting
    assert q.plan(now=1e9) is None
    assert q.waiting() == {A: 1}
    assert q.duplicates() == []


def test_failed_job_advances_the_version_when_next_in_line() -> None:
    # Given A at version 0, and the job [10, 20) written
    q = queue()
    q.known_version(A, 0)
    after = written(2, 10, 20)
    q.offer(after, now=0.0)
    # When the job [0, 10) ended FAILED (dead-lettered, no files)
    failed = skipped(1, 0, 10)
    q.skip(failed, now=1.0)
    plan = q.plan(now=100.0)
    # Then one commit accounts for both, the failed job without files
    assert plan is not None
    assert plan.skipped == (failed,)
    assert plan.jobs == (after,)
    assert plan.files == after.files
    assert plan.txns == {A: 20}
    q.committed(plan, began_at=0.0)
    assert (q.version(A), len(q)) == (20, 0)


def test_failed_jobs_alone_make_a_commit_of_versions_only() -> None:
    # Given A at version 0
    q = queue(interval_s=10.0)
    q.known_version(A, 0)
    # When only a FAILED job waits
    q.skip(skipped(1, 0, 10), now=0.0)
    # Then it is due like any job, and commits no file
    assert q.due(now=0.0)
    plan = q.plan(now=0.0)
    assert plan is not None
    assert (plan.jobs, plan.files, plan.txns) == ((), (), {A: 10})


def test_failed_job_already_in_the_table_is_dropped_silently() -> None:
    # Given A at version 10 / When a FAILED job below it is skipped
    q = queue()
    q.known_version(A, 10)
    q.skip(skipped(1, 0, 10), now=0.0)
    # Then nothing is queued and nothing is to delete
    assert len(q) == 0
    assert q.duplicates() == []


# --- size and timing -----------------------------------------------------------------------


def test_max_files_splits_the_commit_between_whole_jobs() -> None:
    # Given at most 3 files per commit, and jobs of 2, 2 (partition A) and 1 (B) files
    q = queue(max_files=3)
    q.known_version(A, 0)
    q.known_version(B, 0)
    a1, a2 = written(1, 0, 10, files=2), written(2, 10, 20, files=2)
    b1 = written(3, 0, 10, key=B, files=1)
    q.offer(a1, now=0.0)
    q.offer(a2, now=1.0)
    q.offer(b1, now=2.0)
    # When planned
    plan = q.plan(now=100.0)
    # Then the oldest jobs that fit whole are taken: a2 would overflow, b1 still fits
    assert plan is not None
    assert plan.jobs == (a1, b1)
    assert len(plan.files) == 3
    assert plan.txns == {A: 10, B: 10}
    # And the rest comes in the next commit
    q.committed(plan, began_at=0.0)
    second = q.plan(now=100.0)
    assert second is not None
    assert second.jobs == (a2,)
    assert second.txns == {A: 20}


def test_partition_full_for_this_commit_keeps_its_later_jobs_back() -> None:
    # Given at most 2 files, A's jobs of 2 and then 0 (FAILED) files, B's of 1
    q = queue(max_files=2)
    q.known_version(A, 0)
    q.known_version(B, 0)
    b1 = written(1, 0, 10, key=B, files=1)
    q.offer(b1, now=0.0)
    q.offer(written(2, 0, 10, files=2), now=1.0)
    q.skip(skipped(3, 10, 20), now=2.0)
    # When planned / Then A's big job does not fit, and its FAILED successor may not overtake it
    plan = q.plan(now=100.0)
    assert plan is not None
    assert plan.jobs == (b1,)
    assert plan.skipped == ()
    assert plan.txns == {B: 10}


def test_job_larger_than_max_files_is_committed_alone() -> None:
    # Given at most 2 files per commit
    q = queue(max_files=2)
    q.known_version(A, 0)
    q.known_version(B, 0)
    big = written(1, 0, 10, files=5)
    q.offer(big, now=0.0)
    q.offer(written(2, 0, 10, key=B), now=1.0)
    # When a job of 5 files is the oldest / Then it is planned on its own
    plan = q.plan(now=100.0)
    assert plan is not None
    assert plan.jobs == (big,)
    assert len(plan.files) == 5


def test_commits_are_due_at_once_then_at_most_one_per_interval() -> None:
    # Given a 10 s interval
    q = queue(interval_s=10.0, max_files=100)
    q.known_version(A, 0)
    # When a job waits for its predecessor / Then nothing is due
    q.offer(written(9, 50, 60), now=0.0)
    assert not q.due(now=0.0)
    # When a committable job arrives after a quiet spell / Then it goes at once
    q.offer(written(1, 0, 10), now=5.0)
    assert q.due(now=5.0)
    plan = q.plan(now=5.0)
    assert plan is not None
    q.committed(plan, began_at=5.0)
    # When the next one is written right after / Then it waits for the interval
    q.offer(written(2, 10, 50), now=6.0)
    assert not q.due(now=14.9)
    assert q.due(now=15.0)


def test_commit_is_due_early_when_max_files_wait() -> None:
    # Given a long interval and at most 4 files per commit
    q = queue(interval_s=3600.0, max_files=4)
    q.known_version(A, 0)
    q.known_version(B, 0)
    q.committed(CommitPlan((), (), {}, ()), began_at=0.0)  # a commit began the interval
    q.offer(written(1, 0, 10, files=2), now=0.0)
    # When 3 committable files wait / Then it is not due yet
    q.offer(written(2, 0, 10, key=B, files=1), now=1.0)
    assert not q.due(now=2.0)
    # When a 4th one is written / Then it is due at once
    q.offer(written(3, 10, 20, key=B, files=1), now=2.0)
    assert q.due(now=2.0)


def test_nothing_is_due_when_the_queue_is_empty() -> None:
    q = queue()
    assert not q.due(now=1e9)
    assert q.plan(now=1e9) is None
    assert len(q) == 0


# --- conflicts and re-offered jobs ---------------------------------------------------------


def test_conflict_leaves_every_job_and_version_unchanged() -> None:
    # Given a plan in flight
    q = queue()
    q.known_version(A, 0)
    q.offer(written(1, 0, 10), now=0.0)
    q.offer(written(2, 10, 20), now=1.0)
    plan = q.plan(now=100.0)
    # When the table commit conflicts
    q.conflicted()
    # Then the same plan is made again, nothing is a duplicate, and the conflict is counted
    assert q.plan(now=100.0) == plan
    assert (q.version(A), len(q), q.duplicates(), q.conflicts) == (0, 2, [], 1)


def test_refresh_after_a_conflict_turns_what_another_writer_committed_into_duplicates() -> None:
    # Given a conflicted plan: another writer committed A up to 10 meanwhile
    q = queue()
    q.known_version(A, 0)
    first, second = written(1, 0, 10), written(2, 10, 20)
    q.offer(first, now=0.0)
    q.offer(second, now=0.0)
    q.conflicted()
    # When the caller refreshes the table
    q.known_version(A, 10)
    # Then the covered job is a duplicate and the rest is planned from 10
    assert q.duplicates() == [first]
    plan = q.plan(now=100.0)
    assert plan is not None
    assert plan.jobs == (second,)


def test_same_attempt_offered_again_keeps_one_entry() -> None:
    # Given a queued attempt
    q = queue()
    q.known_version(A, 0)
    job = written(1, 0, 10, token=7)
    q.offer(job, now=0.0)
    # When the same attempt is offered again (a retransmitted notice)
    q.offer(job, now=5.0)
    # Then there is one entry, still waiting since its first offer, and nothing to delete
    assert len(q) == 1
    assert q.due(now=10.0)
    assert q.duplicates() == []


def test_newer_attempt_replaces_one_not_in_the_plan() -> None:
    # Given an attempt queued behind a missing predecessor (so in no plan)
    q = queue()
    q.known_version(A, 0)
    old, new = written(2, 10, 20, token=1), written(2, 10, 20, token=2)
    q.offer(old, now=0.0)
    # When a retried attempt of the same job is written
    q.offer(new, now=1.0)
    assert len(q) == 1
    # And the next commit goes through without it
    q.known_version(B, 0)
    q.offer(written(9, 0, 5, key=B), now=1.0)
    plan = q.plan(now=100.0)
    assert plan is not None
    q.committed(plan, began_at=0.0)
    # Then the older attempt is released as a duplicate, the newer one is committed later
    assert q.duplicates() == [old]
    q.offer(written(1, 0, 10), now=2.0)
    later = q.plan(now=100.0)
    assert later is not None
    assert later.jobs[-1] == new


def test_newer_attempt_loses_to_an_older_one_in_the_plan_in_flight() -> None:
    # Given a plan holding attempt 1 of a job, in flight
    q = queue()
    q.known_version(A, 0)
    old, new = written(1, 0, 10, token=1), written(1, 0, 10, token=2)
    q.offer(old, now=0.0)
    plan = q.plan(now=100.0)
    assert plan is not None
    # When attempt 2 is written meanwhile, and then the plan is committed
    q.offer(new, now=1.0)
    assert q.duplicates() == []  # attempt 1's files may be in the table: not released yet
    q.committed(plan, began_at=0.0)
    # Then attempt 2 is the duplicate: the offsets are committed once, never twice
    assert q.duplicates() == [new]
    assert (q.version(A), len(q)) == (10, 0)


def test_attempt_displaced_while_a_plan_conflicts_is_released() -> None:
    # Given a plan holding attempt 1, then attempt 2 offered
    q = queue()
    q.known_version(A, 0)
    old, new = written(1, 0, 10, token=1), written(1, 0, 10, token=2)
    q.offer(old, now=0.0)
    q.plan(now=100.0)
    q.offer(new, now=1.0)
    # When the table commit fails
    q.conflicted()
    # Then attempt 1 is in no table: it is the duplicate, and attempt 2 is planned next
    assert q.duplicates() == [old]
    plan = q.plan(now=100.0)
    assert plan is not None
    assert plan.jobs == (new,)


def test_older_attempt_arriving_late_is_a_duplicate_at_once() -> None:
    # Given attempt 2 queued
    q = queue()
    q.known_version(A, 0)
    new = written(1, 0, 10, token=2)
    q.offer(new, now=0.0)
    # When attempt 1 reports afterwards / Then it was never queued: deleted at once
    stale = written(1, 0, 10, token=1)
    q.offer(stale, now=1.0)
    assert q.duplicates() == [stale]
    plan = q.plan(now=100.0)
    assert plan is not None
    assert plan.jobs == (new,)


def test_committed_attempt_offered_again_is_not_a_duplicate() -> None:
    # Given an attempt committed
    q = queue()
    q.known_version(A, 0)
    job = written(1, 0, 10)
    q.offer(job, now=0.0)
    plan = q.plan(now=100.0)
    assert plan is not None
    q.committed(plan, began_at=0.0)
    # When the very same attempt is offered again (its notice retransmitted)
    q.offer(job, now=101.0)
    # Then it is ignored: its files are the table's, not garbage
    assert q.duplicates() == []
    assert len(q) == 0


def test_committed_attempts_are_remembered_only_boundedly() -> None:
    # Given more committed attempts than are remembered
    q = queue(max_files=REMEMBERED_COMMITS + 1)
    q.known_version(A, 0)
    jobs = [written(i, i, i + 1) for i in range(REMEMBERED_COMMITS + 1)]
    for job in jobs:
        q.offer(job, now=0.0)
    plan = q.plan(now=100.0)
    assert plan is not None
    q.committed(plan, began_at=0.0)
    # When the oldest is offered again / Then it is reported (the caller checks the table)
    q.offer(jobs[0], now=101.0)
    q.offer(jobs[-1], now=101.0)
    assert q.duplicates() == [jobs[0]]


def test_failed_outcome_replaces_a_queued_written_attempt() -> None:
    # Given a written attempt queued behind a missing predecessor
    q = queue()
    q.known_version(A, 0)
    attempt = written(2, 10, 20)
    q.offer(attempt, now=0.0)
    # When the job finally ends FAILED (its records were dead-lettered)
    q.skip(skipped(2, 10, 20), now=1.0)
    q.skip(skipped(1, 0, 10), now=1.0)
    plan = q.plan(now=100.0)
    assert plan is not None
    # Then the commit skips it, and the written attempt's files are released after it
    assert (plan.jobs, [s.job_id for s in plan.skipped], plan.txns) == ((), [1, 2], {A: 20})
    q.committed(plan, began_at=0.0)
    assert q.duplicates() == [attempt]
    # And a written attempt of a FAILED job reported later is a duplicate too
    q.known_version(B, 0)
    q.skip(skipped(5, 0, 10, key=B), now=2.0)
    late = written(5, 0, 10, key=B)
    q.offer(late, now=3.0)
    assert q.duplicates() == [late]


# --- status and forgetting -----------------------------------------------------------------


def test_forget_drops_a_partition_without_calling_its_jobs_duplicates() -> None:
    # Given queued jobs of A and B
    q = queue()
    q.known_version(A, 0)
    q.known_version(B, 0)
    a = written(1, 0, 10)
    q.offer(a, now=0.0)
    q.offer(written(2, 0, 10, key=B), now=0.0)
    # When A is forgotten
    assert q.forget(A) == [a]
    # Then only B remains, nothing is to delete, and A's version must be read again
    assert len(q) == 1
    assert q.duplicates() == []
    q.offer(written(3, 10, 20), now=1.0)
    assert q.waiting() == {A: 1}
    plan = q.plan(now=100.0)
    assert plan is not None
    assert set(plan.txns) == {B}


def test_max_files_must_be_positive() -> None:
    with pytest.raises(ValueError, match="max_files"):
        CommitQueue(interval_s=1.0, max_files=0)


# --- property: whatever the order, each job's offsets are committed exactly once -------------


@PROPERTY
@given(
    sizes=st.lists(st.integers(1, 5), min_size=1, max_size=12),
    order=st.randoms(use_true_random=False),
    max_files=st.integers(1, 4),
    retries=st.sets(st.integers(0, 11)),
    resent=st.sets(st.integers(0, 11)),
    failed=st.sets(st.integers(0, 11)),
    conflict_every=st.integers(2, 5),
)
def test_any_order_commits_every_offset_exactly_once_in_order(
    sizes: list[int],
    order: random.Random,
    max_files: int,
    retries: set[int],
    resent: set[int],
    failed: set[int],
    conflict_every: int,
) -> None:
    # Given a chain of jobs over two partitions, some FAILED, some written twice,
    # some notices sent twice
    q = queue(interval_s=0.0, max_files=max_files)
    events: list[WrittenJob | SkippedJob] = []
    for key in (A, B):
        q.known_version(key, None)
        start = 0
        for i, size in enumerate(sizes):
            job_id = i if key == A else 100 + i
            end = start + size * 10
            chain = None if i == 0 else start  # the chain's first job expects nothing
            if i in failed:
                events.append(SkippedJob(job_id, key, chain, start, end))
            else:
                events.extend(
                    written(job_id, start, end, key=key, token=t, first=i == 0, files=size)
                    for t in ((1, 2) if i in retries else (1,))
                )
                if i in resent:
                    events.append(events[-1])
            start = end
    every_file = {f for e in events if isinstance(e, WrittenJob) for f in e.files}
    order.shuffle(events)
    # When they arrive in any order, while plans are in flight (some conflicting)
    table: dict[ChainKey, list[tuple[int, int]]] = {A: [], B: []}
    in_table: list[object] = []
    deleted: list[object] = []
    in_flight: CommitPlan | None = None
    plans = 0

    def resolve(plan: CommitPlan) -> None:
        nonlocal plans
        plans += 1
        if plans % conflict_every == 0:
            q.conflicted()
            return
        done: list[WrittenJob | SkippedJob] = [*plan.jobs, *plan.skipped]
        for job in sorted(done, key=lambda j: j.start):
            table[job.key].append((job.start, job.end))
        in_table.extend(plan.files)
        q.committed(plan, began_at=0.0)

    now = 0.0
    while events or in_flight is not None or q.plan(now) is not None:
        now += 1.0
        if events and order.random() < 0.5:
            event = events.pop()
            if isinstance(event, SkippedJob):
                q.skip(event, now)
            else:
                q.offer(event, now)
        elif in_flight is None:
            in_flight = q.plan(now)
        else:
            resolve(in_flight)
            in_flight = None
        deleted.extend(f for dup in q.duplicates() for f in dup.files)
    # Then each partition's jobs were committed once each, contiguous and in order
    total = sum(sizes) * 10
    for key in (A, B):
        intervals = table[key]
        assert intervals[0][0] == 0
        assert all(a[1] == b[0] for a, b in itertools.pairwise(intervals))
        assert intervals[-1][1] == total
        assert q.version(key) == total
    assert len(q) == 0
    # And no file the table holds was handed over for deletion; every other file was
    assert not set(in_table) & set(deleted)
    assert set(in_table) | set(deleted) == every_file
