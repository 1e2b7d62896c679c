"""The JobManager's counts between recounts, and when its upkeep is due (fake clock)."""

from __future__ import annotations

from actorsys.jobs.model import JobStatus
from actorsys.jobs.upkeep import JobCounts, Upkeep

PENDING, RUNNING, DONE, FAILED = (
    JobStatus.PENDING,
    JobStatus.RUNNING,
    JobStatus.DONE,
    JobStatus.FAILED,
)


def test_counts_follow_the_job_managers_own_transitions() -> None:
    counts = JobCounts()
    counts.added(3)
    counts.moved(PENDING, RUNNING, 2)
    counts.moved(RUNNING, DONE)
    counts.moved(RUNNING, PENDING)  # a retry
    assert counts.by_status() == {"PENDING": 2, "RUNNING": 0, "DONE": 1, "FAILED": 0}
    assert counts.unfinished == 2


def test_a_recount_replaces_what_was_kept_and_names_every_status() -> None:
    counts = JobCounts()
    counts.added(5)
    counts.recounted({RUNNING: 1, FAILED: 2})  # another JobManager took and failed some
    assert counts.by_status() == {"PENDING": 0, "RUNNING": 1, "DONE": 0, "FAILED": 2}
    assert counts[PENDING] == 0 and counts.unfinished == 1


def test_a_move_another_job_manager_made_first_never_goes_below_zero() -> None:
    counts = JobCounts()
    counts.recounted({RUNNING: 1})
    counts.moved(RUNNING, DONE)
    counts.moved(RUNNING, DONE)  # the store said it was done: the recount sets it right
    assert counts[RUNNING] == 0 and counts[DONE] == 2


def test_store_chores_run_at_once_then_once_per_period() -> None:
    upkeep = Upkeep(store_every_s=5.0)
    assert upkeep.store_chores_due(100.0)
    assert not upkeep.store_chores_due(101.0)
    assert not upkeep.store_chores_due(104.9)
    assert upkeep.store_chores_due(105.0)
    assert not upkeep.store_chores_due(106.0)


def test_idle_workers_are_those_told_no_job_since_the_last_wake() -> None:
    upkeep = Upkeep()
    assert not upkeep.workers_idle
    upkeep.worker_idle("w1")
    upkeep.worker_idle("w2")
    upkeep.worker_busy("w1")  # it got a job
    assert upkeep.workers_idle
    upkeep.woken()  # each asks again; idle again only if told "no job" again
    assert not upkeep.workers_idle
    upkeep.worker_idle("w2")
    upkeep.worker_busy("w2")  # or it is gone
    assert not upkeep.workers_idle
