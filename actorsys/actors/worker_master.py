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

Which workers exist where, and what to do about joins, drains, silences and
deaths, is decided by a plain ``WorkerPool``; this actor performs its
decisions (creates actors, sends, schedules wake-ups).
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import time
from datetime import timedelta
from typing import Any

from thespian.actors import (
    ActorExitRequest,
    ActorSystemConventionUpdate,
    ChildActorExited,
    WakeupMessage,
)

from actorsys import metrics
from actorsys.actors.base import ActorsysActor
from actorsys.actors.host_agent import HostAgent
from actorsys.actors.worker import Worker
from actorsys.convention import default_host_name, member_id, placed_on
from actorsys.messages import (
    ComponentReady,
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
    WorkerHello,
    WorkerLost,
    WorkerMasterStart,
    WorkerStart,
)
from actorsys.roles import Role
from actorsys.status import WorkerMasterStatus
from actorsys.timers import PlaceAgentAgain, ReapWorker, RefillHost, Tick
from actorsys.worker_pool import (
    Decision,
    Later,
    Lost,
    PlaceAgent,
    Replaced,
    Send,
    Spawn,
    WorkerPool,
)

log = logging.getLogger("actorsys.worker_master")

TICK_S = 1.0
LEASE_EVERY_TICKS = 5
# Placed actors stop themselves when the leader is silent this long.
LEADER_LEASE_S = 30.0


