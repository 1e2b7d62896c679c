"""WorkerMaster: keeps the worker pool, on this host and on every worker host.

Creates workers on the leader (``workers.on_leader``) and, as worker hosts
join Thespian's convention, a HostAgent plus ``worker_slots`` workers placed
on each by capability requirements. Tells idle workers that jobs are
available (they pull from the JobManager, so a slow worker never hoards
jobs). Notices lost workers and hosts in seconds — a dead worker process by
``ChildActorExited``, a dead or cut-off host by its agent's missing pongs —
and tells the JobManager to put their jobs back. Replaces workers that die
or overrun their lease; retires a host's workers gracefully when the host
lowers its slots (a drain).
"""

from __future__ import annotations

import contextlib
import itertools
import logging
import os
import signal
import time
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from thespian.actors import (
    ActorExitRequest,
    ActorSystemConventionUpdate,
    ActorTypeDispatcher,
    ChildActorExited,
    WakeupMessage,
)

from actorsys import __version__, metrics
from actorsys.actors.host_agent import HostAgent
from actorsys.actors.lifeline import ParentWatch
from actorsys.actors.worker import Worker
from actorsys.convention import (
    HOST,
    MEMBER_ID,
    VERSION,
    WORKER_SLOTS,
    default_host_name,
    member_id,
    placed_on,
)
from actorsys.messages import (
    ComponentReady,
    ComponentStatus,
    DiscardAttempt,
    HostAgentStart,
    HostDraining,
    JobAvailable,
    JobManagerMoved,
    JobsAvailable,
    LeaderLease,
    Ping,
    Pong,
    ReplaceWorker,
    RetireWorker,
    WorkerHello,
    WorkerLost,
    WorkerMasterStart,
    WorkerStart,
)

log = logging.getLogger("actorsys.worker_master")

TICK = "tick"
TICK_S = 1.0
LEASE_EVERY_TICKS = 5
# Placed actors stop themselves when the leader is silent this long.
LEADER_LEASE_S = 30.0
REPLACE_DELAY_S = 1.0


@dataclass
class _Worker:
    worker_id: str
    address: Any
    member: str  # the member system it was placed on ("" for this system)
    host: str
    pid: int | None = None


@dataclass
class _Host:
    member: str
    host: str
    slots: int
    agent: Any
    last_pong: float
    lost: bool = False
    draining: bool = False


