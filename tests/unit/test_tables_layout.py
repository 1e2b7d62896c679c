"""The raw table's files: partitioning, order, timestamp type, Delta statistics."""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path

import duckdb
import pandas as pd
import polars as pl
import pyarrow as pa
import pyarrow.dataset as ds
import pyarrow.parquet as pq
import pytest
from deltalake import DeltaTable

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
HOUR_19 = datetime(2026, 12, 1, 19, tzinfo=UTC)
HOUR_19_MS = int(HOUR_19.timestamp() * 1000)
HOUR_MS = 3_600_000


def raw_rows(
    device_ids: Sequence[str],
    ts_ms: Sequence[int],
    *,
    first_offset: int = 100,
    temperature: Sequence[float | None] | None = None,
) -> pa.Table:
    """Rows as the handler builds them today: ts in milliseconds, offset order."""
    count = len(device_ids)
    temps = list(temperature) if temperature is not None else [20.0 + i for i in range(count)]
    return pa.table(
        {
            "device_id": pa.array(device_ids, pa.string()),
            "ts": pa.array(ts_ms, pa.int64()).cast(pa.timestamp("ms", tz="UTC")),
            "temperature": pa.array(temps, pa.float64()),
            "humidity": pa.array([None] * count, pa.float64()),
            "_topic": pa.array(["telemetry"] * count, pa.string()),
            "_partition": pa.array([3] * count, pa.int32()),
            "_offset": pa.array(range(first_offset, first_offset + count), pa.int64()),
        }
    )


def two_hour_rows() -> pa.Table:
    """Seven records spread over 19:xx and 20:xx, out of (device, ts) order."""
    return raw_rows(
        ["b", "a", "b", "a", "c", "a", "b"],
        [
            HOUR_19_MS + 5_000,
            HOUR_19_MS + 9_000,
            HOUR_19_MS + HOUR_MS + 1,
            HOUR_19_MS + HOUR_MS + 7,
            HOUR_19_MS + 123,
            HOUR_19_MS + 1_000,
            HOUR_19_MS + HOUR_MS - 1,
        ],
    )


def commit(root: Path, files: Sequence[DataFile]) -> DeltaTableStore:
    store = DeltaTableStore(root, raw_table_schema(METRICS), PARTITION_COLUMNS)
    store.ensure_created()
    store.commit_append(files, {"app": 1})
    return store


# --- schemas -------------------------------------------------------------------------------


def test_file_schema_has_the_raw_columns_and_table_schema_adds_partitions() -> None:
    schema = raw_file_schema(METRICS)
    assert schema.names == [
        "device_id",
        "ts",
        "temperature",
        "humidity",
        "_topic",
        "_partition",
        "_offset",
    ]
    assert schema.field("ts").type == TIMESTAMP_US_UTC
    assert not schema.field("device_id").nullable and schema.field("temperature").nullable
    table = raw_table_schema(METRICS)
    assert table.names == [*schema.names, "date", "hour"]
    assert table.field("date").type == pa.date32() and table.field("hour").type == pa.int32()
    assert not table.field("date").nullable and not table.field("hour").nullable


@pytest.mark.parametrize("metrics", [("hour",), ("ts",), ("x", "x")])
def test_metric_names_that_clash_are_refused(metrics: tuple[str, ...]) -> None:
    with pytest.raises(ValueError):
        raw_file_schema(metrics)


# --- writing -------------------------------------------------------------------------------


def test_rows_across_two_hours_land_in_two_partitions_sorted(tmp_path: Path) -> None:
    files = write_partitioned_files(two_hour_rows(), tmp_path, "part-telemetry-3-100-107-a1")

    assert [f.path for f in files] == [
        "date=2026-12-01/hour=19/part-telemetry-3-100-107-a1.parquet",
        "date=2026-12-01/hour=20/part-telemetry-3-100-107-a1.parquet",
    ]
    assert [f.partition_values for f in files] == [
        (("date", "2026-12-01"), ("hour", "19")),
        (("date", "2026-12-01"), ("hour", "20")),
    ]
    first = pq.read_table(tmp_path / files[0].path)
    second = pq.read_table(tmp_path / files[1].path)
    assert first.schema.equals(raw_file_schema(METRICS))  # partition columns not in files
    # Sorted by (device_id, ts), not by offset.
    assert list(zip(first["device_id"].to_pylist(), first["_offset"].to_pylist(), strict=True)) == [
        ("a", 105),
        ("a", 101),
        ("b", 100),
        ("b", 106),
        ("c", 104),
    ]
    keys = list(zip(first["device_id"].to_pylist(), first["ts"].to_pylist(), strict=True))
    assert keys == sorted(keys)
    assert second["device_id"].to_pylist() == ["a", "b"]
    assert second["_offset"].to_pylist() == [103, 102]
    assert [f.num_records for f in files] == [5, 2]
    assert all(f.size == (tmp_path / f.path).stat().st_size for f in files)
    assert not list(tmp_path.rglob(".tmp-*"))


