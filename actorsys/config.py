"""Configuration: one typed, immutable object, loaded once from TOML.

Every section is a frozen dataclass validated at construction. Unknown keys,
wrong types and impossible values raise ``ConfigError`` with one line that
names the key, so ``actorsys run`` can print it and exit 2.

Secrets stay out of the file and out of every log and message: any string
value may be written ``{ env = "NAME" }`` (read from the environment) or
``{ file = "/path" }`` (the file's content, trailing newline stripped), and
credentials (librdkafka's password, secret and key properties, a job store
URL with a password) are held as :class:`~actorsys.secrets.Secret`, whose
repr and pickle carry its name only.

Some librdkafka properties are refused because they would switch off an
invariant of the pipeline or bypass a first-class key (see
``_FORBIDDEN_CONSUMER`` and ``_FORBIDDEN_PRODUCER``).
"""

from __future__ import annotations

import dataclasses
import os
import tomllib
import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

from actorsys.errors import ConfigError
from actorsys.secrets import Secret, is_secret_property, redact_url, reveal, url_has_password

EMBEDDED = "embedded"
MIB = 1024 * 1024


def _positive(section: str, **values: float) -> None:
    for name, value in values.items():
        if value <= 0:
            raise ConfigError(f"[{section}] {name} must be > 0, got {value}")


# --- librdkafka properties actorsys does not let through --------------------------------------

_COMMITS = (
    "actorsys commits offsets itself, only once everything below them is stored as a job "
    "(invariant 1); this property cannot be set"
)
# Consumer properties ([kafka.properties]) refused whatever their value. Allowed and worth
# saying: isolation.level (read_committed, librdkafka's default, or read_uncommitted, which
# also reads records of aborted transactions), group.instance.id, max.poll.interval.ms.
_FORBIDDEN_CONSUMER: Final[Mapping[str, str]] = {
    "enable.auto.commit": _COMMITS,
    "auto.commit.enable": _COMMITS,  # librdkafka's old (topic-level) name of the same
    "enable.auto.offset.store": _COMMITS,
    "group.id": "use [kafka] group_id instead (the job store keys its offsets by it)",
    "bootstrap.servers": "use [kafka] bootstrap_servers instead (every client of actorsys uses it)",
    "metadata.broker.list": "use [kafka] bootstrap_servers instead (this is an alias of it)",
    "auto.offset.reset": (
        "use [kafka] auto_offset_reset instead (actorsys logs and counts the range a reset skips)"
    ),
    "partition.assignment.strategy": (
        "use [kafka] partition_assignment_strategy instead (the consumer assigns incrementally "
        "only for cooperative-sticky)"
    ),
    "group.protocol": (
        "actorsys drives the classic rebalance protocol (its assign and revoke callbacks "
        "commit and hand partitions over); the consumer protocol of KIP-848 is not supported"
    ),
    "session.timeout.ms": "use [kafka] session_timeout_ms instead",
    "default.topic.config": "write topic properties directly in [kafka.properties]",
}
_PRODUCER_INSTEAD: Final = (
    "use [kafka] bootstrap_servers instead (the dead-letter producer reaches the same cluster)"
)
# Dead-letter producer properties ([kafka.producer_properties]) refused whatever their value.
# enable.idempotence may be false: with acks=all a retried dead letter may be duplicated, never
# lost, and dead letters are deduplicated on their source_* headers anyway.
_FORBIDDEN_PRODUCER: Final[Mapping[str, str]] = {
    "bootstrap.servers": _PRODUCER_INSTEAD,
    "metadata.broker.list": _PRODUCER_INSTEAD,
    "transactional.id": (
        "dead letters are not produced in transactions (the embedded broker cannot verify "
        "them); deduplicate them on their source_* headers"
    ),
}
# Producer properties whose value must keep every dead letter: acks and its alias.
_ACKS_KEYS: Final = frozenset({"acks", "request.required.acks"})
_ACKS_ALLOWED: Final = frozenset({"all", "-1"})


