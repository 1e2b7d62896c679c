"""The default IoT handler end to end on the file system: files, rows, dead letters."""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import duckdb
import msgpack
import orjson
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from actorsys.errors import ConfigError
from actorsys.handlers.api import HandlerSettings, JobHandler, JobInput
from actorsys.handlers.iot_delta import IotDeltaHandler
from actorsys.handlers.iot_parquet import IotParquetHandler, rules_from_settings
from actorsys.records import Record
from actorsys.temp_files import remove_orphaned_temp_files

TS = 1_767_225_600_000  # 2026-01-01T00:00:00Z
MINUTE = 60_000
METRICS = ("temperature", "humidity", "battery")


class RecordingSink:
    """A DeadLetterSink that remembers what it was given."""

    def __init__(self) -> None:
        self.rejected: list[tuple[Record, str, str]] = []

    def reject(self, record: Record, reason: str, detail: str) -> None:
        self.rejected.append((record, reason, detail))


def _value(**fields: Any) -> bytes:
    return orjson.dumps(fields)


def _job(
    values: Sequence[bytes | None], *, start: int = 100, topic: str = "iot.telemetry"
) -> JobInput:
    records = [Record(start + i, TS, f"k{i}".encode(), v) for i, v in enumerate(values)]
    return JobInput(
        job_id=7,
        topic=topic,
        partition=3,
        start=start,
        end=start + len(values) + 2,
        records=records,
    )


def _handler(out: Path, **options: Any) -> IotParquetHandler:
    return IotParquetHandler(HandlerSettings(output_dir=out, options=options))


def _all_files(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file())


def test_raw_rows_carry_typed_columns_and_provenance(tmp_path: Path) -> None:
    # Given a job of three valid records, one with an ISO ts and an int metric
    job = _job(
        [
            _value(device_id="a", ts=TS + 1, temperature=20.5, humidity=None, extra="ignored"),
            _value(device_id="b", ts="2026-01-01T01:00:02+01:00", battery=87),
            _value(device_id="a", ts=TS + 3),
        ]
    )

    # When the handler runs
    result = _handler(tmp_path).handle(job, RecordingSink())

    # Then one raw and one agg file are named from the job's topic, partition and interval
    name = "iot.telemetry-3-100-105.parquet"
    assert result.output_files == (
        str(tmp_path / "agg" / "date=2026-01-01" / name),
        str(tmp_path / "raw" / "date=2026-01-01" / name),
    )
    assert (result.valid_records, result.invalid_records) == (3, 0)

    # And the raw table has the promised schema, rows in offset order
    raw = pq.read_table(result.output_files[1])
    assert raw.schema.field("device_id").type == pa.string()
    assert raw.schema.field("ts").type == pa.timestamp("ms", tz="UTC")
    for metric in METRICS:
        assert raw.schema.field(metric).type == pa.float64()
    assert raw.schema.field("_topic").type == pa.string()
    assert raw.schema.field("_partition").type == pa.int32()
    assert raw.schema.field("_offset").type == pa.int64()
    assert raw.column("ts").cast(pa.int64()).to_pylist() == [TS + 1, TS + 2_000, TS + 3]
    assert raw.select(["device_id", *METRICS]).to_pylist() == [
        {"device_id": "a", "temperature": 20.5, "humidity": None, "battery": None},
        {"device_id": "b", "temperature": None, "humidity": None, "battery": 87.0},
        {"device_id": "a", "temperature": None, "humidity": None, "battery": None},
    ]
    assert raw.column("_topic").to_pylist() == ["iot.telemetry"] * 3
    assert raw.column("_partition").to_pylist() == [3] * 3
    assert raw.column("_offset").to_pylist() == [100, 101, 102]


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        (None, "tombstone"),
        (b"", "empty"),
        (b'{"device_id": "\xff"}', "invalid_utf8"),
        (b"{oops", "not_json"),
        (b"[1, 2, 3]", "not_object"),
        (_value(ts=TS), "missing_field"),
        (_value(device_id="d", ts=TS, temperature=True), "wrong_type"),
        (b'{"device_id": "d", "ts": 1767225600000, "humidity": 1e999}', "not_finite"),
        (_value(device_id="d", ts=4_200_000_000_000), "ts_out_of_range"),
    ],
)
def test_each_bad_record_is_dead_lettered_and_the_rest_proceed(
    tmp_path: Path, value: bytes | None, reason: str
) -> None:
    # Given a bad record between two good ones
    job = _job([_value(device_id="a", ts=TS), value, _value(device_id="b", ts=TS)])
    sink = RecordingSink()

    # When the handler runs
    result = _handler(tmp_path).handle(job, sink)

    # Then the bad record reaches the sink with its reason and the job succeeds
    assert [(r.offset, r.value, why) for r, why, _ in sink.rejected] == [(101, value, reason)]
    assert (result.valid_records, result.invalid_records) == (2, 1)
    assert pq.read_table(result.output_files[1]).column("_offset").to_pylist() == [100, 102]


