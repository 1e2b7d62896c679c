"""Compaction of a closed raw hour: one sorted rewrite plus the hour's final aggregates.

Real files and a real DuckDB throughout; inputs are written the way workers
write them (``layout.write_partitioned_files``, one file per job and hour).
"""

from __future__ import annotations

import errno
import os
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import duckdb
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest
from deltalake import DeltaTable

from actorsys.tables import compaction
from actorsys.tables.compaction import (
    CompactionResult,
    agg_file_schema,
    agg_hourly_file_schema,
    agg_hourly_table_schema,
    agg_table_schema,
    compact_hour,
)
from actorsys.tables.delta import DeltaTableStore
from actorsys.tables.layout import (
    PARTITION_COLUMNS,
    TIMESTAMP_US_UTC,
    DataFile,
    raw_file_schema,
    raw_table_schema,
    stats_from_parquet,
    write_partitioned_files,
)

METRICS = ("temperature", "humidity")
DATE = "2026-12-01"
HOUR_19_MS = int(datetime(2026, 12, 1, 19, tzinfo=UTC).timestamp() * 1000)
HOUR_MS = 3_600_000
JOB_ID, ATTEMPT, VERSION = 7, 2, 5
# A device whose humidity is null in every row: its aggregates are null.
DRY_DEVICE = "dev-dry"


@dataclass
class Tables:
    root: Path
    files: list[DataFile]

    @property
    def raw_root(self) -> Path:
        return self.root / "raw"

    @property
    def agg_root(self) -> Path:
        return self.root / "agg"

    @property
    def agg_hourly_root(self) -> Path:
        return self.root / "agg_hourly"

    def inputs(self, hour: int = 19) -> list[str]:
        wanted = (("date", DATE), ("hour", str(hour)))
        return [f.path for f in self.files if f.partition_values == wanted]

    def input_rows(self, hour: int = 19) -> pa.Table:
        return pa.concat_tables(pq.read_table(self.raw_root / p) for p in self.inputs(hour))

    def compact(self, inputs: Sequence[str] | None = None, **options: Any) -> CompactionResult:
        settings: dict[str, Any] = {"job_id": JOB_ID, "attempt": ATTEMPT, "version": VERSION}
        return compact_hour(
            self.raw_root,
            self.agg_root,
            self.agg_hourly_root,
            DATE,
            19,
            self.inputs() if inputs is None else inputs,
            METRICS,
            **{**settings, **options},
        )


