"""The physical layout of the ``raw`` Delta table: schema, partitions, data files.

Layout: ``<table root>/date=YYYY-MM-DD/hour=H/<stem>.parquet``, partitioned
by the UTC date and hour of ``ts``. Partition values live in the directory
names and in the Delta log, not in the files (the Delta convention), so the
files hold the *file schema* (:func:`raw_file_schema`) and the table's
metadata the *table schema* (:func:`raw_table_schema`, the same plus
``date`` and ``hour``).

Within a file the rows are sorted by ``(device_id, ts)``, and the Delta
statistics of every file (min/max/null counts, taken from the Parquet
footer) let readers skip files and row groups on ``device_id`` and ``ts``.

Writing a file publishes nothing: a file becomes part of the table only when
the committer adds it in a Delta commit (:mod:`actorsys.tables.delta`). A
worker therefore names its files uniquely per attempt, so an attempt never
overwrites a file that another attempt may already have had committed.
"""

from __future__ import annotations

import json
import math
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from actorsys.fsutil import ensure_directory, fsync_directory
from actorsys.handlers.parquet_output import raw_schema
from actorsys.temp_files import temp_path_for

if TYPE_CHECKING:
    # deltalake starts a thread when imported: only the committer's process
    # loads it (never the daemon, which Thespian forks every actor from).
    from deltalake.transaction import AddAction

# Delta's ``timestamp`` type: microseconds, adjusted to UTC. DuckDB, Spark,
# pandas and polars all read it back as a UTC timestamp.
TIMESTAMP_US_UTC = pa.timestamp("us", tz="UTC")

# The event's UTC date (date32) and hour of day (int32), derived from ``ts``.
PARTITION_COLUMNS = ("date", "hour")

# zstd: ~30% smaller than snappy on telemetry at the same write throughput
# (measured for the plain Parquet output), and the files are read many times.
COMPRESSION = "zstd"

DEFAULT_ROW_GROUP_ROWS = 262_144

# The columns every raw file has besides the metrics.
FIXED_COLUMNS = ("device_id", "ts", "_topic", "_partition", "_offset")

# Rows are sorted by these within a file: a device's readings are contiguous,
# so row-group and page statistics on device_id and ts prune well.
SORT_KEYS = (("device_id", "ascending"), ("ts", "ascending"))

# A stem is used verbatim in a path and in the Delta log (whose paths are
# URL-encoded): keeping to these characters makes both forms identical. A
# leading "." or "_" would make Delta readers and vacuum treat it as hidden.
_STEM = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")

JsonScalar = str | int | float | bool


def raw_file_schema(metrics: Sequence[str]) -> pa.Schema:
    """The schema of a raw data file: one row per valid record.

    ``metrics`` become nullable float64 columns between ``ts`` and the Kafka
    coordinates; a metric may not reuse a fixed or partition column's name.
    """
    _check_metric_names(metrics)
    return raw_schema(metrics, TIMESTAMP_US_UTC)


def raw_table_schema(metrics: Sequence[str]) -> pa.Schema:
    """The raw table's Delta schema: the file schema plus the partition columns."""
    return (
        raw_file_schema(metrics)
        .append(pa.field("date", pa.date32(), nullable=False))
        .append(pa.field("hour", pa.int32(), nullable=False))
    )


def _check_metric_names(metrics: Sequence[str]) -> None:
    reserved = set(FIXED_COLUMNS) | set(PARTITION_COLUMNS)
    clashes = sorted(set(metrics) & reserved)
    if clashes:
        raise ValueError(f"metric names {clashes} clash with columns of the raw table")
    if len(set(metrics)) != len(metrics):
        raise ValueError(f"duplicate metric names in {list(metrics)}")