def test_files_declare_their_order_and_use_zstd_row_groups(tmp_path: Path) -> None:
    rows = raw_rows([f"d{i}" for i in range(7)], [HOUR_19_MS + i for i in range(7)])
    (data_file,) = write_partitioned_files(rows, tmp_path, "s", row_group_rows=3)
    metadata = pq.read_metadata(tmp_path / data_file.path)
    assert metadata.num_row_groups == 3
    assert metadata.row_group(0).column(0).compression == "ZSTD"
    sorting = metadata.row_group(0).sorting_columns
    assert [(c.column_index, c.descending) for c in sorting] == [(0, False), (1, False)]
    stats = json.loads(data_file.stats)  # across the three row groups
    assert stats["minValues"]["device_id"] == "d0" and stats["maxValues"]["device_id"] == "d6"


def test_a_stem_is_single_use_and_must_be_plain(tmp_path: Path) -> None:
    write_partitioned_files(two_hour_rows(), tmp_path, "stem")
    with pytest.raises(FileExistsError):
        write_partitioned_files(two_hour_rows(), tmp_path, "stem")
    for bad in ("", ".hidden", "_x", "a/b", "a b", "a%20"):
        with pytest.raises(ValueError):
            write_partitioned_files(two_hour_rows(), tmp_path, bad)


def test_no_rows_write_no_files(tmp_path: Path) -> None:
    assert write_partitioned_files(raw_rows([], []), tmp_path, "empty") == []
    assert not any(tmp_path.iterdir())


def test_rows_must_have_the_file_columns_and_no_nulls_where_not_null(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="lack"):
        write_partitioned_files(two_hour_rows().drop_columns(["_offset"]), tmp_path, "x")
    rows = two_hour_rows()
    with_null = rows.set_column(0, "device_id", pa.array([None] * rows.num_rows, pa.string()))
    with pytest.raises(ValueError, match="nulls"):
        write_partitioned_files(with_null, tmp_path, "x")
    as_ints = rows.set_column(1, "ts", pa.array([HOUR_19_MS] * rows.num_rows, pa.int64()))
    with pytest.raises(ValueError, match="timestamp"):
        write_partitioned_files(as_ints, tmp_path, "x")


# --- statistics ----------------------------------------------------------------------------


def test_stats_hold_exact_bounds_and_null_counts(tmp_path: Path) -> None:
    rows = raw_rows(["b", "a", "c"], [HOUR_19_MS + 2, HOUR_19_MS + 1, HOUR_19_MS + 123])
    us_rows = rows.set_column(1, "ts", rows["ts"].cast(TIMESTAMP_US_UTC))
    ts_us = us_rows["ts"].to_pylist()
    (data_file,) = write_partitioned_files(us_rows, tmp_path, "s")

    stats = json.loads(data_file.stats)
    assert stats == json.loads(stats_from_parquet(tmp_path / data_file.path))
    assert stats["numRecords"] == 3
    assert stats["minValues"] == {
        "device_id": "a",
        "ts": "2026-12-01T19:00:00.001000Z",
        "temperature": 20.0,
        "_topic": "telemetry",
        "_partition": 3,
        "_offset": 100,
    }
    assert stats["maxValues"]["ts"] == "2026-12-01T19:00:00.123000Z"
    assert stats["maxValues"]["_offset"] == 102 and stats["maxValues"]["device_id"] == "c"
    assert "humidity" not in stats["minValues"]  # all null: no bounds
    assert stats["nullCount"] == {
        "device_id": 0,
        "ts": 0,
        "temperature": 0,
        "humidity": 3,
        "_topic": 0,
        "_partition": 0,
        "_offset": 0,
    }
    assert min(ts_us) == HOUR_19 + timedelta(milliseconds=1)


def test_microseconds_survive_into_the_stats(tmp_path: Path) -> None:
    rows = two_hour_rows()
    ts = pa.array([int(HOUR_19.timestamp() * 1e6) + 123_456] * rows.num_rows, pa.int64())
    micro = rows.set_column(1, "ts", ts.cast(TIMESTAMP_US_UTC))
    (data_file,) = write_partitioned_files(micro, tmp_path, "s")
    assert json.loads(data_file.stats)["minValues"]["ts"] == "2026-12-01T19:00:00.123456Z"