class WorkerMaster(ActorTypeDispatcher):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._start: WorkerMasterStart | None = None
        self._job_manager: Any = None
        self._supervisor: Any = None
        self._local_host = default_host_name()
        self._workers: dict[str, _Worker] = {}
        self._hosts: dict[str, _Host] = {}  # worker hosts (members), by member id
        self._refused: dict[str, str] = {}  # member id -> why it gets no workers
        # Workers replaced or retired, not yet exited: address -> worker.
        # (A list: Thespian's ActorAddress is unhashable; find by equality.)
        self._retiring: list[_Worker] = []
        self._ids = itertools.count(1)
        self._ticks = 0
        self._replaced = 0
        self._stopping = False
        self._parent = ParentWatch()
        self._worker_gauge = metrics.WorkerGauge()

    # --- start-up ---------------------------------------------------------------------------

    def receiveMsg_WorkerMasterStart(self, msg: WorkerMasterStart, sender: Any) -> None:
        self._start = msg
        self._job_manager = msg.job_manager
        self._supervisor = sender
        daemon = msg.config.daemon
        self._local_host = daemon.host_name or default_host_name()
        self._local_member = member_id(self._local_host, daemon.admin_port)
        if msg.config.workers.on_leader:
            for _ in range(msg.config.workers.effective_count):
                self._spawn("", self._local_host)
        # Worker hosts that join (or leave) the convention reach us from now on.
        self.notifyOnSystemRegistrationChanges(True)
        self.send(sender, ComponentReady("worker_master"))
        self.wakeupAfter(timedelta(seconds=TICK_S), payload=TICK)

    def _spawn(self, member: str, host: str) -> None:
        assert self._start is not None
        worker_id = f"worker-{next(self._ids)}"
        requirements = placed_on(member) if member else None
        address = self.createActor(Worker, targetActorRequirements=requirements)
        self._workers[worker_id] = _Worker(worker_id, address, member, host)
        self.send(
            address,
            WorkerStart(
                self._start.config,
                self._start.bootstrap_servers,
                self._job_manager,
                self.myAddress,
                worker_id,
                host,
            ),
        )

    def receiveMsg_WorkerHello(self, msg: WorkerHello, sender: Any) -> None:
        worker = self._workers.get(msg.worker_id)
        if worker is not None:
            worker.pid = msg.pid
        self._push_status()

    # --- worker hosts -----------------------------------------------------------------------

    def receiveMsg_ActorSystemConventionUpdate(
        self, msg: ActorSystemConventionUpdate, sender: Any
    ) -> None:
        caps = msg.remoteCapabilities or {}
        member = caps.get(MEMBER_ID)
        if not member or member == getattr(self, "_local_member", None):
            return  # not an actorsys system, or ourselves
        if not msg.remoteAdded:
            self._host_lost(member, "left the convention")
            self._hosts.pop(member, None)
            return
        if caps.get(VERSION) != __version__:
            reason = (
                f"runs actorsys {caps.get(VERSION)}, this leader runs {__version__}: "
                "install the same version on every host"
            )
            if self._refused.get(member) != reason:
                log.error("worker host %s refused: %s", member, reason)
            self._refused[member] = reason
            return
        self._refused.pop(member, None)
        host = str(caps.get(HOST) or member)
        slots = int(caps.get(WORKER_SLOTS) or 0)
        known = self._hosts.get(member)
        if known is None:
            agent = self.createActor(HostAgent, targetActorRequirements=placed_on(member))
            self.send(agent, HostAgentStart(member, host, LEADER_LEASE_S))
            known = self._hosts[member] = _Host(member, host, slots, agent, time.monotonic())
            log.info("host %s (%s) joined with %d worker slot(s)", host, member, slots)
        if not known.draining:
            known.slots = slots
            self._fit_host(known)

    def receiveMsg_HostDraining(self, msg: HostDraining, sender: Any) -> None:
        """The host's `actorsys join` got SIGTERM: its workers finish their current
        job and leave; its consumer commits and leaves (the Supervisor's part)."""
        host = self._hosts.get(msg.member_id)
        if host is None or host.draining:
            return
        log.info("host %s is draining", host.host)
        host.draining = True
        host.slots = 0
        for worker in [w for w in self._workers.values() if w.member == host.member]:
            self._retire(worker, RetireWorker())
        self.send(self._supervisor, msg)
        self._finish_drain_if_done(host)

    def _finish_drain_if_done(self, host: _Host) -> None:
        busy = any(w.member == host.member for w in (*self._workers.values(), *self._retiring))
        if host.draining and not busy:
            log.info("host %s drained: every worker left", host.host)
            self.send(host.agent, ActorExitRequest())
            del self._hosts[host.member]

    def _fit_host(self, host: _Host) -> None:
        """Grow or shrink the host's workers to its advertised slots."""
        if host.lost or host.draining:
            return
        current = [w for w in list(self._workers.values()) if w.member == host.member]
        for _ in range(host.slots - len(current)):
            self._spawn(host.member, host.host)
        for worker in current[host.slots :]:
            log.info("retiring %s on %s (the host lowered its slots)", worker.worker_id, host.host)
            self._retire(worker, RetireWorker())

    def receiveMsg_Pong(self, msg: Pong, sender: Any) -> None:
        host = self._hosts.get(msg.member_id)
        if host is None:
            return
        host.last_pong = time.monotonic()
        if host.lost:
            log.info("worker host %s answers again; giving it workers", host.host)
            host.lost = False
            self._fit_host(host)

    def _check_hosts(self) -> None:
        timeout = self._start.config.workers.host_timeout_s  # type: ignore[union-attr]
        now = time.monotonic()
        for host in self._hosts.values():
            self.send(host.agent, Ping(self._ticks))
            if not host.lost and now - host.last_pong > timeout:
                self._host_lost(host.member, f"no heartbeat for {now - host.last_pong:.0f}s")

    def _host_lost(self, member: str, why: str) -> None:
        host = self._hosts.get(member)
        lost = [w for w in self._workers.values() if w.member == member]
        for worker in [w for w in self._retiring if w.member == member]:
            self._retiring.remove(worker)  # retiring there: gone with the host
            self.send(self._job_manager, WorkerLost(worker.worker_id))
        if host is not None:
            host.lost = True
        for worker in lost:
            del self._workers[worker.worker_id]
            self.send(worker.address, ActorExitRequest())  # reaches it if it is alive
            self.send(self._job_manager, WorkerLost(worker.worker_id))
        if lost or host is not None:
            log.warning(
                "worker host %s lost (%s): %d worker(s) gone, their jobs go back",
                host.host if host else member,
                why,
                len(lost),
            )
        self._push_status()

    # --- jobs and leases --------------------------------------------------------------------

    def receiveMsg_JobsAvailable(self, msg: JobsAvailable, sender: Any) -> None:
        for worker in self._workers.values():
            self.send(worker.address, JobAvailable())

    def receiveMsg_DiscardAttempt(self, msg: DiscardAttempt, sender: Any) -> None:
        """The failed job's last worker is gone: a worker of this host removes
        its output (workers of one host share its output directory)."""
        local = next((w for w in self._workers.values() if not w.member), None)
        target = local or next(iter(self._workers.values()), None)
        if target is not None:
            self.send(target.address, msg)

    def receiveMsg_JobManagerMoved(self, msg: JobManagerMoved, sender: Any) -> None:
        self._job_manager = msg.job_manager
        for worker in self._workers.values():
            self.send(worker.address, msg)

    def receiveMsg_ReplaceWorker(self, msg: ReplaceWorker, sender: Any) -> None:
        """The worker overran its lease: a new one takes its place at once. The
        old one is asked to exit; if it was only stopped (SIGSTOP, a long GC),
        it finishes its job first and the JobManager rejects that stale
        completion. Still alive after ``stop_grace_s``, it is killed."""
        worker = self._workers.get(msg.worker_id)
        if worker is None or self._start is None:
            return
        self._retire(worker, ActorExitRequest())
        self._replaced += 1
        metrics.worker_replaced()
        self._spawn(worker.member, worker.host)
        grace = self._start.config.workers.stop_grace_s
        self.wakeupAfter(timedelta(seconds=grace), payload=("reap", worker.worker_id))

    def _retire(self, worker: _Worker, request: Any) -> None:
        self._workers.pop(worker.worker_id, None)
        self._retiring.append(worker)
        self.send(worker.address, request)

    def _reap(self, worker_id: str) -> None:
        for worker in list(self._retiring):
            # Only a process on this host can be killed from here; a remote one
            # exits when its lease lapses or its host leaves.
            if worker.worker_id == worker_id and not worker.member and worker.pid:
                grace = self._start.config.workers.stop_grace_s  # type: ignore[union-attr]
                log.warning(
                    "%s did not exit %.0fs after being replaced; killing pid %d",
                    worker_id,
                    grace,
                    worker.pid,
                )
                with contextlib.suppress(ProcessLookupError):
                    os.kill(worker.pid, signal.SIGKILL)

    # --- periodic ---------------------------------------------------------------------------

    def receiveMsg_WakeupMessage(self, msg: WakeupMessage, sender: Any) -> None:
        kind = msg.payload[0] if isinstance(msg.payload, tuple) else msg.payload
        if kind == "reap":
            self._reap(msg.payload[1])
            return
        if kind == "spawn":
            host = self._hosts.get(msg.payload[1])
            if host is not None and not host.lost and not host.draining:
                self._fit_host(host)
            return
        if kind == "agent":
            host = self._hosts.get(msg.payload[1])
            if host is not None and not host.draining:
                host.agent = self.createActor(
                    HostAgent, targetActorRequirements=placed_on(host.member)
                )
                self.send(host.agent, HostAgentStart(host.member, host.host, LEADER_LEASE_S))
            return
        if msg.payload != TICK:
            return
        if self._parent.orphaned():
            log.warning("the Supervisor is gone; stopping the worker pool")
            self.send(self.myAddress, ActorExitRequest())
            return
        self._ticks += 1
        self._check_hosts()
        if self._ticks % LEASE_EVERY_TICKS == 0:
            lease = LeaderLease(LEADER_LEASE_S)
            for worker in self._workers.values():
                self.send(worker.address, lease)
        self._push_status()
        self.wakeupAfter(timedelta(seconds=TICK_S), payload=TICK)

    # --- exits ------------------------------------------------------------------------------

    def receiveMsg_ActorExitRequest(self, msg: ActorExitRequest, sender: Any) -> None:
        # Thespian stops our workers after this: do not replace them.
        self._stopping = True
        for host in self._hosts.values():
            self.send(host.agent, ActorExitRequest())

    def receiveMsg_ChildActorExited(self, msg: ChildActorExited, sender: Any) -> None:
        if self._stopping:
            return
        retired = next((w for w in self._retiring if w.address == msg.childAddress), None)
        if retired is not None:
            self._retiring.remove(retired)
            # A replaced or retired worker finally left. It may have claimed one
            # more job on its way out: the JobManager puts it back (or ignores this).
            self.send(self._job_manager, WorkerLost(retired.worker_id))
            if (host := self._hosts.get(retired.member)) is not None:
                self._finish_drain_if_done(host)
            return
        for host in self._hosts.values():
            if host.agent == msg.childAddress and not host.draining:
                # An agent that died (or could not be placed) is placed again after a
                # pause while its host is known; until it answers, the host is silent.
                self.wakeupAfter(timedelta(seconds=REPLACE_DELAY_S), payload=("agent", host.member))
                return
        worker = next((w for w in self._workers.values() if w.address == msg.childAddress), None)
        if worker is None:
            return
        del self._workers[worker.worker_id]
        self._replaced += 1
        metrics.worker_replaced()
        log.warning(
            "%s on %s exited; its job goes back and a new worker replaces it",
            worker.worker_id,
            worker.host,
        )
        self.send(self._job_manager, WorkerLost(worker.worker_id))
        if not worker.member:
            self._spawn("", worker.host)
        else:
            # Placing on a member that just vanished fails at once: pause first.
            self.wakeupAfter(
                timedelta(seconds=REPLACE_DELAY_S), payload=("spawn", worker.member, worker.host)
            )
        self._push_status()

    # --- inspection -------------------------------------------------------------------------

    def _push_status(self) -> None:
        by_host: dict[str, int] = {}
        for worker in self._workers.values():
            by_host[worker.host] = by_host.get(worker.host, 0) + 1
        self._worker_gauge.update(by_host)
        metrics.process_memory("worker_master")
        now = time.monotonic()
        hosts = {
            h.member: {
                "host": h.host,
                "slots": h.slots,
                "lost": h.lost,
                "last_heartbeat_s": round(now - h.last_pong, 1),
            }
            for h in self._hosts.values()
        }
        self.send(
            self._supervisor,
            ComponentStatus(
                "worker_master",
                {
                    "workers": len(self._workers),
                    "workers_by_host": by_host,
                    "workers_replaced": self._replaced,
                    "worker_hosts": hosts,
                    "refused_hosts": dict(self._refused),
                },
            ),
        )

    def receiveUnrecognizedMessage(self, msg: Any, sender: Any) -> None:
        log.debug("worker master ignores %s", type(msg).__name__)