@dataclass(frozen=True, slots=True)
class DataFile:
    """A written data file, described exactly as its Delta ``add`` action needs.

    Workers create these after writing and hand them to the committer (in an
    actor message, and in the job store as JSON): the committer can then
    publish the file without opening it. Hashable, so sets of pending files
    deduplicate.
    """

    path: str
    """Relative to the table root, posix separators: ``date=…/hour=…/<stem>.parquet``."""
    size: int
    partition_values: tuple[tuple[str, str], ...]
    """Delta string forms in partition-column order: ``(("date", "2026-12-01"), ("hour", "7"))``."""
    num_records: int
    stats: str
    """Delta statistics JSON (see :func:`stats_from_parquet`)."""
    modification_time_ms: int

    def __post_init__(self) -> None:
        # A path escaping the table root would make the committer publish (and
        # vacuum later delete) a file elsewhere.
        pure = PurePosixPath(self.path)
        if not self.path or pure.is_absolute() or ".." in pure.parts or "\\" in self.path:
            raise ValueError(f"data file path must be relative to the table root: {self.path!r}")
        if self.size < 0 or self.num_records < 0:
            raise ValueError(f"data file {self.path}: negative size or record count")

    def add_action(self, *, data_change: bool = True) -> AddAction:
        """The Delta ``add`` action that publishes this file."""
        from deltalake.transaction import AddAction

        return AddAction(
            path=self.path,
            size=self.size,
            partition_values=dict(self.partition_values),
            modification_time=self.modification_time_ms,
            data_change=data_change,
            stats=self.stats,
        )

    def to_json(self) -> str:
        """One JSON object; ``stats`` stays a string so it round-trips byte for byte."""
        return json.dumps(
            {
                "path": self.path,
                "size": self.size,
                "partition_values": [list(pair) for pair in self.partition_values],
                "num_records": self.num_records,
                "stats": self.stats,
                "modification_time_ms": self.modification_time_ms,
            },
            separators=(",", ":"),
        )

    @classmethod
    def from_json(cls, text: str | bytes) -> DataFile:
        """Inverse of :meth:`to_json`; ``ValueError`` on anything malformed."""
        try:
            raw = json.loads(text)
            pairs = tuple((str(key), str(value)) for key, value in raw["partition_values"])
            return cls(
                path=_typed(raw["path"], str),
                size=_typed(raw["size"], int),
                partition_values=pairs,
                num_records=_typed(raw["num_records"], int),
                stats=_typed(raw["stats"], str),
                modification_time_ms=_typed(raw["modification_time_ms"], int),
            )
        except (KeyError, TypeError, json.JSONDecodeError) as exc:
            raise ValueError(f"not a DataFile JSON object: {exc}") from exc


def _typed(value: Any, kind: type[Any]) -> Any:
    # bool is an int subclass: keep it out of the int fields.
    if type(value) is not kind:
        raise TypeError(f"expected {kind.__name__}, got {value!r}")
    return value


def write_partitioned_files(
    rows: pa.Table,
    table_root: Path,
    stem: str,
    *,
    row_group_rows: int = DEFAULT_ROW_GROUP_ROWS,
) -> list[DataFile]:
    """Write ``rows`` as one file per (UTC date, hour) of ``ts``; describe each.

    ``rows`` has the file schema (:func:`raw_file_schema`); ``ts`` may be any
    timestamp unit and is cast to microseconds UTC (a naive ``ts`` is taken
    as UTC). Each part is sorted by ``(device_id, ts)`` (stable, so equal
    keys keep their offset order) and written atomically to
    ``<table_root>/date=D/hour=H/<stem>.parquet``. Files come back in
    partition order; no rows, no files.

    ``stem`` is single-use: writing over an existing file raises
    ``FileExistsError``, because that file may already be committed and a
    Delta table's files must never change under it.
    """
    if not _STEM.fullmatch(stem):
        raise ValueError(f"file stem {stem!r} must match {_STEM.pattern}")
    if row_group_rows < 1:
        raise ValueError(f"row_group_rows must be positive, got {row_group_rows}")
    table = conform_raw_rows(rows)
    if table.num_rows == 0:
        return []
    return [
        _write_part(part, hour_start, table_root, stem, row_group_rows)
        for hour_start, part in _split_by_hour(table)
    ]


