"""The Supervisor's rules, as plain objects: restarts with backoff, and the drain.

No actor code here: the Supervisor feeds these objects and passes ``now`` (a
monotonic clock reading), and does what they return, so every rule is
unit-tested with a fake clock.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from actorsys.messages import Drained

RESTART_BACKOFF_S = (0.5, 1, 2, 5, 10, 30)
# A role that fails this many restarts in a row (about a minute of backoff)
# cannot be kept alive: the Supervisor stops trying and reports it lost, so the
# daemon fails /healthz and exits non-zero and its own supervisor (systemd)
# restarts the whole thing, instead of a daemon that looks alive doing nothing.
MAX_FAILING_RESTARTS = len(RESTART_BACKOFF_S)


@dataclass(frozen=True, slots=True)
class Restart:
    """Recreate ``role`` after ``delay_s``; it is its ``number``-th restart."""

    role: str
    delay_s: float
    number: int


@dataclass(frozen=True, slots=True)
class GiveUp:
    """``role`` cannot be kept alive: the daemon must stop."""

    role: str
    why: str


class RestartBook:
    """Restarts per role. The backoff follows the restarts since the role last
    came up, so one crash after weeks of health is retried at once and a crash
    loop slowly; past ``max_failing`` of them the role is given up."""

    def __init__(
        self,
        backoff_s: tuple[float, ...] = RESTART_BACKOFF_S,
        max_failing: int = MAX_FAILING_RESTARTS,
    ) -> None:
        self._backoff_s = backoff_s
        self._max_failing = max_failing
        self.restarts: dict[str, int] = {}  # in total, for status
        self.lost: dict[str, str] = {}  # roles given up, with why
        self._failing: dict[str, int] = {}
        self._last_failure: dict[str, str] = {}

    def came_up(self, role: str) -> None:
        self._failing.pop(role, None)

    def failed_to_start(self, role: str, reason: str) -> None:
        """Why the role's last start failed: said when it is given up."""
        self._last_failure[role] = reason

    def exited(self, role: str) -> Restart | GiveUp:
        failing = self._failing.get(role, 0)
        if failing >= self._max_failing:
            why = self._last_failure.get(role, "it keeps exiting")
            self.lost[role] = f"gave up after {failing} failed restarts: {why}"
            return GiveUp(role, self.lost[role])
        self._failing[role] = failing + 1
        self.restarts[role] = self.restarts.get(role, 0) + 1
        return Restart(role, self._delay(failing), self.restarts[role])

    def replaced(self, key: str) -> float:
        """A member's Kafka consumer exited: the delay before placing a new one
        (it never gives up: the member may come back healthy)."""
        count = self.restarts.get(key, 0)
        self.restarts[key] = count + 1
        return self._delay(count)

    def _delay(self, count: int) -> float:
        return self._backoff_s[min(count, len(self._backoff_s) - 1)]


@dataclass
class DrainPlan:
    """One drain: every Kafka consumer stops and commits, then the jobs quiesce.

    Kafka consumers are Thespian addresses (unhashable), found by equality.
    """

    reply_to: Any
    deadline: float
    consumers: list[Any] = field(default_factory=list)
    consuming_clean: bool = True

    @classmethod
    def start(cls, reply_to: Any, grace_s: float, consumers: list[Any], now: float) -> DrainPlan:
        return cls(reply_to, now + grace_s, list(consumers))

    @staticmethod
    def stop_deadline_s(grace_s: float) -> float:
        """How long a consumer may take to commit: half the grace, the rest is
        for running jobs."""
        return grace_s * 0.5

    @property
    def quiesce_now(self) -> bool:
        """No consumer is awaited: the jobs are next."""
        return not self.consumers

    def stopped(self, consumer: Any, clean: bool) -> bool:
        """``consumer`` committed; True when it was the last one awaited."""
        if consumer not in self.consumers:
            return False
        self.consumers.remove(consumer)
        self.consuming_clean = self.consuming_clean and clean
        return not self.consumers

    def consumers_overdue(self) -> bool:
        """The consumers' deadline passed: stop waiting (not clean). True when
        some were still awaited, so the jobs are to quiesce now."""
        if not self.consumers:
            return False
        self.consuming_clean = False
        self.consumers.clear()
        return True

    def remaining_s(self, now: float) -> float:
        return max(0.0, self.deadline - now)

    def finished(self, still_running: int) -> tuple[Any, Drained] | None:
        """Whom to answer, and what, once (None when answered already)."""
        if self.reply_to is None:
            return None
        reply_to, self.reply_to = self.reply_to, None
        clean = self.consuming_clean and still_running == 0
        detail = (
            "all open batches ACKed and committed; no job running"
            if clean
            else f"grace period ended: {still_running} job(s) still running "
            "(they run again after restart)"
        )
        return reply_to, Drained(clean=clean, detail=detail)