def test_agg_matches_a_hand_computation(tmp_path: Path) -> None:
    # Given two devices over two minutes, with some metrics absent
    job = _job(
        [
            _value(device_id="a", ts=TS + 1_000, temperature=10, humidity=50),
            _value(device_id="b", ts=TS + 2_000, temperature=1),
            _value(device_id="a", ts=TS + 59_999, temperature=20),
            _value(device_id="b", ts=TS + 3_000, temperature=4.5, battery=None),
            _value(device_id="a", ts=TS + 30_000),
            _value(device_id="a", ts=TS + MINUTE, temperature=-5, battery=90),
        ]
    )

    # When the handler runs
    result = _handler(tmp_path).handle(job, RecordingSink())

    # Then agg has one row per device and minute, sorted, matching the hand numbers
    agg = pq.read_table(result.output_files[0])
    assert sum(agg.column("count").to_pylist()) == result.valid_records == 6
    rows = agg.to_pylist()
    assert [(r["device_id"], r["minute"].timestamp() * 1000) for r in rows] == [
        ("a", TS),
        ("a", TS + MINUTE),
        ("b", TS),
    ]
    a0, a1, b0 = rows
    assert (a0["count"], a0["temperature_count"], a0["humidity_count"], a0["battery_count"]) == (
        3,
        2,
        1,
        0,
    )
    assert (a0["temperature_min"], a0["temperature_max"]) == (10.0, 20.0)
    assert a0["temperature_mean"] == pytest.approx(15.0)
    assert (a0["humidity_min"], a0["humidity_max"], a0["humidity_mean"]) == (50.0, 50.0, 50.0)
    assert (a0["battery_min"], a0["battery_max"], a0["battery_mean"]) == (None, None, None)
    assert (a1["count"], a1["temperature_mean"], a1["battery_mean"]) == (1, -5.0, 90.0)
    assert (b0["count"], b0["temperature_count"]) == (2, 2)
    assert (b0["temperature_min"], b0["temperature_max"]) == (1.0, 4.5)
    assert b0["temperature_mean"] == pytest.approx(2.75)
    assert agg.schema.field("minute").type == pa.timestamp("ms", tz="UTC")
    assert agg.schema.field("count").type == pa.int64()
    assert agg.schema.field("temperature_count").type == pa.int64()


def test_rows_across_midnight_write_one_file_per_date(tmp_path: Path) -> None:
    # Given records on both sides of midnight UTC (one given with a +02:00 offset)
    job = _job(
        [
            _value(device_id="a", ts=TS - 1, temperature=1),  # 2025-12-31T23:59:59.999Z
            _value(device_id="a", ts="2026-01-01T01:59:30+02:00", temperature=2),  # 23:59:30Z
            _value(device_id="a", ts=TS, temperature=3),
        ]
    )

    # When the handler runs
    result = _handler(tmp_path).handle(job, RecordingSink())

    # Then raw and agg each get the same file name under both date directories
    name = "iot.telemetry-3-100-105.parquet"
    assert _all_files(tmp_path) == [
        f"agg/date=2025-12-31/{name}",
        f"agg/date=2026-01-01/{name}",
        f"raw/date=2025-12-31/{name}",
        f"raw/date=2026-01-01/{name}",
    ]
    assert len(result.output_files) == 4
    old_raw = pq.read_table(tmp_path / "raw" / "date=2025-12-31" / name)
    new_raw = pq.read_table(tmp_path / "raw" / "date=2026-01-01" / name)
    assert old_raw.column("temperature").to_pylist() == [1.0, 2.0]
    assert new_raw.column("temperature").to_pylist() == [3.0]
    old_agg = pq.read_table(tmp_path / "agg" / "date=2025-12-31" / name)
    assert old_agg.column("count").to_pylist() == [2]
    assert old_agg.column("temperature_mean").to_pylist() == [1.5]


