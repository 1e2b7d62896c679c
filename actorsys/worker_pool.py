"""The WorkerMaster's pool: which workers exist on which host, and what to do
when hosts join, leave, drain or go silent, and when workers die.

A plain object, no actor code: the WorkerMaster feeds it what happened (with
``now``, a monotonic clock reading, where timing matters) and performs the
decisions it returns, in order: create a worker or a host agent, send a
message, tell the JobManager a worker's jobs go back, wake up later.
"""

from __future__ import annotations

import itertools
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from thespian.actors import ActorExitRequest

from actorsys import __version__
from actorsys.convention import HOST, MEMBER_ID, VERSION, WORKER_SLOTS
from actorsys.messages import RetireWorker
from actorsys.status import WorkerHostStatus
from actorsys.timers import PlaceAgentAgain, ReapWorker, RefillHost, WorkerPoolTimer

log = logging.getLogger("actorsys.worker_master")

# A worker or agent that died on a worker host is placed again after this
# pause: placing on a member that just vanished fails at once.
REPLACE_DELAY_S = 1.0


@dataclass
class PoolWorker:
    worker_id: str
    address: Any
    member: str  # the member system it was placed on ("" for this system)
    host: str
    pid: int | None = None


@dataclass
class PoolHost:
    member: str
    host: str
    slots: int
    agent: Any  # None until its PlaceAgent is performed
    last_pong: float
    lost: bool = False
    draining: bool = False


# --- decisions ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Spawn:
    """Create a worker on ``member`` ("" for this system), then ``add`` it."""

    member: str
    host: str


@dataclass(frozen=True)
class PlaceAgent:
    """Create the host's agent on ``member``, then ``agent_placed`` it and start it."""

    member: str
    host: str


@dataclass(frozen=True)
class Send:
    to: Any
    message: Any


@dataclass(frozen=True)
class Lost:
    """Tell the JobManager the worker is gone: its job goes back (or it ignores this)."""

    worker_id: str


@dataclass(frozen=True)
class Replaced:
    """A worker was replaced (count it)."""

    worker_id: str


@dataclass(frozen=True)
class Later:
    """Wake up after ``delay_s`` with ``payload``."""

    delay_s: float
    payload: WorkerPoolTimer


Decision = Spawn | PlaceAgent | Send | Lost | Replaced | Later