def test_delta_reads_the_stats_as_typed_values(tmp_path: Path) -> None:
    files = write_partitioned_files(two_hour_rows(), tmp_path, "s")
    store = commit(tmp_path, files)

    actions = pa.table(store.table.get_add_actions(flatten=True)).sort_by("path")
    assert actions.schema.field("min.ts").type == TIMESTAMP_US_UTC
    assert actions.column("min.ts").to_pylist() == [
        HOUR_19 + timedelta(milliseconds=123),
        HOUR_19 + timedelta(hours=1, milliseconds=1),
    ]
    assert actions.column("max.ts").to_pylist()[0] == HOUR_19 + timedelta(
        minutes=59, seconds=59.999
    )
    assert actions.column("min.device_id").to_pylist() == ["a", "a"]
    assert actions.column("max.device_id").to_pylist() == ["c", "b"]
    assert actions.column("min._offset").to_pylist() == [100, 102]
    assert actions.column("max._offset").to_pylist() == [106, 103]
    assert actions.column("null_count.humidity").to_pylist() == [5, 2]
    assert actions.column("num_records").to_pylist() == [5, 2]


def test_a_ts_filter_skips_files_by_their_stats(tmp_path: Path) -> None:
    # Two files in one partition, minutes apart: only the stats can tell them apart.
    early = write_partitioned_files(
        raw_rows(["a", "b"], [HOUR_19_MS, HOUR_19_MS + 60_000]), tmp_path, "early"
    )
    late = write_partitioned_files(
        raw_rows(["a", "b"], [HOUR_19_MS + 1_800_000, HOUR_19_MS + 1_860_000], first_offset=200),
        tmp_path,
        "late",
    )
    commit(tmp_path, [*early, *late])
    dataset = DeltaTable(tmp_path).to_pyarrow_dataset()
    after = ds.field("ts") >= pa.scalar(HOUR_19 + timedelta(minutes=30), TIMESTAMP_US_UTC)

    fragments = list(dataset.get_fragments(filter=after))
    assert [Path(f.path).name for f in fragments] == ["late.parquet"]
    assert dataset.to_table(filter=after)["_offset"].to_pylist() == [200, 201]
    assert len(list(dataset.get_fragments())) == 2


# --- reading back through Delta -------------------------------------------------------------


def test_readers_see_ts_as_utc_microsecond_timestamps(tmp_path: Path) -> None:
    commit(tmp_path, write_partitioned_files(two_hour_rows(), tmp_path, "s"))
    dataset = DeltaTable(tmp_path).to_pyarrow_dataset()
    table = dataset.to_table()
    assert table.schema.field("ts").type == TIMESTAMP_US_UTC
    assert table.num_rows == 7

    frame = table.to_pandas()
    assert str(frame["ts"].dtype) == "datetime64[us, UTC]"
    assert frame["ts"].min() == pd.Timestamp("2026-12-01T19:00:00.123Z")
    assert sorted(frame["hour"].unique()) == [19, 20]

    polars_frame = pl.from_arrow(table)
    assert isinstance(polars_frame, pl.DataFrame)
    assert polars_frame.schema["ts"] == pl.Datetime("us", "UTC")

    connection = duckdb.connect()
    connection.register("raw", dataset)
    described = {
        row[0]: row[1]
        for row in connection.execute("DESCRIBE SELECT ts, date, hour FROM raw").fetchall()
    }
    per_hour = connection.execute(
        "SELECT hour, count(*) FROM raw WHERE date = DATE '2026-12-01' GROUP BY hour ORDER BY hour"
    ).fetchall()
    connection.close()
    assert described == {"ts": "TIMESTAMP WITH TIME ZONE", "date": "DATE", "hour": "INTEGER"}
    assert per_hour == [(19, 5), (20, 2)]


# --- DataFile ------------------------------------------------------------------------------


def test_data_file_round_trips_through_json_and_hashes(tmp_path: Path) -> None:
    files = write_partitioned_files(two_hour_rows(), tmp_path, "s")
    again = [DataFile.from_json(f.to_json()) for f in files]
    assert again == files
    assert len({*files, *again}) == 2
    action = files[0].add_action()
    assert action.path == files[0].path and action.partition_values == {
        "date": "2026-12-01",
        "hour": "19",
    }
    assert action.stats == files[0].stats and action.data_change


@pytest.mark.parametrize("path", ["/abs/x.parquet", "../x.parquet", "a/../../x", "a\\b", ""])
def test_data_file_paths_stay_inside_the_table(path: str) -> None:
    with pytest.raises(ValueError):
        DataFile(path, 1, (), 1, "{}", 0)


@pytest.mark.parametrize(
    "text",
    [
        "[]",
        "{}",
        '{"path":"x","size":true,"partition_values":[],"num_records":1,'
        '"stats":"{}","modification_time_ms":0}',
        "not json",
    ],
)
def test_malformed_data_file_json_is_refused(text: str) -> None:
    with pytest.raises(ValueError):
        DataFile.from_json(text)
