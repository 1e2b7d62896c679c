"""Compaction of one closed event-time hour of the ``raw`` table, and its final aggregates.

Ingestion leaves many small files in every hour (one per job and hour). Once
the hour is closed (:mod:`actorsys.tables.windows`), one job rewrites the
exact files of a snapshot into few large ones, globally sorted by
``(device_id, ts)`` so that file and row-group statistics prune well, and
from the same rows computes the hour's final aggregates:

- ``agg``: one row per device and UTC minute;
- ``agg_hourly``: one row per device and UTC hour.

Both aggregate tables are partitioned by ``date`` and ``hour`` like ``raw``,
so a recompaction of an hour (late records) replaces exactly one partition;
their ``_version`` column holds the caller's generation number of the hour
(higher is newer).

This module only writes files and describes them (:class:`DataFile`); the
caller publishes them, e.g. ``raw`` with ``commit_replace(result.removes,
result.raw, data_change=False)``. Every name carries the job id and attempt,
so an attempt never overwrites a file another attempt may have had committed,
and a failed call can remove exactly what it wrote.

DuckDB reads, sorts and aggregates, with a memory limit and one thread: its
sort spills to a directory under the table root, so memory stays bounded
however large the hour is. pyarrow writes the files from DuckDB's result
stream, one row group at a time, so the files have the tables' exact schemas
(nullability included) and the footer declares the sort order.
"""

from __future__ import annotations

import errno
import os
import re
import shutil
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from datetime import date as Date
from pathlib import Path
from typing import IO, TYPE_CHECKING

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from actorsys import testhooks
from actorsys.fsutil import ensure_directory, fsync_directory
from actorsys.tables.layout import (
    COMPRESSION,
    DEFAULT_ROW_GROUP_ROWS,
    SORT_KEYS,
    TIMESTAMP_US_UTC,
    DataFile,
    raw_file_schema,
    stats_from_parquet,
)
from actorsys.temp_files import temp_path_for

if TYPE_CHECKING:
    # Imported when a compaction runs: only compacting workers load DuckDB.
    import duckdb

MIB = 1 << 20
DEFAULT_TARGET_FILE_BYTES = 128 * MIB
DEFAULT_MEMORY_LIMIT = "256MB"

# Per metric m, in this column order: m_min, m_max, m_mean, m_sum, m_count.
AGG_STATS = ("min", "max", "mean", "sum", "count")
_SQL_STATS = {"min": "min", "max": "max", "mean": "avg", "sum": "sum", "count": "count"}

# Rows per batch DuckDB hands over: batches are DuckDB's memory, outside its
# limit, and smaller ones cost no time (measured at 1.5M rows: 32Ki to 256Ki
# rows per batch took the same time, and 256Ki held ~25 MB more).
_FETCH_ROWS = 65_536

_MINUTE_US = 60_000_000
_HOUR_US = 60 * _MINUTE_US

# DuckDB expands these in file names (globs): an input would match other files.
_GLOB_CHARACTERS = re.compile(r"[*?\[\]{}]")

# The inputs as DuckDB reads them. Partition values are in the paths (and
# constant here): no hive columns.
_SOURCE = "read_parquet($files, hive_partitioning = false)"


# --- schemas -----------------------------------------------------------------------------


def agg_file_schema(metrics: Sequence[str]) -> pa.Schema:
    """The schema of an ``agg`` file: one row per ``device_id`` and UTC ``minute``.

    ``count`` is the number of rows; per metric m, ``m_min``, ``m_max``,
    ``m_mean`` and ``m_sum`` are null when m is null in every row, and
    ``m_count`` counts its non-null values (so means re-aggregate exactly).
    """
    return _stats_schema("minute", metrics)


def agg_table_schema(metrics: Sequence[str]) -> pa.Schema:
    """The ``agg`` table's Delta schema: the file schema plus ``date`` and ``hour``."""
    return _with_partition_columns(agg_file_schema(metrics))


def agg_hourly_file_schema(metrics: Sequence[str]) -> pa.Schema:
    """The schema of an ``agg_hourly`` file: as ``agg``, per ``device_id`` and ``hour_start``."""
    return _stats_schema("hour_start", metrics)


def agg_hourly_table_schema(metrics: Sequence[str]) -> pa.Schema:
    """The ``agg_hourly`` table's Delta schema: the file schema plus ``date`` and ``hour``."""
    return _with_partition_columns(agg_hourly_file_schema(metrics))