def _property_names(key: str) -> tuple[str, str]:
    """The names librdkafka may read ``key`` as: case-folded, and without the ``topic.``
    prefix it accepts before a topic-level property (``topic.auto.commit.enable``)."""
    name = key.strip().lower()
    return name, name.removeprefix("topic.")


def _checked_properties(
    table: str, properties: Mapping[str, str | Secret], forbidden: Mapping[str, str]
) -> dict[str, str | Secret]:
    """``properties`` with forbidden keys refused and credentials wrapped as Secrets."""
    checked: dict[str, str | Secret] = {}
    for key, value in properties.items():
        if not isinstance(key, str) or not key.strip():
            raise ConfigError(f"[{table}] has an empty property name")
        if not isinstance(value, str | Secret):
            raise ConfigError(f"[{table}] {key} must be a string")
        for name in _property_names(key):
            if name in forbidden:
                raise ConfigError(f"[{table}] {key}: {forbidden[name]}")
        if isinstance(value, str) and is_secret_property(key):
            value = Secret(f"{table}.{key}", value)
        checked[key] = value
    return checked


def _check_acks(properties: Mapping[str, str | Secret]) -> None:
    for key, value in properties.items():
        name = _property_names(key)[1]
        if name in _ACKS_KEYS and reveal(value).strip().lower() not in _ACKS_ALLOWED:
            raise ConfigError(
                f"[kafka.producer_properties] {key} must be all (or -1): with fewer "
                f"acknowledgements a broker failure can lose dead letters; got {value!r}"
            )


DEAD_LETTER_SUFFIX = ".dlq"


def dead_letter_topic_for(source_topic: str, configured: str = "") -> str:
    """The one dead-letter-topic rule: ``kafka.dead_letter_topic`` when set,
    else ``<source_topic>.dlq``."""
    return configured or f"{source_topic}{DEAD_LETTER_SUFFIX}"


@dataclass(frozen=True, slots=True)
class KafkaConfig:
    bootstrap_servers: str = EMBEDDED
    topics: tuple[str, ...] = ("iot",)
    group_id: str = "actorsys"
    # Default "<topic>.dlq" when empty.
    dead_letter_topic: str = ""
    auto_offset_reset: str = "earliest"
    session_timeout_ms: int = 10_000
    partition_assignment_strategy: str = "cooperative-sticky"
    # Passed through to librdkafka's consumer (as kcat -X), save the forbidden keys;
    # the security settings among them reach every client. Credentials become Secrets.
    properties: Mapping[str, str | Secret] = field(default_factory=dict)
    # Passed to the dead-letter producer (e.g. message.max.bytes, compression.type).
    producer_properties: Mapping[str, str | Secret] = field(default_factory=dict)

    def __post_init__(self) -> None:
        _positive("kafka", session_timeout_ms=self.session_timeout_ms)
        if not self.bootstrap_servers:
            raise ConfigError("[kafka] bootstrap_servers must not be empty")
        if not self.topics or any(not t for t in self.topics):
            raise ConfigError("[kafka] topics must name at least one topic")
        if not self.group_id:
            raise ConfigError("[kafka] group_id must not be empty")
        if self.auto_offset_reset not in ("earliest", "latest", "error"):
            raise ConfigError("[kafka] auto_offset_reset must be earliest, latest or error")
        consumer = _checked_properties("kafka.properties", self.properties, _FORBIDDEN_CONSUMER)
        producer = _checked_properties(
            "kafka.producer_properties", self.producer_properties, _FORBIDDEN_PRODUCER
        )
        _check_acks(producer)
        object.__setattr__(self, "properties", consumer)
        object.__setattr__(self, "producer_properties", producer)

    def dead_letter_topic_for(self, topic: str) -> str:
        return dead_letter_topic_for(topic, self.dead_letter_topic)


