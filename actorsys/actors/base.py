"""What every actorsys actor does the same way, in one place.

Thespian dispatches ``receiveMsg_<Class>`` by inheritance, so handlers defined
here serve every actor derived from :class:`ActorsysActor`:

* **placement**: ``actorSystemCapabilityCheck`` lets an actor be created on
  the member system a placement requirement names (and anywhere without one);
* **orphan check**: an actor whose parent process died exits instead of living
  on unsupervised (see :mod:`actorsys.actors.lifeline`);
* **the leader's lease** (``LeaderLease``): an actor placed on a worker host by
  the leader leaves once the leader has been silent past the lease;
* **status**: the snapshot pushed to the Supervisor when it changed (or every
  few seconds: ``StatusPacer``), with this process's memory reported under
  the actor's role;
* **unknown messages** are logged at debug level and dropped, never raised on;
* **profiling**: with ``ACTORSYS_PROFILE_DIR`` set, every actor process runs
  under cProfile and writes ``<role>-<pid>.prof`` there (see
  :mod:`actorsys.testhooks`).
"""

from __future__ import annotations

import logging
import time
from typing import Any, ClassVar

from thespian.actors import ActorExitRequest, ActorTypeDispatcher

from actorsys import metrics
from actorsys.actors.lifeline import ParentWatch
from actorsys.convention import capability_check
from actorsys.messages import ComponentStatus, LeaderLease
from actorsys.roles import Role
from actorsys.status import ComponentSnapshot, StatusPacer
from actorsys.testhooks import ActorProfiler

log = logging.getLogger("actorsys.actors")


class ActorsysActor(ActorTypeDispatcher):  # type: ignore[misc]  # Thespian ships no type hints
    """The base of every actorsys actor; subclasses set ``ROLE``."""

    ROLE: ClassVar[Role]
    # Who creates this actor: named in the log line when it is orphaned.
    PARENT: ClassVar[str] = "the Supervisor"

    @staticmethod
    def actorSystemCapabilityCheck(
        capabilities: dict[str, Any], requirements: dict[str, Any]
    ) -> bool:
        return capability_check(capabilities, requirements)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._parent_watch = ParentWatch()
        self._lease_until: float | None = None  # the leader's lease, once one arrived
        self._profiler = ActorProfiler.from_environment(self.ROLE)
        self._status_pacer = StatusPacer()

    def receiveMessage(self, msg: Any, sender: Any) -> Any:
        result = super().receiveMessage(msg, sender)
        if self._profiler is not None:  # stats so far: every 10 s, and as it stops
            self._profiler.dump(every_s=0.0 if isinstance(msg, ActorExitRequest) else 10.0)
        return result

    # --- the parent and the leader --------------------------------------------------------

    def name(self) -> str:
        """How log lines call this actor."""
        return str(self.ROLE)

    def parent_gone(self) -> bool:
        """The process that created this actor died: nobody supervises it now."""
        return self._parent_watch.orphaned()

    def exit_if_orphaned(self, detail: str = "exiting") -> bool:
        """True (and this actor on its way out) when its parent process is gone."""
        if not self.parent_gone():
            return False
        log.warning("%s: %s is gone; %s", self.name(), self.PARENT, detail)
        self.send(self.myAddress, ActorExitRequest())
        return True

    def receiveMsg_LeaderLease(self, msg: LeaderLease, sender: Any) -> None:
        # Placed on a member by the leader: leave once the leader goes silent,
        # rather than hold work nobody can account for.
        self._lease_until = time.monotonic() + msg.valid_s

    def lease_lapsed(self, now: float | None = None) -> bool:
        """The leader granted a lease, and it has run out (never without one)."""
        now = time.monotonic() if now is None else now
        return self._lease_until is not None and now > self._lease_until

    # --- status ----------------------------------------------------------------------------

    def push_status(self, supervisor: Any, data: ComponentSnapshot, key: str = "") -> None:
        """Send ``data`` to the Supervisor as this role's status (under ``key``
        when one actor reports several: the committer's tables), unless it is
        the snapshot sent last and that one is recent: an idle actor that
        reports on every tick then sends one message every few seconds."""
        metrics.process_memory(self.ROLE)
        key = key or self.ROLE
        if self._status_pacer.due(data, time.monotonic(), key):
            self.send(supervisor, ComponentStatus(key, data))

    def receiveUnrecognizedMessage(self, msg: Any, sender: Any) -> None:
        log.debug("%s ignores %s", self.name(), type(msg).__name__)
