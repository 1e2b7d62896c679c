"""A worker process in trouble in the middle of a job: killed with -9 (it is
replaced and the job runs again), or stopped with SIGSTOP past its lease and
resumed (the job runs elsewhere, and the stale completion is rejected).
Every record exactly once, either way."""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Callable
from contextlib import suppress
from pathlib import Path

from actorsys.embedded_broker import EmbeddedBroker
from actorsys.jobs.model import JobStatus
from tests.support.rig import stays_up
from tests.support.scenario import ScenarioResult, scenario
from tests.support.scenarios.common import faulty, jobs_rig, settled, wait_mid_job
from tests.support.waiting import gone, wait_for


def _within(timeout_s: float, condition: Callable[[], object]) -> bool:
    """Whether ``condition`` comes true within the deadline (polled, no raise)."""
    try:
        wait_for(condition, timeout_s, "", 0.25)
    except AssertionError:
        return False
    return True


@scenario("worker_kill")
def worker_kill(workdir: Path, broker: EmbeddedBroker) -> ScenarioResult:
    """kill -9 of a worker process in the middle of a job: the worker is replaced,
    the job runs again; every record exactly once."""
    delay_s = 1.5
    with jobs_rig(workdir, broker, "worker_kill") as rig:
        # Given 20,000 records and a daemon whose jobs take 1.5 s each
        report = rig.produce(20_000, seed=41)
        pid_dir = rig.workdir / "pids"
        daemon = rig.start(
            "daemon",
            jobs={"retry_backoff_initial_s": 0.2},
            output=faulty(delay_s=delay_s, pid_dir=str(pid_dir)),
        )
        # When a worker is killed with -9 while it is in the middle of a job
        # (a job that started moments ago: it has written nothing yet)
        pid, job_id = wait_mid_job(daemon, pid_dir, delay_s)
        os.kill(pid, signal.SIGKILL)
        killed = time.monotonic()
        # Then the WorkerMaster replaces it and the job goes back
        wait_for(
            lambda: daemon.component("worker_master").get("workers_replaced", 0) >= 1,
            30,
            "the worker to be replaced",
            0.25,
        )
        replaced_s = round(time.monotonic() - killed, 1)
        drain_s = round(rig.wait_complete(daemon, report), 1)
        pool = settled(daemon, "worker_master", workers=2)
        assert "exited; its job goes back" in daemon.log_text(), daemon.log_tail()
        shown = rig.cli_json("jobs", "show", str(job_id))
        shutdown_s = round(rig.stop(daemon), 1)

        # And that job ran twice, the second time to completion
        assert shown["status"] == "DONE" and shown["attempts"] == 2, shown
        assert "died while running the job" in (shown["last_error"] or ""), shown
        assert gone(pid), f"the killed worker {pid} is still there"
        # And every valid record is exactly once in raw, malformed ones once in the DLQ
        checked = rig.check(report)
        return ScenarioResult(
            "worker_kill",
            f"kill -9 of worker pid {pid} during job {job_id}",
            {
                "records_in": report.produced,
                **checked,
                "killed_job": job_id,
                "killed_job_attempts": shown["attempts"],
                "workers_replaced": pool.get("workers_replaced"),
                "replaced_after_s": replaced_s,
                "drain_s": drain_s,
                "shutdown_s": shutdown_s,
                "duration_s": rig.elapsed(),
            },
        )


# --- 3. a worker stopped past its lease -------------------------------------------------------


@scenario("worker_sigstop")
def worker_sigstop(workdir: Path, broker: EmbeddedBroker) -> ScenarioResult:
    """A worker SIGSTOPped past its lease, then resumed: its stale completion is
    rejected, the job ran elsewhere; every record exactly once."""
    delay_s, lease_s, stopped_for_s = 1.0, 3.0, 8.0
    with jobs_rig(workdir, broker, "worker_sigstop") as rig:
        # Given 20,000 records, jobs of 1 s each, a 3 s lease, and a replaced
        # worker killed only 30 s after it was replaced
        report = rig.produce(20_000, seed=43)
        pid_dir = rig.workdir / "pids"
        daemon = rig.start(
            "daemon",
            jobs={"job_timeout_s": lease_s, "retry_backoff_initial_s": 0.2},
            workers={"stop_grace_s": 30},
            output=faulty(delay_s=delay_s, pid_dir=str(pid_dir)),
        )
        # When a worker in the middle of a job is stopped with SIGSTOP
        pid, job_id = wait_mid_job(daemon, pid_dir, delay_s)
        os.kill(pid, signal.SIGSTOP)
        stopped = time.monotonic()
        try:
            # Then its lease expires, a new worker replaces it, and the job runs
            # again elsewhere, to completion
            wait_for(
                lambda: rig.job(job_id).status is JobStatus.DONE, 60, "the job to run again", 0.25
            )
            redone_s = round(time.monotonic() - stopped, 1)
            assert f"job {job_id} overran its lease" in daemon.log_text(), daemon.log_tail()
            # (the fault itself: the worker stays stopped for 8 s in all)
            stays_up(daemon, stopped_for_s, since=stopped)
        finally:
            # When it is resumed
            with suppress(ProcessLookupError):
                os.kill(pid, signal.SIGCONT)
        # Then its completion, from a superseded attempt, is rejected and counted
        wait_for(
            lambda: daemon.component("job_manager").get("stale_completions", 0) >= 1,
            30,
            "the stale completion to be rejected",
            0.25,
        )
        # (its log line goes through the actor system's logger process: it may
        # reach the file after the count reached /status)
        rejected = f"rejected a stale completion of job {job_id} (token 1)"
        wait_for(lambda: rejected in daemon.log_text(), 10, "the stale completion's log line", 0.25)
        resumed = time.monotonic()
        # And the replaced worker exits (it was asked to when it was replaced),
        # while the pool is back to its size with the replacement
        exited = _within(10, lambda: gone(pid))
        exited_s = round(time.monotonic() - resumed, 1) if exited else None
        pool_restored = _within(10, lambda: daemon.component("worker_master").get("workers") == 2)
        pool = daemon.component("worker_master")
        drain_s = round(rig.wait_complete(daemon, report), 1)
        stats = daemon.component("job_manager")
        job = rig.job(job_id)
        shutdown_s = round(rig.stop(daemon), 1)

        # And the job's output is exactly once in raw; its dead letters may have
        # been sent again by the resumed worker (at least once)
        assert job.status is JobStatus.DONE and job.attempts >= 2, job
        checked = rig.check(report, dead_letters_exactly_once=False)
        assert pool_restored and pool.get("workers_replaced", 0) >= 1, (
            f"the pool was not restored after the lease overrun: /status worker_master {pool}"
        )
        assert exited, f"the replaced worker {pid} was still running 10 s after it was resumed"
        return ScenarioResult(
            "worker_sigstop",
            f"SIGSTOP of worker pid {pid} during job {job_id} for {stopped_for_s:.0f} s "
            f"(lease {lease_s:.0f} s)",
            {
                "records_in": report.produced,
                **checked,
                "stopped_job": job_id,
                "stopped_job_attempts": job.attempts,
                "rerun_done_after_s": redone_s,
                "stale_completions": stats.get("stale_completions"),
                "workers_replaced": pool.get("workers_replaced"),
                "stale_worker_exit_s": exited_s,
                "drain_s": drain_s,
                "shutdown_s": shutdown_s,
                "duration_s": rig.elapsed(),
            },
        )