@dataclass(frozen=True, slots=True)
class BatchingConfig:
    # A job's offset interval is at most this long (its worker holds its records).
    # Measured side by side on a 1M backlog: 20,000 ran 1.55x the records/s of
    # 5,000 at 0.66x the CPU per record, for about 17 MB more peak RSS.
    max_records: int = 20_000
    linger_ms: int = 500
    # Retransmit an unACKed batch after this, doubling up to the max.
    ack_timeout_ms: int = 2_000
    max_ack_timeout_ms: int = 30_000
    # Consumer actors (processes) that cut batches, each serving a share of
    # the assigned partitions: the process count does not grow with them.
    consumers: int = 2

    def __post_init__(self) -> None:
        _positive(
            "batching",
            consumers=self.consumers,
            max_records=self.max_records,
            linger_ms=self.linger_ms,
            ack_timeout_ms=self.ack_timeout_ms,
            max_ack_timeout_ms=self.max_ack_timeout_ms,
        )


@dataclass(frozen=True, slots=True)
class FlowConfig:
    """Caps on work in flight between Kafka and the job store (invariant 5)."""

    # Offsets handed out to be cut into jobs and not yet ACKed as stored jobs.
    max_inflight_records_per_partition: int = 50_000
    max_inflight_records: int = 200_000
    # Jobs persisted but not yet DONE; past this the JobManager withholds ACKs.
    max_pending_jobs: int = 64
    # Pending jobs are offsets: their records must still be in Kafka when read.
    # Once the oldest unfinished job has used all but this share of its topic's
    # retention.ms, intake is held back so the workers finish the oldest first.
    retention_headroom_fraction: float = 0.25
    # The KafkaConsumerActor's tick, and how often it asks the broker where
    # each assigned partition's log ends (one ListOffsets request for all).
    poll_interval_ms: int = 20
    end_offsets_interval_ms: int = 50
    # Its tick once nothing has moved for a second (doubling up to this): an
    # idle daemon then wakes 4 times a second, not 50; a record produced after
    # a quiet spell is noticed up to this much later.
    idle_poll_interval_ms: int = 250

    def __post_init__(self) -> None:
        _positive("flow", **{f.name: getattr(self, f.name) for f in dataclasses.fields(self)})


@dataclass(frozen=True, slots=True)
class JobsConfig:
    # A URL with a password becomes Secret("jobs.store", url); log store_for_logs instead.
    store: str | Secret = "sqlite:///./data/jobs.db"
    max_attempts: int = 5
    retry_backoff_initial_s: float = 1.0
    retry_backoff_max_s: float = 300.0
    job_timeout_s: float = 300.0

    def __post_init__(self) -> None:
        url = reveal(self.store)
        if not (url.startswith("sqlite://") or url.startswith("postgres")):
            raise ConfigError(
                "[jobs] store must be sqlite:///path.db or postgresql://...,"
                f" got {redact_url(url)!r}"
            )
        if isinstance(self.store, str) and url_has_password(url):
            object.__setattr__(self, "store", Secret("jobs.store", url))
        _positive(
            "jobs",
            max_attempts=self.max_attempts,
            retry_backoff_initial_s=self.retry_backoff_initial_s,
            retry_backoff_max_s=self.retry_backoff_max_s,
            job_timeout_s=self.job_timeout_s,
        )

    @property
    def store_for_logs(self) -> str:
        """The store URL with its password replaced by ``***``."""
        return redact_url(self.store)