class WorkerPool:
    def __init__(self, local_member: str | None = None, version: str = __version__) -> None:
        self.local_member = local_member
        self._version = version
        self.workers: dict[str, PoolWorker] = {}
        self.hosts: dict[str, PoolHost] = {}  # worker hosts (members), by member id
        self.refused: dict[str, str] = {}  # member id -> why it gets no workers
        # Workers replaced or retired, not yet exited. (A list: Thespian's
        # ActorAddress is unhashable; find by equality.)
        self.retiring: list[PoolWorker] = []
        self.replaced = 0
        self._ids = itertools.count(1)

    # --- workers ---------------------------------------------------------------------------

    def add(self, address: Any, member: str, host: str) -> PoolWorker:
        """A worker was created (for a Spawn): it gets the next id."""
        worker = PoolWorker(f"worker-{next(self._ids)}", address, member, host)
        self.workers[worker.worker_id] = worker
        return worker

    def hello(self, worker_id: str, pid: int) -> None:
        worker = self.workers.get(worker_id)
        if worker is not None:
            worker.pid = pid

    def replace(self, worker_id: str, grace_s: float) -> list[Decision]:
        """The worker overran its lease: asked to exit, a new one takes its place
        at once; ``("reap", id)`` after ``grace_s`` to kill it if it is still alive."""
        worker = self.workers.get(worker_id)
        if worker is None:
            return []
        self.replaced += 1
        return [
            *self._retire(worker, ActorExitRequest()),
            Replaced(worker_id),
            Spawn(worker.member, worker.host),
            Later(grace_s, ReapWorker(worker_id)),
        ]

    def to_kill(self, worker_id: str) -> list[PoolWorker]:
        """Retiring workers by that id that a signal from here can reach: only a
        process on this host; a remote one exits when its lease lapses or its
        host leaves."""
        return [w for w in self.retiring if w.worker_id == worker_id and not w.member and w.pid]

    def child_exited(self, address: Any) -> list[Decision]:
        retired = next((w for w in self.retiring if w.address == address), None)
        if retired is not None:
            self.retiring.remove(retired)
            # A replaced or retired worker finally left. It may have claimed one
            # more job on its way out: the JobManager puts it back (or ignores this).
            decisions: list[Decision] = [Lost(retired.worker_id)]
            if (host := self.hosts.get(retired.member)) is not None:
                decisions += self._finish_drain_if_done(host)
            return decisions
        for host in self.hosts.values():
            if host.agent == address and not host.draining:
                # An agent that died (or could not be placed) is placed again after a
                # pause while its host is known; until it answers, the host is silent.
                return [Later(REPLACE_DELAY_S, PlaceAgentAgain(host.member))]
        worker = next((w for w in self.workers.values() if w.address == address), None)
        if worker is None:
            return []
        del self.workers[worker.worker_id]
        self.replaced += 1
        log.warning(
            "%s on %s exited; its job goes back and a new worker replaces it",
            worker.worker_id,
            worker.host,
        )
        decisions = [Replaced(worker.worker_id), Lost(worker.worker_id)]
        if not worker.member:
            decisions.append(Spawn("", worker.host))
        else:
            # Placing on a member that just vanished fails at once: pause first.
            decisions.append(Later(REPLACE_DELAY_S, RefillHost(worker.member, worker.host)))
        return decisions

    def _retire(self, worker: PoolWorker, request: Any) -> list[Decision]:
        self.workers.pop(worker.worker_id, None)
        self.retiring.append(worker)
        return [Send(worker.address, request)]

    # --- worker hosts ----------------------------------------------------------------------

    def convention_update(self, caps: Mapping[str, Any], added: bool, now: float) -> list[Decision]:
        """A system joined or left Thespian's convention, with its capabilities."""
        member = caps.get(MEMBER_ID)
        if not member or member == self.local_member:
            return []  # not an actorsys system, or ourselves
        if not added:
            lost = self.host_lost(member, "left the convention")
            self.hosts.pop(member, None)
            return lost
        if caps.get(VERSION) != self._version:
            reason = (
                f"runs actorsys {caps.get(VERSION)}, this leader runs {self._version}: "
                "install the same version on every host"
            )
            if self.refused.get(member) != reason:
                log.error("worker host %s refused: %s", member, reason)
            self.refused[member] = reason
            return []
        self.refused.pop(member, None)
        host = str(caps.get(HOST) or member)
        slots = int(caps.get(WORKER_SLOTS) or 0)
        decisions: list[Decision] = []
        known = self.hosts.get(member)
        if known is None:
            decisions.append(PlaceAgent(member, host))
            known = self.hosts[member] = PoolHost(member, host, slots, None, now)
            log.info("host %s (%s) joined with %d worker slot(s)", host, member, slots)
        if not known.draining:
            known.slots = slots
            decisions += self.fit_host(known)
        return decisions

    def agent_placed(self, member: str, agent: Any) -> None:
        self.hosts[member].agent = agent

    def agent_due(self, member: str) -> list[Decision]:
        """The pause after an agent died is over: place it again, if still wanted."""
        host = self.hosts.get(member)
        if host is None or host.draining:
            return []
        return [PlaceAgent(host.member, host.host)]

    def spawn_due(self, member: str) -> list[Decision]:
        """The pause after a remote worker died is over: fill the host's slots."""
        host = self.hosts.get(member)
        return [] if host is None else self.fit_host(host)

    def drain(self, member: str) -> list[Decision] | None:
        """The host's `actorsys join` got SIGTERM: its workers finish their current
        job and leave. None when there is nothing to do (unknown, or draining)."""
        host = self.hosts.get(member)
        if host is None or host.draining:
            return None
        log.info("host %s is draining", host.host)
        host.draining = True
        host.slots = 0
        decisions: list[Decision] = []
        for worker in [w for w in self.workers.values() if w.member == host.member]:
            decisions += self._retire(worker, RetireWorker())
        return decisions + self._finish_drain_if_done(host)

    def _finish_drain_if_done(self, host: PoolHost) -> list[Decision]:
        busy = any(w.member == host.member for w in (*self.workers.values(), *self.retiring))
        if not host.draining or busy:
            return []
        log.info("host %s drained: every worker left", host.host)
        del self.hosts[host.member]
        return [Send(host.agent, ActorExitRequest())]

    def fit_host(self, host: PoolHost) -> list[Decision]:
        """Grow or shrink the host's workers to its advertised slots."""
        if host.lost or host.draining:
            return []
        current = [w for w in self.workers.values() if w.member == host.member]
        decisions: list[Decision] = [
            Spawn(host.member, host.host) for _ in range(host.slots - len(current))
        ]
        for worker in current[host.slots :]:
            log.info("retiring %s on %s (the host lowered its slots)", worker.worker_id, host.host)
            decisions += self._retire(worker, RetireWorker())
        return decisions

    def pong(self, member: str, now: float) -> list[Decision]:
        host = self.hosts.get(member)
        if host is None:
            return []
        host.last_pong = now
        if not host.lost:
            return []
        log.info("worker host %s answers again; giving it workers", host.host)
        host.lost = False
        return self.fit_host(host)

    def check_hosts(self, ping: Any, now: float, timeout_s: float) -> list[Decision]:
        """Ping every host's agent; a host silent past ``timeout_s`` is lost."""
        decisions: list[Decision] = []
        for host in self.hosts.values():
            decisions.append(Send(host.agent, ping))
            if not host.lost and now - host.last_pong > timeout_s:
                decisions += self.host_lost(
                    host.member, f"no heartbeat for {now - host.last_pong:.0f}s"
                )
        return decisions

    def host_lost(self, member: str, why: str) -> list[Decision]:
        """Its workers are gone (asked to exit, in case they are alive) and their
        jobs go back; it gets workers again when it answers."""
        host = self.hosts.get(member)
        lost = [w for w in self.workers.values() if w.member == member]
        decisions: list[Decision] = []
        for worker in [w for w in self.retiring if w.member == member]:
            self.retiring.remove(worker)  # retiring there: gone with the host
            decisions.append(Lost(worker.worker_id))
        if host is not None:
            host.lost = True
        for worker in lost:
            del self.workers[worker.worker_id]
            decisions.append(Send(worker.address, ActorExitRequest()))  # if it is alive
            decisions.append(Lost(worker.worker_id))
        if lost or host is not None:
            log.warning(
                "worker host %s lost (%s): %d worker(s) gone, their jobs go back",
                host.host if host else member,
                why,
                len(lost),
            )
        return decisions

    # --- inspection ------------------------------------------------------------------------

    def by_host(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for worker in self.workers.values():
            counts[worker.host] = counts.get(worker.host, 0) + 1
        return counts

    def hosts_status(self, now: float) -> dict[str, WorkerHostStatus]:
        return {
            h.member: WorkerHostStatus(h.host, h.slots, h.lost, round(now - h.last_pong, 1))
            for h in self.hosts.values()
        }
