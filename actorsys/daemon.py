"""`actorsys run`: the daemon's own process.

Starts the embedded broker when configured, checks the configuration against
the world (ports, output directory, job store), starts the Thespian actor
system and the Supervisor, serves HTTP, and on SIGTERM/SIGINT drains:
stop polling, ACK and commit open batches, let running jobs finish within
the grace period, shut the actor system down, and leave no process behind.
A second signal stops at once (still safe: invariants 1-3 hold at every
instant).
"""

from __future__ import annotations

import contextlib
import logging
import os
import pickle
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import psutil

from actorsys import __version__, metrics
from actorsys.actor_system import start_actor_system
from actorsys.actors.supervisor import Supervisor
from actorsys.cluster_key import load_key
from actorsys.config import EMBEDDED, AppConfig
from actorsys.convention import MemberCapabilities, default_host_name
from actorsys.errors import ActorsysError, ConfigError
from actorsys.jobs.open import open_job_store
from actorsys.logs import configure_process_logging
from actorsys.messages import (
    Drain,
    Drained,
    StartFailed,
    StatusReport,
    StatusRequest,
    SupervisorReady,
    SupervisorStart,
)
from actorsys.procs import ActorSystemProcesses, port_in_use, thespian_processes
from actorsys.progress import ProgressReporter
from actorsys.roles import Role
from actorsys.status import StatusDocument
from actorsys.stop_signals import StopSignals
from actorsys.tables.format_guard import check_output_format
from actorsys.transport_security import TransportSettings, rejected_peers

log = logging.getLogger("actorsys.daemon")
progress_log = logging.getLogger("actorsys.progress")

START_TIMEOUT_S = 60.0
STATUS_EVERY_S = 1.0
# A previous actor system on our admin port (its daemon was just killed) ends
# itself within about 2 s; a restart waits this long for it before giving up.
PREVIOUS_SYSTEM_WAIT_S = 15.0


class StartupError(ActorsysError):
    """The daemon could not start; the message says why in one line."""


