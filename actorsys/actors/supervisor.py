"""Supervisor: the top of the actor tree.

Thespian restarts nothing by itself, so the Supervisor creates the
JobManager, WorkerMaster and KafkaConsumerActor, recreates any that exits
(with backoff; the JobManager reloads its state from the store) and rewires
the others to it. It also runs the drain at shutdown and answers status
requests from the latest snapshot each component pushes.
"""

from __future__ import annotations

import logging
import time
from datetime import timedelta
from typing import Any

from thespian.actors import (
    ActorExitRequest,
    ActorSystemConventionUpdate,
    ChildActorExited,
    WakeupMessage,
)

from actorsys import __version__, metrics
from actorsys.actors.base import ActorsysActor
from actorsys.actors.committer import Committer
from actorsys.actors.job_manager import JobManager
from actorsys.actors.kafka_consumer import KafkaConsumerActor
from actorsys.actors.lifeline import end_actor_system_if_orphaned
from actorsys.actors.worker_master import LEADER_LEASE_S, WorkerMaster
from actorsys.convention import (
    CONSUMER,
    MEMBER_ID,
    VERSION,
    default_host_name,
    member_id,
    placed_on,
)
from actorsys.messages import (
    AdmitHeldBatches,
    CommitterMoved,
    CommitterStart,
    ComponentReady,
    ComponentStatus,
    ConsumingStopped,
    Drain,
    HostDraining,
    JobManagerMoved,
    JobManagerStart,
    JobsQuiesced,
    KafkaConsumerStart,
    LeaderLease,
    QuiesceJobs,
    StartFailed,
    StatusReport,
    StatusRequest,
    StopConsuming,
    SupervisorReady,
    SupervisorStart,
    WorkerMasterMoved,
    WorkerMasterStart,
)
from actorsys.roles import Role
from actorsys.status import ComponentSnapshot, SupervisorStatus
from actorsys.supervision import DrainPlan, GiveUp, RestartBook
from actorsys.timers import DrainDeadline, ReplaceConsumer, RestartRole, WatchDaemon

log = logging.getLogger("actorsys.supervisor")

JOB_MANAGER = Role.JOB_MANAGER
WORKER_MASTER = Role.WORKER_MASTER
KAFKA_CONSUMER = Role.KAFKA_CONSUMER
# One Committer (format "delta"): the one writer of the three tables.
TABLES = ("raw", "agg", "agg_hourly")
COMMITTER = Role.COMMITTER
ROLES = {
    JOB_MANAGER: JobManager,
    WORKER_MASTER: WorkerMaster,
    KAFKA_CONSUMER: KafkaConsumerActor,
    COMMITTER: Committer,
}
WATCHDOG_S = 2.0


