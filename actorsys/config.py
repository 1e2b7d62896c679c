"""Configuration: one typed, immutable object, loaded once from TOML.

Every section is a frozen dataclass validated at construction. Unknown keys,
wrong types and impossible values raise ``ConfigError`` with one line that
names the key, so ``actorsys run`` can print it and exit 2.
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
from typing import Any

from actorsys.errors import ConfigError

EMBEDDED = "embedded"


def _positive(section: str, **values: float) -> None:
    for name, value in values.items():
        if value <= 0:
            raise ConfigError(f"[{section}] {name} must be > 0, got {value}")


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
    # Passed through to librdkafka verbatim (as kcat -X); wins over the above.
    properties: Mapping[str, str] = field(default_factory=dict)
    # Passed to the dead-letter producer (e.g. message.max.bytes, compression.type).
    producer_properties: Mapping[str, str] = field(default_factory=dict)

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

    def dead_letter_topic_for(self, topic: str) -> str:
        return self.dead_letter_topic or f"{topic}.dlq"


@dataclass(frozen=True, slots=True)
class BatchingConfig:
    max_records: int = 5_000
    max_bytes: int = 1_048_576
    linger_ms: int = 500
    # Retransmit an unACKed batch after this, doubling up to the max.
    ack_timeout_ms: int = 2_000
    max_ack_timeout_ms: int = 30_000

    def __post_init__(self) -> None:
        _positive(
            "batching",
            max_records=self.max_records,
            max_bytes=self.max_bytes,
            linger_ms=self.linger_ms,
            ack_timeout_ms=self.ack_timeout_ms,
            max_ack_timeout_ms=self.max_ack_timeout_ms,
        )


@dataclass(frozen=True, slots=True)
class FlowConfig:
    """Caps on work in flight between Kafka and the job store (invariant 5)."""

    max_inflight_records_per_partition: int = 50_000
    max_inflight_bytes_per_partition: int = 16 * 1024 * 1024
    max_inflight_records: int = 200_000
    max_inflight_bytes: int = 64 * 1024 * 1024
    # Jobs persisted but not yet DONE; past this the JobManager withholds ACKs.
    max_pending_jobs: int = 64
    poll_interval_ms: int = 20
    poll_max_records: int = 10_000

    def __post_init__(self) -> None:
        _positive("flow", **{f.name: getattr(self, f.name) for f in dataclasses.fields(self)})


@dataclass(frozen=True, slots=True)
class JobsConfig:
    store: str = "sqlite:///./data/jobs.db"
    max_attempts: int = 5
    retry_backoff_initial_s: float = 1.0
    retry_backoff_max_s: float = 300.0
    job_timeout_s: float = 300.0

    def __post_init__(self) -> None:
        if not (self.store.startswith("sqlite://") or self.store.startswith("postgres")):
            raise ConfigError(
                f"[jobs] store must be sqlite:///path.db or postgresql://..., got {self.store!r}"
            )
        _positive(
            "jobs",
            max_attempts=self.max_attempts,
            retry_backoff_initial_s=self.retry_backoff_initial_s,
            retry_backoff_max_s=self.retry_backoff_max_s,
            job_timeout_s=self.job_timeout_s,
        )


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
    handler: str = "actorsys.handlers.iot_parquet:IotParquetHandler"
    metrics: tuple[str, ...] = ("temperature", "humidity", "battery")
    # Passed to the handler factory as HandlerSettings.options.
    options: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class DaemonConfig:
    admin_port: int = 1900
    metrics_port: int = 9108
    metrics_host: str = "127.0.0.1"
    shutdown_grace_s: float = 30.0
    log_level: str = "INFO"
    log_format: str = "text"
    # The address other hosts reach this daemon's actor system at (the
    # convention address worker hosts join with `--convention HOST:PORT`).
    advertised_host: str = "127.0.0.1"
    # This host's name in metrics, status and job records ("" = the hostname).
    host_name: str = ""

    def __post_init__(self) -> None:
        for name in ("admin_port", "metrics_port"):
            port = getattr(self, name)
            if not 0 <= port <= 65535:
                raise ConfigError(f"[daemon] {name} must be a TCP port, got {port}")
        _positive("daemon", shutdown_grace_s=self.shutdown_grace_s)
        if self.log_level.upper() not in ("DEBUG", "INFO", "WARNING", "ERROR"):
            raise ConfigError("[daemon] log_level must be DEBUG, INFO, WARNING or ERROR")
        if self.log_format not in ("text", "json"):
            raise ConfigError("[daemon] log_format must be text or json")


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

    def __post_init__(self) -> None:
        _positive("simulator", devices=self.devices, partitions=self.partitions)
        for name in ("rate", "count"):
            if getattr(self, name) < 0:
                raise ConfigError(f"[simulator] {name} must be >= 0 (0: unlimited)")
        if not 0.0 <= self.malformed_ratio <= 1.0:
            raise ConfigError("[simulator] malformed_ratio must be between 0 and 1")


@dataclass(frozen=True, slots=True)
class AppConfig:
    kafka: KafkaConfig = field(default_factory=KafkaConfig)
    batching: BatchingConfig = field(default_factory=BatchingConfig)
    flow: FlowConfig = field(default_factory=FlowConfig)
    jobs: JobsConfig = field(default_factory=JobsConfig)
    workers: WorkersConfig = field(default_factory=WorkersConfig)
    output: OutputConfig = field(default_factory=OutputConfig)
    daemon: DaemonConfig = field(default_factory=DaemonConfig)
    embedded_broker: EmbeddedBrokerConfig = field(default_factory=EmbeddedBrokerConfig)
    simulator: SimulatorConfig = field(default_factory=SimulatorConfig)

    def with_overrides(self, overrides: Mapping[str, Mapping[str, Any]]) -> AppConfig:
        """A copy with some keys replaced, e.g. ``{"kafka": {"group_id": "g"}}``."""
        merged = dataclasses.asdict(self)
        for section, values in overrides.items():
            merged[section] = {**merged.get(section, {}), **values}
        return build_config(merged)


def _coerce(section: str, key: str, value: Any, annotation: Any) -> Any:
    """Check a TOML value against a field annotation; convert lists to tuples."""
    where = f"[{section}] {key}"
    origin = typing.get_origin(annotation)
    if origin is tuple:
        if not isinstance(value, list | tuple) or not all(isinstance(v, str) for v in value):
            raise ConfigError(f"{where} must be a list of strings")
        return tuple(value)
    if origin in (Mapping, dict) or annotation in (Mapping, dict):
        if not isinstance(value, Mapping):
            raise ConfigError(f"{where} must be a table")
        if section == "kafka":  # librdkafka takes strings; TOML may say 10 or true
            return {
                str(k): str(v).lower() if isinstance(v, bool) else str(v) for k, v in value.items()
            }
        return dict(value)
    if origin in (typing.Union, types.UnionType):
        annotation = next(a for a in typing.get_args(annotation) if a is not type(None))
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
        if not isinstance(value, str):
            raise ConfigError(f"{where} must be a string, got {value!r}")
        return value
    raise AssertionError(f"unsupported annotation {annotation!r} for {where}")


def _build_section(name: str, cls: type, values: Mapping[str, Any]) -> Any:
    if not isinstance(values, Mapping):
        raise ConfigError(f"[{name}] must be a table")
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
