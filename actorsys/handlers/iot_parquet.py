"""The default job handler: IoT telemetry (JSON or MessagePack) in, Parquet out.

For each job it validates every record (:mod:`actorsys.handlers.validation`),
writes the valid ones as ``raw`` rows and as per-device, per-minute ``agg``
rows (:mod:`actorsys.handlers.parquet_output`), then gives the invalid ones
to the dead-letter sink. Files are named from the job's topic, partition
and offset interval only, so a rerun rewrites the same files (invariant 3).

Options (``HandlerSettings.options``):

* ``ts_min_ms`` / ``ts_max_ms``: accepted ``ts`` range ``[min, max)`` in
  epoch milliseconds (default 2000-01-01 to 2100-01-01, UTC);
* ``max_record_bytes``: reject larger record values as ``too_large``
  (default: no limit);
* ``value_format``: ``"json"`` (the default) or ``"msgpack"``, how record
  values are encoded (the Delta handler takes the same options).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from actorsys.errors import ConfigError
from actorsys.handlers.api import DeadLetterSink, HandlerResult, HandlerSettings, JobInput
from actorsys.handlers.parquet_output import (
    build_agg_table,
    build_raw_table,
    warm_up,
    write_partitioned,
)
from actorsys.handlers.validation import (
    DEFAULT_TS_MAX_MS,
    DEFAULT_TS_MIN_MS,
    VALUE_FORMATS,
    ValidationRules,
    validate_batch,
)

# Names a metric may not take: the columns the handler writes itself, the
# agg grouping key, and the ``date`` that hive-partitioned readers add.
_RESERVED_NAMES = frozenset(
    {"device_id", "ts", "minute", "date", "_topic", "_partition", "_offset"}
)
_KNOWN_OPTIONS = frozenset({"ts_min_ms", "ts_max_ms", "max_record_bytes", "value_format"})
_INT64_MIN, _INT64_MAX = -(2**63), 2**63 - 1


class IotParquetHandler:
    """Validate IoT telemetry records and write them as Parquet."""

    def __init__(self, settings: HandlerSettings) -> None:
        self._raw_root = Path(settings.output_dir) / "raw"
        self._agg_root = Path(settings.output_dir) / "agg"
        self._rules = rules_from_settings(settings)

    def warm_up(self) -> None:
        """First-use costs, before the first job (see ``parquet_output.warm_up``)."""
        warm_up(self._rules.metrics, agg=True)

    def handle(self, job: JobInput, dead_letters: DeadLetterSink) -> HandlerResult:
        """Write the job's valid records; dead-letter the rest."""
        batch = validate_batch(job.records, self._rules)
        written = []
        if batch.valid_records:
            raw = build_raw_table(batch, job.topic, job.partition)
            agg = build_agg_table(raw, self._rules.metrics)
            file_name = _file_name(job)
            written += write_partitioned(raw, "ts", self._raw_root, file_name)
            written += write_partitioned(agg, "minute", self._agg_root, file_name)
        # Dead letters go out only once the files are written: a failed write
        # fails the attempt before anything reaches the dead-letter topic, so
        # the retry does not send the same rejects a second time.
        for rejection in batch.rejections:
            dead_letters.reject(rejection.record, rejection.reason, rejection.detail)
        return HandlerResult(
            output_files=tuple(sorted(str(path) for path in written)),
            valid_records=batch.valid_records,
            invalid_records=len(batch.rejections),
        )

    def discard(self, job: JobInput) -> None:
        """Remove whatever a failed attempt of ``job`` wrote, so a job that ends
        FAILED (its records dead-lettered) leaves no rows behind in raw or agg."""
        name = _file_name(job)
        for root in (self._raw_root, self._agg_root):
            for path in root.glob(f"date=*/{name}"):
                path.unlink(missing_ok=True)


def _file_name(job: JobInput) -> str:
    """A job's files are named from its interval only: a rerun rewrites them."""
    return f"{job.topic}-{job.partition}-{job.start}-{job.end}.parquet"


def rules_from_settings(settings: HandlerSettings) -> ValidationRules:
    """Check the handler's settings; raise :class:`ConfigError` naming the key."""
    metrics = tuple(settings.metrics)
    for name in metrics:
        if not isinstance(name, str) or not name:
            raise ConfigError(f"handler metrics: {name!r} is not a non-empty string")
        if name in _RESERVED_NAMES:
            raise ConfigError(f"handler metrics: {name!r} clashes with a column the handler writes")
    if len(set(metrics)) != len(metrics):
        raise ConfigError(f"handler metrics: duplicate names in {list(metrics)}")

    options = settings.options
    unknown = sorted(set(options) - _KNOWN_OPTIONS)
    if unknown:
        raise ConfigError(
            f"handler options: unknown key(s) {unknown}; expected some of {sorted(_KNOWN_OPTIONS)}"
        )
    ts_min_ms = _int_option(options, "ts_min_ms", DEFAULT_TS_MIN_MS)
    ts_max_ms = _int_option(options, "ts_max_ms", DEFAULT_TS_MAX_MS)
    # Beyond int64 the ts column cannot hold the value, so the bound is meaningless.
    if not _INT64_MIN <= ts_min_ms < ts_max_ms <= _INT64_MAX:
        raise ConfigError(
            f"handler options: need ts_min_ms < ts_max_ms within int64, "
            f"got {ts_min_ms} and {ts_max_ms}"
        )
    max_record_bytes = options.get("max_record_bytes")
    if max_record_bytes is not None and (type(max_record_bytes) is not int or max_record_bytes < 1):
        raise ConfigError(
            f"handler options: max_record_bytes must be a positive integer, "
            f"got {max_record_bytes!r}"
        )
    value_format = options.get("value_format", "json")
    if value_format not in VALUE_FORMATS:
        raise ConfigError(
            f"handler options: value_format must be one of {list(VALUE_FORMATS)}, "
            f"got {value_format!r}"
        )
    return ValidationRules(metrics, ts_min_ms, ts_max_ms, max_record_bytes, value_format)


def _int_option(options: Mapping[str, Any], key: str, default: int) -> int:
    value = options.get(key, default)
    if type(value) is not int:
        raise ConfigError(f"handler options: {key} must be an integer, got {value!r}")
    return value