class WorkerMaster(ActorsysActor):
    ROLE = Role.WORKER_MASTER

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._start: WorkerMasterStart | None = None
        self._job_manager: Any = None
        self._supervisor: Any = None
        self._local_host = default_host_name()
        self._pool = WorkerPool()
        self._ticks = 0
        self._stopping = False
        self._worker_gauge = metrics.WorkerGauge()

    # --- start-up ---------------------------------------------------------------------------

    def receiveMsg_WorkerMasterStart(self, msg: WorkerMasterStart, sender: Any) -> None:
        self._start = msg
        self._job_manager = msg.job_manager
        self._supervisor = sender
        daemon = msg.config.daemon
        self._local_host = daemon.host_name or default_host_name()
        self._pool.local_member = member_id(self._local_host, daemon.admin_port)
        if msg.config.workers.on_leader:
            for _ in range(msg.config.workers.effective_count):
                self._spawn("", self._local_host)
        # Worker hosts that join (or leave) the convention reach us from now on.
        self.notifyOnSystemRegistrationChanges(True)
        self.send(sender, ComponentReady(self.ROLE))
        self.wakeupAfter(timedelta(seconds=TICK_S), payload=Tick())

    def _spawn(self, member: str, host: str) -> None:
        assert self._start is not None
        requirements = placed_on(member) if member else None
        address = self.createActor(Worker, targetActorRequirements=requirements)
        worker = self._pool.add(address, member, host)
        self.send(
            address,
            WorkerStart(
                self._start.config,
                self._start.bootstrap_servers,
                self._job_manager,
                self.myAddress,
                worker.worker_id,
                host,
            ),
        )

    def _perform(self, decisions: list[Decision]) -> None:
        for decision in decisions:
            if isinstance(decision, Spawn):
                self._spawn(decision.member, decision.host)
            elif isinstance(decision, PlaceAgent):
                agent = self.createActor(
                    HostAgent, targetActorRequirements=placed_on(decision.member)
                )
                self._pool.agent_placed(decision.member, agent)
                self.send(agent, HostAgentStart(decision.member, decision.host, LEADER_LEASE_S))
            elif isinstance(decision, Send):
                self.send(decision.to, decision.message)
            elif isinstance(decision, Lost):
                self.send(self._job_manager, WorkerLost(decision.worker_id))
            elif isinstance(decision, Replaced):
                metrics.worker_replaced()
            elif isinstance(decision, Later):
                self.wakeupAfter(timedelta(seconds=decision.delay_s), payload=decision.payload)

    def receiveMsg_WorkerHello(self, msg: WorkerHello, sender: Any) -> None:
        self._pool.hello(msg.worker_id, msg.pid)
        self._push_status()

    # --- worker hosts -----------------------------------------------------------------------

    def receiveMsg_ActorSystemConventionUpdate(
        self, msg: ActorSystemConventionUpdate, sender: Any
    ) -> None:
        caps = msg.remoteCapabilities or {}
        now = time.monotonic()
        self._perform(self._pool.convention_update(caps, msg.remoteAdded, now))
        if not msg.remoteAdded:
            self._push_status()

    def receiveMsg_HostDraining(self, msg: HostDraining, sender: Any) -> None:
        """The host's `actorsys join` got SIGTERM: its workers finish their current
        job and leave; its consumer commits and leaves (the Supervisor's part)."""
        decisions = self._pool.drain(msg.member_id)
        if decisions is None:
            return
        self._perform(decisions)
        self.send(self._supervisor, msg)

    def receiveMsg_Pong(self, msg: Pong, sender: Any) -> None:
        self._perform(self._pool.pong(msg.member_id, time.monotonic()))

    # --- jobs and leases --------------------------------------------------------------------

    def receiveMsg_JobsAvailable(self, msg: JobsAvailable, sender: Any) -> None:
        for worker in self._pool.workers.values():
            self.send(worker.address, JobAvailable())

    def receiveMsg_DiscardAttempt(self, msg: DiscardAttempt, sender: Any) -> None:
        """The failed job's last worker is gone: a worker of this host removes
        its output (workers of one host share its output directory)."""
        workers = self._pool.workers.values()
        local = next((w for w in workers if not w.member), None)
        target = local or next(iter(workers), None)
        if target is not None:
            self.send(target.address, msg)

    def receiveMsg_JobManagerMoved(self, msg: JobManagerMoved, sender: Any) -> None:
        self._job_manager = msg.job_manager
        for worker in self._pool.workers.values():
            self.send(worker.address, msg)

    def receiveMsg_ReplaceWorker(self, msg: ReplaceWorker, sender: Any) -> None:
        """The worker overran its lease: a new one takes its place at once. The
        old one is asked to exit; if it was only stopped (SIGSTOP, a long GC),
        it finishes its job first and the JobManager rejects that stale
        completion. Still alive after ``stop_grace_s``, it is killed."""
        if self._start is None:
            return
        self._perform(self._pool.replace(msg.worker_id, self._start.config.workers.stop_grace_s))

    def _reap(self, worker_id: str) -> None:
        for worker in self._pool.to_kill(worker_id):
            assert worker.pid is not None
            assert self._start is not None  # set at start
            grace = self._start.config.workers.stop_grace_s
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
        match msg.payload:
            case ReapWorker(worker_id):
                self._reap(worker_id)
            case RefillHost(member):
                self._perform(self._pool.spawn_due(member))
            case PlaceAgentAgain(member):
                self._perform(self._pool.agent_due(member))
            case Tick():
                self._tick()

    def _tick(self) -> None:
        if self.exit_if_orphaned("stopping the worker pool"):
            return
        self._ticks += 1
        assert self._start is not None  # set at start
        timeout = self._start.config.workers.host_timeout_s
        self._perform(self._pool.check_hosts(Ping(self._ticks), time.monotonic(), timeout))
        if self._ticks % LEASE_EVERY_TICKS == 0:
            lease = LeaderLease(LEADER_LEASE_S)
            for worker in self._pool.workers.values():
                self.send(worker.address, lease)
        self._push_status()
        self.wakeupAfter(timedelta(seconds=TICK_S), payload=Tick())

    # --- exits ------------------------------------------------------------------------------

    def receiveMsg_ActorExitRequest(self, msg: ActorExitRequest, sender: Any) -> None:
        # Thespian stops our workers after this: do not replace them.
        self._stopping = True
        for host in self._pool.hosts.values():
            self.send(host.agent, ActorExitRequest())

    def receiveMsg_ChildActorExited(self, msg: ChildActorExited, sender: Any) -> None:
        if self._stopping:
            return
        decisions = self._pool.child_exited(msg.childAddress)
        self._perform(decisions)
        if any(isinstance(d, Replaced) for d in decisions):
            self._push_status()

    # --- inspection -------------------------------------------------------------------------

    def _push_status(self) -> None:
        by_host = self._pool.by_host()
        self._worker_gauge.update(by_host)
        self.push_status(
            self._supervisor,
            WorkerMasterStatus(
                workers=len(self._pool.workers),
                workers_by_host=by_host,
                workers_replaced=self._pool.replaced,
                worker_hosts=self._pool.hosts_status(time.monotonic()),
                refused_hosts=dict(self._pool.refused),
            ),
        )
