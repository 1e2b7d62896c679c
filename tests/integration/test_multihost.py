"""Several hosts on one machine: a leader daemon and `actorsys join` worker
hosts, each a real actor system on its own admin port with its own host name,
against the real embedded broker. The exactly-once output check holds in
every test."""

from __future__ import annotations

import re
import uuid
from pathlib import Path
from typing import Any

import psutil
import pytest

from actorsys.embedded_broker import EmbeddedBroker
from actorsys.jobs.model import JobStatus
from actorsys.jobs.open import open_job_store
from actorsys.kafka_clients import create_topic_if_missing
from actorsys.simulator import ProduceReport, produce
from tests.support.checks import assert_exactly_once, jobs_unfinished, wait_complete
from tests.support.daemon import DaemonProcess, new_daemon
from tests.support.member import MemberProcess
from tests.support.waiting import wait_for

pytestmark = pytest.mark.integration

PARTITIONS = 4


def _produce(broker: EmbeddedBroker, topic: str, count: int, seed: int) -> ProduceReport:
    """A known stream: 100 devices, 1 % malformed, as fast as the producer goes."""
    return produce(
        broker.bootstrap_servers,
        topic,
        devices=100,
        rate=0,
        count=count,
        malformed_ratio=0.01,
        partitions=PARTITIONS,
        seed=seed,
    )


def _leader(
    tmp_path: Path, broker: EmbeddedBroker, topic: str, **extra: dict[str, Any]
) -> DaemonProcess:
    sections: dict[str, dict[str, Any]] = {"workers": {"on_leader": False, "host_timeout_s": 5.0}}
    for section, values in extra.items():
        sections.setdefault(section, {}).update(values)
    return new_daemon(
        tmp_path,
        "leader",
        bootstrap=broker.bootstrap_servers,
        topics=[topic],
        group_id=f"g-{uuid.uuid4().hex[:8]}",
        output_dir=tmp_path / "out",
        job_store=f"sqlite:///{tmp_path}/jobs.db",
        extra=sections,
    )


def _group(daemon: DaemonProcess) -> str:
    text = daemon.config_path.read_text()
    found = re.search(r'group_id = "([^"]+)"', text)
    assert found
    return found.group(1)


def _wait_complete(
    daemon: DaemonProcess,
    broker: EmbeddedBroker,
    topic: str,
    report: ProduceReport,
    tmp_path: Path,
    timeout_s: float = 120,
) -> None:
    wait_complete(
        daemon,
        broker.bootstrap_servers,
        _group(daemon),
        topic,
        report,
        f"sqlite:///{tmp_path}/jobs.db",
        timeout_s,
    )


def _hosts_that_ran_jobs(tmp_path: Path) -> dict[str, int]:
    """Job records name the worker as '<job manager>/<host>/<worker id>'."""
    store = open_job_store(f"sqlite:///{tmp_path}/jobs.db", create=False)
    try:
        ran: dict[str, int] = {}
        for job in store.list_jobs(JobStatus.DONE, limit=100_000):
            host = (job.worker or "").split("/")[1]
            ran[host] = ran.get(host, 0) + 1
        return ran
    finally:
        store.close()


def _member(tmp_path: Path, leader: DaemonProcess, name: str, **kw: Any) -> MemberProcess:
    return MemberProcess(
        name, leader.admin_port, tmp_path / f"{name}.log", key_file=leader.key_file, **kw
    )