def _stats_schema(time_column: str, metrics: Sequence[str]) -> pa.Schema:
    raw_file_schema(metrics)  # the same rules for metric names as the raw table
    fields: list[pa.Field] = [
        pa.field("device_id", pa.string(), nullable=False),
        pa.field(time_column, TIMESTAMP_US_UTC, nullable=False),
        pa.field("count", pa.int64(), nullable=False),
    ]
    for metric in metrics:
        fields += [pa.field(f"{metric}_{stat}", pa.float64()) for stat in AGG_STATS[:-1]]
        fields.append(pa.field(f"{metric}_count", pa.int64(), nullable=False))
    fields.append(pa.field("_version", pa.int64(), nullable=False))
    schema = pa.schema(fields)
    if len(set(schema.names)) != len(schema.names):
        raise ValueError(f"metric names {list(metrics)} give duplicate aggregate columns")
    return schema


def _with_partition_columns(schema: pa.Schema) -> pa.Schema:
    return schema.append(pa.field("date", pa.date32(), nullable=False)).append(
        pa.field("hour", pa.int32(), nullable=False)
    )


# --- the job -----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class CompactionResult:
    """What one compaction wrote, for the committer to publish.

    ``removes`` are the input paths (relative to the raw root), which the
    ``raw`` files replace; every ``DataFile`` path is relative to its own
    table's root. ``seconds`` is the wall time of the call.
    """

    removes: tuple[str, ...]
    raw: tuple[DataFile, ...]
    agg: tuple[DataFile, ...]
    agg_hourly: tuple[DataFile, ...]
    rows: int
    input_bytes: int
    seconds: float


def compact_hour(
    raw_root: Path,
    agg_root: Path,
    agg_hourly_root: Path,
    date: str,
    hour: int,
    inputs: Sequence[str],
    metrics: Sequence[str],
    *,
    job_id: int,
    attempt: int,
    version: int,
    target_file_bytes: int = DEFAULT_TARGET_FILE_BYTES,
    row_group_rows: int = DEFAULT_ROW_GROUP_ROWS,
    memory_limit: str = DEFAULT_MEMORY_LIMIT,
) -> CompactionResult:
    """Rewrite the raw files ``inputs`` of partition (``date``, ``hour``) and
    write the hour's ``agg`` and ``agg_hourly`` files; describe them all.

    ``inputs`` are the partition's files active in the snapshot the caller
    read (all of them, or the aggregates miss rows), relative to
    ``raw_root``. The raw output is as few files as ``target_file_bytes``
    allows (approximate: a file ends at the row group that brings it nearest
    the target), sorted by ``(device_id, ts)`` across files (ties by Kafka
    coordinates, so a rerun writes the same rows in the same order), in row
    groups of ``row_group_rows``; names
    ``compact-<date>-<hour>-j<job_id>-a<attempt>-<n>.parquet``, ``n`` from
    0001 in key order. ``version`` goes into the aggregates' ``_version``.

    No inputs: nothing to do, an empty result. On any error every file this
    call wrote is removed and the error re-raised; an ``OSError`` unchanged
    (a full disk, ``ENOSPC``, is transient for the caller), and DuckDB
    running out of spill space is raised as ``OSError(ENOSPC)`` too.
    ``FileExistsError`` if an output name exists (job id and attempt reused).
    """
    started = time.monotonic()
    partition = _Partition(date, hour)
    removes = _checked_inputs(inputs, partition, raw_root)
    _check_settings(target_file_bytes, row_group_rows)
    if not removes:
        return CompactionResult((), (), (), (), 0, 0, time.monotonic() - started)
    paths = [raw_root / relative for relative in removes]
    input_rows, input_bytes = _input_totals(paths)
    job = _Job(partition, paths, tuple(metrics), job_id, attempt, version, row_group_rows)
    written = _Written()
    spill = raw_root / f".tmp-duckdb-{job_id}-{attempt}"
    testhooks.compaction_pause("start", job_id, attempt, {})
    try:
        with _duckdb(spill, memory_limit) as con:
            raw = _write_raw(con, job, raw_root, target_file_bytes, written)
            agg = _write_agg(con, job, agg_root, "minute", _MINUTE_US, "agg", written)
            hourly = _write_agg(
                con, job, agg_hourly_root, "hour_start", _HOUR_US, "agg_hourly", written
            )
        _check_row_count(raw, input_rows)
    except BaseException:
        written.remove_all()
        raise
    finally:
        shutil.rmtree(spill, ignore_errors=True)
    testhooks.compaction_pause(
        "written",
        job_id,
        attempt,
        {
            "raw": [f.path for f in raw],
            "agg": [f.path for f in agg],
            "agg_hourly": [f.path for f in hourly],
        },
    )
    return CompactionResult(
        removes=removes,
        raw=tuple(raw),
        agg=tuple(agg),
        agg_hourly=tuple(hourly),
        rows=input_rows,
        input_bytes=input_bytes,
        seconds=time.monotonic() - started,
    )