class Daemon:
    def __init__(self, config: AppConfig) -> None:
        # Job records name their output files: make them absolute, whatever the cwd.
        output_dir = str(Path(config.output.dir).expanduser().resolve())
        key_file = str(Path(config.cluster.key_file).expanduser().resolve())
        self.config = config.with_overrides(
            {"output": {"dir": output_dir}, "cluster": {"key_file": key_file}}
        )
        self._stop = StopSignals(on_repeat=self._stop_at_once)
        self._status = StatusDocument()
        self._status_at = 0.0
        self._stack = contextlib.ExitStack()
        self._procs = ActorSystemProcesses(config.daemon.admin_port)
        self._bootstrap = ""
        self._broker: Any = None  # the embedded broker, when this daemon started one
        # Thespian's own processes (admin, logger), by pid: if one dies, nothing
        # restarts it and the actor system is dead, so neither is the daemon alive.
        self._system_processes: dict[int, str] = {}
        self._fatal: str | None = None
        self._metrics_dir = ""
        every_s = config.daemon.progress_interval_s
        self._progress = ProgressReporter(every_s) if every_s > 0 else None

    # --- the whole life -------------------------------------------------------------------

    def run(self) -> int:
        configure_process_logging(self.config.daemon.log_level, self.config.daemon.log_format)
        # Installed before anything starts, so a signal during start-up is not lost.
        self._stack.enter_context(self._stop)
        with self._stack:
            self._check_environment()
            self._bootstrap = self._start_broker()
            self._prepare_topics()
            asys, supervisor = self._start_actor_system()
            self._start_http()
            self._start_simulator()
            log.info(
                "actorsys running: bootstrap %s, topics %s, group %s, output %s, "
                "metrics http://%s:%d/metrics",
                self._bootstrap,
                ",".join(self.config.kafka.topics),
                self.config.kafka.group_id,
                self.config.output.dir,
                self.config.daemon.metrics_host,
                self.config.daemon.metrics_port,
            )
            while not self._stop.is_set():
                self._refresh_status(asys, supervisor)
                self._show_progress()
                self._fatal = self._fatal_problem()
                if self._fatal is not None:
                    log.error("%s; stopping (exit 1) so that a supervisor restarts it", self._fatal)
                    break
                self._stop.wait(STATUS_EVERY_S)
            if self._stop.is_set():
                log.info("%s: draining (a second signal stops at once)", self._stop.signal_name)
            if self._fatal is None or self._system_alive():
                self._drain(asys, supervisor)
        # Thespian's admin still ending itself after shutdown() returned (it
        # takes ~1.6 s) is ended without a word; an actor process is news.
        leftovers = self._procs.kill_all(expected=self._system_processes)
        if leftovers:
            log.warning("ended %d actor process(es) that outlived the actor system", leftovers)
        log.info("actorsys stopped")
        return 0 if self._fatal is None else 1

    # --- signals ----------------------------------------------------------------------------

    def _stop_at_once(self, signum: int) -> None:
        """A second SIGTERM/SIGINT (from the signal handler)."""
        log.warning("second signal: stopping at once (uncommitted work is re-read on restart)")
        # No orderly shutdown here: ActorSystem.shutdown() against a killed admin
        # blocks for seconds. Kill what we started and leave; invariants 1-3 hold.
        self._procs.refresh()
        self._procs.kill_all()
        if self._broker is not None:
            self._broker.stop(timeout_s=1.0)
        os._exit(1)

    # --- start-up ---------------------------------------------------------------------------

    def _check_environment(self) -> None:
        daemon = self.config.daemon
        if port_in_use(daemon.admin_port):
            # Right after a kill -9 the previous actor system is still ending
            # itself (it notices its daemon is gone within ~2 s): wait for it.
            log.info(
                "admin port %d is in use; waiting up to %.0fs for a previous actor system to end",
                daemon.admin_port,
                PREVIOUS_SYSTEM_WAIT_S,
            )
            if not _wait_port_free(daemon.admin_port, PREVIOUS_SYSTEM_WAIT_S):
                raise StartupError(
                    f"admin port {daemon.admin_port} is in use (another actorsys "
                    "daemon or actor system?); choose another with --admin-port"
                )
        if daemon.metrics_port and port_in_use(daemon.metrics_port):
            raise StartupError(
                f"metrics port {daemon.metrics_port} is in use; choose another with --metrics-port"
            )
        output = Path(self.config.output.dir)
        try:
            output.mkdir(parents=True, exist_ok=True)
            with tempfile.NamedTemporaryFile(dir=output, prefix=".probe-"):
                pass
        except OSError as exc:
            raise ConfigError(
                f"[output] dir {str(output)!r} is not writable: {exc.strerror}"
            ) from None
        check_output_format(output, self.config.output.format)
        store = open_job_store(self.config.jobs.store)  # a clear error now, not in an actor
        store.close()
        # Temporary files of writers killed mid-write (no worker runs yet; a file
        # written in the last minute may belong to another host sharing the dir).
        from actorsys.temp_files import remove_orphaned_temp_files

        if removed := remove_orphaned_temp_files(output):
            log.info("removed %d orphaned temporary output file(s)", removed)
        self._check_handler()

    def _check_handler(self) -> None:
        """Load the handler once now, so a bad reference or bad options is one
        clear line at start-up rather than a worker that cannot start; in a
        fresh interpreter, not here: every actor process is forked from this
        one and keeps what it imported (the IoT handlers import pyarrow, about
        85 MB of resident memory in each of them). The settings go through
        stdin, never argv: handler options may hold secrets."""
        output = self.config.output
        spec = pickle.dumps(
            (output.effective_handler, output.dir, output.metrics, dict(output.options))
        )
        try:
            done = subprocess.run(
                [sys.executable, "-c", _HANDLER_CHECK],
                input=spec,
                capture_output=True,
                timeout=HANDLER_CHECK_TIMEOUT_S,
                check=False,
            )
        except subprocess.TimeoutExpired:
            raise StartupError(
                f"loading the handler {output.effective_handler!r} took over "
                f"{HANDLER_CHECK_TIMEOUT_S:.0f}s"
            ) from None
        problem = done.stdout.decode(errors="replace").strip()
        if done.returncode != 0 and not problem:
            tail = done.stderr.decode(errors="replace").strip().splitlines()
            problem = f"loading the handler {output.effective_handler!r} failed: " + (
                tail[-1] if tail else f"exit status {done.returncode}"
            )
        if problem:
            raise ConfigError(problem)

    def _start_broker(self) -> str:
        servers = self.config.kafka.bootstrap_servers
        if servers != EMBEDDED:
            return servers
        from actorsys.embedded_broker import EmbeddedBroker

        broker = EmbeddedBroker(port=self.config.embedded_broker.port)
        bootstrap = broker.start()
        self._broker = broker
        self._stack.callback(broker.stop)
        log.info("embedded broker (Tansu) at %s, pid %s", bootstrap, broker.pid)
        return bootstrap

    def _prepare_topics(self) -> None:
        from actorsys.kafka_clients import create_topic_if_missing

        kafka = self.config.kafka
        wanted = [(kafka.dead_letter_topic_for(t), 1) for t in kafka.topics]
        if self.config.simulator.enabled:
            wanted += [(t, self.config.simulator.partitions) for t in kafka.topics]
        from actorsys.kafka_clients import admin_properties

        security = admin_properties(self.config, self._bootstrap)
        for topic, partitions in wanted:
            try:
                create_topic_if_missing(self._bootstrap, topic, partitions, client_config=security)
            except ActorsysError as exc:
                log.warning("could not create topic %s (continuing): %s", topic, exc)

    def _start_actor_system(self) -> tuple[Any, Any]:
        daemon = self.config.daemon
        metrics_dir = tempfile.mkdtemp(prefix="actorsys-metrics-")
        self._stack.callback(shutil.rmtree, metrics_dir, True)
        # Actor processes inherit the environment: every one writes its metrics here.
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = metrics_dir
        self._metrics_dir = metrics_dir
        metrics.initialise(self.config.kafka.topics)
        cluster = self.config.cluster
        # One host: a key is made on first start. Worker hosts need a copy of it.
        key = load_key(cluster.key_file, create=True)
        transport = TransportSettings(cluster.bind_host, key, cluster.max_frame_bytes, metrics_dir)
        asys = start_actor_system(
            self._capabilities(),
            daemon.log_level,
            daemon.log_format,
            transport,
            cluster.effective_advertised_host,
        )
        self._stack.callback(self._shutdown_actor_system, asys)
        self._procs.refresh()
        supervisor = asys.createActor(Supervisor)
        reply = asys.ask(
            supervisor,
            SupervisorStart(self.config, self._bootstrap, os.getpid(), os.getpgid(0)),
            START_TIMEOUT_S,
        )
        self._procs.refresh()
        if isinstance(reply, StartFailed):
            raise StartupError(f"{reply.role} could not start: {reply.reason}")
        if not isinstance(reply, SupervisorReady):
            raise StartupError(f"the actor system did not start within {START_TIMEOUT_S:.0f}s")
        self._system_processes = thespian_processes(self._procs.alive())
        return asys, supervisor

    def _capabilities(self) -> dict[str, Any]:
        """The leader of a Thespian convention: its own address is the convention
        address that worker hosts join (`actorsys join --convention HOST:PORT`)."""
        daemon = self.config.daemon
        me = MemberCapabilities(
            host=daemon.host_name or default_host_name(),
            admin_port=daemon.admin_port,
            leader=(self.config.cluster.effective_advertised_host, daemon.admin_port),
            worker_slots=0,  # the leader's own workers are created locally
            consumer=False,  # and so is its Kafka consumer
        )
        return me.as_capabilities()

    def _shutdown_actor_system(self, asys: Any) -> None:
        self._procs.refresh()
        try:
            asys.shutdown()
        except Exception as exc:  # shutting down must go on whatever Thespian says
            log.warning("actor system shutdown: %s", exc)

    def _start_http(self) -> None:
        from actorsys.web import start_http_server

        daemon = self.config.daemon
        if not daemon.metrics_port:
            return
        metrics.build_info(__version__)
        try:
            server = start_http_server(
                daemon.metrics_host,
                daemon.metrics_port,
                self._metrics_dir,
                self.status,
                self.readiness,
                self.health,
            )
        except OSError as exc:
            raise StartupError(
                f"cannot serve HTTP on {daemon.metrics_host}:{daemon.metrics_port}: "
                f"{exc.strerror or exc}; choose another --metrics-port"
            ) from None
        self._stack.callback(server.server_close)
        self._stack.callback(server.shutdown)

    def _start_simulator(self) -> None:
        sim = self.config.simulator
        if not sim.enabled:
            return
        from actorsys.simulator import produce

        stop = threading.Event()
        # The feed writes what the handler reads (its rules checked the option).
        value_format = str(self.config.output.options.get("value_format", "json"))

        def feed() -> None:
            try:
                for topic in self.config.kafka.topics:
                    produce(
                        self._bootstrap,
                        topic,
                        devices=sim.devices,
                        rate=sim.rate,
                        count=sim.count,
                        malformed_ratio=sim.malformed_ratio,
                        partitions=sim.partitions,
                        stop=stop,
                        time_scale=sim.time_scale,
                        late_ratio=sim.late_ratio,
                        late_max_s=sim.late_max_s,
                        value_format=value_format,
                    )
            except ActorsysError as exc:
                log.error("simulator stopped: %s", exc)

        thread = threading.Thread(target=feed, name="simulator", daemon=True)
        thread.start()
        log.info(
            "simulated IoT feed: %d devices, %.0f records/s into %s",
            sim.devices,
            sim.rate,
            ",".join(self.config.kafka.topics),
        )
        self._stack.callback(thread.join, 10)
        self._stack.callback(stop.set)

    # --- running ----------------------------------------------------------------------------

    def _refresh_status(self, asys: Any, supervisor: Any) -> None:
        self._procs.refresh()
        reply = asys.ask(supervisor, StatusRequest(), 2.0)
        if isinstance(reply, StatusReport):
            self._status = StatusDocument(reply.components)
            self._status_at = time.monotonic()
        metrics.process_memory(Role.DAEMON)
        metrics.daemon_ready(self.readiness()[0])

    def _show_progress(self) -> None:
        """The progress line: on a terminal as a line of its own, otherwise (or
        with JSON logs) as a log event with the same figures as fields."""
        if self._progress is None:
            return
        progress = self._progress.update(self._status, time.monotonic())
        if progress is None:
            return
        if self.config.daemon.log_format == "text" and sys.stdout.isatty():
            print(progress.line(), flush=True)
        else:
            progress_log.info("progress: %s", progress.line(), extra={"fields": progress.fields()})

    def status(self) -> dict[str, Any]:
        return {
            "bootstrap_servers": self._bootstrap,
            "group_id": self.config.kafka.group_id,
            "topics": list(self.config.kafka.topics),
            "status_age_s": round(time.monotonic() - self._status_at, 1),
            "rss_bytes": self._procs.total_rss(),
            "components": self._status.to_json(),
            # Peers whose frames were dropped unread (wrong cluster key, oversized,
            # malformed): a worker host with the wrong key shows up here.
            "rejected_peers": rejected_peers(self._metrics_dir) if self._metrics_dir else [],
        }

    # --- health -----------------------------------------------------------------------------

    def _system_alive(self) -> bool:
        return all(_alive(pid) for pid in self._system_processes)

    def _fatal_problem(self) -> str | None:
        """What makes this daemon useless for good (nothing inside it can repair
        it), or None. /healthz fails and the daemon exits non-zero on it."""
        gone = [
            f"{role} (pid {pid})" for pid, role in self._system_processes.items() if not _alive(pid)
        ]
        if gone:
            return f"Thespian's {' and '.join(sorted(gone))} process gone"
        lost = self._status.supervisor().lost_roles
        if lost:
            role, why = next(iter(sorted(lost.items())))
            return f"the {role} cannot be kept alive ({why})"
        return None

    def health(self) -> tuple[bool, dict[str, Any]]:
        """Alive: the actor system's own processes run and no core role was given
        up on. (Readiness, below, is the stricter question.)"""
        problem = self._fatal or self._fatal_problem()
        return problem is None, {"problems": [problem] if problem else []}

    def readiness(self) -> tuple[bool, dict[str, Any]]:
        """Ready: the actor system answers, every component started, a broker is
        connected, partitions are assigned and the job store works. The body
        gives each check and says in words what is wrong."""
        consumer = self._status.leader_consumer()
        ready_roles = set(self._status.supervisor().ready)
        required = {Role.JOB_MANAGER, Role.WORKER_MASTER, Role.KAFKA_CONSUMER}
        if self.config.output.format == "delta":
            required |= {Role.COMMITTER}
        missing = required - ready_roles
        checks = {
            "actor_system": time.monotonic() - self._status_at <= 5,
            "components": not missing,
            # Unknown (None) until the consumer's first statistics: not a problem yet.
            "broker": consumer.broker_ok is not False,
            "topics": not consumer.missing_topics,
            "assignment": bool(consumer.partitions),
            "job_store": self._status.job_manager().store_ok,
        }
        why = {
            "actor_system": "the actor system has not answered for over 5 s",
            "components": f"not started: {', '.join(sorted(missing))}",
            "broker": "the Kafka consumer is connected to no broker",
            "topics": f"waiting for topic(s) {', '.join(consumer.missing_topics)} to exist",
            "assignment": "no partition assigned yet",
            "job_store": "the job store is failing (see the log and "
            "actorsys_job_store_errors_total)",
        }
        problems = [why[name] for name, ok in checks.items() if not ok]
        return not problems, {"problems": problems, "checks": checks}

    # --- shutdown ---------------------------------------------------------------------------

    def _drain(self, asys: Any, supervisor: Any) -> None:
        grace = self.config.daemon.shutdown_grace_s
        started = time.monotonic()
        reply = asys.ask(supervisor, Drain(grace), grace + 5)
        took = time.monotonic() - started
        if isinstance(reply, Drained):
            log.info("drained in %.1fs: %s", took, reply.detail)
        else:
            log.warning(
                "drain did not finish within %.0fs; stopping anyway (safe: "
                "uncommitted work is re-read on restart)",
                grace,
            )


