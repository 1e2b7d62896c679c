"""SIGTERM under full load: the daemon drains and exits 0 within
``shutdown_grace_s``, leaves no process, and a restart loses nothing; and a
second SIGTERM during that drain stops it at once, still losing nothing."""

from __future__ import annotations

import contextlib
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

from actorsys.embedded_broker import EmbeddedBroker
from tests.support.daemon import DaemonProcess
from tests.support.rig import GRACE_S, Feeder, Rig
from tests.support.scenario import ScenarioResult, scenario
from tests.support.scenarios.common import faulty, jobs_running
from tests.support.scenarios.overload import OVERLOAD_FLOW
from tests.support.waiting import wait_for


class SecondSignalTooSlow(AssertionError):
    """The daemon did not stop at once on a second signal."""


LOAD_RATE = 10_000  # records/s: more than two workers at 0.3 s per job take
LOAD_COUNT = 200_000
LOAD_BUSY: dict[str, Any] = {
    "batching": {"max_records": 1000, "linger_ms": 300},
    # The overload scenario's caps: the daemon reaches them within seconds, so
    # the signal finds it saturated (partitions paused, ACKs withheld).
    "flow": OVERLOAD_FLOW,
    "workers": {"count": 2},
}


def _busy_output(workdir: Path, delay_s: float) -> dict[str, Any]:
    """FaultyHandler taking ``delay_s`` per job, leaving pid markers in ``pids``."""
    return faulty(delay_s=delay_s, pid_dir=str(workdir / "pids"))


def _jobs_running(workdir: Path) -> int:
    return jobs_running(workdir / "pids")


def _drain_line(daemon: DaemonProcess) -> str:
    """The daemon's log line saying how its drain ended."""
    return next(
        (line for line in daemon.log_lines() if "drained in" in line or "drain did not" in line),
        "(no drain line)",
    )


def _paused(daemon: DaemonProcess) -> int:
    """Paused partitions per /status (0 while it does not answer)."""
    with contextlib.suppress(Exception):
        partitions = daemon.status()["components"]["kafka_consumer"]["partitions"]
        return sum(1 for p in partitions if p["paused"])
    return 0


def _wait_under_load(
    rig: Rig, daemon: DaemonProcess, feeder: Feeder, committed: int, saturated: bool
) -> None:
    """Until some work is committed and a worker is mid-job (and, if
    ``saturated``, a partition paused), the producer still running."""

    def loaded() -> bool:
        daemon.check_alive()
        assert feeder.running, "the stream ended before the signal: the test proves nothing"
        return (
            rig.committed_total() >= committed
            and _jobs_running(rig.workdir) > 0
            and (not saturated or _paused(daemon) > 0)
        )

    wait_for(loaded, 90, f"{committed} records committed and a job running", 0.2)


