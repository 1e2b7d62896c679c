"""The daemon as an attacker on the same host sees it: what listens where, what
a peer without the cluster key can do to it, and where secrets end up.
Real daemons, real broker, real actor systems."""

from __future__ import annotations

import os
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any

import psutil
import pytest

from actorsys.cluster_key import format_key, generate_key
from actorsys.embedded_broker import EmbeddedBroker
from actorsys.kafka_clients import create_topic_if_missing
from actorsys.simulator import produce
from tests.support.checks import committed_offsets
from tests.support.daemon import DaemonProcess, start_ready, topic_daemon
from tests.support.hostile import marker_pickle, raw_frame
from tests.support.member import MemberProcess
from tests.support.waiting import wait_for

pytestmark = pytest.mark.integration


def _daemon(tmp_path: Path, broker: EmbeddedBroker, topic: str, **extra: Any) -> DaemonProcess:
    return topic_daemon(tmp_path, broker.bootstrap_servers, topic, **extra)


def _listeners(daemon: DaemonProcess) -> dict[tuple[str, int], set[int]]:
    """Every listening socket of every process of the daemon: address -> pids."""
    found: dict[tuple[str, int], set[int]] = {}
    for proc in daemon.group_processes():
        with suppress(psutil.Error):
            for conn in proc.net_connections(kind="inet"):
                if conn.status == psutil.CONN_LISTEN:
                    found.setdefault((conn.laddr.ip, conn.laddr.port), set()).add(proc.pid)
    return found


def test_every_listener_of_a_running_daemon_is_on_loopback(
    tmp_path: Path, broker: EmbeddedBroker, topic: str, daemons: list[DaemonProcess]
) -> None:
    # Given a daemon started with the default settings
    create_topic_if_missing(broker.bootstrap_servers, topic, 4)
    daemon = _daemon(tmp_path, broker, topic)
    start_ready(daemons, daemon)
    # Then every socket any of its processes listens on is bound to 127.0.0.1
    listeners = _listeners(daemon)
    processes = {pid for pids in listeners.values() for pid in pids}
    print(f"{len(listeners)} listening sockets in {len(processes)} processes: {sorted(listeners)}")
    assert len(processes) >= 10  # admin, logger, supervisor, actors... and the daemon itself
    assert {ip for ip, _port in listeners} == {"127.0.0.1"}
    # And the cluster key was made on first start, readable by its owner only
    assert daemon.key_file.stat().st_mode & 0o777 == 0o600


class _Attacker:
    """Sends, in a loop, to every port: a pickle that would create a file if
    loaded, a frame announcing 100 GB, and random bytes."""

    def __init__(self, ports: list[int], marker: Path) -> None:
        self._ports = ports
        self._payloads = [
            raw_frame(marker_pickle(marker)),
            b"100000000000>" + os.urandom(2048),
            os.urandom(2048),
        ]
        self._stop = threading.Event()
        self.sent = 0
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            for port in self._ports:
                for payload in self._payloads:
                    with (
                        suppress(OSError),
                        socket.create_connection(("127.0.0.1", port), timeout=1.0) as sock,
                    ):
                        sock.sendall(payload)
                        self.sent += 1
            self._stop.wait(0.05)

    @contextmanager
    def running(self) -> Iterator[_Attacker]:
        self._thread.start()
        try:
            yield self
        finally:
            self._stop.set()
            self._thread.join(10)


def _committed(broker: EmbeddedBroker, topic: str, partitions: int) -> int:
    offsets = committed_offsets(
        broker.bootstrap_servers, f"g-{topic}", topic, list(range(partitions))
    )
    return sum(max(0, o) for o in offsets.values())


def _rate_over(broker: EmbeddedBroker, topic: str, partitions: int, seconds: float) -> float:
    start_n, start_t = _committed(broker, topic, partitions), time.monotonic()
    time.sleep(seconds)  # the measurement window itself
    return (_committed(broker, topic, partitions) - start_n) / (time.monotonic() - start_t)


