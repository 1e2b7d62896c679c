"""WorkerMaster: keeps the worker pool.

Creates the workers, tells idle ones that jobs are available (they pull from
the JobManager, so a slow worker never hoards jobs), replaces workers that
die or overrun their lease, and tells the JobManager to put a lost worker's
job back.
"""

from __future__ import annotations

import contextlib
import itertools
import logging
import os
import signal
from datetime import timedelta
from typing import Any

from thespian.actors import ActorExitRequest, ActorTypeDispatcher, ChildActorExited, WakeupMessage

from actorsys import metrics
from actorsys.actors.lifeline import ParentWatch
from actorsys.actors.worker import Worker
from actorsys.messages import (
    ComponentReady,
    ComponentStatus,
    JobAvailable,
    JobManagerMoved,
    JobsAvailable,
    ReplaceWorker,
    WorkerHello,
    WorkerLost,
    WorkerMasterStart,
    WorkerStart,
)

log = logging.getLogger("actorsys.worker_master")

TICK = "tick"
TICK_S = 1.0


class WorkerMaster(ActorTypeDispatcher):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._start: WorkerMasterStart | None = None
        self._job_manager: Any = None
        self._supervisor: Any = None
        self._workers: dict[str, Any] = {}  # worker id -> address
        self._hello: dict[str, WorkerHello] = {}  # worker id -> host and pid
        self._ids = itertools.count(1)
        self._replaced = 0
        self._stopping = False
        # Workers replaced but not yet exited: address -> (worker id, its hello).
        self._retiring: dict[Any, tuple[str, WorkerHello | None]] = {}
        self._parent = ParentWatch()
        self._worker_gauge = metrics.WorkerGauge()

    def receiveMsg_WorkerMasterStart(self, msg: WorkerMasterStart, sender: Any) -> None:
        self._start = msg
        self._job_manager = msg.job_manager
        self._supervisor = sender
        for _ in range(msg.config.workers.effective_count):
            self._spawn()
        self.send(sender, ComponentReady("worker_master"))
        self.wakeupAfter(timedelta(seconds=TICK_S), payload=TICK)

    def _spawn(self) -> None:
        assert self._start is not None
        worker_id = f"worker-{next(self._ids)}"
        address = self.createActor(Worker)
        self._workers[worker_id] = address
        self.send(
            address,
            WorkerStart(
                self._start.config,
                self._start.bootstrap_servers,
                self._job_manager,
                self.myAddress,
                worker_id,
            ),
        )

    def receiveMsg_WorkerHello(self, msg: WorkerHello, sender: Any) -> None:
        self._hello[msg.worker_id] = msg
        self._push_status()

    def receiveMsg_JobsAvailable(self, msg: JobsAvailable, sender: Any) -> None:
        for address in self._workers.values():
            self.send(address, JobAvailable())

    def receiveMsg_JobManagerMoved(self, msg: JobManagerMoved, sender: Any) -> None:
        self._job_manager = msg.job_manager
        for address in self._workers.values():
            self.send(address, msg)

    def receiveMsg_ReplaceWorker(self, msg: ReplaceWorker, sender: Any) -> None:
        """The worker overran its lease: a new one takes its place at once. The
        old one is asked to exit; if it was only stopped (SIGSTOP, a long GC),
        it finishes its job first and the JobManager rejects that stale
        completion. Still alive after ``stop_grace_s``, it is killed."""
        address = self._workers.pop(msg.worker_id, None)
        if address is None or self._start is None:
            return
        self._retiring[address] = (msg.worker_id, self._hello.pop(msg.worker_id, None))
        self.send(address, ActorExitRequest())
        self._replaced += 1
        metrics.worker_replaced()
        self._spawn()
        grace = self._start.config.workers.stop_grace_s
        self.wakeupAfter(timedelta(seconds=grace), payload=("reap", msg.worker_id))

    def receiveMsg_WakeupMessage(self, msg: WakeupMessage, sender: Any) -> None:
        if isinstance(msg.payload, tuple) and msg.payload[0] == "reap":
            self._reap(msg.payload[1])
        elif msg.payload == TICK:
            if self._parent.orphaned():
                log.warning("the Supervisor is gone; stopping the worker pool")
                self.send(self.myAddress, ActorExitRequest())
                return
            self._push_status()
            self.wakeupAfter(timedelta(seconds=TICK_S), payload=TICK)

    def _reap(self, worker_id: str) -> None:
        for retired_id, hello in list(self._retiring.values()):
            if retired_id != worker_id:
                continue
            # Only a process on this host can be killed from here; a remote one
            # exits when its own pool notices (or its host leaves).
            if hello is not None and hello.host == os.uname().nodename:
                grace = self._start.config.workers.stop_grace_s  # type: ignore[union-attr]
                log.warning(
                    "%s did not exit %.0fs after being replaced; killing pid %d",
                    worker_id,
                    grace,
                    hello.pid,
                )
                with contextlib.suppress(ProcessLookupError):
                    os.kill(hello.pid, signal.SIGKILL)

    def receiveMsg_ActorExitRequest(self, msg: ActorExitRequest, sender: Any) -> None:
        # Thespian stops our workers after this: do not replace them.
        self._stopping = True

    def receiveMsg_ChildActorExited(self, msg: ChildActorExited, sender: Any) -> None:
        if self._stopping:
            return
        if self._retiring.pop(msg.childAddress, None) is not None:
            return  # a replaced worker finally left; its successor runs already
        for worker_id, address in list(self._workers.items()):
            if address == msg.childAddress:
                del self._workers[worker_id]
                self._hello.pop(worker_id, None)
                self._replaced += 1
                metrics.worker_replaced()
                log.warning("%s exited; its job goes back and a new worker replaces it", worker_id)
                self.send(self._job_manager, WorkerLost(worker_id))
                self._spawn()
                self._push_status()
                return

    def _push_status(self) -> None:
        by_host: dict[str, int] = {}
        for hello in self._hello.values():
            by_host[hello.host] = by_host.get(hello.host, 0) + 1
        self._worker_gauge.update(by_host)
        metrics.process_memory("worker_master")
        self.send(
            self._supervisor,
            ComponentStatus(
                "worker_master",
                {
                    "workers": len(self._workers),
                    "workers_by_host": by_host,
                    "workers_replaced": self._replaced,
                },
            ),
        )

    def receiveUnrecognizedMessage(self, msg: Any, sender: Any) -> None:
        log.debug("worker master ignores %s", type(msg).__name__)
