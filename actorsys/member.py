"""`actorsys join`: a worker host (and optionally a second consumer daemon).

Starts an actor system that joins the leader's Thespian convention and
advertises what it offers: worker slots, and whether it runs a Kafka
consumer. The leader places the actors; this process only keeps the actor
system alive, watches for signals, and on SIGTERM drains the host: it
withdraws its slots and consumer (the leader retires its workers after their
current job and stops its consumer after committing), waits for them to go,
then shuts the actor system down, leaving no process behind.
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import time
from dataclasses import dataclass, field
from typing import Any

from actorsys.actor_system import start_actor_system
from actorsys.actors.watchdog import GLOBAL_NAME, Watchdog, WatchProcess
from actorsys.cluster_key import load_key
from actorsys.config import AppConfig
from actorsys.convention import MemberCapabilities
from actorsys.errors import ActorsysError
from actorsys.logs import RateLimitedLog, configure_process_logging
from actorsys.messages import DrainHost
from actorsys.procs import ActorSystemProcesses, port_in_use, thespian_processes
from actorsys.stop_signals import StopSignals
from actorsys.transport_security import KeyCheck, TransportSettings, check_key_with

log = logging.getLogger("actorsys.member")

# Admin and logger: what remains of a member once the leader took its actors back.
BARE_ACTOR_SYSTEM_PROCESSES = 2


class JoinError(ActorsysError):
    """The worker host could not start."""


@dataclass(frozen=True, slots=True)
class MemberSettings:
    capabilities: MemberCapabilities
    drain_grace_s: float = 60.0
    log_level: str = "INFO"
    log_format: str = "text"
    # This host's own configuration: its [cluster] section (bind address, key file)
    # and the secrets its actors need (never sent by the leader).
    config: AppConfig = field(default_factory=AppConfig)


class Member:
    def __init__(self, settings: MemberSettings) -> None:
        self.settings = settings
        self._stop = StopSignals(on_repeat=self._stop_at_once)
        self._procs = ActorSystemProcesses(settings.capabilities.admin_port)
        self._unreachable = RateLimitedLog(log, 30.0)

    def run(self) -> int:
        caps = self.settings.capabilities
        configure_process_logging(self.settings.log_level, self.settings.log_format)
        if port_in_use(caps.admin_port):
            raise JoinError(
                f"admin port {caps.admin_port} is in use (another actor system "
                "on this host?); choose another with --admin-port"
            )
        cluster = self.settings.config.cluster
        key = load_key(cluster.key_file, create=False)  # the leader's copy, never a new one
        self._check_key(key)
        with self._stop:
            return self._run_member(key)

    def _run_member(self, key: bytes) -> int:
        caps = self.settings.capabilities
        cluster = self.settings.config.cluster
        transport = TransportSettings(cluster.bind_host, key, cluster.max_frame_bytes)
        asys = start_actor_system(
            caps.as_capabilities(),
            self.settings.log_level,
            self.settings.log_format,
            transport,
            cluster.effective_advertised_host,
        )
        thespian: dict[int, str] = {}  # Thespian's admin and logger, once known
        try:
            self._procs.refresh()
            watchdog = asys.createActor(Watchdog, globalName=GLOBAL_NAME)
            thespian = thespian_processes(self._procs.alive())
            asys.ask(watchdog, WatchProcess(os.getpid(), os.getpgid(0)), 10)
            log.info(
                "worker host %s joined the convention at %s:%d with %d worker slot(s)%s",
                caps.member_id,
                *caps.leader,
                caps.worker_slots,
                " and a Kafka consumer" if caps.consumer else "",
            )
            while not self._stop.wait(2.0):
                self._procs.refresh()
                self._check_leader()
            log.info(
                "%s: draining this host (a second signal stops at once)", self._stop.signal_name
            )
            self._drain(asys, watchdog)
        finally:
            with contextlib.suppress(Exception):
                asys.shutdown()
            left = self._procs.kill_all(expected=thespian)
            if left:
                log.warning("ended %d actor process(es) that outlived the actor system", left)
        log.info("worker host %s stopped", caps.member_id)
        return 0

    def _check_key(self, key: bytes) -> None:
        """Refuse to start with a key the leader does not share: its frames would
        be dropped unread, and the host would sit in the convention doing nothing."""
        host, port = self.settings.capabilities.leader
        verdict = check_key_with(host, port, key)
        if verdict is KeyCheck.REFUSED:
            raise JoinError(
                f"the leader at {host}:{port} refused this host's cluster key; copy the "
                f"leader's key file to {self.settings.config.cluster.key_file} (mode 0600) "
                "or set ACTORSYS_CLUSTER_KEY to the same key"
            )
        if verdict is KeyCheck.UNREACHABLE:
            log.warning(
                "the leader at %s:%d is not reachable yet; its key is checked when it is",
                host,
                port,
            )

    def _check_leader(self) -> None:
        host, port = self.settings.capabilities.leader
        try:
            socket.create_connection((host, port), timeout=2).close()
        except OSError as exc:
            self._unreachable.log(
                logging.WARNING,
                "leader",
                "the leader at %s:%d is unreachable (%s); its actors here "
                "stop when their lease lapses",
                host,
                port,
                exc,
            )

    def _stop_at_once(self, signum: int) -> None:
        """A second SIGTERM/SIGINT (from the signal handler)."""
        log.warning("second signal: stopping at once (running jobs go back to the leader's queue)")
        self._procs.refresh()
        self._procs.kill_all()
        os._exit(1)

    def _drain(self, asys: Any, watchdog: Any) -> None:
        """Tell the leader (through the HostAgent it placed here) that this host
        leaves: it retires our workers after their current job and stops our
        consumer after a commit. Wait for them to be gone."""
        if not asys.ask(watchdog, DrainHost(), 10):
            log.info("the leader never placed anything here; leaving")
            return
        deadline = time.monotonic() + self.settings.drain_grace_s
        while time.monotonic() < deadline:
            # Thespian's admin and logger stay; everything the leader placed leaves.
            if len(self._procs.alive()) <= BARE_ACTOR_SYSTEM_PROCESSES + 1:  # + the watchdog
                log.info("drained: the leader took back every worker of this host")
                return
            time.sleep(0.5)  # polling local processes while the leader retires them
        log.warning(
            "drain grace of %.0fs ended with work still here; its jobs go back to "
            "the leader's queue",
            self.settings.drain_grace_s,
        )


def run_member(settings: MemberSettings) -> int:
    return Member(settings).run()
