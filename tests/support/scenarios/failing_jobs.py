"""Jobs whose handler fails: every third job once (it succeeds on retry), one
job always (it ends FAILED and dead-lettered, then `actorsys jobs retry`
replays it once the poison is gone), and one that kills its worker every
time (it ends FAILED after max_attempts instead of looping, and the pool
keeps its size). Everything else exactly once."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from actorsys.embedded_broker import EmbeddedBroker
from actorsys.jobs.model import JobStatus
from actorsys.simulator import ProduceReport
from tests.support.rig import Rig
from tests.support.scenario import ScenarioResult, scenario
from tests.support.scenarios.common import batches_of, faulty, jobs_rig, settled
from tests.support.waiting import wait_for


@scenario("flaky_handler")
def flaky_handler(workdir: Path, broker: EmbeddedBroker) -> ScenarioResult:
    """Every third job fails its first attempt and succeeds on retry; every record
    exactly once."""
    every = 3
    with jobs_rig(workdir, broker, "flaky_handler") as rig:
        # Given 30,000 records and a handler that fails the first attempt of
        # every third job, with retries 0.2 s apart at first
        report = rig.produce(30_000, seed=47)
        daemon = rig.start(
            "daemon",
            **batches_of(1_000),
            jobs={"retry_backoff_initial_s": 0.2},
            output=faulty(fail_first_attempt_every=every, state_dir=str(rig.workdir / "state")),
        )
        # When the daemon runs until everything is committed and done
        drain_s = round(rig.wait_complete(daemon, report), 1)
        jobs = rig.jobs()
        retried = [j for j in jobs if j.attempts == 2]
        stats = settled(daemon, "job_manager", attempts_failed=len(retried))
        shutdown_s = round(rig.stop(daemon), 1)

        # Then those jobs took two attempts, every other job one
        assert jobs and all(j.status is JobStatus.DONE for j in jobs)
        attempts = {j.id: j.attempts for j in jobs}
        want = {j.id: 2 if j.id % every == 0 else 1 for j in jobs}
        assert attempts == want, {i: n for i, n in attempts.items() if n != want[i]}
        assert retried, "no job was retried: the scenario proves nothing"
        assert all("fails" in (j.last_error or "") for j in retried)
        # And every valid record is exactly once in raw, malformed ones once in the DLQ
        checked = rig.check(report)
        return ScenarioResult(
            "flaky_handler",
            f"first attempt of every {every}rd job raises",
            {
                "records_in": report.produced,
                **checked,
                "jobs": len(jobs),
                "jobs_retried": len(retried),
                "attempts_failed": stats.get("attempts_failed"),
                "drain_s": drain_s,
                "shutdown_s": shutdown_s,
                "duration_s": rig.elapsed(),
            },
        )


def _valid_position_near(report: ProduceReport, partition: int) -> tuple[int, int]:
    """A valid record in the middle of ``partition``."""
    offset = report.end_offsets[partition] // 2
    while (partition, offset) in report.malformed_positions:
        offset += 1
    return partition, offset


def _the_failed_job(rig: Rig, partition: int, offset: int) -> dict[str, Any]:
    """`actorsys jobs list --status FAILED --json`: exactly one job, holding that record."""
    listed = rig.cli_json("jobs", "list", "--status", "FAILED")
    assert listed["counts"].get("FAILED") == 1, listed["counts"]
    (job,) = listed["jobs"]
    assert job["partition"] == partition and job["start_offset"] <= offset < job["end_offset"]
    return dict(job)


@scenario("poison_job")
def poison_job(workdir: Path, broker: EmbeddedBroker) -> ScenarioResult:
    """A job that always raises ends FAILED and dead-lettered, then `actorsys jobs
    retry` replays it once the poison is gone; everything else exactly once."""
    return _poison_job(workdir, broker, "parquet")


@scenario("poison_job_delta")
def poison_job_delta(workdir: Path, broker: EmbeddedBroker) -> ScenarioResult:
    """The same with Delta tables: the FAILED job's offsets are in the raw table's
    chain already (skipped, its records dead-lettered), and its replay still
    lands in raw, once."""
    return _poison_job(workdir, broker, "delta")


def _poison_job(workdir: Path, broker: EmbeddedBroker, table_format: str) -> ScenarioResult:
    max_attempts = 3
    name = "poison_job" if table_format == "parquet" else f"poison_job_{table_format}"
    rig = jobs_rig(workdir, broker, name)
    rig.output_format = table_format
    with rig:
        # Given 20,000 records, one of which (a valid one) the handler always chokes on
        report = rig.produce(20_000, seed=53)
        partition, offset = _valid_position_near(report, 1)
        jobs = {"max_attempts": max_attempts, "retry_backoff_initial_s": 0.2}
        poisoned = rig.start(
            "poisoned",
            **batches_of(1_000),
            jobs=jobs,
            output=faulty(
                poison_partition=partition, poison_offset=offset, table_format=table_format
            ),
        )
        # When the daemon runs until everything is committed and no job is left to run
        drain_s = round(rig.wait_complete(poisoned, report), 1)
        settled(poisoned, "job_manager", jobs_failed=1)
        shutdown_s = round(rig.stop(poisoned), 1)

        # Then the job holding it is FAILED after max_attempts, listed by the CLI
        listed = _the_failed_job(rig, partition, offset)
        assert listed["attempts"] == max_attempts, listed
        assert "poison record" in (listed["last_error"] or ""), listed
        failed = rig.job(listed["id"])
        # And its records are in the DLQ as job_failed with the last error; all
        # other records exactly once in raw, malformed ones once in the DLQ
        first = rig.check(
            report, failed_jobs=[failed], failed_error=f"poison record at {partition}:{offset}"
        )

        # When the poison is removed (the daemon restarted without it) and the
        # job is replayed with `actorsys jobs retry ID`
        cured = rig.start(
            "cured", **batches_of(1_000), jobs=jobs, output=faulty(table_format=table_format)
        )
        replay = time.monotonic()
        assert "1 job(s) queued again" in rig.cli("jobs", "retry", str(failed.id))
        # Then it runs, and no job is FAILED any more
        wait_for(lambda: rig.job(failed.id).status is JobStatus.DONE, 60, "the replayed job", 0.25)
        replay_s = round(time.monotonic() - replay, 1)
        rig.wait_complete(cured, report)
        counts = rig.cli_json("jobs", "list", "--status", "FAILED")["counts"]
        assert counts.get("FAILED") == 0, counts
        replayed = rig.job(failed.id)
        cured_shutdown_s = round(rig.stop(cured), 1)
        # And its records are in raw now, exactly once (the job_failed dead letters stay)
        second = rig.check(
            report, replayed_jobs=[replayed], failed_error=f"poison record at {partition}"
        )
        return ScenarioResult(
            name,
            f"record {partition}:{offset} makes its job raise every time ({table_format})",
            {
                "records_in": report.produced,
                "failed_job": failed.id,
                "failed_job_records": failed.record_count,
                "failed_job_attempts": failed.attempts,
                "before_retry": first,
                "after_retry": second,
                "replayed_job_attempts": replayed.attempts,
                "replay_done_s": replay_s,
                "drain_s": drain_s,
                "shutdown_s": shutdown_s,
                "cured_shutdown_s": cured_shutdown_s,
                "duration_s": rig.elapsed(),
            },
        )


@scenario("crash_job")
def crash_job(workdir: Path, broker: EmbeddedBroker) -> ScenarioResult:
    """A job that kills its worker every time ends FAILED after max_attempts (no
    loop), the pool keeps its size; everything else exactly once."""
    max_attempts = 3
    with jobs_rig(workdir, broker, "crash_job") as rig:
        # Given 20,000 records, one of which makes the handler kill its worker process
        report = rig.produce(20_000, seed=59)
        partition, offset = _valid_position_near(report, 2)
        daemon = rig.start(
            "daemon",
            **batches_of(1_000),
            jobs={
                "max_attempts": max_attempts,
                "retry_backoff_initial_s": 0.2,
                "job_timeout_s": 30,
            },
            output=faulty(crash_partition=partition, crash_offset=offset),
        )
        # When the daemon runs until everything is committed and no job is left to run
        drain_s = round(rig.wait_complete(daemon, report), 1)
        settled(daemon, "job_manager", jobs_failed=1)
        pool = settled(daemon, "worker_master", workers=2, workers_replaced=max_attempts)
        shutdown_s = round(rig.stop(daemon), 1)

        # Then that job is FAILED after max_attempts (it did not loop), each
        # attempt having cost a worker, and the pool kept its size
        listed = _the_failed_job(rig, partition, offset)
        assert listed["attempts"] == max_attempts, listed
        assert "died while running the job" in (listed["last_error"] or ""), listed
        # And its records are dead-lettered as job_failed, everything else exactly once
        checked = rig.check(
            report,
            failed_jobs=[rig.job(listed["id"])],
            failed_error="died while running the job",
        )
        return ScenarioResult(
            "crash_job",
            f"record {partition}:{offset} makes its job kill the worker every time",
            {
                "records_in": report.produced,
                **checked,
                "failed_job": listed["id"],
                "failed_job_attempts": listed["attempts"],
                "workers_replaced": pool.get("workers_replaced"),
                "drain_s": drain_s,
                "shutdown_s": shutdown_s,
                "duration_s": rig.elapsed(),
            },
        )
