"""Rebalancing while batches are in flight: daemon A consumes a live stream;
B (same group, same job store) joins, shares the partitions, leaves on
SIGTERM; joins again and is killed with -9 in the middle of a job. A takes
everything over, re-runs the jobs B left RUNNING, and every record is in raw
exactly once; with the cooperative-sticky and with the eager assignor."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path
from typing import Any

from actorsys.embedded_broker import EmbeddedBroker
from actorsys.jobs.model import JobStatus
from tests.support.daemon import DaemonProcess
from tests.support.rig import PARTITIONS
from tests.support.scenario import ScenarioResult, scenario
from tests.support.scenarios.common import faulty, jobs_rig, wait_mid_job
from tests.support.waiting import wait_for

ALL_PARTITIONS = frozenset(range(PARTITIONS))


def _assigned(daemon: DaemonProcess, topic: str) -> frozenset[int]:
    """The partitions of ``topic`` the daemon's /status says it has."""
    parts = daemon.component("kafka_consumer").get("partitions", [])
    return frozenset(p["partition"] for p in parts if p["topic"] == topic)


def _rebalance(workdir: Path, broker: EmbeddedBroker, strategy: str) -> ScenarioResult:
    """Daemon A consumes a live stream; B (same group, same job store) joins
    while batches are in flight, shares the partitions, leaves on SIGTERM;
    then B joins again and is killed with -9 while one of its workers is in
    the middle of a job: A takes everything over after the session timeout
    and re-runs the jobs B left RUNNING."""
    name = "rebalance_" + ("cooperative" if strategy == "cooperative-sticky" else "eager")
    delay_s = 0.3
    figures: dict[str, Any] = {"strategy": strategy}

    def extra(pid_dir: Path) -> dict[str, Any]:
        return {
            "kafka": {"partition_assignment_strategy": strategy},
            "batching": {"linger_ms": 1000},
            # The survivor requeues a killed daemon's RUNNING jobs once that daemon's
            # JobManager is known to be gone; a short lease bounds the wait.
            "jobs": {"job_timeout_s": 10, "retry_backoff_initial_s": 0.2},
            # Jobs take a moment, so that one is running when B is killed.
            "output": faulty(delay_s=delay_s, pid_dir=str(pid_dir)),
        }

    def shared(x: DaemonProcess, y: DaemonProcess) -> dict[str, list[int]] | None:
        px, py = _assigned(x, rig.topic), _assigned(y, rig.topic)
        ok = px and py and not (px & py) and (px | py) == ALL_PARTITIONS
        return {"A": sorted(px), "B": sorted(py)} if ok else None

    def inflight(daemon: DaemonProcess) -> int:
        parts = daemon.component("kafka_consumer").get("partitions", [])
        return sum(p.get("inflight_records") or 0 for p in parts)

    with jobs_rig(workdir, broker, name) as rig:
        # Given a producer streaming 1,000 records/s (1 % malformed) for the whole scenario
        rig.create_topic()
        with rig.feeder(rate=1_000, seed=31) as feeder:
            # And daemon A consuming it alone, with every partition, storing batches
            a = rig.start("a", **extra(rig.workdir / "pids-a"))
            wait_for(
                lambda: (
                    _assigned(a, rig.topic) == ALL_PARTITIONS
                    and a.component("job_manager").get("batches_stored", 0) > 0
                ),
                60,
                "daemon A to own every partition and store batches",
                0.25,
            )

            # When daemon B joins the group while batches are in flight
            figures["a_inflight_records_at_join"] = inflight(a)
            joined = time.monotonic()
            b = rig.start("b", **extra(rig.workdir / "pids-b"))
            # Then A and B share the partitions
            figures["phase1_assignment"] = wait_for(
                lambda: shared(a, b), 60, "A and B to share the partitions", 0.25
            )
            figures["join_s"] = round(time.monotonic() - joined, 1)
            # And B does real work: it persists batches of its own partitions
            wait_for(
                lambda: b.component("job_manager").get("batches_stored", 0) >= 3,
                60,
                "B to store batches",
                0.25,
            )
            stats_b = b.component("job_manager")

            # When B leaves on SIGTERM
            figures["b_shutdown_s"] = round(rig.stop(b), 1)
            left = time.monotonic()
            # Then A takes every partition back
            wait_for(lambda: _assigned(a, rig.topic) == ALL_PARTITIONS, 60, "A to own all", 0.25)
            figures["takeover_after_sigterm_s"] = round(time.monotonic() - left, 1)

            # When B joins again and is killed with -9 in the middle of a job
            b2 = rig.start("b2", **extra(rig.workdir / "pids-b2"))
            figures["phase2_assignment"] = wait_for(
                lambda: shared(a, b2), 60, "A and B to share the partitions again", 0.25
            )
            worker, _job = wait_mid_job(
                b2, rig.workdir / "pids-b2", delay_s, "a worker of B in the middle of a job", 0.02
            )
            # (frozen first, so that it cannot finish the job while B is being killed)
            os.kill(worker, signal.SIGSTOP)
            stats_b2 = b2.component("job_manager")
            b2.kill9()
            killed = time.monotonic()
            b2.assert_nothing_left()
            b2.assert_no_actor_crash()
            # (B's claims are named "<host>:<admin port>/<host>/<worker id>")
            owner = f"{os.uname().nodename}:{b2.admin_port}/"
            orphans = [
                j.id for j in rig.jobs(JobStatus.RUNNING) if (j.worker or "").startswith(owner)
            ]
            assert orphans, "B was killed holding no RUNNING job: the scenario proves less"
            # Then A owns every partition again once B's session has timed out
            wait_for(lambda: _assigned(a, rig.topic) == ALL_PARTITIONS, 90, "A to own all", 0.25)
            figures["takeover_after_kill9_s"] = round(time.monotonic() - killed, 1)
            stored = a.component("job_manager").get("batches_stored", 0)
            wait_for(
                lambda: a.component("job_manager").get("batches_stored", 0) > stored,
                60,
                "A to store batches of the partitions it took over",
                0.25,
            )
            report = feeder.stop()

        # And, once the stream has ended, A alone drains everything, B's orphaned jobs too
        figures["drain_s"] = round(rig.wait_complete(a, report), 1)
        stats_a = a.component("job_manager")
        orphaned = [rig.job(i) for i in orphans]
        assert "requeued " in a.log_text(), a.log_tail()  # "requeued N job(s) of ..."
        figures["shutdown_s"] = round(rig.stop(a), 1)

        # Then every valid record is exactly once in raw; dead letters at least once
        # (B died with a job mid-way: that job's rejects may be sent again)
        assert all(j.status is JobStatus.DONE and j.attempts >= 2 for j in orphaned), orphaned
        checked = rig.check(report, dead_letters_exactly_once=False)
        chain = {
            k: sum(s.get(k, 0) for s in (stats_a, stats_b, stats_b2))
            for k in ("batches_stored", "duplicates", "trimmed", "gaps", "out_of_order")
        }
        return ScenarioResult(
            name,
            f"{strategy}: B joins, SIGTERM, joins again, kill -9 mid-job",
            {
                **figures,
                "records_in": report.produced,
                **checked,
                "orphaned_jobs": len(orphaned),
                "orphaned_job_attempts": [j.attempts for j in orphaned],
                **chain,
                "duration_s": rig.elapsed(),
            },
        )


@scenario("rebalance_cooperative")
def rebalance_cooperative(workdir: Path, broker: EmbeddedBroker) -> ScenarioResult:
    """A second daemon joins, leaves (SIGTERM), rejoins and is killed -9, with the
    cooperative-sticky assignor; every record exactly once."""
    return _rebalance(workdir, broker, "cooperative-sticky")


@scenario("rebalance_eager")
def rebalance_eager(workdir: Path, broker: EmbeddedBroker) -> ScenarioResult:
    """A second daemon joins, leaves (SIGTERM), rejoins and is killed -9, with the
    eager range assignor; every record exactly once."""
    return _rebalance(workdir, broker, "range")