def test_jobs_run_on_worker_hosts(
    tmp_path: Path, broker: EmbeddedBroker, topic: str, daemons: list[Any]
) -> None:
    # Given a leader that runs no workers itself and two worker hosts (three actor systems)
    create_topic_if_missing(broker.bootstrap_servers, topic, PARTITIONS)
    leader = _leader(tmp_path, broker, topic, batching={"max_records": 1000})
    daemons.append(leader.start())
    leader.wait_ready()
    for name in ("host-a", "host-b"):
        daemons.append(_member(tmp_path, leader, name).start())
    wait_for(
        lambda: leader.workers_by_host() == {"host-a": 1, "host-b": 1},
        30,
        "one worker on each worker host",
    )
    # When a stream arrives once both are there (a backlog produced earlier can be
    # done by the first host in under a second, before the second one joins)
    report = _produce(broker, topic, 30_000, seed=21)
    _wait_complete(leader, broker, topic, report, tmp_path)
    # Then the jobs ran on the worker hosts (each reports its host), none on the leader
    ran = _hosts_that_ran_jobs(tmp_path)
    assert set(ran) == {"host-a", "host-b"}, ran
    # And the output is exactly once; everything stops cleanly
    assert leader.terminate() == 0
    for member in daemons[1:]:
        assert member.terminate() == 0
        member.assert_nothing_left()
    leader.assert_nothing_left()
    assert_exactly_once(tmp_path / "out", topic, report, broker.bootstrap_servers, f"{topic}.dlq")


def test_worker_host_killed_mid_job_loses_nothing(
    tmp_path: Path, broker: EmbeddedBroker, topic: str, daemons: list[Any]
) -> None:
    # Given two worker hosts running slow jobs (each job takes a second)
    report = _produce(broker, topic, 20_000, seed=22)
    pid_dir = tmp_path / "running"
    leader = _leader(
        tmp_path,
        broker,
        topic,
        batching={"max_records": 1000},
        output={
            "handler": "tests.support.handlers:FaultyHandler",
            "options": {"delay_s": 1.0, "pid_dir": str(pid_dir)},
        },
    )
    daemons.append(leader.start())
    leader.wait_ready()
    doomed = _member(tmp_path, leader, "host-a")
    survivor = _member(tmp_path, leader, "host-b")
    daemons += [doomed.start(), survivor.start()]

    # When host-a is killed with -9 (its whole actor system) in the middle of a job
    def job_running_on_doomed() -> bool:
        pids = doomed.pids()
        return any(int(f.name.split("-")[0]) in pids for f in pid_dir.glob("*-*"))

    wait_for(job_running_on_doomed, 60, "a job running on host-a", 0.05)
    doomed.kill9()
    # Then the leader notices within its host timeout and the work goes on elsewhere
    wait_for(
        lambda: "host-a" not in leader.workers_by_host(), 15, "the leader to notice host-a is gone"
    )
    assert re.search(r"host-a lost \(no heartbeat", leader.log_tail(400))
    _wait_complete(leader, broker, topic, report, tmp_path, timeout_s=180)
    # And nothing was lost or written twice
    assert leader.terminate() == 0
    assert survivor.terminate() == 0
    assert_exactly_once(tmp_path / "out", topic, report, broker.bootstrap_servers, f"{topic}.dlq")


def test_worker_host_joining_under_load_takes_jobs(
    tmp_path: Path, broker: EmbeddedBroker, topic: str, daemons: list[Any]
) -> None:
    # Given one worker host with a backlog of slow jobs
    report = _produce(broker, topic, 20_000, seed=23)
    leader = _leader(
        tmp_path,
        broker,
        topic,
        batching={"max_records": 500},
        output={"handler": "tests.support.handlers:FaultyHandler", "options": {"delay_s": 0.5}},
    )
    daemons.append(leader.start())
    leader.wait_ready()
    daemons.append(_member(tmp_path, leader, "host-a").start())
    wait_for(
        lambda: _hosts_that_ran_jobs(tmp_path).get("host-a", 0) >= 2,
        60,
        "host-a working through the backlog",
    )
    # When a second worker host joins while the backlog lasts
    assert jobs_unfinished(f"sqlite:///{tmp_path}/jobs.db") > 5, "no backlog left to share"
    daemons.append(_member(tmp_path, leader, "host-b", slots=2).start())
    # Then it gets workers within seconds and starts taking jobs
    wait_for(lambda: leader.workers_by_host().get("host-b") == 2, 15, "workers on host-b")
    wait_for(
        lambda: _hosts_that_ran_jobs(tmp_path).get("host-b", 0) >= 1, 60, "host-b to finish a job"
    )
    _wait_complete(leader, broker, topic, report, tmp_path, timeout_s=180)
    assert leader.terminate() == 0
    assert_exactly_once(tmp_path / "out", topic, report, broker.bootstrap_servers, f"{topic}.dlq")


