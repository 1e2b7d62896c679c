"""Typed status snapshots: what each component reports, and the whole document.

Every component pushes its snapshot to the Supervisor when it changed, at
most about once a second, and at least every ``StatusPacer.refresh_s``
(``ComponentStatus``); the daemon asks for them all, and serves them as the
JSON of ``/status`` (``actorsys status --json``). The readers (the daemon's
readiness check, its progress line, ``actorsys status``) read these types,
never string keys: a renamed field is a type error, not a silent zero.

``to_json`` keeps the document's shape flat (a component's counters sit beside
its other fields), and ``StatusDocument.from_json`` reads it back, ignoring
fields it does not know (a newer daemon may add some).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypeVar

from actorsys.roles import Role

if TYPE_CHECKING:
    from _typeshed import DataclassInstance


@dataclass(frozen=True, slots=True)
class PartitionStatus:
    """One assigned partition, as its KafkaConsumerActor sees it."""

    topic: str
    partition: int
    position: int | None = None  # the next offset to hand out
    committed: int | None = None
    high_watermark: int | None = None  # where the log ends, as last learnt
    lag: int | None = None  # records between the committed offset and the log's end
    inflight_records: int = 0  # handed out, not yet stored as jobs
    paused: bool = False  # held back by a flow cap
    seconds_behind: float | None = None


@dataclass(frozen=True, slots=True)
class KafkaConsumerStatus:
    partitions: tuple[PartitionStatus, ...] = ()
    broker_ok: bool | None = None  # None: no statistics from librdkafka yet
    missing_topics: tuple[str, ...] = ()
    records_consumed: int = 0  # offsets handed out to be cut into jobs
    rebalances: int = 0
    draining: bool = False


@dataclass(frozen=True, slots=True)
class RetentionStatus:
    """A topic's oldest unfinished job against the time Kafka keeps its records."""

    topic: str
    oldest_job_age_s: float = 0.0
    retention_s: float | None = None  # None: kept for ever
    headroom_s: float | None = None


@dataclass(frozen=True, slots=True)
class JobManagerStatus:
    jobs: Mapping[str, int] = field(default_factory=dict)  # by JobStatus value
    running_by_host: Mapping[str, int] = field(default_factory=dict)
    held_batches: int = 0
    parked_batches: int = 0
    unfinished: int = 0
    unrecorded_outcomes: int = 0
    awaiting_commit: int = 0
    open_windows: int = 0
    output_ok: bool = True
    output_error: str = ""
    store_ok: bool = True
    retention_hold: bool = False
    retention: tuple[RetentionStatus, ...] = ()
    counters: Mapping[str, int] = field(default_factory=dict)  # since this JobManager started

    @property
    def rows_ingested(self) -> int:
        return self.counters.get("rows_ingested", 0)

    @property
    def files_ingested(self) -> int:
        return self.counters.get("files_ingested", 0)


@dataclass(frozen=True, slots=True)
class WorkerHostStatus:
    host: str
    slots: int
    lost: bool
    last_heartbeat_s: float


@dataclass(frozen=True, slots=True)
class WorkerMasterStatus:
    workers: int = 0
    workers_by_host: Mapping[str, int] = field(default_factory=dict)
    workers_replaced: int = 0
    worker_hosts: Mapping[str, WorkerHostStatus] = field(default_factory=dict)  # by member
    refused_hosts: Mapping[str, str] = field(default_factory=dict)  # member: why


@dataclass(frozen=True, slots=True)
class TableStatus:
    """One table's committer."""

    table: str
    version: int | None = None
    queued_jobs: int = 0
    waiting_for_predecessor: int = 0
    last_commit_s: float = 0.0
    counters: Mapping[str, int] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class SupervisorStatus:
    ready: tuple[str, ...] = ()
    restarts: Mapping[str, int] = field(default_factory=dict)
    lost_roles: Mapping[str, str] = field(default_factory=dict)  # role: why it was given up
    draining: bool = False


ComponentSnapshot = (
    KafkaConsumerStatus | JobManagerStatus | WorkerMasterStatus | TableStatus | SupervisorStatus
)

# The component keys: a role, "kafka_consumer@<member>" for a worker host's
# consumer, "committer:<table>" for each table.
MEMBER_SEPARATOR = "@"
TABLE_SEPARATOR = ":"


