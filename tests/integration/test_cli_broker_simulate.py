"""``actorsys broker`` and ``actorsys simulate`` as real processes."""

from __future__ import annotations

import logging
import re
import selectors
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path

import psutil
import pytest
from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition

from actorsys.netutil import free_port
from tests.support.waiting import gone, wait_for

pytestmark = pytest.mark.integration

_quiet = logging.getLogger("tests.kafka")

ACTORSYS = str(Path(sys.executable).with_name("actorsys"))
if not Path(ACTORSYS).exists():  # pragma: no cover - not running from the venv
    ACTORSYS = shutil.which("actorsys") or "actorsys"

SUMMARY = re.compile(
    r"^produced (\d+) records to (\S+) \((\d+) valid, (\d+) malformed\) "
    r"in [\d.]+ s: [\d,]+ records/s$"
)


@contextmanager
def cli(*args: str) -> Iterator[subprocess.Popen[str]]:
    """Run ``actorsys ARGS``; on exit stop it (SIGTERM, then SIGKILL) if still there.

    The broker's Tansu child runs in its own session, so a SIGKILLed CLI would
    leave it behind: children are collected first and killed too if needed.
    """
    proc = subprocess.Popen(
        [ACTORSYS, *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        yield proc
    finally:
        if proc.poll() is None:
            try:
                children = psutil.Process(proc.pid).children(recursive=True)
            except psutil.NoSuchProcess:
                children = []
            proc.terminate()
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
            _, alive = psutil.wait_procs(children, timeout=5)
            for child in alive:
                with suppress(psutil.NoSuchProcess):
                    child.kill()
            psutil.wait_procs(alive, timeout=5)
        proc.communicate(timeout=10)


def read_line(proc: subprocess.Popen[str], timeout_s: float) -> str:
    """The next stdout line of ``proc``, or an assertion error at the deadline."""
    assert proc.stdout is not None
    with selectors.DefaultSelector() as selector:
        selector.register(proc.stdout, selectors.EVENT_READ)
        if not selector.select(timeout_s):
            raise AssertionError(f"no output from {proc.args!r} within {timeout_s} s")
    return proc.stdout.readline().strip()


def run(*args: str, timeout_s: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run([ACTORSYS, *args], capture_output=True, text=True, timeout=timeout_s)


def error_lines(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.strip()]


@pytest.fixture
def cli_broker() -> Iterator[tuple[subprocess.Popen[str], str]]:
    """``actorsys broker`` on a free port, with the bootstrap address it printed."""
    with cli("broker", "--port", str(free_port())) as proc:
        bootstrap = read_line(proc, timeout_s=30)
        yield proc, bootstrap


def tansu_child(proc: subprocess.Popen[str]) -> psutil.Process:
    children = psutil.Process(proc.pid).children()
    assert len(children) == 1, children
    return children[0]


def test_simulate_against_cli_broker(
    cli_broker: tuple[subprocess.Popen[str], str], topic: str
) -> None:
    # Given `actorsys broker` running
    _, bootstrap = cli_broker
    assert re.fullmatch(r"127\.0\.0\.1:\d+", bootstrap)

    # When `actorsys simulate --count 5000` runs against it
    done = run(
        "simulate",
        "--bootstrap-servers",
        bootstrap,
        "--topic",
        topic,
        "--devices",
        "20",
        "--rate",
        "0",
        "--count",
        "5000",
        "--malformed-ratio",
        "0.02",
        "--partitions",
        "2",
        "--seed",
        "5",
    )

    # Then it exits 0 with a one-line summary that adds up
    assert done.returncode == 0, done.stderr
    match = SUMMARY.match(done.stdout.strip())
    assert match, done.stdout
    produced, name, valid, malformed = match.groups()
    assert (int(produced), name) == (5000, topic)
    assert int(valid) + int(malformed) == 5000
    assert "Traceback" not in done.stderr


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_broker_stops_cleanly_on_signal(
    cli_broker: tuple[subprocess.Popen[str], str], sig: signal.Signals
) -> None:
    # Given `actorsys broker` running with its Tansu child
    proc, _ = cli_broker
    child = tansu_child(proc)

    # When it gets the signal
    proc.send_signal(sig)

    # Then it exits 0 and the Tansu process is gone
    _, stderr = proc.communicate(timeout=20)
    assert proc.returncode == 0, stderr
    wait_for(lambda: gone(child.pid), 5, "the Tansu process to exit")
    assert "Traceback" not in stderr


def test_simulate_ctrl_c_flushes_and_summarises(
    cli_broker: tuple[subprocess.Popen[str], str], topic: str
) -> None:
    # Given `actorsys simulate` producing without end
    _, bootstrap = cli_broker
    with cli(
        "simulate", "-b", bootstrap, "-t", topic, "--rate", "2000", "--partitions", "1"
    ) as proc:
        # When its first records have reached Kafka
        wait_for_first_record(bootstrap, topic, timeout_s=30)
        # And it gets Ctrl-C
        proc.send_signal(signal.SIGINT)

        # Then it exits 0 after printing the summary
        stdout, stderr = proc.communicate(timeout=30)
    assert proc.returncode == 0, stderr
    match = SUMMARY.match(stdout.strip())
    assert match, stdout
    assert int(match.group(1)) >= 1
    assert "Traceback" not in stderr


def wait_for_first_record(bootstrap: str, topic: str, timeout_s: float) -> None:
    consumer = Consumer(
        {"bootstrap.servers": bootstrap, "group.id": f"probe-{topic}", "logger": _quiet}
    )
    try:
        consumer.assign([TopicPartition(topic, 0, OFFSET_BEGINNING)])
        deadline = time.monotonic() + timeout_s
        while True:
            msg = consumer.poll(0.2)
            if msg is not None and msg.error() is None:
                return
            assert time.monotonic() < deadline, "no record arrived"
    finally:
        consumer.close()


def test_broker_port_in_use_is_one_line(cli_broker: tuple[subprocess.Popen[str], str]) -> None:
    # Given `actorsys broker` holding a port
    _, bootstrap = cli_broker
    port = bootstrap.rsplit(":", 1)[1]

    # When a second one is started on it
    done = run("broker", "--port", port, timeout_s=30)

    # Then it exits 1 with one line on stderr
    assert done.returncode == 1
    assert error_lines(done.stderr) == [
        f"Error: cannot start the embedded broker: {bootstrap} is already in use"
    ]


def test_simulate_unreachable_broker_is_one_line(topic: str) -> None:
    # Given nothing listening on a port
    bootstrap = f"127.0.0.1:{free_port()}"

    # When simulate targets it with a 2 s connect timeout
    started = time.monotonic()
    done = run("simulate", "-b", bootstrap, "-t", topic, "--count", "10", "--connect-timeout", "2")

    # Then it exits 1 within the bound, with one line
    assert time.monotonic() - started < 15
    assert done.returncode == 1
    assert error_lines(done.stderr) == [f"Error: cannot reach Kafka at {bootstrap} within 2 s"]


@pytest.mark.parametrize("command", ["broker", "simulate"])
def test_help(command: str) -> None:
    # Given either command
    # When asked for --help
    done = run(command, "--help")

    # Then it exits 0 with usage and its options
    assert done.returncode == 0
    assert done.stdout.startswith(f"Usage: actorsys {command} [OPTIONS]")
    assert "--port" in done.stdout if command == "broker" else "--malformed-ratio" in done.stdout


@pytest.mark.parametrize(
    "args",
    [
        ["broker", "--port", "70000"],
        ["broker", "--port", "x"],
        ["broker", "--nope"],
        ["simulate", "--malformed-ratio", "1.5"],
        ["simulate", "--rate", "-1"],
        ["simulate", "--count", "ten"],
        ["simulate", "--devices", "0"],
        ["simulate", "--partitions", "0"],
        ["simulate", "extra-argument"],
    ],
)
def test_bad_flags_exit_2_with_one_line(args: list[str]) -> None:
    # Given a bad flag or value
    # When the command runs
    done = run(*args, timeout_s=30)

    # Then it exits 2 with one line naming the command, and nothing on stdout
    assert done.returncode == 2
    lines = error_lines(done.stderr)
    assert len(lines) == 1, lines
    assert lines[0].startswith(f"Error: actorsys {args[0]}: ")
    assert done.stdout == ""