def test_rerun_rewrites_the_same_files_with_the_same_content(tmp_path: Path) -> None:
    # Given a job across midnight that has already run once
    job = _job(
        [
            _value(device_id=f"d{i % 3}", ts=TS - 50_000 + i * 1_000, temperature=i)
            for i in range(100)
        ]
    )
    handler = _handler(tmp_path)
    first = handler.handle(job, RecordingSink())
    before = {p: Path(p).read_bytes() for p in first.output_files}

    # When it runs again (a new worker, so a new handler)
    second = _handler(tmp_path).handle(job, RecordingSink())

    # Then the same paths are rewritten byte for byte and no temporary file is left
    assert second == first
    assert {p: Path(p).read_bytes() for p in second.output_files} == before
    assert len(_all_files(tmp_path)) == len(first.output_files) == 4
    assert not [p for p in tmp_path.rglob(".tmp-*")]


def test_a_job_without_valid_records_writes_nothing(tmp_path: Path) -> None:
    # Given a job whose every record is bad
    sink = RecordingSink()
    job = _job([None, b"nope", _value(device_id="d")])

    # When the handler runs
    result = _handler(tmp_path / "out").handle(job, sink)

    # Then it reports no files, writes none, and dead-letters all three
    assert result.output_files == ()
    assert (result.valid_records, result.invalid_records) == (0, 3)
    assert not (tmp_path / "out").exists()
    assert [reason for _, reason, _ in sink.rejected] == ["tombstone", "not_json", "missing_field"]


def test_a_failed_write_fails_the_job_sends_no_dead_letters_and_leaves_no_temp_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given a disk that fails half way through writing a Parquet file
    def failing_write(table: pa.Table, sink: Any, **kwargs: Any) -> None:
        sink.write(b"PAR1 partial")
        raise OSError("No space left on device")

    monkeypatch.setattr(pq, "write_table", failing_write)
    sink = RecordingSink()
    job = _job([_value(device_id="a", ts=TS), None])

    # When the handler runs, Then it raises (failing the attempt, to be retried)
    with pytest.raises(OSError, match="No space left"):
        _handler(tmp_path).handle(job, sink)

    # And nothing was dead-lettered yet and no partial file is visible
    assert sink.rejected == []
    assert [p for p in tmp_path.rglob("*") if p.is_file()] == []


def test_files_read_back_with_pyarrow_dataset_and_duckdb(tmp_path: Path) -> None:
    # Given two jobs of one partition, the second crossing midnight
    handler = _handler(tmp_path)
    handler.handle(
        _job([_value(device_id="a", ts=TS - 2_000 + i, temperature=i) for i in range(2)], start=0),
        RecordingSink(),
    )
    handler.handle(
        _job([_value(device_id="b", ts=TS - 1 + i, humidity=i) for i in range(3)], start=4),
        RecordingSink(),
    )

    # When raw is read back with pyarrow as a dataset
    raw = pq.read_table(tmp_path / "raw")

    # Then every valid record is there exactly once
    assert sorted(raw.column("_offset").to_pylist()) == [0, 1, 4, 5, 6]

    # And DuckDB reads both layouts with the hive date column
    with duckdb.connect() as db:
        per_date = db.execute(
            f"SELECT CAST(date AS VARCHAR), count(*), sum(_offset) "
            f"FROM read_parquet('{tmp_path}/raw/**/*.parquet', hive_partitioning=true) "
            f"GROUP BY ALL ORDER BY 1"
        ).fetchall()
        agg_total = db.execute(
            f"SELECT sum(count), sum(temperature_count), sum(humidity_count) "
            f"FROM read_parquet('{tmp_path}/agg/**/*.parquet', hive_partitioning=true)"
        ).fetchall()
    assert per_date == [("2025-12-31", 3, 0 + 1 + 4), ("2026-01-01", 2, 5 + 6)]
    assert agg_total == [(5, 2, 3)]


def test_configured_metrics_and_ts_range_apply(tmp_path: Path) -> None:
    # Given a handler with its own metric list and a narrow ts range
    settings = HandlerSettings(
        output_dir=tmp_path, metrics=("co2",), options={"ts_min_ms": TS, "ts_max_ms": TS + 10}
    )
    sink = RecordingSink()
    job = _job(
        [
            _value(device_id="a", ts=TS, co2=415, temperature="ignored now"),
            _value(device_id="a", ts=TS + 10, co2=1),
        ]
    )

    # When the handler runs
    result = IotParquetHandler(settings).handle(job, sink)

    # Then only the configured metric is a column, and the range is enforced
    raw = pq.read_table(result.output_files[1])
    assert raw.column_names == ["device_id", "ts", "co2", "_topic", "_partition", "_offset"]
    assert raw.column("co2").to_pylist() == [415.0]
    assert [reason for _, reason, _ in sink.rejected] == ["ts_out_of_range"]
    assert "co2_mean" in pq.read_table(result.output_files[0]).column_names