def _alive(pid: int) -> bool:
    try:
        return bool(psutil.Process(pid).status() != psutil.STATUS_ZOMBIE)
    except psutil.NoSuchProcess:
        return False
    except psutil.Error:
        return True


def _wait_port_free(port: int, timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while port_in_use(port):
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.25)  # polling the kernel's socket table, not synchronising actors
    return True


HANDLER_CHECK_TIMEOUT_S = 120.0
_HANDLER_CHECK = """
import pickle, sys
from actorsys.daemon import handler_problem
print(handler_problem(*pickle.loads(sys.stdin.buffer.read())) or "")
"""


def handler_problem(
    reference: str, output_dir: str, output_metrics: tuple[str, ...], options: dict[str, Any]
) -> str | None:
    """Why the handler cannot be loaded with these settings (one line), or None."""
    from actorsys.handlers import load_handler_factory
    from actorsys.handlers.api import HandlerSettings

    try:
        load_handler_factory(reference)(HandlerSettings(Path(output_dir), output_metrics, options))
    except ActorsysError as exc:
        return str(exc)
    except Exception as exc:  # a third-party handler's own error: still one line
        return f"handler {reference!r} failed to start: {type(exc).__name__}: {exc}"
    return None


def run_daemon(config: AppConfig) -> int:
    return Daemon(config).run()
