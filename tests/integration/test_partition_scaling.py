"""Cost bounded by configuration, not by the assignment: a daemon runs the same
processes for 64 partitions as for 4, and stays exactly-once."""

from __future__ import annotations

from pathlib import Path

import pytest

from actorsys.embedded_broker import EmbeddedBroker
from actorsys.simulator import create_topic_if_missing, produce
from tests.support.checks import assert_exactly_once, wait_complete
from tests.support.daemon import DaemonProcess, start_ready, topic_daemon
from tests.support.waiting import wait_for

pytestmark = pytest.mark.integration


def _run(
    tmp_path: Path,
    broker: EmbeddedBroker,
    topic: str,
    partitions: int,
    daemons: list[DaemonProcess],
) -> int:
    """Consume ``partitions`` partitions to the end; the daemon's process count
    once every partition is assigned."""
    tmp_path.mkdir()
    create_topic_if_missing(broker.bootstrap_servers, topic, partitions)
    create_topic_if_missing(broker.bootstrap_servers, f"{topic}.dlq", 1)
    daemon = topic_daemon(
        tmp_path, broker.bootstrap_servers, topic, batching={"max_records": 500, "linger_ms": 200}
    )
    start_ready(daemons, daemon)

    def assigned() -> bool:
        daemon.check_alive()
        return len(daemon.status()["components"]["kafka_consumer"]["partitions"]) == partitions

    wait_for(assigned, 60, f"{partitions} partitions assigned", 0.25)
    report = produce(
        broker.bootstrap_servers, topic, devices=50, rate=0, count=8_000,
        malformed_ratio=0.01, partitions=partitions, seed=partitions,
    )  # fmt: skip
    job_store = f"sqlite:///{tmp_path}/jobs.db"
    wait_complete(daemon, broker.bootstrap_servers, f"g-{topic}", topic, report, job_store, 120)
    processes = len(daemon.group_processes())
    assert daemon.terminate() == 0
    daemon.assert_nothing_left()
    assert_exactly_once(tmp_path / "out", topic, report, broker.bootstrap_servers, f"{topic}.dlq")
    return processes


def test_64_partitions_run_on_the_processes_of_4_and_exactly_once(
    tmp_path: Path, broker: EmbeddedBroker, topic: str, daemons: list[DaemonProcess]
) -> None:
    # Given a daemon with its default pool of Consumers, on 4 partitions
    few = _run(tmp_path / "p4", broker, f"{topic}-p4", 4, daemons)
    # When the same daemon consumes 64 partitions
    many = _run(tmp_path / "p64", broker, f"{topic}-p64", 64, daemons)
    # Then it runs exactly as many processes, and every record is in once
    print(f"processes: {few} with 4 partitions, {many} with 64")
    assert many == few