class Supervisor(ActorsysActor):
    ROLE = Role.SUPERVISOR

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._start: SupervisorStart | None = None
        self._starter: Any = None
        self._children: dict[str, Any] = {}
        self._ready: set[str] = set()
        self._restarts = RestartBook()
        self._status: dict[str, ComponentSnapshot] = {}
        self._drain: DrainPlan | None = None
        # Kafka consumers placed on member systems (second consumer daemons), by member.
        self._remote_consumers: dict[str, Any] = {}
        # Consumers of draining members, as (address, member id) pairs.
        self._leaving: list[tuple[Any, str]] = []
        self._local_member = ""
        self._roles: set[str] = {JOB_MANAGER, WORKER_MASTER, KAFKA_CONSUMER}

    # --- start-up -------------------------------------------------------------------------

    def receiveMsg_SupervisorStart(self, msg: SupervisorStart, sender: Any) -> None:
        self._start = msg
        self._starter = sender
        daemon = msg.config.daemon
        self._local_member = member_id(daemon.host_name or default_host_name(), daemon.admin_port)
        self.wakeupAfter(timedelta(seconds=WATCHDOG_S), payload=WatchDaemon())
        # The JobManager and the WorkerMaster need each other's address: create both,
        # then start them. The Kafka consumer starts once the JobManager is ready.
        self._roles = {JOB_MANAGER, WORKER_MASTER, KAFKA_CONSUMER}
        if msg.config.output.format == "delta":
            # Created (and told where the table is) before the JobManager, which
            # hands it every written attempt.
            self._roles.add(COMMITTER)
            self._children[COMMITTER] = self.createActor(Committer)
            self._start_role(COMMITTER)
        self._children[JOB_MANAGER] = self.createActor(JobManager)
        self._children[WORKER_MASTER] = self.createActor(WorkerMaster)
        self._start_role(JOB_MANAGER)
        self._start_role(WORKER_MASTER)

    def _start_role(self, role: str) -> None:
        assert self._start is not None
        cfg, servers = self._start.config, self._start.bootstrap_servers
        address = self._children[role]
        if role == JOB_MANAGER:
            self.send(
                address,
                JobManagerStart(
                    cfg,
                    servers,
                    self._children[WORKER_MASTER],
                    tuple(
                        (table, self._children[COMMITTER])
                        for table in TABLES
                        if COMMITTER in self._children
                    ),
                ),
            )
        elif role == COMMITTER:
            self.send(address, CommitterStart(cfg, TABLES))
        elif role == WORKER_MASTER:
            self.send(address, WorkerMasterStart(cfg, servers, self._children[JOB_MANAGER]))
        else:
            self.send(address, KafkaConsumerStart(cfg, servers, self._children[JOB_MANAGER]))

    def receiveMsg_ComponentReady(self, msg: ComponentReady, sender: Any) -> None:
        self._ready.add(msg.role)
        self._restarts.came_up(msg.role)
        if msg.role == JOB_MANAGER and KAFKA_CONSUMER not in self._children:
            self._children[KAFKA_CONSUMER] = self.createActor(KafkaConsumerActor)
            self._start_role(KAFKA_CONSUMER)
            # Members that offer to consume get a Kafka consumer of their own.
            self.notifyOnSystemRegistrationChanges(True)
        if self._starter is not None and self._ready >= self._roles:
            self.send(self._starter, SupervisorReady())
            self._starter = None

    def receiveMsg_StartFailed(self, msg: StartFailed, sender: Any) -> None:
        log.error("%s could not start: %s", msg.role, msg.reason)
        if self._starter is not None:
            self.send(self._starter, msg)
            self._starter = None
            return
        # A role recreated after a crash that cannot start (its job store is
        # unreachable, say) is a failure too: stop it, so its exit takes the
        # restart path with backoff, and counts towards giving up.
        self._restarts.failed_to_start(msg.role, msg.reason)
        if msg.role in self._children and self._children[msg.role] == sender:
            self.send(sender, ActorExitRequest())

    # --- second consumer daemons on member systems ------------------------------------------

    def receiveMsg_ActorSystemConventionUpdate(
        self, msg: ActorSystemConventionUpdate, sender: Any
    ) -> None:
        caps = msg.remoteCapabilities or {}
        member = caps.get(MEMBER_ID)
        if not member or member == self._local_member or self._drain is not None:
            return
        wanted = bool(msg.remoteAdded and caps.get(CONSUMER) and caps.get(VERSION) == __version__)
        current = self._remote_consumers.get(member)
        if wanted and current is None:
            log.info("member %s consumes too: placing a Kafka consumer there", member)
            self._place_consumer(member)
        elif not wanted and current is not None:
            # It left, or is draining (consume capability withdrawn): stop it.
            del self._remote_consumers[member]
            self.send(current, StopConsuming(deadline_s=10.0))
            self.send(current, ActorExitRequest())

    def _place_consumer(self, member: str) -> None:
        assert self._start is not None
        address = self.createActor(KafkaConsumerActor, targetActorRequirements=placed_on(member))
        self._remote_consumers[member] = address
        self.send(
            address,
            KafkaConsumerStart(
                self._start.config,
                self._start.bootstrap_servers,
                self._children.get(JOB_MANAGER),
                member,
            ),
        )

    def receiveMsg_HostDraining(self, msg: HostDraining, sender: Any) -> None:
        """A member leaves: its consumer commits what is ACKed, then exits."""
        consumer = self._remote_consumers.pop(msg.member_id, None)
        if consumer is not None:
            self._leaving.append((consumer, msg.member_id))
            self.send(consumer, StopConsuming(deadline_s=10.0))

    def _take_leaving(self, address: Any) -> str | None:
        for entry in self._leaving:
            if entry[0] == address:
                self._leaving.remove(entry)
                return entry[1]
        return None

    def _lease_members(self) -> None:
        lease = LeaderLease(LEADER_LEASE_S)
        for address in self._remote_consumers.values():
            self.send(address, lease)

    # --- restarts -------------------------------------------------------------------------

    def receiveMsg_ChildActorExited(self, msg: ChildActorExited, sender: Any) -> None:
        if self._take_leaving(msg.childAddress) is not None:
            return
        member = next((m for m, a in self._remote_consumers.items() if a == msg.childAddress), None)
        if member is not None:
            self._remote_consumer_exited(member)
            return
        role = next((r for r, a in self._children.items() if a == msg.childAddress), None)
        if role is None or self._drain is not None:
            return  # a duplicate notice, or an exit we asked for
        self._children.pop(role)
        self._ready.discard(role)
        decision = self._restarts.exited(role)
        if isinstance(decision, GiveUp):
            log.error("%s cannot be kept alive (%s); the daemon must stop", role, decision.why)
            return
        metrics.actor_restarted(role)
        log.error(
            "%s exited; recreating it in %.1fs (restart #%d)", role, decision.delay_s,
            decision.number,
        )  # fmt: skip
        self.wakeupAfter(timedelta(seconds=decision.delay_s), payload=RestartRole(Role(role)))

    def _remote_consumer_exited(self, member: str) -> None:
        del self._remote_consumers[member]
        if self._drain is not None:
            return
        delay = self._restarts.replaced(f"{KAFKA_CONSUMER}@{member}")
        log.error("the Kafka consumer on %s exited; placing a new one in %.1fs", member, delay)
        self.wakeupAfter(timedelta(seconds=delay), payload=ReplaceConsumer(member))

    def receiveMsg_WakeupMessage(self, msg: WakeupMessage, sender: Any) -> None:
        match msg.payload:
            case RestartRole(role):
                self._recreate(role)
            case ReplaceConsumer(member):
                if self._drain is None and member not in self._remote_consumers:
                    self._place_consumer(member)
            case DrainDeadline():
                if self._drain is not None and self._drain.consumers_overdue():
                    self._quiesce_jobs()
            case WatchDaemon():
                self._watch_daemon()
                self._lease_members()

    def _watch_daemon(self) -> None:
        assert self._start is not None
        if end_actor_system_if_orphaned(self._start.daemon_pid, self._start.daemon_pgid):
            return
        metrics.process_memory(self.ROLE)
        self.wakeupAfter(timedelta(seconds=WATCHDOG_S), payload=WatchDaemon())

    def _recreate(self, role: Role) -> None:
        if self._start is None or role in self._children or self._drain is not None:
            return
        address = self._children[role] = self.createActor(ROLES[role])
        self._start_role(role)
        if role == JOB_MANAGER:
            for other in (WORKER_MASTER, KAFKA_CONSUMER):
                if other in self._children:
                    self.send(self._children[other], JobManagerMoved(address))
            for consumer in self._remote_consumers.values():
                self.send(consumer, JobManagerMoved(address))
        elif role == WORKER_MASTER and JOB_MANAGER in self._children:
            self.send(self._children[JOB_MANAGER], WorkerMasterMoved(address))
        elif role == COMMITTER and JOB_MANAGER in self._children:
            for table in TABLES:
                self.send(self._children[JOB_MANAGER], CommitterMoved(address, table))

    # --- draining -------------------------------------------------------------------------

    def receiveMsg_Drain(self, msg: Drain, sender: Any) -> None:
        consumers = [
            a
            for a in (self._children.get(KAFKA_CONSUMER), *self._remote_consumers.values())
            if a is not None
        ]
        self._drain = DrainPlan.start(sender, msg.grace_s, consumers, time.monotonic())
        if self._drain.quiesce_now:
            self._quiesce_jobs()
            return
        if (manager := self._children.get(JOB_MANAGER)) is not None:
            self.send(manager, AdmitHeldBatches())
        # Every consumer — this system's and the members' — flushes, waits for its
        # ACKs and commits, while the JobManager is still here to ACK.
        stop_s = DrainPlan.stop_deadline_s(msg.grace_s)
        for consumer in consumers:
            self.send(consumer, StopConsuming(deadline_s=stop_s))
        self.wakeupAfter(timedelta(seconds=stop_s + 2), payload=DrainDeadline())

    def receiveMsg_ConsumingStopped(self, msg: ConsumingStopped, sender: Any) -> None:
        if (member := self._take_leaving(sender)) is not None:
            log.info("the consumer on %s committed and left", member)
            self.send(sender, ActorExitRequest())
            return
        if self._drain is None or sender not in self._drain.consumers:
            return
        log.info(
            "consuming stopped (%s); committed %s",
            "clean" if msg.clean else "deadline reached",
            ", ".join(f"{t}[{p}]={o}" for t, p, o in msg.committed) or "nothing new",
        )
        if self._drain.stopped(sender, msg.clean):
            self._quiesce_jobs()

    def _quiesce_jobs(self) -> None:
        assert self._drain is not None
        manager = self._children.get(JOB_MANAGER)
        remaining = self._drain.remaining_s(time.monotonic())
        if manager is None:
            self._finish_drain(JobsQuiesced(still_running=0))
            return
        self.send(manager, QuiesceJobs(deadline_s=remaining))

    def receiveMsg_JobsQuiesced(self, msg: JobsQuiesced, sender: Any) -> None:
        self._finish_drain(msg)

    def _finish_drain(self, msg: JobsQuiesced) -> None:
        if self._drain is not None and (answer := self._drain.finished(msg.still_running)):
            self.send(*answer)

    # --- inspection -----------------------------------------------------------------------

    def receiveMsg_ComponentStatus(self, msg: ComponentStatus, sender: Any) -> None:
        self._status[msg.role] = msg.data

    def receiveMsg_StatusRequest(self, msg: StatusRequest, sender: Any) -> None:
        components = dict(self._status)
        components[self.ROLE] = SupervisorStatus(
            ready=tuple(sorted(self._ready)),
            restarts=dict(self._restarts.restarts),
            lost_roles=dict(self._restarts.lost),
            draining=self._drain is not None,
        )
        self.send(sender, StatusReport(components))
