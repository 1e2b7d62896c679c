"""Fault injection, flow side: overload, SIGTERM under load,
the broker frozen or late, records the handler must reject.

Each test runs one scenario of ``tests.support.scenarios`` (the same code
`scripts/chaos.py SCENARIO` runs by hand) against the real embedded
broker and real daemons; the scenario asserts the exactly-once output check
and its own fault's promises, and returns the figures printed here (see them
with ``-s`` or ``-rA``). Scenarios that take over a minute are ``slow``
(`make test-faults`).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from actorsys.embedded_broker import EmbeddedBroker
from tests.support import scenarios  # noqa: F401  (importing registers the scenarios)
from tests.support.scenario import run_scenario

pytestmark = pytest.mark.integration


@pytest.mark.slow
def test_overload_keeps_memory_flat_pauses_partitions_and_drains(
    tmp_path: Path, broker: EmbeddedBroker
) -> None:
    # Given one slow worker, When a producer outruns it for 50 s,
    # Then memory stays flat under 1 GiB, partitions pause, the group holds, and it drains
    result = run_scenario("overload", tmp_path, broker)
    assert result.figures["rebalances_in_window"] == 0


def test_sigterm_under_full_load_drains_exits_0_and_loses_nothing(
    tmp_path: Path, broker: EmbeddedBroker
) -> None:
    # Given a saturated daemon, When SIGTERM arrives, Then it drains and exits 0
    # within the grace period, leaves no process, and a restart loses nothing
    result = run_scenario("sigterm_under_load", tmp_path, broker)
    assert result.figures["shutdown_s"] <= result.figures["grace_s"] + 5


def test_second_sigterm_during_drain_stops_at_once_and_loses_nothing(
    tmp_path: Path, broker: EmbeddedBroker
) -> None:
    # Given a drain waiting for 5 s jobs, When a second SIGTERM arrives,
    # Then the daemon stops at once, leaves no process, and a restart loses nothing
    run_scenario("sigterm_twice", tmp_path, broker)


@pytest.mark.slow
def test_broker_frozen_for_30s_daemon_stays_up_quietly_and_drains(
    tmp_path: Path, broker: EmbeddedBroker
) -> None:
    # Given a daemon consuming a stream from a broker of the scenario's own,
    # When that broker is frozen (SIGSTOP) for 30 s, Then the daemon stays up,
    # logs little, and drains everything after the resume
    run_scenario("broker_pause", tmp_path, broker)


def test_daemon_started_before_the_broker_connects_when_it_comes(
    tmp_path: Path, broker: EmbeddedBroker
) -> None:
    # Given a daemon started with no broker on its port, When a broker comes
    # 15 s later on that port, Then it connects, consumes and dead-letters
    result = run_scenario("broker_late", tmp_path, broker)
    assert result.figures["dlq_topic_at_end"]


def test_records_the_handler_must_reject_are_dead_lettered_once_with_their_reason(
    tmp_path: Path, broker: EmbeddedBroker
) -> None:
    # Given every kind of bad record (1 MiB ones included) among valid readings,
    # When the daemon reads them, Then each bad one is dead-lettered exactly
    # once with its reason and every valid one is in raw exactly once
    run_scenario("bad_records", tmp_path, broker)


def test_an_invalid_record_over_1mb_is_dead_lettered(
    tmp_path: Path, broker: EmbeddedBroker
) -> None:
    # Given an invalid 1 MiB record among valid ones, When the daemon reads it,
    # Then it is dead-lettered (reason not_json) and nothing else is
    run_scenario("bad_records_oversized", tmp_path, broker)