def test_a_hostile_peer_runs_no_code_and_records_keep_flowing_at_their_rate(
    tmp_path: Path, broker: EmbeddedBroker, topic: str, daemons: list[DaemonProcess]
) -> None:
    # Given a daemon under a steady feed of 3,000 records/s
    partitions = 2
    create_topic_if_missing(broker.bootstrap_servers, topic, partitions)
    daemon = _daemon(tmp_path, broker, topic, batching={"max_records": 2000, "linger_ms": 200})
    start_ready(daemons, daemon)
    stop = threading.Event()
    feeder = threading.Thread(
        target=produce,
        args=(broker.bootstrap_servers, topic),
        kwargs={
            "devices": 50,
            "rate": 3000,
            "count": 0,
            "malformed_ratio": 0.0,
            "partitions": partitions,
            "stop": stop,
        },
        daemon=True,
    )
    feeder.start()
    marker = tmp_path / "pwned"
    try:
        wait_for(lambda: _committed(broker, topic, partitions) > 3000, 60, "records to flow", 0.5)
        normal = _rate_over(broker, topic, partitions, 10)
        # When a peer without the key hammers every port of every daemon process
        ports = sorted({port for _ip, port in _listeners(daemon)} - {daemon.metrics_port})
        with _Attacker(ports, marker).running() as attacker:
            attacked = _rate_over(broker, topic, partitions, 10)
        # Then no code of it ran, and records flowed at the same rate meanwhile
        print(
            f"{len(ports)} ports attacked, {attacker.sent} hostile frames sent; "
            f"committed {normal:,.0f} records/s before, {attacked:,.0f} records/s during"
        )
        assert not marker.exists(), "a hostile pickle was loaded"
        assert attacker.sent > 100
        assert attacked >= 0.8 * normal, (normal, attacked)
        _code, body = daemon.http("/metrics")
        rejected = sum(
            float(line.rsplit(" ", 1)[1])
            for line in body.decode().splitlines()
            if line.startswith("actorsys_transport_frames_rejected_total{")
        )
        assert rejected > 0
        status = daemon.status()
        assert any(p["peer"] == "127.0.0.1" for p in status["rejected_peers"]), status
    finally:
        stop.set()
        feeder.join(30)
    assert daemon.terminate() == 0


def test_a_worker_host_with_the_wrong_key_is_refused_and_shown_in_status(
    tmp_path: Path, broker: EmbeddedBroker, topic: str, daemons: list[DaemonProcess]
) -> None:
    # Given a leader, and a worker host given a key of its own
    create_topic_if_missing(broker.bootstrap_servers, topic, 1)
    leader = _daemon(tmp_path, broker, topic)
    start_ready(daemons, leader)
    wrong = tmp_path / "wrong.key"
    wrong.write_text(format_key(generate_key()))
    wrong.chmod(0o600)
    member = MemberProcess("stranger", leader.admin_port, tmp_path / "stranger.log", key_file=wrong)
    # When it tries to join, Then it refuses to start and says how to fix it
    member.start_process()
    assert member.proc is not None
    assert member.proc.wait(30) == 1
    assert "refused this host's cluster key" in member.log_path.read_text()
    # And the leader lists it among the peers it refused
    status = leader.status()
    assert any(p["reason"] == "bad_mac" for p in status["rejected_peers"]), status


def test_a_join_without_the_leaders_key_says_how_to_get_it(tmp_path: Path) -> None:
    member = MemberProcess("keyless", 1, tmp_path / "keyless.log", key_file=tmp_path / "none.key")
    member.start_process()
    assert member.proc is not None
    assert member.proc.wait(30) == 2
    text = member.log_path.read_text()
    assert "copy the leader's key file" in text and "Traceback" not in text


def test_secrets_stay_out_of_every_log_and_the_status_of_a_failing_run(
    tmp_path: Path, broker: EmbeddedBroker, topic: str, daemons: list[DaemonProcess]
) -> None:
    # Given a SASL password (from the environment) the broker cannot accept, so
    # that the run fails over and over, logged at DEBUG
    create_topic_if_missing(broker.bootstrap_servers, topic, 1)
    password = "s3cr3t-" + os.urandom(6).hex()
    daemon = _daemon(
        tmp_path,
        broker,
        topic,
        daemon={"log_level": "DEBUG"},
        kafka={
            "properties": {
                "security.protocol": "SASL_PLAINTEXT",
                "sasl.mechanisms": "PLAIN",
                "sasl.username": "actorsys",
                "sasl.password": {"env": "ACTORSYS_TEST_SASL_PASSWORD"},
            }
        },
    )
    daemon.env["ACTORSYS_TEST_SASL_PASSWORD"] = password
    daemons.append(daemon)
    daemon.start()

    def serves_status() -> bool:
        daemon.check_alive()
        with suppress(OSError):
            return daemon.http("/status")[0] == 200
        return False

    wait_for(serves_status, 60, "the daemon to serve /status", 0.5)
    wait_for(lambda: "kafka" in daemon.log_path.read_text().lower(), 30, "Kafka errors", 0.5)
    time.sleep(5)  # let it fail for a while: the failing run is the scenario
    status_body = daemon.http("/status")[1].decode()
    daemon.terminate()
    # Then the password is nowhere: not in the daemon's log, Thespian's, or /status
    logs = [daemon.log_path, *Path(os.environ.get("TMPDIR", "/tmp")).glob("thespian*.log")]
    for path in logs:
        assert password not in path.read_text(errors="replace"), f"password in {path}"
    assert password not in status_body