def test_second_consumer_daemon_and_drain(
    tmp_path: Path, broker: EmbeddedBroker, topic: str, daemons: list[Any]
) -> None:
    # Given a leader and a second host that also consumes (same group, one JobManager)
    create_topic_if_missing(broker.bootstrap_servers, topic, PARTITIONS)
    leader = _leader(tmp_path, broker, topic, workers={"on_leader": True, "count": 1})
    daemons.append(leader.start())
    leader.wait_ready()
    second = _member(tmp_path, leader, "host-b", consume=True)
    daemons.append(second.start())

    def both_consume() -> bool:
        comps = leader.status()["components"]
        remote = comps.get(f"kafka_consumer@{second.member_id}", {}).get("partitions")
        return bool(remote) and bool(comps.get("kafka_consumer", {}).get("partitions"))

    # A cooperative rejoin on the embedded broker takes ~13 s when idle: allow for load.
    wait_for(both_consume, 120, "both daemons to own partitions")
    # When records stream in while both consume, and the second host drains mid-stream
    report = _produce(broker, topic, 20_000, seed=24)
    assert second.terminate(timeout_s=120) == 0
    second.assert_nothing_left()
    # Then the leader takes its partitions over, and every record is in exactly one job
    _wait_complete(leader, broker, topic, report, tmp_path, timeout_s=120)
    assert "committed and left" in leader.log_tail(400)
    assert leader.terminate() == 0
    assert_exactly_once(tmp_path / "out", topic, report, broker.bootstrap_servers, f"{topic}.dlq")


def _cpu_s(processes: Any) -> float:
    """User + system CPU seconds of the live ``processes`` so far."""
    total = 0.0
    for process in processes:
        try:
            times = process.cpu_times()
        except psutil.Error:
            continue
        total += times.user + times.system
    return total


def test_worker_hosts_read_their_ranges_and_the_leader_cost_per_record_is_flat(
    tmp_path: Path, broker: EmbeddedBroker, topic: str, daemons: list[Any]
) -> None:
    # Given a leader that runs no workers, with one worker host and then with two
    figures: dict[int, tuple[float, float]] = {}
    for hosts in (1, 2):
        where = tmp_path / f"hosts-{hosts}"
        where.mkdir()
        stream = f"{topic}-{hosts}"
        create_topic_if_missing(broker.bootstrap_servers, stream, PARTITIONS)
        leader = _leader(where, broker, stream, batching={"max_records": 5000})
        daemons.append(leader.start())
        leader.wait_ready()
        members = [_member(where, leader, f"host-{hosts}-{i}") for i in range(hosts)]
        for member in members:
            daemons.append(member.start())
        wait_for(lambda: sum(leader.workers_by_host().values()) == hosts, 30, "the workers")  # noqa: B023
        leader_before = _cpu_s(leader.group_processes())
        hosts_before = sum(_cpu_s(m.actor_system.alive()) for m in members)
        # When a stream arrives and is consumed to the end
        report = _produce(broker, stream, 60_000, seed=30 + hosts)
        _wait_complete(leader, broker, stream, report, where)
        leader_cpu = _cpu_s(leader.group_processes()) - leader_before
        hosts_cpu = sum(_cpu_s(m.actor_system.alive()) for m in members) - hosts_before
        figures[hosts] = (leader_cpu / report.produced * 1e6, hosts_cpu / report.produced * 1e6)
        # Then the jobs ran on the worker hosts, which read the records themselves
        assert set(_hosts_that_ran_jobs(where)) == {m.name for m in members}
        assert leader.terminate() == 0
        for member in members:
            assert member.terminate() == 0
        assert_exactly_once(
            where / "out", stream, report, broker.bootstrap_servers, f"{stream}.dlq"
        )
    print(
        "CPU per record (µs), leader / worker hosts: "
        + ", ".join(f"{h} host(s): {lead:.2f} / {work:.2f}" for h, (lead, work) in figures.items())
    )
    # And the leader (which reads no record: it handles offsets, jobs and table
    # commits) spends no more per record with two hosts than with one
    assert figures[2][0] <= 1.5 * figures[1][0], figures
