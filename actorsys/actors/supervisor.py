"""Supervisor: the top of the actor tree.

Thespian restarts nothing by itself, so the Supervisor creates the
JobManager, WorkerMaster and KafkaConsumerActor, recreates any that exits
(with backoff; the JobManager reloads its state from the store) and rewires
the others to it. It also runs the drain at shutdown and answers status
requests from the latest snapshot each component pushes.
"""

from __future__ import annotations

import logging
import os
import signal
import time
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from thespian.actors import ActorTypeDispatcher, ChildActorExited, WakeupMessage

from actorsys import metrics
from actorsys.actors.job_manager import JobManager
from actorsys.actors.kafka_consumer import KafkaConsumerActor
from actorsys.actors.worker_master import WorkerMaster
from actorsys.messages import (
    ComponentReady,
    ComponentStatus,
    ConsumingStopped,
    Drain,
    Drained,
    JobManagerMoved,
    JobManagerStart,
    JobsQuiesced,
    KafkaConsumerStart,
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

log = logging.getLogger("actorsys.supervisor")

JOB_MANAGER = "job_manager"
WORKER_MASTER = "worker_master"
KAFKA_CONSUMER = "kafka_consumer"
ROLES = {JOB_MANAGER: JobManager, WORKER_MASTER: WorkerMaster, KAFKA_CONSUMER: KafkaConsumerActor}
RESTART_BACKOFF_S = (0.5, 1, 2, 5, 10, 30)
WATCHDOG = "watchdog"
WATCHDOG_S = 2.0


@dataclass
class _DrainState:
    reply_to: Any
    deadline: float
    consuming_clean: bool = False


class Supervisor(ActorTypeDispatcher):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._start: SupervisorStart | None = None
        self._starter: Any = None
        self._children: dict[str, Any] = {}
        self._ready: set[str] = set()
        self._restarts: dict[str, int] = {}
        self._status: dict[str, dict[str, Any]] = {}
        self._drain: _DrainState | None = None

    # --- start-up -------------------------------------------------------------------------

    def receiveMsg_SupervisorStart(self, msg: SupervisorStart, sender: Any) -> None:
        self._start = msg
        self._starter = sender
        self.wakeupAfter(timedelta(seconds=WATCHDOG_S), payload=WATCHDOG)
        # The JobManager and the WorkerMaster need each other's address: create both,
        # then start them. The Kafka consumer starts once the JobManager is ready.
        self._children[JOB_MANAGER] = self.createActor(JobManager)
        self._children[WORKER_MASTER] = self.createActor(WorkerMaster)
        self._start_role(JOB_MANAGER)
        self._start_role(WORKER_MASTER)

    def _start_role(self, role: str) -> None:
        assert self._start is not None
        cfg, servers = self._start.config, self._start.bootstrap_servers
        address = self._children[role]
        if role == JOB_MANAGER:
            self.send(address, JobManagerStart(cfg, servers, self._children[WORKER_MASTER]))
        elif role == WORKER_MASTER:
            self.send(address, WorkerMasterStart(cfg, servers, self._children[JOB_MANAGER]))
        else:
            self.send(address, KafkaConsumerStart(cfg, servers, self._children[JOB_MANAGER]))

    def receiveMsg_ComponentReady(self, msg: ComponentReady, sender: Any) -> None:
        self._ready.add(msg.role)
        if msg.role == JOB_MANAGER and KAFKA_CONSUMER not in self._children:
            self._children[KAFKA_CONSUMER] = self.createActor(KafkaConsumerActor)
            self._start_role(KAFKA_CONSUMER)
        if self._starter is not None and self._ready >= set(ROLES):
            self.send(self._starter, SupervisorReady())
            self._starter = None

    def receiveMsg_StartFailed(self, msg: StartFailed, sender: Any) -> None:
        log.error("%s could not start: %s", msg.role, msg.reason)
        if self._starter is not None:
            self.send(self._starter, msg)
            self._starter = None

    # --- restarts -------------------------------------------------------------------------

    def receiveMsg_ChildActorExited(self, msg: ChildActorExited, sender: Any) -> None:
        role = next((r for r, a in self._children.items() if a == msg.childAddress), None)
        if role is None or self._drain is not None:
            return  # a duplicate notice, or an exit we asked for
        self._children.pop(role)
        self._ready.discard(role)
        count = self._restarts.get(role, 0)
        self._restarts[role] = count + 1
        metrics.actor_restarted(role)
        delay = RESTART_BACKOFF_S[min(count, len(RESTART_BACKOFF_S) - 1)]
        log.error("%s exited; recreating it in %.1fs (restart #%d)", role, delay, count + 1)
        self.wakeupAfter(timedelta(seconds=delay), payload=("restart", role))

    def receiveMsg_WakeupMessage(self, msg: WakeupMessage, sender: Any) -> None:
        if isinstance(msg.payload, tuple) and msg.payload[0] == "restart":
            self._recreate(msg.payload[1])
        elif msg.payload == WATCHDOG:
            self._watch_daemon()

    def _watch_daemon(self) -> None:
        """An actor system whose daemon died (kill -9) must not run on alone:
        nobody would drain it or stop it, and a restarted daemon would race it.
        Thespian gives the actor system a process group of its own, so ending
        that group ends exactly this actor system."""
        assert self._start is not None
        try:
            os.kill(self._start.daemon_pid, 0)
        except ProcessLookupError:
            group = os.getpgid(0)
            if group != self._start.daemon_pgid:
                log.error(
                    "the daemon (pid %d) is gone; ending its actor system", self._start.daemon_pid
                )
                os.killpg(group, signal.SIGKILL)
        metrics.process_memory("supervisor")
        self.wakeupAfter(timedelta(seconds=WATCHDOG_S), payload=WATCHDOG)

    def _recreate(self, role: str) -> None:
        if self._start is None or role in self._children or self._drain is not None:
            return
        address = self._children[role] = self.createActor(ROLES[role])
        self._start_role(role)
        if role == JOB_MANAGER:
            for other in (WORKER_MASTER, KAFKA_CONSUMER):
                if other in self._children:
                    self.send(self._children[other], JobManagerMoved(address))
        elif role == WORKER_MASTER and JOB_MANAGER in self._children:
            self.send(self._children[JOB_MANAGER], WorkerMasterMoved(address))

    # --- draining -------------------------------------------------------------------------

    def receiveMsg_Drain(self, msg: Drain, sender: Any) -> None:
        self._drain = _DrainState(sender, time.monotonic() + msg.grace_s)
        consumer = self._children.get(KAFKA_CONSUMER)
        if consumer is None:
            self._quiesce_jobs()
            return
        self.send(consumer, StopConsuming(deadline_s=msg.grace_s * 0.5))

    def receiveMsg_ConsumingStopped(self, msg: ConsumingStopped, sender: Any) -> None:
        if self._drain is None:
            return
        self._drain.consuming_clean = msg.clean
        log.info(
            "consuming stopped (%s); committed %s",
            "clean" if msg.clean else "deadline reached",
            ", ".join(f"{t}[{p}]={o}" for t, p, o in msg.committed) or "nothing new",
        )
        self._quiesce_jobs()

    def _quiesce_jobs(self) -> None:
        assert self._drain is not None
        manager = self._children.get(JOB_MANAGER)
        remaining = max(0.0, self._drain.deadline - time.monotonic())
        if manager is None:
            self._finish_drain(JobsQuiesced(still_running=0))
            return
        self.send(manager, QuiesceJobs(deadline_s=remaining))

    def receiveMsg_JobsQuiesced(self, msg: JobsQuiesced, sender: Any) -> None:
        self._finish_drain(msg)

    def _finish_drain(self, msg: JobsQuiesced) -> None:
        if self._drain is None or self._drain.reply_to is None:
            return
        clean = self._drain.consuming_clean and msg.still_running == 0
        detail = (
            "all open batches ACKed and committed; no job running"
            if clean
            else f"grace period ended: {msg.still_running} job(s) still running "
            "(they run again after restart)"
        )
        self.send(self._drain.reply_to, Drained(clean=clean, detail=detail))
        self._drain.reply_to = None

    # --- inspection -----------------------------------------------------------------------

    def receiveMsg_ComponentStatus(self, msg: ComponentStatus, sender: Any) -> None:
        self._status[msg.role] = msg.data

    def receiveMsg_StatusRequest(self, msg: StatusRequest, sender: Any) -> None:
        components = dict(self._status)
        components["supervisor"] = {
            "ready": sorted(self._ready),
            "restarts": dict(self._restarts),
            "draining": self._drain is not None,
        }
        self.send(sender, StatusReport(components))

    def receiveUnrecognizedMessage(self, msg: Any, sender: Any) -> None:
        log.debug("supervisor ignores %s", type(msg).__name__)