@dataclass(frozen=True, slots=True)
class WorkersConfig:
    # 0 means one worker per CPU.
    count: int = 0
    # A worker that overran its lease is replaced at once and asked to exit; one
    # that is still alive this much later (hung, or stopped) is killed.
    stop_grace_s: float = 30.0
    # Run `count` workers on the leader itself (worker hosts join with their own slots).
    on_leader: bool = True
    # A worker host whose agent has not answered heartbeats for this long is lost:
    # its running jobs go back to the queue (Thespian itself takes ~22 minutes).
    host_timeout_s: float = 10.0

    def __post_init__(self) -> None:
        if self.count < 0:
            raise ConfigError(f"[workers] count must be >= 0, got {self.count}")
        _positive("workers", stop_grace_s=self.stop_grace_s, host_timeout_s=self.host_timeout_s)

    @property
    def effective_count(self) -> int:
        return self.count or os.cpu_count() or 1


@dataclass(frozen=True, slots=True)
class OutputConfig:
    dir: str = "./data"
    # "delta": <dir>/raw, agg and agg_hourly are Delta tables; workers write data
    # files and one committer per table publishes them in atomic commits that
    # record the Kafka offsets; closed hours are compacted, agg is final.
    # "parquet": plain files per job (raw + per-job partial agg), published when
    # written, with no snapshot isolation.
    format: str = "delta"
    handler: str = ""  # "" = the IoT handler of the format
    metrics: tuple[str, ...] = ("temperature", "humidity", "battery")
    # Passed to the handler factory as HandlerSettings.options.
    options: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.format not in OUTPUT_FORMATS:
            raise ConfigError(
                f"[output] format must be one of {', '.join(OUTPUT_FORMATS)}, got {self.format!r}"
            )

    @property
    def effective_handler(self) -> str:
        return self.handler or DEFAULT_HANDLERS[self.format]


OUTPUT_FORMATS = ("parquet", "delta")
DEFAULT_HANDLERS = {
    "parquet": "actorsys.handlers.iot_parquet:IotParquetHandler",
    "delta": "actorsys.handlers.iot_delta:IotDeltaHandler",
}


@dataclass(frozen=True, slots=True)
class TablesConfig:
    """Table commits ([output] format = "delta")."""

    # A commit publishes every file written since the last one; commits begin at
    # most this often, whatever the job rate (each commit is a file in the log),
    # and at once after a quiet spell.
    commit_interval_ms: int = 1_000
    max_files_per_commit: int = 1_000
    row_group_rows: int = 262_144
    # An event-time hour is closed (and compacted) once every partition with data
    # in it has seen event time past its end plus this, or has been idle for
    # idle_partition_s. Later records re-open it: compacted again after
    # recompact_delay_s, so a trickle of late records is rewritten once a minute.
    allowed_lateness_s: float = 600.0
    idle_partition_s: float = 300.0
    recompact_delay_s: float = 60.0
    compaction_target_mb: int = 128
    compaction_memory_mb: int = 256
    max_running_compactions: int = 1
    # Files a compaction replaced are deleted this long after (readers of an older
    # snapshot may still read them meanwhile), by a vacuum run every
    # vacuum_interval_s. Below the tables' 2-hour tombstone retention: a vacuum
    # finds replaced files only through tombstones.
    vacuum_retention_s: float = 3_600.0
    vacuum_interval_s: float = 600.0

    def __post_init__(self) -> None:
        _positive(
            "tables",
            commit_interval_ms=self.commit_interval_ms,
            max_files_per_commit=self.max_files_per_commit,
            row_group_rows=self.row_group_rows,
            idle_partition_s=self.idle_partition_s,
            compaction_target_mb=self.compaction_target_mb,
            compaction_memory_mb=self.compaction_memory_mb,
            max_running_compactions=self.max_running_compactions,
        )
        if self.allowed_lateness_s < 0 or self.recompact_delay_s < 0:
            raise ConfigError("[tables] allowed_lateness_s and recompact_delay_s must be >= 0")
        if not 0 <= self.vacuum_retention_s < 7_200 or self.vacuum_interval_s <= 0:
            raise ConfigError(
                "[tables] vacuum_retention_s must be in [0, 7200) (the tables keep tombstones"
                " for 2 hours) and vacuum_interval_s > 0"
            )