@scenario("sigterm_under_load")
def sigterm_under_load(workdir: Path, broker: EmbeddedBroker) -> ScenarioResult:
    """SIGTERM while the producer runs and both workers are busy: the daemon
    drains and exits 0 within ``shutdown_grace_s``; a second run takes the rest."""
    with Rig(workdir, broker.bootstrap_servers, "sigterm") as rig:
        # Given a producer outrunning two workers at 0.3 s per job
        rig.create_topic()
        first = rig.start("first", output=_busy_output(workdir, 0.3), **LOAD_BUSY)
        with rig.feeder(rate=LOAD_RATE, seed=41, count=LOAD_COUNT) as feeder:
            _wait_under_load(rig, first, feeder, committed=10_000, saturated=True)
            running_at_signal = _jobs_running(workdir)
            paused_at_signal = _paused(first)
            # When it gets SIGTERM
            shutdown_s = rig.stop(first)
            drain = _drain_line(first)
            committed_at_stop = rig.committed_total()
            # Then it exited 0 within the grace period, leaving nothing (rig.stop);
            # and a second run, with a fast handler, drains the rest
            second = rig.start(
                "second", restart_of=first, output=_busy_output(workdir, 0), **LOAD_BUSY
            )
            report = feeder.report()
        drain_s = rig.wait_complete(second, report)
        second_shutdown_s = rig.stop(second)
        # A clean stop ends every actor process; Thespian's admin, still ending
        # itself when shutdown() returns, is no actor process outliving it
        for daemon in (first, second):
            assert "outlived the actor system" not in daemon.log_text(), daemon.log_tail()
        # And nothing was lost or written twice across the restart
        rig.check(report)
        result = ScenarioResult(
            "sigterm_under_load",
            f"SIGTERM with the producer at {LOAD_RATE}/s, {running_at_signal} job(s) running "
            f"and {paused_at_signal} partition(s) paused",
            {
                "records_in": report.produced,
                "valid": report.valid,
                "dead_letters": report.malformed,
                "committed_at_sigterm": committed_at_stop,
                "shutdown_s": round(shutdown_s, 1),
                "grace_s": GRACE_S,
                "drain": drain.split("] ", 1)[-1],
                "second_run_drain_s": round(drain_s, 1),
                "second_shutdown_s": round(second_shutdown_s, 1),
            },
        )
        assert shutdown_s <= GRACE_S + 5, result.summary()
        assert "all open batches ACKed and committed" in drain, (
            f"the drain was not clean: {drain}\n{first.log_tail(60)}"
        )
        return result


@scenario("sigterm_twice")
def sigterm_twice(workdir: Path, broker: EmbeddedBroker) -> ScenarioResult:
    """A second SIGTERM while the first one's drain waits for 5-second jobs:
    the daemon stops at once (any exit code), leaves no process, and a second
    run loses nothing (dead letters at least once: jobs were cut short)."""
    with Rig(workdir, broker.bootstrap_servers, "sigterm2") as rig:
        # Given busy workers whose jobs take 5 s each, and a producer still running
        rig.create_topic()
        first = rig.start("first", output=_busy_output(workdir, 5.0), **LOAD_BUSY)
        with rig.feeder(rate=5_000, seed=43, count=60_000) as feeder:
            _wait_under_load(rig, first, feeder, committed=1, saturated=False)
            # When SIGTERM starts a drain that must wait for the running jobs ...
            assert first.proc is not None
            first.proc.send_signal(signal.SIGTERM)
            first.wait_log(r"SIGTERM: draining", 10)
            assert _jobs_running(workdir) > 0, "no job running: the drain would end at once"
            # ... and a second SIGTERM arrives during it
            started = time.monotonic()
            first.proc.send_signal(signal.SIGTERM)
            try:
                code = first.proc.wait(15)
            except subprocess.TimeoutExpired:
                raise AssertionError(
                    f"no exit 15 s after the second SIGTERM:\n{first.log_tail()}"
                ) from None
            exit_s = time.monotonic() - started
            # Then it stopped at once and left no process behind
            first.assert_nothing_left()
            drained_first = any("drained in" in line for line in first.log_lines())
            second = rig.start(
                "second", restart_of=first, output=_busy_output(workdir, 0), **LOAD_BUSY
            )
            report = feeder.report()
        drain_s = rig.wait_complete(second, report)
        second_shutdown_s = rig.stop(second)
        # And the restart lost nothing and wrote nothing twice
        rig.check(report, dead_letters_exactly_once=False)
        result = ScenarioResult(
            "sigterm_twice",
            "a second SIGTERM during the drain of 5 s jobs",
            {
                "records_in": report.produced,
                "valid": report.valid,
                "dead_letters": report.malformed,
                "exit_code": code,
                "exit_after_second_signal_s": round(exit_s, 2),
                "dead_letters_sent_twice": rig.dead_letters_twice(report),
                "second_run_drain_s": round(drain_s, 1),
                "second_shutdown_s": round(second_shutdown_s, 1),
            },
        )
        assert not drained_first, f"the drain finished before the second signal: {result}"
        if exit_s >= 5:
            raise SecondSignalTooSlow(f"no exit at once on a second signal: {result.summary()}")
        return result