@dataclass(frozen=True, slots=True)
class StatusDocument:
    """Every component's latest snapshot, by component key."""

    components: Mapping[str, ComponentSnapshot] = field(default_factory=dict)

    def job_manager(self) -> JobManagerStatus:
        found = self.components.get(Role.JOB_MANAGER)
        return found if isinstance(found, JobManagerStatus) else JobManagerStatus()

    def worker_master(self) -> WorkerMasterStatus:
        found = self.components.get(Role.WORKER_MASTER)
        return found if isinstance(found, WorkerMasterStatus) else WorkerMasterStatus()

    def supervisor(self) -> SupervisorStatus:
        found = self.components.get(Role.SUPERVISOR)
        return found if isinstance(found, SupervisorStatus) else SupervisorStatus()

    def kafka_consumers(self) -> dict[str, KafkaConsumerStatus]:
        """By where it runs: "leader", or the worker host's member id."""
        return {
            key.partition(MEMBER_SEPARATOR)[2] or "leader": snapshot
            for key, snapshot in sorted(self.components.items())
            if isinstance(snapshot, KafkaConsumerStatus)
        }

    def leader_consumer(self) -> KafkaConsumerStatus:
        found = self.components.get(Role.KAFKA_CONSUMER)
        return found if isinstance(found, KafkaConsumerStatus) else KafkaConsumerStatus()

    def partitions(self) -> list[PartitionStatus]:
        return [p for c in self.kafka_consumers().values() for p in c.partitions]

    def tables(self) -> dict[str, TableStatus]:
        return {s.table: s for s in self.components.values() if isinstance(s, TableStatus)}

    def to_json(self) -> dict[str, dict[str, Any]]:
        return {key: to_json(snapshot) for key, snapshot in self.components.items()}

    @classmethod
    def from_json(cls, components: Mapping[str, Mapping[str, Any]]) -> StatusDocument:
        """The ``components`` of a ``/status`` document, typed."""
        parsed: dict[str, ComponentSnapshot] = {}
        for key, data in components.items():
            role = key.partition(MEMBER_SEPARATOR)[0].partition(TABLE_SEPARATOR)[0]
            kind = _KIND_BY_ROLE.get(role)
            if kind is not None:
                parsed[key] = _parse(kind, data)
        return cls(parsed)


class StatusPacer:
    """When a component's snapshot is worth a ``ComponentStatus``: it differs
    from the last one pushed, or that one is ``refresh_s`` old. An idle
    component then sends one message per ``refresh_s``, not one per tick.
    A plain object: the caller passes ``now`` (monotonic seconds)."""

    def __init__(self, refresh_s: float = 5.0) -> None:
        self.refresh_s = refresh_s
        self._pushed: dict[str, tuple[Any, float]] = {}

    def due(self, snapshot: Any, now: float, key: str = "") -> bool:
        """Whether ``snapshot`` (of ``key``, for an actor that reports several)
        goes out now; noted as pushed when True."""
        last = self._pushed.get(key)
        if last is not None and snapshot == last[0] and now - last[1] < self.refresh_s:
            return False
        self._pushed[key] = (snapshot, now)
        return True


def to_json(snapshot: ComponentSnapshot) -> dict[str, Any]:
    """The snapshot as plain JSON values, its counters flattened beside its fields."""
    doc = dataclasses.asdict(snapshot)
    doc.update(doc.pop("counters", None) or {})
    return doc


_KIND_BY_ROLE: dict[str, type[ComponentSnapshot]] = {
    Role.KAFKA_CONSUMER: KafkaConsumerStatus,
    Role.JOB_MANAGER: JobManagerStatus,
    Role.WORKER_MASTER: WorkerMasterStatus,
    Role.COMMITTER: TableStatus,
    Role.SUPERVISOR: SupervisorStatus,
}

S = TypeVar("S", bound="DataclassInstance")


def _parse(kind: type[S], data: Mapping[str, Any]) -> S:
    names = {f.name for f in dataclasses.fields(kind)}
    values: dict[str, Any] = {k: v for k, v in data.items() if k in names}
    if "counters" in names:  # the flattened counters: every other integer field
        values["counters"] = {
            k: v
            for k, v in data.items()
            if k not in names and isinstance(v, int) and not isinstance(v, bool)
        }
    if kind is KafkaConsumerStatus:
        values["partitions"] = tuple(
            _parse(PartitionStatus, p) for p in values.get("partitions", ())
        )
        values["missing_topics"] = tuple(values.get("missing_topics", ()))
    elif kind is JobManagerStatus:
        values["retention"] = tuple(_parse(RetentionStatus, r) for r in values.get("retention", ()))
    elif kind is WorkerMasterStatus:
        values["worker_hosts"] = {
            member: _parse(WorkerHostStatus, h)
            for member, h in values.get("worker_hosts", {}).items()
        }
    elif kind is SupervisorStatus:
        values["ready"] = tuple(values.get("ready", ()))
    return kind(**values)