def conform_raw_rows(rows: pa.Table) -> pa.Table:
    """``rows`` cast to the file schema its own columns imply (``ts`` to µs UTC).

    Every column that is not a fixed one is a metric. Nulls in a non-null
    column are refused here, since Delta readers trust the schema's
    nullability.
    """
    missing = [name for name in FIXED_COLUMNS if name not in rows.column_names]
    if missing:
        raise ValueError(f"raw rows lack columns {missing}")
    if not pa.types.is_timestamp(rows.schema.field("ts").type):
        raise ValueError(f"raw rows: ts must be a timestamp, got {rows.schema.field('ts').type}")
    metrics = [name for name in rows.column_names if name not in FIXED_COLUMNS]
    schema = raw_file_schema(metrics)
    for field in schema:
        if not field.nullable and rows.column(field.name).null_count:
            raise ValueError(f"raw rows: column {field.name} has nulls")
    return rows.select(schema.names).cast(schema)


def _split_by_hour(table: pa.Table) -> list[tuple[datetime, pa.Table]]:
    """The table's rows grouped by UTC hour of ``ts``, each group sorted by
    (device_id, ts): one stable sort by (hour, device_id, ts), then zero-copy
    slices of the runs of equal hours."""
    hours = pc.floor_temporal(table["ts"], unit="hour")
    keys = pa.table({"hour": hours, "device_id": table["device_id"], "ts": table["ts"]})
    order = pc.sort_indices(keys, sort_keys=[("hour", "ascending"), *SORT_KEYS])
    ordered = table.take(order)
    counts = pc.value_counts(hours)
    runs = sorted(
        zip(counts.field("values").to_pylist(), counts.field("counts").to_pylist(), strict=True)
    )
    parts = []
    offset = 0
    for hour_start, count in runs:  # ascending hours: the order of the sorted rows
        parts.append((hour_start.astimezone(UTC), ordered.slice(offset, count)))
        offset += count
    return parts


def _write_part(
    part: pa.Table, hour_start: datetime, table_root: Path, stem: str, row_group_rows: int
) -> DataFile:
    partition_values = (("date", hour_start.date().isoformat()), ("hour", str(hour_start.hour)))
    relative = "/".join(f"{key}={value}" for key, value in partition_values) + f"/{stem}.parquet"
    path = table_root / relative
    if path.exists():
        raise FileExistsError(f"{path} exists: file stems must be unique per attempt")
    write_parquet_atomic(part, path, row_group_rows=row_group_rows)
    status = path.stat()
    return DataFile(
        path=relative,
        size=status.st_size,
        partition_values=partition_values,
        num_records=part.num_rows,
        stats=stats_from_parquet(path),
        modification_time_ms=status.st_mtime_ns // 1_000_000,
    )