@dataclass(frozen=True, slots=True)
class DaemonConfig:
    admin_port: int = 1900
    metrics_port: int = 9108
    metrics_host: str = "127.0.0.1"
    shutdown_grace_s: float = 30.0
    log_level: str = "INFO"
    log_format: str = "text"
    # This host's name in metrics, status and job records ("" = the hostname).
    host_name: str = ""
    # `actorsys run` shows a progress line this often (0: never; --quiet).
    progress_interval_s: float = 5.0

    def __post_init__(self) -> None:
        for name in ("admin_port", "metrics_port"):
            port = getattr(self, name)
            if not 0 <= port <= 65535:
                raise ConfigError(f"[daemon] {name} must be a TCP port, got {port}")
        _positive("daemon", shutdown_grace_s=self.shutdown_grace_s)
        if self.progress_interval_s < 0:
            raise ConfigError("[daemon] progress_interval_s must be 0 (off) or more")
        if self.log_level.upper() not in ("DEBUG", "INFO", "WARNING", "ERROR"):
            raise ConfigError("[daemon] log_level must be DEBUG, INFO, WARNING or ERROR")
        if self.log_format not in ("text", "json"):
            raise ConfigError("[daemon] log_format must be text or json")


_WILDCARDS: Final = frozenset({"0.0.0.0", "::", "[::]", "*"})


@dataclass(frozen=True, slots=True)
class ClusterConfig:
    """How this host's actor system meets the others: where it listens, the address
    it gives them, and the key that proves a peer belongs to the cluster."""

    # Every listener of the actor system binds here. Loopback by default: a
    # single-host daemon is reachable from nowhere else.
    bind_host: str = "127.0.0.1"
    # The address other hosts connect to ("" means bind_host). Required when
    # bind_host is a wildcard, which is no address anyone can connect to.
    advertised_host: str = ""
    # The cluster's shared key; the same file on every host.
    key_file: str = "./data/cluster.key"
    # The largest frame a peer may send; a bigger one is refused, not buffered.
    max_frame_bytes: int = 64 * MIB

    def __post_init__(self) -> None:
        if not self.bind_host.strip():
            raise ConfigError('[cluster] bind_host must not be empty (e.g. "127.0.0.1")')
        if self.advertised_host.strip() in _WILDCARDS:
            raise ConfigError(
                f"[cluster] advertised_host {self.advertised_host!r} is a wildcard; "
                "give the address other hosts reach this one at"
            )
        if self.bind_host.strip() in _WILDCARDS and not self.advertised_host.strip():
            raise ConfigError(
                f"[cluster] bind_host {self.bind_host!r} listens on every interface: set "
                "[cluster] advertised_host to the address other hosts reach this one at"
            )
        if not self.key_file.strip():
            raise ConfigError("[cluster] key_file must name the cluster key file")
        if self.max_frame_bytes < MIB:
            raise ConfigError(
                f"[cluster] max_frame_bytes must be >= {MIB} (1 MiB), got {self.max_frame_bytes}"
            )

    @property
    def effective_advertised_host(self) -> str:
        """The address other hosts connect to."""
        return self.advertised_host.strip() or self.bind_host.strip()


@dataclass(frozen=True, slots=True)
class EmbeddedBrokerConfig:
    # 0 picks a free port.
    port: int = 0

    def __post_init__(self) -> None:
        if not 0 <= self.port <= 65535:
            raise ConfigError(f"[embedded_broker] port must be a TCP port or 0, got {self.port}")


