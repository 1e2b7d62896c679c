"""The JobManager's admission and quiesce rules, with a fake clock (plain numbers)."""

from __future__ import annotations

from actorsys.jobs.admission import Admission
from actorsys.messages import JobsQuiesced

# --- admission of new batches ------------------------------------------------------------------


def test_batches_are_accepted_only_below_the_pending_job_cap() -> None:
    admission = Admission(max_pending_jobs=3)
    assert admission.accepting(unfinished=2, output_healthy=True)
    assert not admission.accepting(unfinished=3, output_healthy=True)


def test_an_unhealthy_output_pauses_admission_even_below_the_cap() -> None:
    admission = Admission(max_pending_jobs=3)
    assert not admission.accepting(unfinished=0, output_healthy=False)


def test_a_drain_admits_every_batch_past_the_cap_and_a_broken_output() -> None:
    # Given a JobManager at its cap with an output that cannot be written
    admission = Admission(max_pending_jobs=1)
    assert not admission.accepting(unfinished=5, output_healthy=False)
    # When the daemon drains, Then held batches are admitted from now on
    admission.admit_held()
    assert admission.accepting(unfinished=5, output_healthy=False)


def test_admitting_held_batches_does_not_stop_handing_out_jobs() -> None:
    admission = Admission(max_pending_jobs=1)
    admission.admit_held()
    assert admission.hands_out_jobs


# --- quiesce ------------------------------------------------------------------------------------


def test_no_reply_and_jobs_handed_out_while_nobody_asked_to_quiesce() -> None:
    admission = Admission()
    assert admission.hands_out_jobs
    assert admission.quiesce_reply(busy=0, now=0.0) is None


def test_a_quiesce_with_nothing_running_is_answered_at_once() -> None:
    admission = Admission()
    admission.quiesce("supervisor", deadline_s=10.0, now=100.0)
    assert not admission.hands_out_jobs
    assert admission.quiesce_reply(busy=0, now=100.0) == ("supervisor", JobsQuiesced(0))


def test_a_quiesce_waits_for_running_jobs_until_they_end() -> None:
    # Given two attempts still running when the drain asks
    admission = Admission()
    admission.quiesce("supervisor", deadline_s=10.0, now=100.0)
    assert admission.quiesce_reply(busy=2, now=100.0) is None
    assert admission.quiesce_reply(busy=1, now=105.0) is None
    # When the last one ends before the deadline, Then the reply says none runs
    assert admission.quiesce_reply(busy=0, now=106.0) == ("supervisor", JobsQuiesced(0))


def test_a_quiesce_is_answered_at_its_deadline_with_what_still_runs() -> None:
    admission = Admission()
    admission.quiesce("supervisor", deadline_s=10.0, now=100.0)
    assert admission.quiesce_reply(busy=3, now=109.9) is None
    assert admission.quiesce_reply(busy=3, now=110.0) == ("supervisor", JobsQuiesced(3))


def test_a_quiesce_is_answered_once_and_jobs_stay_withheld_after() -> None:
    admission = Admission()
    admission.quiesce("supervisor", deadline_s=10.0, now=0.0)
    assert admission.quiesce_reply(busy=0, now=1.0) is not None
    # When checked again (every tick, every job end), Then no second reply
    assert admission.quiesce_reply(busy=0, now=2.0) is None
    assert not admission.hands_out_jobs


def test_a_new_quiesce_request_replaces_the_last_deadline_and_reply_address() -> None:
    # Given a quiesce already answered
    admission = Admission()
    admission.quiesce("first", deadline_s=1.0, now=0.0)
    assert admission.quiesce_reply(busy=1, now=1.0) == ("first", JobsQuiesced(1))
    # When asked again, Then the new asker is answered, by its own deadline
    admission.quiesce("second", deadline_s=5.0, now=10.0)
    assert admission.quiesce_reply(busy=1, now=14.0) is None
    assert admission.quiesce_reply(busy=1, now=15.0) == ("second", JobsQuiesced(1))


def test_a_pending_job_near_its_retention_holds_new_batches_back_until_drained() -> None:
    admission = Admission(max_pending_jobs=64)
    # Under every cap, but a pending job is close to outliving its records in Kafka
    assert admission.accepting(3, output_healthy=True, retention_ok=True)
    assert not admission.accepting(3, output_healthy=True, retention_ok=False)
    # A drain admits everything all the same (consumption has stopped)
    admission.admit_held()
    assert admission.accepting(3, output_healthy=True, retention_ok=False)