def write_parquet_atomic(
    table: pa.Table, path: Path, *, row_group_rows: int = DEFAULT_ROW_GROUP_ROWS
) -> None:
    """Write ``table`` to ``path`` so that ``path`` is either absent or complete.

    Temporary file ``.tmp-<pid>-<name>.partial`` in the same directory (so
    ``os.replace`` is a rename within one file system; the name is the one
    ``temp_files.remove_orphaned_temp_files`` cleans up after a crash),
    fsync, rename, fsync the directory (so the rename survives a crash
    before the committer publishes the file).
    """
    ensure_directory(path.parent)
    tmp = temp_path_for(path)
    try:
        with open(tmp, "wb") as sink:
            pq.write_table(
                table,
                sink,
                compression=COMPRESSION,
                row_group_size=row_group_rows,
                write_statistics=True,
                sorting_columns=_sorting_columns(table.schema),
            )
            sink.flush()
            os.fsync(sink.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    fsync_directory(path.parent)


def _sorting_columns(schema: pa.Schema) -> tuple[pq.SortingColumn, ...] | None:
    """Declare the (device_id, ts) order in the footer when the table has it."""
    if not all(name in schema.names for name, _ in SORT_KEYS):
        return None
    columns: tuple[pq.SortingColumn, ...] = pq.SortingColumn.from_ordering(schema, SORT_KEYS)
    return columns


# --- Delta statistics --------------------------------------------------------------------


def stats_from_parquet(path: Path) -> str:
    """The Delta ``stats`` JSON of a Parquet file, from its footer alone.

    ``numRecords``; ``nullCount`` for every top-level column; ``minValues``
    and ``maxValues`` for every column whose footer statistics cover all its
    non-null values, in the forms Delta expects (strings, numbers, dates as
    ``YYYY-MM-DD``, timestamps as ``2026-12-01T19:00:00.123456Z``). A column
    is left out of min/max rather than given a wrong bound: when a row group
    lacks statistics (the writer drops them for values over 4 KiB), for
    binary and nanosecond-timestamp columns, and for non-finite floats, which
    JSON cannot hold. Parquet min/max ignore NaN, so a float column holding
    NaN gets bounds that exclude it; the raw metrics are finite (validation
    rejects NaN), so they are exact there.
    """
    metadata = pq.read_metadata(path)
    stats: dict[str, Any] = {"numRecords": metadata.num_rows}
    mins: dict[str, JsonScalar] = {}
    maxs: dict[str, JsonScalar] = {}
    nulls: dict[str, int] = {}
    for index in range(metadata.num_columns):
        column = metadata.schema.column(index)
        if column.max_repetition_level > 0 or "." in column.path:
            continue  # nested: not part of the flat tables written here
        null_count, bounds = _column_stats(metadata, index)
        if null_count is not None:
            nulls[column.name] = null_count
        if bounds is not None:
            mins[column.name], maxs[column.name] = bounds
    stats["minValues"] = mins
    stats["maxValues"] = maxs
    stats["nullCount"] = nulls
    return json.dumps(stats, separators=(",", ":"), allow_nan=False)


def _column_stats(
    metadata: pq.FileMetaData, index: int
) -> tuple[int | None, tuple[JsonScalar, JsonScalar] | None]:
    """(null count, (min, max)) of one column over all row groups; None where unknown."""
    nanoseconds = "nanoseconds" in metadata.schema.column(index).logical_type.to_json()
    null_count: int | None = 0
    lows: list[JsonScalar] = []
    highs: list[JsonScalar] = []
    bounded = not nanoseconds
    for group in range(metadata.num_row_groups):
        chunk = metadata.row_group(group).column(index)
        statistics = chunk.statistics
        if statistics is None or not statistics.has_null_count:
            null_count = None
        elif null_count is not None:
            null_count += statistics.null_count
        if not bounded:
            continue
        if statistics is not None and statistics.has_min_max:
            low, high = _json_value(statistics.min), _json_value(statistics.max)
            if low is None or high is None:
                bounded = False
            else:
                lows.append(low)
                highs.append(high)
        elif not _all_null(statistics, metadata.row_group(group).num_rows):
            bounded = False  # non-null values without bounds: the file has none either
    if not bounded or not lows:
        return null_count, None
    # Values of one column share one Python type, so these compare; str order
    # is code-point order, which is Parquet's UTF-8 byte order.
    return null_count, (min(lows), max(highs))


def _all_null(statistics: Any, num_rows: int) -> bool:
    """Whether a (flat) column chunk holds nulls only, so it has no bounds to give."""
    return (
        statistics is not None and statistics.has_null_count and statistics.null_count == num_rows
    )


def _json_value(value: Any) -> JsonScalar | None:
    """A footer min/max value in Delta's stats form; None when Delta has none."""
    if isinstance(value, datetime):
        return _delta_timestamp(value)
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, bool | int | str):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    return None  # binary, decimal, ...: not used for skipping here


def _delta_timestamp(value: datetime) -> str:
    """``2026-12-01T19:00:00.123456Z`` (UTC); no suffix for a naive (NTZ) value."""
    if value.tzinfo is None:
        return value.isoformat(timespec="microseconds")
    return value.astimezone(UTC).replace(tzinfo=None).isoformat(timespec="microseconds") + "Z"