@dataclass(frozen=True, slots=True)
class SimulatorConfig:
    """An IoT feed run inside the daemon: for `make run` and demos only."""

    enabled: bool = False
    devices: int = 100
    rate: float = 2_000.0
    count: int = 0
    partitions: int = 4
    malformed_ratio: float = 0.01
    # Event time runs time_scale x wall time (closes event hours in minutes);
    # late_ratio of the records are up to late_max_s of event time late.
    time_scale: float = 1.0
    late_ratio: float = 0.0
    late_max_s: float = 0.0

    def __post_init__(self) -> None:
        _positive(
            "simulator",
            devices=self.devices,
            partitions=self.partitions,
            time_scale=self.time_scale,
        )
        for name in ("rate", "count", "late_max_s"):
            if getattr(self, name) < 0:
                raise ConfigError(f"[simulator] {name} must be >= 0")
        for name in ("malformed_ratio", "late_ratio"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ConfigError(f"[simulator] {name} must be between 0 and 1")
        if self.late_ratio > 0 and self.late_max_s < 0.001:
            raise ConfigError("[simulator] late_ratio needs late_max_s of at least 0.001")


@dataclass(frozen=True, slots=True)
class AppConfig:
    kafka: KafkaConfig = field(default_factory=KafkaConfig)
    batching: BatchingConfig = field(default_factory=BatchingConfig)
    flow: FlowConfig = field(default_factory=FlowConfig)
    jobs: JobsConfig = field(default_factory=JobsConfig)
    workers: WorkersConfig = field(default_factory=WorkersConfig)
    output: OutputConfig = field(default_factory=OutputConfig)
    tables: TablesConfig = field(default_factory=TablesConfig)
    daemon: DaemonConfig = field(default_factory=DaemonConfig)
    cluster: ClusterConfig = field(default_factory=ClusterConfig)
    embedded_broker: EmbeddedBrokerConfig = field(default_factory=EmbeddedBrokerConfig)
    simulator: SimulatorConfig = field(default_factory=SimulatorConfig)

    def with_overrides(self, overrides: Mapping[str, Mapping[str, Any]]) -> AppConfig:
        """A copy with some keys replaced, e.g. ``{"kafka": {"group_id": "g"}}``."""
        merged = dataclasses.asdict(self)
        for section, values in overrides.items():
            merged[section] = {**merged.get(section, {}), **values}
        return build_config(merged)


_SOURCE_FORMS: Final = '{ env = "NAME" } or { file = "/path" }'
# Keys that left their section: an old file gets told where they went.
_MOVED: Final[Mapping[tuple[str, str], str]] = {
    ("daemon", "advertised_host"): "[cluster] advertised_host",
}


def _from_source(where: str, source: Mapping[str, Any]) -> str:
    """The string a ``{ env = "NAME" }`` or ``{ file = "/path" }`` table stands for.

    Secrets belong in the environment or in a file only the daemon can read,
    not in a configuration file that is copied around and checked in.
    """
    if set(source) == {"env"}:
        name = source["env"]
        if not isinstance(name, str) or not name:
            raise ConfigError(f"{where}: env must name an environment variable")
        value = os.environ.get(name)
        if value is None:
            raise ConfigError(f"{where}: environment variable {name} is not set")
        return value
    if set(source) == {"file"}:
        path = source["file"]
        if not isinstance(path, str) or not path:
            raise ConfigError(f"{where}: file must name a file")
        try:
            return Path(path).expanduser().read_text(encoding="utf-8").rstrip("\r\n")
        except FileNotFoundError:
            raise ConfigError(f"{where}: file {path!r} does not exist") from None
        except UnicodeDecodeError:
            raise ConfigError(f"{where}: file {path!r} is not UTF-8 text") from None
        except OSError as exc:
            raise ConfigError(
                f"{where}: file {path!r} cannot be read: {exc.strerror or exc}"
            ) from None
    raise ConfigError(
        f"{where} must be a string or {_SOURCE_FORMS}, got a table of {', '.join(sorted(source))}"
    )


def _string(where: str, value: Any, secret_ok: bool = False) -> str | Secret:
    """A string value, or the one its env/file table stands for."""
    if isinstance(value, Mapping):
        return _from_source(where, value)
    if isinstance(value, str) or (secret_ok and isinstance(value, Secret)):
        return value
    raise ConfigError(f"{where} must be a string, got {value!r}")


def _kafka_value(where: str, value: Any) -> str | Secret:
    """A librdkafka property value: librdkafka takes strings; TOML may say 10 or true."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return str(value)
    if isinstance(value, Mapping):
        return _from_source(where, value)
    if isinstance(value, str | Secret):
        return value
    raise ConfigError(f"{where} must be a string, a number, true/false or {_SOURCE_FORMS}")


def _strings(where: str, value: Any) -> tuple[str, ...]:
    if not isinstance(value, list | tuple):
        raise ConfigError(f"{where} must be a list of strings")
    items = [_from_source(where, v) if isinstance(v, Mapping) else v for v in value]
    if not all(isinstance(v, str) for v in items):
        raise ConfigError(f"{where} must be a list of strings")
    return tuple(items)


def _coerce(section: str, key: str, value: Any, annotation: Any) -> Any:
    """Check a TOML value against a field annotation; convert lists to tuples."""
    where = f"[{section}] {key}"
    origin = typing.get_origin(annotation)
    if origin is tuple:
        return _strings(where, value)
    if origin in (Mapping, dict) or annotation in (Mapping, dict):
        if not isinstance(value, Mapping):
            raise ConfigError(f"{where} must be a table")
        if section == "kafka":
            return {str(k): _kafka_value(f"[kafka.{key}] {k}", v) for k, v in value.items()}
        return dict(value)
    if origin in (typing.Union, types.UnionType):
        options = typing.get_args(annotation)
        if Secret in options:
            return _string(where, value, secret_ok=True)
        annotation = next(a for a in options if a is not type(None))
    if annotation is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{where} must be true or false, got {value!r}")
        return value
    if annotation is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{where} must be an integer, got {value!r}")
        return value
    if annotation is float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ConfigError(f"{where} must be a number, got {value!r}")
        return float(value)
    if annotation is str:
        return _string(where, value)
    raise AssertionError(f"unsupported annotation {annotation!r} for {where}")


def _build_section(name: str, cls: type, values: Mapping[str, Any]) -> Any:
    if not isinstance(values, Mapping):
        raise ConfigError(f"[{name}] must be a table")
    for key in values:
        if (name, key) in _MOVED:
            raise ConfigError(f"[{name}] {key} moved to {_MOVED[name, key]}")
    hints = typing.get_type_hints(cls)
    known = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(values) - known)
    if unknown:
        raise ConfigError(
            f"[{name}] unknown key {unknown[0]!r} (known: {', '.join(sorted(known))})"
        )
    kwargs = {k: _coerce(name, k, v, hints[k]) for k, v in values.items()}
    return cls(**kwargs)


def build_config(data: Mapping[str, Any]) -> AppConfig:
    """Build and validate an AppConfig from parsed TOML (or a dict)."""
    sections = {
        f.name: typing.get_type_hints(AppConfig)[f.name] for f in dataclasses.fields(AppConfig)
    }
    unknown = sorted(set(data) - set(sections))
    if unknown:
        raise ConfigError(f"unknown section [{unknown[0]}] (known: {', '.join(sorted(sections))})")
    return AppConfig(**{name: _build_section(name, sections[name], data[name]) for name in data})


def load_config(path: str | os.PathLike[str] | None) -> AppConfig:
    """Load a TOML file; ``None`` gives the defaults."""
    if path is None:
        return AppConfig()
    file = Path(path)
    try:
        with file.open("rb") as fh:
            data = tomllib.load(fh)
    except FileNotFoundError:
        raise ConfigError(f"config file {str(file)!r} does not exist") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"config file {str(file)!r} is not valid TOML: {exc}") from None
    except OSError as exc:
        raise ConfigError(f"config file {str(file)!r} cannot be read: {exc.strerror}") from None
    return build_config(data)