@pytest.mark.parametrize(
    ("metrics", "options", "message"),
    [
        (METRICS, {"ts_min": 1}, "unknown key"),
        (METRICS, {"ts_min_ms": "2000"}, "ts_min_ms must be an integer"),
        (METRICS, {"ts_max_ms": True}, "ts_max_ms must be an integer"),
        (METRICS, {"ts_min_ms": 10, "ts_max_ms": 10}, "ts_min_ms < ts_max_ms"),
        (METRICS, {"ts_max_ms": 2**64}, "within int64"),
        (METRICS, {"max_record_bytes": 0}, "max_record_bytes"),
        (METRICS, {"value_format": "xml"}, "value_format must be one of"),
        (METRICS, {"value_format": "MsgPack"}, "value_format must be one of"),
        (METRICS, {"value_format": None}, "value_format must be one of"),
        (("temperature", "ts"), {}, "clashes"),
        (("date",), {}, "clashes"),
        (("", "x"), {}, "non-empty"),
        (("x", "x"), {}, "duplicate"),
    ],
)
def test_bad_settings_raise_config_error_naming_the_key(
    tmp_path: Path, metrics: tuple[str, ...], options: dict[str, Any], message: str
) -> None:
    # Given bad settings / When the handler is built / Then a one-line ConfigError says why
    settings = HandlerSettings(output_dir=tmp_path, metrics=metrics, options=options)
    with pytest.raises(ConfigError, match=message):
        IotParquetHandler(settings)


def test_a_bad_value_format_is_one_line_naming_the_choices(tmp_path: Path) -> None:
    # Given value_format misspelt / When the rules are built
    settings = HandlerSettings(output_dir=tmp_path, options={"value_format": "msgpak"})
    with pytest.raises(ConfigError) as caught:
        rules_from_settings(settings)

    # Then one line says what is allowed and what was given
    assert str(caught.value) == (
        "handler options: value_format must be one of ['json', 'msgpack'], got 'msgpak'"
    )


