"""A worker's job requests, with a fake clock: one out at a time, asked again
when its answer seems lost, and again after a "no job" that a wake-up overtook."""

from __future__ import annotations

from actorsys.job_requests import JobRequests

AGAIN_S = 5.0


def test_one_request_is_out_at_a_time_and_an_unanswered_one_is_asked_again() -> None:
    requests = JobRequests(AGAIN_S)
    assert not requests.outstanding
    assert requests.ask(0.0)
    assert requests.outstanding
    assert not requests.ask(1.0)  # a JobAvailable, a tick: the request is still out
    assert not requests.ask(4.9)
    assert requests.ask(5.0)  # its answer seems lost
    assert not requests.ask(9.9)


def test_a_no_job_answer_ends_the_request_and_asks_nothing_more() -> None:
    requests = JobRequests(AGAIN_S)
    assert requests.ask(0.0)
    assert not requests.no_job()
    assert not requests.outstanding
    assert requests.ask(0.1)  # the next wake-up asks at once


def test_a_wake_up_that_overtakes_the_no_job_answer_asks_again() -> None:
    # The lost wake-up: the request is out, a job is stored and announced, and
    # the announcement arrives before the JobManager's earlier "no job".
    requests = JobRequests(AGAIN_S)
    assert requests.ask(0.0)
    requests.woken()
    assert not requests.ask(0.01)  # the JobAvailable itself sends nothing: one request out
    assert requests.no_job()  # ask again: the job may be newer than the answer
    assert requests.ask(0.02)
    assert not requests.no_job()  # once: this answer is the last word


def test_a_wake_up_while_idle_leaves_no_debt() -> None:
    requests = JobRequests(AGAIN_S)
    requests.woken()
    assert requests.ask(0.0)
    assert not requests.no_job()


def test_a_job_assigned_clears_the_wake_up() -> None:
    requests = JobRequests(AGAIN_S)
    assert requests.ask(0.0)
    requests.woken()
    requests.assigned()
    assert not requests.outstanding
    assert requests.ask(1.0)  # after the job
    assert not requests.no_job()


def test_a_request_to_a_job_manager_that_moved_is_forgotten() -> None:
    requests = JobRequests(AGAIN_S)
    assert requests.ask(0.0)
    requests.forget()
    assert not requests.outstanding
    assert requests.ask(0.1)  # the new JobManager is asked at once