@dataclass(frozen=True, slots=True)
class _Partition:
    """One event-time hour: partition ``date=D/hour=H`` of every table here."""

    date: str
    hour: int

    def __post_init__(self) -> None:
        try:
            canonical = Date.fromisoformat(self.date).isoformat() == self.date
        except ValueError:
            canonical = False
        if not canonical or not 0 <= self.hour <= 23:
            raise ValueError(f"not a partition date and hour: {self.date!r}, {self.hour!r}")

    @property
    def values(self) -> tuple[tuple[str, str], ...]:
        return (("date", self.date), ("hour", str(self.hour)))

    @property
    def directory(self) -> str:
        return f"date={self.date}/hour={self.hour}"

    @property
    def start_us(self) -> int:
        start = Date.fromisoformat(self.date).toordinal() - Date(1970, 1, 1).toordinal()
        return (start * 24 + self.hour) * _HOUR_US


@dataclass(frozen=True, slots=True)
class _Job:
    """What every query and writer of one call needs."""

    partition: _Partition
    paths: list[Path]
    metrics: tuple[str, ...]
    job_id: int
    attempt: int
    version: int
    row_group_rows: int

    def stem(self, table: str) -> str:
        partition = self.partition
        return f"{table}-{partition.date}-{partition.hour}-j{self.job_id}-a{self.attempt}"

    def parameters(self, **more: object) -> dict[str, object]:
        """The query parameters: the input files, and ``more``. DuckDB refuses
        a parameter the query does not use."""
        return {"files": [str(path) for path in self.paths], **more}


def _checked_inputs(
    inputs: Sequence[str], partition: _Partition, raw_root: Path
) -> tuple[str, ...]:
    """The inputs, refused unless each is a Parquet file directly in the
    partition's directory, once: a file listed twice would count twice, and
    a file of another hour would land in this one."""
    if _GLOB_CHARACTERS.search(str(raw_root)):
        raise ValueError(f"raw root {raw_root} has glob characters, which DuckDB would expand")
    checked = tuple(inputs)
    if len(set(checked)) != len(checked):
        raise ValueError("an input file is listed twice")
    for relative in checked:
        directory, _, name = relative.rpartition("/")
        if (
            directory != partition.directory
            or not name.endswith(".parquet")
            or _GLOB_CHARACTERS.search(name)
        ):
            raise ValueError(f"input {relative!r} is not a file of {partition.directory}")
    return checked


def _check_settings(target_file_bytes: int, row_group_rows: int) -> None:
    if target_file_bytes < 1 or row_group_rows < 1:
        raise ValueError(
            f"target_file_bytes and row_group_rows must be positive, got "
            f"{target_file_bytes} and {row_group_rows}"
        )


def _input_totals(paths: Sequence[Path]) -> tuple[int, int]:
    """(rows, bytes) of the inputs, from their footers: the rows DuckDB must return."""
    rows = sum(pq.read_metadata(path).num_rows for path in paths)
    return rows, sum(path.stat().st_size for path in paths)


def _check_row_count(raw: Sequence[DataFile], expected: int) -> None:
    written = sum(data_file.num_records for data_file in raw)
    if written != expected:
        raise RuntimeError(f"compaction wrote {written} rows from inputs holding {expected}")


# --- DuckDB ------------------------------------------------------------------------------


@contextmanager
def _duckdb(spill: Path, memory_limit: str) -> Iterator[duckdb.DuckDBPyConnection]:
    """An in-memory DuckDB with bounded memory, spilling to ``spill``.

    One thread: a worker is one job's worth of CPU, and DuckDB's memory use
    grows with its threads. Running out of spill space is a full disk, so it
    is raised as the ``OSError(ENOSPC)`` the caller retries later.
    """
    import duckdb

    con = duckdb.connect(
        ":memory:",
        config={
            "memory_limit": memory_limit,
            "threads": 1,
            "temp_directory": str(spill),
            # Every query here has an ORDER BY, which DuckDB keeps regardless.
            "preserve_insertion_order": False,
        },
    )
    try:
        yield con
    except (duckdb.IOException, duckdb.OutOfMemoryException) as exc:
        if _out_of_spill_space(exc):
            raise OSError(errno.ENOSPC, f"DuckDB spill under {spill}: {exc}") from exc
        raise
    finally:
        con.close()