@pytest.mark.parametrize("handler_class", [IotParquetHandler, IotDeltaHandler])
def test_both_iot_handlers_read_msgpack_values_when_configured(
    tmp_path: Path, handler_class: Callable[[HandlerSettings], JobHandler]
) -> None:
    # Given a Parquet or Delta handler configured for MessagePack values
    settings = HandlerSettings(output_dir=tmp_path, options={"value_format": "msgpack"})
    handler = handler_class(settings)
    job = _job(
        [
            msgpack.packb({"device_id": "a", "ts": TS, "temperature": 20.5, "battery": 87}),
            _value(device_id="b", ts=TS),  # JSON on a MessagePack topic
            msgpack.packb({"device_id": "c", "ts": msgpack.Timestamp(TS // 1000, 2_000_000)}),
        ]
    )
    sink = RecordingSink()

    # When the job runs
    result = handler.handle(job, sink)

    # Then the maps are rows and the JSON record is dead-lettered as not MessagePack
    assert (result.valid_records, result.invalid_records) == (2, 1)
    assert [(r.offset, why) for r, why, _ in sink.rejected] == [(101, "not_msgpack")]
    raw = pa.concat_tables(pq.read_table(f) for f in result.output_files if "/raw/" in f)
    rows = raw.sort_by("device_id")
    # Either unit (ms in files, us in tables) back to epoch ms, exactly.
    ts_ms = rows.column("ts").cast(pa.timestamp("ms", tz="UTC")).cast(pa.int64())
    assert list(zip(rows.column("device_id").to_pylist(), ts_ms.to_pylist(), strict=True)) == [
        ("a", TS),
        ("c", TS + 2),
    ]
    assert rows.select(list(METRICS)).to_pylist() == [
        {"temperature": 20.5, "humidity": None, "battery": 87.0},
        {"temperature": None, "humidity": None, "battery": None},
    ]


def test_written_files_are_durable_and_visible_only_complete(tmp_path: Path) -> None:
    # Given a handler / When it writes a job
    result = _handler(tmp_path).handle(_job([_value(device_id="a", ts=TS)]), RecordingSink())

    # Then every listed file exists, is a complete Parquet file, and no temp file remains
    for path in result.output_files:
        with open(path, "rb") as f:
            assert f.read(4) == b"PAR1"
            f.seek(-4, os.SEEK_END)
            assert f.read(4) == b"PAR1"
    assert not [p for p in tmp_path.rglob(".tmp-*")]


NO_SUCH_PID = 4_194_305  # above Linux's largest pid_max: never a live process


def _orphan(path: Path, *, age_s: float = 3600.0) -> Path:
    """A temporary file as a writer killed mid-write leaves it, ``age_s`` old."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"PAR1 partial")
    then = time.time() - age_s
    os.utime(path, (then, then))
    return path


def test_orphaned_temp_files_are_removed_and_parquet_files_kept(tmp_path: Path) -> None:
    # Given finished output, and the temporary files of writers that died mid-write
    result = _handler(tmp_path).handle(_job([_value(device_id="a", ts=TS)]), RecordingSink())
    finished = {p: Path(p).read_bytes() for p in result.output_files}
    day = "date=2026-01-01"
    orphans = [
        _orphan(
            tmp_path / "raw" / day / f".tmp-{NO_SUCH_PID}-iot.telemetry-3-100-103.parquet.partial"
        ),
        _orphan(tmp_path / "agg" / day / f".tmp-{NO_SUCH_PID}-x.parquet.partial"),
        _orphan(tmp_path / "raw" / "deeper" / "date=2026-01-02" / ".tmp-1x.partial"),
    ]
    # and files that must stay: other names, other trees, writes that may be in progress
    kept = [
        _orphan(tmp_path / "raw" / day / f".tmp-{NO_SUCH_PID}-looks-temporary.parquet"),
        _orphan(tmp_path / "raw" / day / "notes.partial"),
        _orphan(tmp_path / "elsewhere" / f".tmp-{NO_SUCH_PID}-x.parquet.partial"),
        _orphan(tmp_path / "raw" / day / f".tmp-{os.getpid()}-alive.parquet.partial"),
        _orphan(tmp_path / "agg" / day / f".tmp-{NO_SUCH_PID}-young.parquet.partial", age_s=1),
    ]

    # When the daemon starts and cleans up
    removed = remove_orphaned_temp_files(tmp_path)

    # Then exactly the orphans are gone, and every Parquet file is as it was
    assert removed == len(orphans)
    assert not any(p.exists() for p in orphans)
    assert all(p.exists() for p in kept)
    assert {p: Path(p).read_bytes() for p in result.output_files} == finished
    # A young file goes too once no minimum age is asked; a second pass finds nothing else
    assert remove_orphaned_temp_files(tmp_path, min_age_s=0) == 1
    assert remove_orphaned_temp_files(tmp_path, min_age_s=0) == 0


def test_orphan_cleanup_of_a_missing_output_dir_removes_nothing(tmp_path: Path) -> None:
    assert remove_orphaned_temp_files(tmp_path / "never-written") == 0


def test_orphan_cleanup_does_not_follow_symlinks_out_of_the_output(tmp_path: Path) -> None:
    # Given a link from the output tree to a directory elsewhere holding an orphan-like file
    outside = _orphan(tmp_path / "outside" / f".tmp-{NO_SUCH_PID}-x.parquet.partial")
    (tmp_path / "out" / "raw").mkdir(parents=True)
    (tmp_path / "out" / "raw" / "link").symlink_to(outside.parent, target_is_directory=True)
    # When the output is cleaned / Then the file behind the link is untouched
    assert remove_orphaned_temp_files(tmp_path / "out") == 0
    assert outside.exists()


@pytest.mark.parametrize("handler_class", [IotParquetHandler, IotDeltaHandler])
def test_warm_up_writes_nothing_and_leaves_the_next_job_unchanged(
    tmp_path: Path, handler_class: Callable[[HandlerSettings], JobHandler]
) -> None:
    handler = handler_class(HandlerSettings(output_dir=tmp_path / "out", metrics=METRICS))
    handler.warm_up()  # type: ignore[attr-defined]  # optional in the handler API
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").rglob("*"))
    result = handler.handle(
        _job([_value(device_id="d", ts=TS + i) for i in range(3)]), RecordingSink()
    )
    assert result.valid_records == 3 and result.invalid_records == 0
    devices = {
        device
        for path in result.output_files
        if "/raw/" in path
        for device in pq.read_table(path).column("device_id").to_pylist()
    }
    assert devices == {"d"}