def random_rows(
    rng: np.random.Generator,
    count: int,
    partition: int,
    *,
    devices: int = 5,
    span_ms: int = 2 * HOUR_MS,
) -> pa.Table:
    """Rows of one Kafka partition in offset order, over ``span_ms`` from 19:00:
    ts in whole seconds so that equal (device_id, ts) keys are common,
    humidity null in ~30% of rows and always for ``DRY_DEVICE``."""
    names = pa.array([*(f"dev-{i:03d}" for i in range(devices - 1)), DRY_DEVICE])
    device_id = pc.take(names, pa.array(rng.integers(0, devices, count)))
    humidity = pa.array(rng.random(count), mask=rng.random(count) < 0.3)
    humidity = pc.if_else(pc.equal(device_id, DRY_DEVICE), pa.scalar(None, pa.float64()), humidity)
    seconds = rng.integers(0, span_ms // 1000, count)
    return pa.table(
        {
            "device_id": device_id,
            "ts": pa.array(HOUR_19_MS + seconds * 1000).cast(pa.timestamp("ms", tz="UTC")),
            "temperature": pa.array(rng.normal(20.0, 5.0, count)),
            "humidity": humidity,
            "_topic": pa.array(["telemetry"] * count),
            "_partition": pa.array(np.full(count, partition, np.int32)),
            "_offset": pa.array(np.arange(1_000, 1_000 + count, dtype=np.int64)),
        }
    )


def make_tables(root: Path, *, jobs: int, rows_per_job: int, seed: int = 42) -> Tables:
    """One file per (job, hour), as ingestion leaves them."""
    rng = np.random.default_rng(seed)
    files: list[DataFile] = []
    for job in range(jobs):
        rows = random_rows(rng, rows_per_job, partition=job)
        files += write_partitioned_files(rows, root / "raw", f"part-telemetry-{job}-a1")
    return Tables(root, files)


@pytest.fixture
def tables(tmp_path: Path) -> Tables:
    return make_tables(tmp_path, jobs=6, rows_per_job=2_000)


def all_files(root: Path) -> set[Path]:
    """Every file and directory under ``root``, hidden ones included."""
    found: set[Path] = set()
    for directory, subdirs, names in os.walk(root):
        found.update(Path(directory, name) for name in [*subdirs, *names])
    return found


def read_files(root: Path, files: Sequence[DataFile]) -> pa.Table:
    return pa.concat_tables(pq.read_table(root / f.path) for f in files)


def coordinates(table: pa.Table) -> Counter[tuple[int, int]]:
    return Counter(zip(table["_partition"].to_pylist(), table["_offset"].to_pylist(), strict=True))


def assert_sorted(table: pa.Table, keys: Sequence[str]) -> None:
    """Sorted iff a stable sort leaves the row order unchanged."""
    frame = table.select(list(keys)).to_pandas()
    order = frame.sort_values(list(keys), kind="stable").index.to_numpy()
    assert np.array_equal(order, np.arange(len(frame)))


def file_schema(path: Path) -> pa.Schema:
    return pq.read_schema(path).remove_metadata()


def expected_aggregates(rows: pa.Table, time_column: str, unit: str) -> pd.DataFrame:
    """The aggregates the way an analyst would compute them: pandas groupby."""
    frame = rows.to_pandas()
    frame[time_column] = frame["ts"].dt.floor(unit)
    groups = frame.groupby(["device_id", time_column])
    expected = pd.DataFrame({"count": groups.size()})
    for metric in METRICS:
        column = groups[metric]
        expected[f"{metric}_min"] = column.min()
        expected[f"{metric}_max"] = column.max()
        expected[f"{metric}_mean"] = column.mean()
        expected[f"{metric}_sum"] = column.sum(min_count=1)  # all null: null, not 0
        expected[f"{metric}_count"] = column.count()
    return expected.reset_index()


def assert_aggregates(actual: pa.Table, rows: pa.Table, time_column: str, unit: str) -> None:
    assert actual["_version"].to_pylist() == [VERSION] * actual.num_rows
    frame = actual.drop_columns(["_version"]).to_pandas()
    expected = expected_aggregates(rows, time_column, unit)
    assert list(frame.columns) == list(expected.columns)
    pd.testing.assert_frame_equal(frame, expected, check_dtype=False, rtol=1e-12)
    assert frame[time_column].dt.tz is not None


# --- the raw rewrite ---------------------------------------------------------------------


def test_an_hour_becomes_one_sorted_file_holding_exactly_its_rows(tables: Tables) -> None:
    inputs = tables.inputs()
    expected = tables.input_rows()
    keys = Counter(zip(expected["device_id"].to_pylist(), expected["ts"].to_pylist(), strict=True))
    assert len(inputs) == 6 and max(keys.values()) > 1  # equal (device_id, ts) keys exist

    result = tables.compact()

    assert result.removes == tuple(inputs)
    assert result.rows == expected.num_rows
    assert result.input_bytes == sum(f.size for f in tables.files if f.path in inputs)
    assert result.seconds > 0
    (only,) = result.raw
    assert only.path == f"date={DATE}/hour=19/compact-{DATE}-19-j{JOB_ID}-a{ATTEMPT}-0001.parquet"
    path = tables.raw_root / only.path
    assert only.partition_values == (("date", DATE), ("hour", "19"))
    assert only.size == path.stat().st_size
    assert only.num_records == expected.num_rows
    assert only.stats == stats_from_parquet(path)
    written = pq.read_table(path)
    assert coordinates(written) == coordinates(expected)
    assert_sorted(written, ["device_id", "ts"])
    assert file_schema(path) == raw_file_schema(METRICS)
    assert written.schema.field("ts").type == TIMESTAMP_US_UTC
    metadata = pq.ParquetFile(path).metadata
    assert metadata.row_group(0).column(0).compression == "ZSTD"
    assert [c.column_index for c in metadata.row_group(0).sorting_columns] == [0, 1]
    # The inputs are left for the committer (which removes them in the log),
    # the other hour is untouched, and DuckDB's spill directory is gone.
    assert all((tables.raw_root / p).exists() for p in inputs)
    assert sorted(p.name for p in tables.raw_root.iterdir()) == [f"date={DATE}"]


def test_a_small_target_gives_several_files_in_key_order(tables: Tables) -> None:
    target = 64 * 1024
    many = make_tables(tables.root / "many", jobs=4, rows_per_job=30_000)

    result = many.compact(target_file_bytes=target, row_group_rows=2_000)

    names = [f.path.rsplit("/", 1)[1] for f in result.raw]
    assert len(names) >= 4
    assert names == [
        f"compact-{DATE}-19-j{JOB_ID}-a{ATTEMPT}-{n:04d}.parquet" for n in range(1, 1 + len(names))
    ]
    written = read_files(many.raw_root, result.raw)
    assert_sorted(written, ["device_id", "ts"])  # across files: file 1 holds the smallest keys
    assert coordinates(written) == coordinates(many.input_rows())
    assert sum(f.num_records for f in result.raw) == result.rows == written.num_rows
    for data_file in result.raw[:-1]:  # the last file holds what is left
        assert target / 2 <= data_file.size <= 2 * target
    for data_file in result.raw:
        metadata = pq.read_metadata(many.raw_root / data_file.path)
        assert all(metadata.row_group(i).num_rows <= 2_000 for i in range(metadata.num_row_groups))


def test_a_rerun_writes_the_same_rows_in_the_same_order(tables: Tables) -> None:
    first = tables.compact()
    second = tables.compact(attempt=ATTEMPT + 1)
    assert read_files(tables.raw_root, first.raw).equals(read_files(tables.raw_root, second.raw))


def test_no_inputs_is_nothing_to_do(tmp_path: Path) -> None:
    result = Tables(tmp_path, []).compact(inputs=[])

    assert result == CompactionResult((), (), (), (), 0, 0, result.seconds)
    assert result.seconds >= 0
    assert not any(tmp_path.iterdir())


# --- the aggregates ----------------------------------------------------------------------


def test_agg_is_the_groupby_per_device_and_minute(tables: Tables) -> None:
    result = tables.compact()

    (only,) = result.agg
    assert only.path == f"date={DATE}/hour=19/agg-{DATE}-19-j{JOB_ID}-a{ATTEMPT}.parquet"
    assert only.partition_values == (("date", DATE), ("hour", "19"))
    path = tables.agg_root / only.path
    assert only.stats == stats_from_parquet(path) and only.size == path.stat().st_size
    actual = pq.read_table(path)
    assert only.num_records == actual.num_rows
    assert_sorted(actual, ["device_id", "minute"])
    assert_aggregates(actual, tables.input_rows(), "minute", "min")
    dry = actual.filter(pc.equal(actual["device_id"], DRY_DEVICE))
    assert dry.num_rows and dry["humidity_min"].null_count == dry.num_rows
    assert dry["humidity_count"].to_pylist() == [0] * dry.num_rows


def test_agg_hourly_is_the_groupby_per_device_and_hour(tables: Tables) -> None:
    result = tables.compact()

    (only,) = result.agg_hourly
    assert only.path == f"date={DATE}/hour=19/agg_hourly-{DATE}-19-j{JOB_ID}-a{ATTEMPT}.parquet"
    actual = pq.read_table(tables.agg_hourly_root / only.path)
    assert actual.num_rows == 5  # devices
    assert_sorted(actual, ["device_id", "hour_start"])
    assert_aggregates(actual, tables.input_rows(), "hour_start", "h")
    assert set(actual["hour_start"].to_pylist()) == {datetime(2026, 12, 1, 19, tzinfo=UTC)}


def test_aggregate_schemas_are_exact(tables: Tables) -> None:
    result = tables.compact()

    agg = agg_file_schema(METRICS)
    assert agg.names == [
        "device_id",
        "minute",
        "count",
        *(f"{m}_{s}" for m in METRICS for s in ("min", "max", "mean", "sum", "count")),
        "_version",
    ]
    assert agg.field("minute").type == TIMESTAMP_US_UTC
    assert [f.name for f in agg if not f.nullable] == [
        "device_id",
        "minute",
        "count",
        *(f"{m}_count" for m in METRICS),
        "_version",
    ]
    hourly = agg_hourly_file_schema(METRICS)
    assert hourly.names == ["device_id", "hour_start", *agg.names[2:]]
    assert hourly.field("hour_start") == pa.field("hour_start", TIMESTAMP_US_UTC, nullable=False)
    assert file_schema(tables.agg_root / result.agg[0].path) == agg
    assert file_schema(tables.agg_hourly_root / result.agg_hourly[0].path) == hourly
    partition = [pa.field("date", pa.date32(), False), pa.field("hour", pa.int32(), False)]
    assert agg_table_schema(METRICS) == pa.schema([*agg, *partition])
    assert agg_hourly_table_schema(METRICS) == pa.schema([*hourly, *partition])
    with pytest.raises(ValueError, match="clash"):
        agg_file_schema(["hour"])


def test_the_outputs_publish_as_delta_tables(tables: Tables) -> None:
    """The descriptions are what the committer needs: raw replaces its inputs,
    the aggregates land in their own partitioned tables."""
    raw = DeltaTableStore(tables.raw_root, raw_table_schema(METRICS), PARTITION_COLUMNS)
    raw.ensure_created()
    raw.commit_append(tables.files, {"app": 1})
    before = DeltaTable(tables.raw_root).to_pyarrow_table()
    hour_19 = {"date": DATE, "hour": "19"}

    result = tables.compact(inputs=sorted(raw.active_paths(hour_19)))
    raw.commit_replace(result.removes, result.raw, data_change=False)
    for root, schema, files in [
        (tables.agg_root, agg_table_schema(METRICS), result.agg),
        (tables.agg_hourly_root, agg_hourly_table_schema(METRICS), result.agg_hourly),
    ]:
        store = DeltaTableStore(root, schema, PARTITION_COLUMNS)
        store.ensure_created()
        store.commit_append(files, {})
        table = DeltaTable(root).to_pyarrow_table()
        assert table.schema == schema
        assert table.num_rows == files[0].num_records
        assert set(table["hour"].to_pylist()) == {19}

    assert raw.active_paths(hour_19) == {f.path for f in result.raw}
    assert coordinates(DeltaTable(tables.raw_root).to_pyarrow_table()) == coordinates(before)
    compacted = (
        duckdb.connect()
        .execute(
            "SELECT count(*) FROM read_parquet(?)",
            [f"{tables.raw_root}/date={DATE}/hour=19/compact-*.parquet"],
        )
        .fetchall()
    )
    assert compacted == [(result.rows,)]


# --- failures ----------------------------------------------------------------------------


def _raise_enospc() -> OSError:
    return OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


def test_a_full_disk_while_writing_agg_hourly_leaves_nothing_behind(
    tables: Tables, monkeypatch: pytest.MonkeyPatch
) -> None:
    """By then the raw and agg files are complete: they go too."""
    before = all_files(tables.root)
    raised = _raise_enospc()
    original = pq.ParquetWriter.write_table

    def write_table(self: pq.ParquetWriter, table: pa.Table, *args: Any, **kwargs: Any) -> None:
        if "hour_start" in table.column_names:
            raise raised
        original(self, table, *args, **kwargs)

    monkeypatch.setattr(pq.ParquetWriter, "write_table", write_table)

    with pytest.raises(OSError) as excinfo:
        tables.compact()

    assert excinfo.value is raised and excinfo.value.errno == errno.ENOSPC
    assert all_files(tables.root) - before == {
        tables.agg_root / f"date={DATE}",  # directories stay; they are shared by every attempt
        tables.agg_root / f"date={DATE}/hour=19",
        tables.agg_root,
        tables.agg_hourly_root,
        tables.agg_hourly_root / f"date={DATE}",
        tables.agg_hourly_root / f"date={DATE}/hour=19",
    }
    assert not any(p.is_file() for p in all_files(tables.root) - before)


@pytest.mark.parametrize("failing_fsync", [1, 4])
def test_a_full_disk_at_an_fsync_midway_leaves_no_file_behind(
    tables: Tables, monkeypatch: pytest.MonkeyPatch, failing_fsync: int
) -> None:
    """Files still being written, files renamed already: all removed."""
    before = {p for p in all_files(tables.root) if p.is_file()}
    calls = iter(range(1, 1_000))
    original = os.fsync

    def fsync(fd: int) -> None:
        if next(calls) == failing_fsync:
            raise _raise_enospc()
        original(fd)

    monkeypatch.setattr(os, "fsync", fsync)

    with pytest.raises(OSError) as excinfo:
        tables.compact(target_file_bytes=16 * 1024, row_group_rows=500)

    assert excinfo.value.errno == errno.ENOSPC
    assert {p for p in all_files(tables.root) if p.is_file()} == before
    assert not list(tables.raw_root.glob(".tmp-duckdb-*"))


def test_duckdb_out_of_spill_space_is_raised_as_enospc(
    tables: Tables, monkeypatch: pytest.MonkeyPatch
) -> None:
    """DuckDB reports a full spill disk as out of memory; the caller must see
    the transient OSError."""
    before = {p for p in all_files(tables.root) if p.is_file()}
    original = compaction._batches

    def batches(con: Any, query: str, params: dict[str, object]) -> Iterator[pa.RecordBatch]:
        if "hour_start" in query:
            raise duckdb.OutOfMemoryException(
                "Out of Memory Error: failed to offload data block of size 256.0 KiB. "
                "This limit was set by the 'max_temp_directory_size' setting."
            )
        return original(con, query, params)

    monkeypatch.setattr(compaction, "_batches", batches)

    with pytest.raises(OSError) as excinfo:
        tables.compact()

    assert excinfo.value.errno == errno.ENOSPC
    assert isinstance(excinfo.value.__cause__, duckdb.OutOfMemoryException)
    assert {p for p in all_files(tables.root) if p.is_file()} == before


def test_a_reused_attempt_is_refused_and_leaves_the_first_attempts_files(tables: Tables) -> None:
    first = tables.compact()
    outputs = [
        *(tables.raw_root / f.path for f in first.raw),
        *(tables.agg_root / f.path for f in first.agg),
        *(tables.agg_hourly_root / f.path for f in first.agg_hourly),
    ]
    before = {path: path.read_bytes() for path in outputs}

    with pytest.raises(FileExistsError):
        tables.compact()

    assert {path: path.read_bytes() for path in outputs} == before


def test_inputs_of_another_hour_or_listed_twice_are_refused(tables: Tables) -> None:
    with pytest.raises(ValueError, match="not a file of"):
        tables.compact(inputs=tables.inputs(20))
    with pytest.raises(ValueError, match="twice"):
        tables.compact(inputs=[*tables.inputs(), tables.inputs()[0]])
    with pytest.raises(ValueError, match="partition date and hour"):
        compact_hour(
            tables.raw_root,
            tables.agg_root,
            tables.agg_hourly_root,
            DATE,
            24,
            [],
            METRICS,
            job_id=1,
            attempt=1,
            version=1,
        )


def test_rows_outside_the_hour_are_refused_and_nothing_is_left(tables: Tables) -> None:
    """A file of hour 20 misfiled under hour 19 must not be published as 19."""
    stray = tables.raw_root / f"date={DATE}/hour=19/stray.parquet"
    stray.write_bytes((tables.raw_root / tables.inputs(20)[0]).read_bytes())
    before = all_files(tables.root)

    with pytest.raises(ValueError, match="outside"):
        tables.compact(inputs=[*tables.inputs(), f"date={DATE}/hour=19/stray.parquet"])

    assert {p for p in all_files(tables.root) if p.is_file()} == {p for p in before if p.is_file()}


# --- bounded memory ----------------------------------------------------------------------


def big_hour(root: Path, *, rows: int, jobs: int) -> Tables:
    """``rows`` rows in one hour over 1,000 devices (~65 bytes a row in Arrow)."""
    rng = np.random.default_rng(7)
    files: list[DataFile] = []
    for job in range(jobs):
        part = random_rows(rng, rows // jobs, job, devices=1_000, span_ms=HOUR_MS)
        files += write_partitioned_files(part, root / "raw", f"part-telemetry-{job}-a1")
    return Tables(root, files)


def test_a_64mb_memory_limit_compacts_an_hour_larger_than_that(tmp_path: Path) -> None:
    tables = big_hour(tmp_path, rows=1_500_000, jobs=3)
    assert sum(pq.read_table(tables.raw_root / p).nbytes for p in tables.inputs()) > 64 * 2**20

    result = tables.compact(memory_limit="64MB")

    assert result.rows == 1_500_000
    written = read_files(tables.raw_root, result.raw)
    assert_sorted(written, ["device_id", "ts"])

    def packed(table: pa.Table) -> np.ndarray[Any, Any]:
        partition = table["_partition"].to_numpy().astype(np.int64)
        return np.sort(partition << 40 | table["_offset"].to_numpy())

    assert np.array_equal(packed(written), packed(tables.input_rows()))
    agg = read_files(tables.agg_root, result.agg)
    assert pc.sum(agg["count"]).as_py() == 1_500_000
    assert agg.num_rows == len(
        set(zip(agg["device_id"].to_pylist(), agg["minute"].to_pylist(), strict=True))
    )
    assert read_files(tables.agg_hourly_root, result.agg_hourly).num_rows == 1_000
    assert not list(tables.raw_root.glob(".tmp-*"))