def _out_of_spill_space(exc: Exception) -> bool:
    # DuckDB caps spilling at max_temp_directory_size, by default the free
    # space at start; past it, or on a real ENOSPC, these are its messages.
    message = str(exc)
    return "No space left on device" in message or "max_temp_directory_size" in message


def _quoted(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _raw_query(metrics: Sequence[str]) -> str:
    columns = ", ".join(_quoted(name) for name in raw_file_schema(metrics).names)
    # Ties on (device_id, ts) broken by the Kafka coordinates, unique per row.
    order = "device_id, ts, _topic, _partition, _offset"
    return f"SELECT {columns} FROM {_SOURCE} ORDER BY {order}"


def _agg_query(metrics: Sequence[str], time_column: str, unit_us: int) -> str:
    """Per device and ``unit_us`` bucket of ``ts``; the bucket computed from
    epoch microseconds, not ``date_trunc``, whose result on a TIMESTAMPTZ
    depends on the session's time zone when DuckDB's ICU extension is loaded."""
    epoch = "epoch_us(ts)"
    # DuckDB's % truncates towards zero: this floors negative epochs too.
    bucket = f"make_timestamp({epoch} - ((({epoch} % {unit_us}) + {unit_us}) % {unit_us}))"
    stats = [
        f"{_SQL_STATS[stat]}({_quoted(metric)}) AS {_quoted(f'{metric}_{stat}')}"
        for metric in metrics
        for stat in AGG_STATS
    ]
    columns = ", ".join(["device_id", f"{bucket} AS {time_column}", 'count(*) AS "count"', *stats])
    return (
        f"SELECT {columns}, $version::BIGINT AS _version FROM {_SOURCE} GROUP BY 1, 2 ORDER BY 1, 2"
    )


def _batches(
    con: duckdb.DuckDBPyConnection, query: str, params: dict[str, object]
) -> Iterator[pa.RecordBatch]:
    """The query's rows as a stream: DuckDB holds (or spills) the rest."""
    relation = con.sql(query, params=params)
    if relation is None:
        raise RuntimeError("DuckDB returned no relation for a query")
    reader: pa.RecordBatchReader = relation.to_arrow_reader(_FETCH_ROWS)
    yield from reader


# --- writing -----------------------------------------------------------------------------


def _write_raw(
    con: duckdb.DuckDBPyConnection,
    job: _Job,
    raw_root: Path,
    target_file_bytes: int,
    written: _Written,
) -> list[DataFile]:
    schema = raw_file_schema(job.metrics)
    batches = _within_hour(_batches(con, _raw_query(job.metrics), job.parameters()), job.partition)
    stem = job.stem("compact")
    output = _Output(raw_root, job.partition, schema, SORT_KEYS, job.row_group_rows)
    return output.write(batches, lambda n: f"{stem}-{n:04d}.parquet", target_file_bytes, written)


def _write_agg(
    con: duckdb.DuckDBPyConnection,
    job: _Job,
    root: Path,
    time_column: str,
    unit_us: int,
    table: str,
    written: _Written,
) -> list[DataFile]:
    """One file of ``table`` (``agg`` or ``agg_hourly``): an hour's aggregates
    are far fewer rows than its raw rows, so one file per partition."""
    schema = _stats_schema(time_column, job.metrics)
    query = _agg_query(job.metrics, time_column, unit_us)
    batches = _batches(con, query, job.parameters(version=job.version))
    sort_keys = (("device_id", "ascending"), (time_column, "ascending"))
    output = _Output(root, job.partition, schema, sort_keys, job.row_group_rows)
    stem = job.stem(table)
    return output.write(batches, lambda _: f"{stem}.parquet", None, written)


def _within_hour(
    batches: Iterable[pa.RecordBatch], partition: _Partition
) -> Iterator[pa.RecordBatch]:
    """The batches, checked to lie in the partition's hour: an input of another
    hour (a wrong listing) must not be published as this one."""
    low, high = partition.start_us, partition.start_us + _HOUR_US
    for batch in batches:
        if batch.num_rows:
            bounds = pc.min_max(batch.column("ts").cast(pa.int64()))
            if bounds["min"].as_py() < low or bounds["max"].as_py() >= high:
                raise ValueError(f"input rows lie outside {partition.directory}")
        yield batch


class _Written:
    """Every final path this call may have created, so a failure removes
    them, and only them."""

    def __init__(self) -> None:
        self._paths: list[Path] = []

    def add(self, path: Path) -> None:
        self._paths.append(path)

    def remove_all(self) -> None:
        for path in self._paths:
            path.unlink(missing_ok=True)


@dataclass(frozen=True, slots=True)
class _Output:
    """Where and how one stream of rows becomes files of a table partition."""

    root: Path
    partition: _Partition
    schema: pa.Schema
    sort_keys: Sequence[tuple[str, str]]
    row_group_rows: int

    def write(
        self,
        batches: Iterable[pa.RecordBatch],
        name: Callable[[int], str],
        target_file_bytes: int | None,
        written: _Written,
    ) -> list[DataFile]:
        """Write the batches in order as files ``name(1)``, ``name(2)``, …, each
        ended near ``target_file_bytes`` (None: a single file); no rows, no file."""
        files: list[DataFile] = []
        current: _ParquetFile | None = None
        try:
            for group in _row_groups(batches, self.row_group_rows, self.schema):
                if current is None:
                    relative = f"{self.partition.directory}/{name(len(files) + 1)}"
                    current = _ParquetFile(self, relative, written)
                current.write(group)
                if target_file_bytes is not None and current.is_near(target_file_bytes):
                    files.append(current.finish())
                    current = None
            if current is not None:
                files.append(current.finish())
        except BaseException:
            if current is not None:
                current.abort()
            raise
        return files


def _row_groups(
    batches: Iterable[pa.RecordBatch], rows: int, schema: pa.Schema
) -> Iterator[pa.Table]:
    """The batches regrouped into tables of ``rows`` rows (the last may hold
    fewer), cast to ``schema``: DuckDB's batch sizes and types (``Etc/UTC``,
    naive bucket timestamps) are its own."""
    pending: list[pa.RecordBatch] = []
    held = 0
    for batch in batches:
        pending.append(batch)
        held += batch.num_rows
        while held >= rows:
            table = pa.Table.from_batches(pending)
            yield table.slice(0, rows).cast(schema)
            rest = table.slice(rows)
            pending, held = rest.to_batches(), rest.num_rows
    if held:
        yield pa.Table.from_batches(pending).cast(schema)


class _ParquetFile:
    """One output file, written under a temporary name and renamed once
    complete (as ``layout.write_parquet_atomic``), so the final name is
    either absent or a whole file."""

    def __init__(self, output: _Output, relative: str, written: _Written) -> None:
        self._output = output
        self._relative = relative
        self._path = output.root / relative
        if self._path.exists():
            raise FileExistsError(f"{self._path} exists: job id and attempt must be unique")
        written.add(self._path)
        ensure_directory(self._path.parent)
        self._tmp = temp_path_for(self._path)
        self._sink: IO[bytes] = open(self._tmp, "wb")  # noqa: SIM115 (closed in finish/abort)
        try:
            self._writer = pq.ParquetWriter(
                self._sink,
                output.schema,
                compression=COMPRESSION,
                write_statistics=True,
                sorting_columns=pq.SortingColumn.from_ordering(output.schema, output.sort_keys),
            )
        except BaseException:
            self._sink.close()
            self._tmp.unlink(missing_ok=True)
            raise
        self._rows = 0
        self._groups = 0

    def write(self, group: pa.Table) -> None:
        self._writer.write_table(group, row_group_size=self._output.row_group_rows)
        self._rows += group.num_rows
        self._groups += 1

    def is_near(self, target_bytes: int) -> bool:
        """Whether another row group (of the average size so far) would take
        the file further from ``target_bytes`` than it is now."""
        size = self._sink.tell()
        return size + size // (2 * self._groups) >= target_bytes

    def finish(self) -> DataFile:
        """Close, fsync, rename; fsync the directory (the rename must survive
        a crash before the commit); describe the file."""
        try:
            self._writer.close()
            self._sink.flush()
            os.fsync(self._sink.fileno())
            self._sink.close()
            os.replace(self._tmp, self._path)
        except BaseException:
            self.abort()
            raise
        fsync_directory(self._path.parent)
        status = self._path.stat()
        return DataFile(
            path=self._relative,
            size=status.st_size,
            partition_values=self._output.partition.values,
            num_records=self._rows,
            stats=stats_from_parquet(self._path),
            modification_time_ms=status.st_mtime_ns // 1_000_000,
        )

    def abort(self) -> None:
        """Drop the temporary file; errors closing it are moot, the original one matters."""
        with suppress(Exception):
            self._writer.close()
        with suppress(OSError):
            self._sink.close()  # flushes: on a full disk, fails again
        self._tmp.unlink(missing_ok=True)
