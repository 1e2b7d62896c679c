"""The broker frozen (SIGSTOP) for 30 s mid-stream, and the broker not there
yet when the daemon starts. Both use a broker of their own: freezing the
session's shared one would stall every other test, and the late one must
come on a port the daemon was given before it existed."""

from __future__ import annotations

import re
import time
from pathlib import Path

from confluent_kafka.admin import AdminClient

from actorsys.embedded_broker import EmbeddedBroker
from actorsys.netutil import free_port_below_ephemeral
from tests.support.rig import Rig, stays_up
from tests.support.scenario import ScenarioResult, scenario
from tests.support.waiting import wait_for

PAUSE_S = 30.0
PAUSE_LOG_LINES = 100


@scenario("broker_pause")
def broker_pause(workdir: Path, broker: EmbeddedBroker) -> ScenarioResult:
    """The broker frozen with SIGSTOP for 30 s mid-stream, then resumed.

    Uses a broker of its own (``broker`` is ignored): freezing the shared one
    would stall every other test."""
    with EmbeddedBroker() as own, Rig(workdir, own.bootstrap_servers, "pause") as rig:
        # Given a daemon consuming a stream (the producer waits out the pause too)
        rig.create_topic()
        daemon = rig.start("daemon")
        with rig.feeder(
            rate=4_000, seed=51, count=100_000, producer_config={"message.timeout.ms": 180_000}
        ) as feeder:

            def some_committed() -> bool:
                daemon.check_alive()
                return rig.committed_total() >= 10_000

            wait_for(some_committed, 60, "10,000 records committed", 0.25)
            # When the broker is frozen for 30 s (the fault itself: it lasts that long)
            log_at_pause = daemon.log_size()
            own.pause()
            paused_at = time.monotonic()
            try:
                stays_up(daemon, PAUSE_S, since=paused_at)  # Then the daemon stays up throughout
            finally:
                own.resume()
            pause_log = daemon.log_lines(log_at_pause, daemon.log_size())
            resumed_at = time.monotonic()
            report = feeder.report()
        # And after the resume everything drains
        drain_s = rig.wait_complete(daemon, report, timeout_s=180)
        recovery_s = time.monotonic() - resumed_at
        shutdown_s = rig.stop(daemon)
        # A worker whose dead letters could not be delivered within 30 s fails
        # its attempt and the retry sends them again: at least once here.
        rig.check(report, dead_letters_exactly_once=False)
        status_lines = [line for line in pause_log if re.match(r"\d{4}-\d\d-\d\d ", line)]
        result = ScenarioResult(
            "broker_pause",
            f"broker SIGSTOPped for {PAUSE_S:.0f} s mid-stream",
            {
                "records_in": report.produced,
                "valid": report.valid,
                "dead_letters": report.malformed,
                "log_lines_during_pause": len(pause_log),
                "log_events_during_pause": len(status_lines),
                "dead_letters_sent_twice": rig.dead_letters_twice(report),
                "drain_after_resume_s": round(recovery_s, 1),
                "final_wait_s": round(drain_s, 1),
                "shutdown_s": round(shutdown_s, 1),
            },
        )
        # And the log was not flooded while the broker was frozen
        assert len(pause_log) < PAUSE_LOG_LINES, (
            f"{len(pause_log)} log lines in {PAUSE_S:.0f} s:\n" + "\n".join(pause_log[:40])
        )
        return result


ABSENT_S = 15.0
ABSENT_LOG_LINES = 60


@scenario("broker_late")
def broker_late(workdir: Path, broker: EmbeddedBroker) -> ScenarioResult:
    """The daemon starts with no broker on its port; the broker comes 15 s
    later, on that very port. Uses a broker of its own (``broker`` is ignored)."""
    port = free_port_below_ephemeral()  # the daemon's actors bind port 0 meanwhile
    bootstrap = f"127.0.0.1:{port}"
    late = EmbeddedBroker(port=port)
    try:
        with Rig(workdir, bootstrap, "late") as rig:
            # Given a daemon started while nothing listens on the broker's port
            daemon = rig.daemon("daemon")
            daemon.start()

            def serving() -> bool:
                daemon.check_alive()
                try:
                    return daemon.http("/healthz")[0] == 200
                except OSError:
                    return False

            wait_for(serving, 60, "the daemon to serve /healthz without a broker", 0.25)
            log_at_up = daemon.log_size()
            # When the broker stays absent a while (the fault itself),
            # Then the daemon stays up ...
            stays_up(daemon, ABSENT_S)
            absent_log = daemon.log_lines(log_at_up, daemon.log_size())
            ready_without_broker = daemon.http("/readyz")[0] == 200
            # ... and then starts on the port the daemon was given
            late.start()
            admin = AdminClient({"bootstrap.servers": bootstrap})
            dlq_at_broker_start = rig.dlq in admin.list_topics(timeout=10).topics
            came_at = time.monotonic()
            report = rig.produce(40_000, seed=61, malformed_ratio=0.02)
            daemon.wait_ready(90)
            ready_s = time.monotonic() - came_at
            drain_s = rig.wait_complete(daemon, report)
            dlq_at_end = rig.dlq in admin.list_topics(timeout=10).topics
            shutdown_s = rig.stop(daemon)
            rig.check(report)
            startup_warning = next(
                (line for line in daemon.log_lines() if "could not create topic" in line), ""
            )
            result = ScenarioResult(
                "broker_late",
                f"no broker for the daemon's first {ABSENT_S:.0f} s",
                {
                    "records_in": report.produced,
                    "valid": report.valid,
                    "dead_letters": report.malformed,
                    "log_lines_while_absent": len(absent_log),
                    "ready_without_broker": ready_without_broker,
                    "dlq_topic_when_broker_came": dlq_at_broker_start,
                    "dlq_topic_at_end": dlq_at_end,
                    "startup_dlq_warning": bool(startup_warning),
                    "ready_after_broker_s": round(ready_s, 1),
                    "drain_s": round(drain_s, 1),
                    "shutdown_s": round(shutdown_s, 1),
                },
            )
            # And it logged the outage at a bounded rate, was not ready without a
            # broker, and created nothing before the broker existed
            assert len(absent_log) < ABSENT_LOG_LINES, "\n".join(absent_log[:40])
            assert not ready_without_broker, result.summary()
            assert startup_warning, "start-up did not say it could not create the DLQ topic"
            assert not dlq_at_broker_start, result.summary()
            assert dlq_at_end, result.summary()
            return result
    finally:
        late.stop()
