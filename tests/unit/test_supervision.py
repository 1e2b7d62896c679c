"""The Supervisor's rules: restarts with backoff, giving up, and the drain."""

from __future__ import annotations

from actorsys.messages import Drained
from actorsys.supervision import DrainPlan, GiveUp, Restart, RestartBook

# --- restarts -----------------------------------------------------------------------------------


def test_a_crash_loop_backs_off_and_a_role_that_came_up_is_retried_at_once_again() -> None:
    book = RestartBook(backoff_s=(0.5, 1, 2), max_failing=5)
    delays = [book.exited("job_manager") for _ in range(4)]
    # Each failed restart waits longer, up to the last step
    assert [d.delay_s for d in delays if isinstance(d, Restart)] == [0.5, 1, 2, 2]
    # When the role comes up, one crash weeks later is retried at the first step
    book.came_up("job_manager")
    again = book.exited("job_manager")
    assert again == Restart("job_manager", 0.5, 5)
    assert book.restarts == {"job_manager": 5}


def test_a_role_that_keeps_failing_is_given_up_with_the_reason_of_its_last_start() -> None:
    book = RestartBook(backoff_s=(0.5,), max_failing=2)
    book.exited("committer:raw")
    book.failed_to_start("committer:raw", "table is not writable")
    book.exited("committer:raw")
    decision = book.exited("committer:raw")
    assert isinstance(decision, GiveUp)
    assert "2 failed restarts: table is not writable" in decision.why
    assert book.lost == {"committer:raw": decision.why}
    # Other roles are not affected
    assert isinstance(book.exited("worker_master"), Restart)


def test_a_members_consumer_is_always_replaced_with_backoff() -> None:
    book = RestartBook(backoff_s=(0.5, 1), max_failing=1)
    assert [book.replaced("kafka_consumer@b:1") for _ in range(3)] == [0.5, 1, 1]
    assert book.lost == {}


# --- the drain ----------------------------------------------------------------------------------


def test_the_jobs_quiesce_once_the_last_consumer_has_committed() -> None:
    drain = DrainPlan.start("cli", grace_s=30.0, consumers=["kc", "kc@b"], now=100.0)
    assert not drain.quiesce_now
    assert not drain.stopped("kc", clean=True)
    assert not drain.stopped("stranger", clean=False)  # not awaited: changes nothing
    assert drain.stopped("kc@b", clean=True)
    assert drain.remaining_s(now=110.0) == 20.0
    assert drain.finished(still_running=0) == (
        "cli",
        Drained(clean=True, detail="all open batches ACKed and committed; no job running"),
    )


def test_consumers_past_their_deadline_make_the_drain_unclean() -> None:
    drain = DrainPlan.start("cli", grace_s=10.0, consumers=["kc"], now=0.0)
    assert DrainPlan.stop_deadline_s(10.0) == 5.0
    assert drain.consumers_overdue()
    assert not drain.consumers_overdue()  # once: the jobs quiesce only once
    assert drain.stopped("kc", clean=True) is False  # a late answer changes nothing
    answer = drain.finished(still_running=0)
    assert answer is not None and not answer[1].clean


def test_a_drain_without_consumers_quiesces_at_once_and_answers_only_once() -> None:
    drain = DrainPlan.start("cli", grace_s=10.0, consumers=[], now=0.0)
    assert drain.quiesce_now
    assert drain.remaining_s(now=12.0) == 0.0
    answer = drain.finished(still_running=2)
    assert answer is not None
    assert answer[1] == Drained(
        clean=False,
        detail="grace period ended: 2 job(s) still running (they run again after restart)",
    )
    assert drain.finished(still_running=0) is None
