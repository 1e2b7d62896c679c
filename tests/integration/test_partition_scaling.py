"""Cost bounded by configuration, not by the assignment: a daemon runs the same
processes for 64 partitions as for 4, and stays exactly-once; a Consumer of
its pool that dies is replaced, and its partitions are read again."""

from __future__ import annotations

import contextlib
from pathlib import Path

import psutil
import pytest

from actorsys.config import BatchingConfig
from actorsys.embedded_broker import EmbeddedBroker
from actorsys.jobs.model import JobStatus
from actorsys.jobs.open import open_job_store
from actorsys.kafka_clients import create_topic_if_missing
from actorsys.simulator import produce
from tests.support.checks import assert_exactly_once, wait_complete
from tests.support.daemon import DaemonProcess, start_ready, topic_daemon
from tests.support.rig import Feeder
from tests.support.waiting import wait_for

pytestmark = pytest.mark.integration


def jobs_done(job_store: str) -> int:
    store = open_job_store(job_store)
    try:
        return store.count_by_status().get(JobStatus.DONE, 0)
    finally:
        store.close()


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


def _pool_processes(daemon: DaemonProcess, broker_port: int) -> list[psutil.Process]:
    """The Consumer processes: children of the actor process that holds the
    group consumer's connection to the broker and has children (the
    KafkaConsumerActor; workers connect too, but fork nothing)."""
    for proc in daemon.actor_system.alive():
        with contextlib.suppress(psutil.Error):
            connected = any(
                c.raddr and c.raddr.port == broker_port for c in proc.net_connections("tcp")
            )
            children = proc.children()
            if connected and children:
                return children
    return []


def test_a_killed_consumer_is_replaced_and_its_partitions_are_read_again_exactly_once(
    tmp_path: Path, broker: EmbeddedBroker, topic: str, daemons: list[DaemonProcess]
) -> None:
    # Given a daemon with its pool of 2 Consumers serving 8 partitions of a stream
    partitions = 8
    create_topic_if_missing(broker.bootstrap_servers, topic, partitions)
    create_topic_if_missing(broker.bootstrap_servers, f"{topic}.dlq", 1)
    daemon = topic_daemon(
        tmp_path, broker.bootstrap_servers, topic, batching={"max_records": 500, "linger_ms": 200}
    )
    start_ready(daemons, daemon)
    port = int(broker.bootstrap_servers.rsplit(":", 1)[1])
    pool = wait_for(lambda: _pool_processes(daemon, port), 30, "the Consumer processes")
    assert len(pool) == BatchingConfig().consumers
    job_store = f"sqlite:///{tmp_path}/jobs.db"
    # Streamed until the kill is done (see tests/support/rig.py, Feeder). This once
    # stopped every commit: sends to the killed process filled the
    # KafkaConsumerActor's Thespian transmit slots (see HandoutWindow).
    with Feeder(
        broker.bootstrap_servers, topic, partitions=partitions, rate=1_000, seed=21, devices=50
    ) as feed:
        wait_for(lambda: jobs_done(job_store) >= 4, 60, "some jobs done", 0.2)
        # When one Consumer process is killed with -9 mid-stream
        victim = pool[0]
        victim.kill()
        # Then the KafkaConsumerActor replaces it, and the pool is whole again
        wait_for(
            lambda: "partition(s) exited; they are read again" in daemon.log_tail(400),
            30,
            "the KafkaConsumerActor to notice",
        )
        again = wait_for(
            lambda: (p := _pool_processes(daemon, port)) and len(p) == len(pool) and p, 30,
            "the pool to be whole again",
        )  # fmt: skip
        assert victim.pid not in {p.pid for p in again}
        report = feed.stop()
    wait_complete(daemon, broker.bootstrap_servers, f"g-{topic}", topic, report, job_store, 120)
    assert daemon.terminate() == 0, daemon.log_tail()
    daemon.assert_nothing_left()
    # And nothing is lost or written twice
    assert_exactly_once(tmp_path / "out", topic, report, broker.bootstrap_servers, f"{topic}.dlq")
