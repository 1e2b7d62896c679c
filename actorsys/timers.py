"""What an actor's timers carry: one small frozen type per kind of wake-up.

Thespian hands a ``wakeupAfter`` payload back in the ``WakeupMessage``; an
actor with several timers dispatches on the payload's type (``match``), so a
misspelt or forgotten kind is a type error, not a string that never matches.
"""

from __future__ import annotations

from dataclasses import dataclass

from actorsys.roles import Role


@dataclass(frozen=True, slots=True)
class Tick:
    """The actor's periodic tick."""


@dataclass(frozen=True, slots=True)
class BatchTick:
    """A Consumer's tick (lingered batches out, unACKed ones resent), of tick
    chain ``chain``: a quiet Consumer ticks slowly, and offsets arriving start
    a fast chain; the slow chain's next tick, stale, then ends it."""

    chain: int


@dataclass(frozen=True, slots=True)
class Poll:
    """The KafkaConsumerActor's next poll of its consumer."""


@dataclass(frozen=True, slots=True)
class Housekeeping:
    """The KafkaConsumerActor's slower round: commit, log ends, retention, status."""


@dataclass(frozen=True, slots=True)
class ReapWorker:
    """A replaced worker's grace period is over: kill it if it is still there."""

    worker_id: str


@dataclass(frozen=True, slots=True)
class RefillHost:
    """The pause after a remote worker died is over: fill its host's slots."""

    member: str
    host: str


@dataclass(frozen=True, slots=True)
class PlaceAgentAgain:
    """The pause after a host's agent died is over: place it again."""

    member: str


@dataclass(frozen=True, slots=True)
class RestartRole:
    """The Supervisor's restart backoff for ``role`` is over."""

    role: Role


@dataclass(frozen=True, slots=True)
class ReplaceConsumer:
    """The pause after a worker host's Kafka consumer exited is over."""

    member: str


@dataclass(frozen=True, slots=True)
class DrainDeadline:
    """The consumers had their time to commit during a drain."""


@dataclass(frozen=True, slots=True)
class WatchDaemon:
    """The Supervisor's check that the daemon process lives (and leases members)."""


WorkerPoolTimer = ReapWorker | RefillHost | PlaceAgentAgain
