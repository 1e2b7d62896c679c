"""Fault injection around jobs, workers and group membership, against the real
embedded broker and real daemons. Each test runs one
scenario of ``tests.support.scenarios`` (also `scripts/chaos.py NAME`);
the scenario injects the fault and asserts the exactly-once output check, the
test prints its figures and checks the fault really happened."""

from __future__ import annotations

from pathlib import Path

import pytest

from actorsys.embedded_broker import EmbeddedBroker
from tests.support import scenarios  # noqa: F401  (importing registers the scenarios)
from tests.support.rig import PARTITIONS
from tests.support.scenario import run_scenario

pytestmark = pytest.mark.integration


@pytest.mark.slow
@pytest.mark.parametrize("name", ["rebalance_cooperative", "rebalance_eager"])
def test_rebalance_while_batches_are_in_flight(
    name: str, tmp_path: Path, broker: EmbeddedBroker
) -> None:
    # Given a stream, When a second daemon joins, leaves, joins and is killed -9
    figures = run_scenario(name, tmp_path, broker).figures
    # Then the partitions were shared both times, and the orphaned jobs ran again
    for phase in ("phase1_assignment", "phase2_assignment"):
        owners = figures[phase]
        assert owners["A"] and owners["B"], owners
        assert sorted(owners["A"] + owners["B"]) == list(range(PARTITIONS)), owners
    assert figures["orphaned_jobs"] >= 1
    assert min(figures["orphaned_job_attempts"]) >= 2


def test_worker_killed_mid_job(tmp_path: Path, broker: EmbeddedBroker) -> None:
    figures = run_scenario("worker_kill", tmp_path, broker).figures
    assert figures["killed_job_attempts"] == 2
    assert figures["workers_replaced"] >= 1


def test_worker_stopped_past_its_lease(tmp_path: Path, broker: EmbeddedBroker) -> None:
    figures = run_scenario("worker_sigstop", tmp_path, broker).figures
    assert figures["stale_completions"] >= 1
    assert figures["stopped_job_attempts"] >= 2


def test_flaky_handler_succeeds_on_retry(tmp_path: Path, broker: EmbeddedBroker) -> None:
    figures = run_scenario("flaky_handler", tmp_path, broker).figures
    assert figures["jobs_retried"] >= 1


@pytest.mark.parametrize("name", ["poison_job", "poison_job_delta"])
def test_poison_job_fails_then_replays(name: str, tmp_path: Path, broker: EmbeddedBroker) -> None:
    figures = run_scenario(name, tmp_path, broker).figures
    assert figures["failed_job_attempts"] == 3
    assert figures["before_retry"]["dead_letters_job_failed"] == figures["failed_job_records"]


def test_job_that_kills_its_worker_ends_failed(tmp_path: Path, broker: EmbeddedBroker) -> None:
    figures = run_scenario("crash_job", tmp_path, broker).figures
    assert figures["failed_job_attempts"] == 3
    assert figures["workers_replaced"] == 3


def test_lost_acks_and_duplicated_batches(tmp_path: Path, broker: EmbeddedBroker) -> None:
    figures = run_scenario("lost_messages", tmp_path, broker).figures
    assert figures["duplicates"] >= 1
    assert figures["batches_retransmitted"] >= 1
