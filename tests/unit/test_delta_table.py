"""The committer's Delta table: creation, compare-and-swap commits, replaces, clean-up."""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path

import pyarrow as pa
import pytest
from deltalake import DeltaTable

from actorsys.tables.delta import (
    DEFAULT_CONFIGURATION,
    CommitConflict,
    DeltaTableStore,
    MissingDataFile,
    OffsetsAlreadyCommitted,
    StaleRemove,
    TableMismatch,
    app_id,
    replay_app_id,
)
from actorsys.tables.layout import (
    PARTITION_COLUMNS,
    DataFile,
    raw_table_schema,
    write_partitioned_files,
)

METRICS = ("temperature",)
HOUR_MS = 3_600_000
T0 = 1_796_151_600_000  # 2026-12-01T19:00:00Z
APP = app_id("g", "telemetry", 0)
OTHER_APP = app_id("g", "telemetry", 1)


def store_at(root: Path) -> DeltaTableStore:
    return DeltaTableStore(root, raw_table_schema(METRICS), PARTITION_COLUMNS)


@pytest.fixture
def store(tmp_path: Path) -> DeltaTableStore:
    created = store_at(tmp_path / "raw")
    created.ensure_created()
    return created


def write(
    store: DeltaTableStore, stem: str, start: int, count: int, hour: int = 0
) -> list[DataFile]:
    """``count`` rows at offsets ``start…``, all in hour ``T0 + hour``."""
    ts = [T0 + hour * HOUR_MS + i for i in range(count)]
    rows = pa.table(
        {
            "device_id": pa.array([f"d{i % 3}" for i in range(count)], pa.string()),
            "ts": pa.array(ts, pa.int64()).cast(pa.timestamp("ms", tz="UTC")),
            "temperature": pa.array([float(i) for i in range(count)], pa.float64()),
            "_topic": pa.array(["telemetry"] * count, pa.string()),
            "_partition": pa.array([0] * count, pa.int32()),
            "_offset": pa.array(range(start, start + count), pa.int64()),
        }
    )
    return write_partitioned_files(rows, store.root, stem)


def offsets(root: Path, version: int | None = None) -> list[int]:
    table = DeltaTable(root, version=version).to_pyarrow_dataset().to_table(columns=["_offset"])
    return sorted(table["_offset"].to_pylist())


def age(path: Path, seconds: float) -> None:
    then = time.time() - seconds
    os.utime(path, (then, then))


# --- creation ------------------------------------------------------------------------------


def test_app_id_names_group_topic_and_partition() -> None:
    assert app_id("etl:prod", "telemetry", 7) == "actorsys:etl:prod:telemetry:7"
    with pytest.raises(ValueError):
        app_id("g", "a:b", 0)
    with pytest.raises(ValueError):
        app_id("g", "t", -1)


def test_a_replay_app_id_names_its_job_and_is_never_a_chains() -> None:
    replay = replay_app_id("etl:prod", "telemetry", 7, 1_000)
    assert replay == "actorsys-replay:etl:prod:telemetry:7:1000"
    assert not replay.startswith("actorsys:")  # every chain's app id does
    assert replay != replay_app_id("etl:prod", "telemetry", 7, 2_000)


def test_ensure_created_is_idempotent_and_sets_the_log_defaults(tmp_path: Path) -> None:
    root = tmp_path / "raw"
    first = store_at(root)
    assert first.ensure_created() == 0
    assert first.ensure_created() == 0
    assert store_at(root).ensure_created() == 0
    metadata = DeltaTable(root).metadata()
    assert metadata.partition_columns == ["date", "hour"]
    for key, value in DEFAULT_CONFIGURATION.items():
        assert metadata.configuration[key] == value
    assert DeltaTable(root).schema().to_arrow() == pa.schema(raw_table_schema(METRICS))


def test_racing_creators_all_end_up_with_one_table(tmp_path: Path) -> None:
    root = tmp_path / "raw"
    barrier = threading.Barrier(4)
    versions: list[int] = []
    errors: list[BaseException] = []

    def create() -> None:
        barrier.wait()
        try:
            versions.append(store_at(root).ensure_created())
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=create) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == [] and versions == [0, 0, 0, 0]
    assert sorted(p.name for p in (root / "_delta_log").glob("*.json")) == [
        "00000000000000000000.json"
    ]


def test_an_existing_table_with_other_columns_is_refused(tmp_path: Path) -> None:
    root = tmp_path / "raw"
    store_at(root).ensure_created()
    other = DeltaTableStore(root, raw_table_schema(("humidity",)), PARTITION_COLUMNS)
    with pytest.raises(TableMismatch):
        other.ensure_created()
    repartitioned = DeltaTableStore(root, raw_table_schema(METRICS), ["date"])
    with pytest.raises(TableMismatch):
        repartitioned.ensure_created()


# --- appends -------------------------------------------------------------------------------


def test_commit_append_publishes_files_and_records_offsets(store: DeltaTableStore) -> None:
    files = write(store, "a", 0, 10) + write(store, "b", 10, 5, hour=1)
    assert store.txn_version(APP) is None

    version = store.commit_append(files, {APP: 15}, info={"actorsys": {"jobs": 2}})

    assert version == 1 and store.version == 1
    assert store.txn_version(APP) == 15 and store.txn_version(OTHER_APP) is None
    assert store.active_paths() == {f.path for f in files}
    assert store.active_paths({"hour": "20"}) == {files[1].path}
    assert offsets(store.root) == list(range(15))
    assert DeltaTable(store.root).history(1)[0]["actorsys"] == {"jobs": 2}


def test_a_stale_handle_gets_commit_conflict_and_then_sees_the_winner(
    store: DeltaTableStore,
) -> None:
    loser = store_at(store.root)
    loser.ensure_created()  # snapshot at version 0
    store.commit_append(write(store, "winner", 0, 10), {APP: 10})
    late = write(store, "loser", 0, 10)

    with pytest.raises(CommitConflict):
        loser.commit_append(late, {APP: 10})

    assert DeltaTable(store.root).version() == 1  # nothing committed
    assert loser.txn_version(APP) is None  # still the old snapshot
    assert loser.refresh() == 1
    assert loser.txn_version(APP) == 10  # the re-check now tells it to drop its files
    with pytest.raises(OffsetsAlreadyCommitted) as raised:
        loser.commit_append(late, {APP: 10})
    assert (raised.value.committed, raised.value.requested) == (10, 10)
    assert offsets(store.root) == list(range(10))


def test_a_conflict_on_another_partition_is_retried_after_refresh(
    store: DeltaTableStore,
) -> None:
    other = store_at(store.root)
    other.ensure_created()
    store.commit_append(write(store, "p0", 0, 3), {APP: 3})
    mine = write(store, "p1", 100, 3)
    with pytest.raises(CommitConflict):
        other.commit_append(mine, {OTHER_APP: 103})
    other.refresh()
    assert other.commit_append(mine, {OTHER_APP: 103}) == 2
    assert other.txn_version(APP) == 3 and other.txn_version(OTHER_APP) == 103


def test_offsets_can_advance_without_files(store: DeltaTableStore) -> None:
    assert store.commit_append([], {APP: 42}) == 1
    assert store.txn_version(APP) == 42 and store.active_paths() == set()
    with pytest.raises(ValueError):
        store.commit_append([], {})


def test_missing_or_changed_files_are_not_committed(store: DeltaTableStore) -> None:
    (data_file,) = write(store, "a", 0, 3)
    (store.root / data_file.path).unlink()
    with pytest.raises(MissingDataFile):
        store.commit_append([data_file], {APP: 3})
    (again,) = write(store, "b", 0, 3)
    with (store.root / again.path).open("ab") as sink:
        sink.write(b"x")
    with pytest.raises(MissingDataFile):
        store.commit_append([again], {APP: 3})
    assert store.refresh() == 0


# --- replaces ------------------------------------------------------------------------------


def test_commit_replace_swaps_files_atomically(store: DeltaTableStore) -> None:
    small = write(store, "s1", 0, 4) + write(store, "s2", 4, 4) + write(store, "s3", 8, 4)
    store.commit_append(small, {APP: 12})
    before = DeltaTable(store.root)  # a reader holding the old snapshot
    (compacted,) = write(store, "compacted", 0, 12)

    version = store.commit_replace([f.path for f in small], [compacted], data_change=False)

    assert version == 2
    assert store.active_paths() == {compacted.path}
    assert store.txn_version(APP) == 12  # a replace leaves the offsets alone
    # Every snapshot holds each row exactly once: the old files or the new one.
    for snapshot in (0, 1, 2):
        expected = [] if snapshot == 0 else list(range(12))
        assert offsets(store.root, snapshot) == expected
    old_reader = before.to_pyarrow_dataset()
    assert {Path(f.path).name for f in old_reader.get_fragments()} == {
        "s1.parquet",
        "s2.parquet",
        "s3.parquet",
    }
    assert old_reader.count_rows() == 12
    assert DeltaTable(store.root).to_pyarrow_dataset().count_rows() == 12


def test_removing_an_inactive_file_raises_stale_remove_and_commits_nothing(
    store: DeltaTableStore,
) -> None:
    first = write(store, "first", 0, 4)
    store.commit_append(first, {APP: 4})
    (winner,) = write(store, "winner", 0, 4)
    store.commit_replace([first[0].path], [winner])
    (late,) = write(store, "late", 0, 4)

    with pytest.raises(StaleRemove) as raised:
        store.commit_replace([first[0].path], [late])

    assert raised.value.paths == (first[0].path,)
    assert DeltaTable(store.root).version() == 2
    assert offsets(store.root) == [0, 1, 2, 3]
    with pytest.raises(StaleRemove):
        store.commit_replace(["date=2026-12-01/hour=19/never.parquet"], [])


def test_a_replace_racing_another_commit_conflicts_then_re_checks(
    store: DeltaTableStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    files = write(store, "a", 0, 4)
    store.commit_append(files, {APP: 4})
    other = store_at(store.root)
    other.ensure_created()
    (by_store,) = write(store, "by-store", 0, 4)
    (by_other,) = write(store, "by-other", 0, 4)
    # `store` commits between `other`'s refresh and its commit.
    with monkeypatch.context() as patch:
        patch.setattr(other.table, "update_incremental", lambda: None)
        store.commit_replace([files[0].path], [by_store])
        with pytest.raises(CommitConflict):
            other.commit_replace([files[0].path], [by_other])
    with pytest.raises(StaleRemove):  # called again: the re-check sees the winner
        other.commit_replace([files[0].path], [by_other])
    assert offsets(store.root) == [0, 1, 2, 3]


def test_a_path_cannot_be_removed_and_added_at_once(store: DeltaTableStore) -> None:
    files = write(store, "a", 0, 2)
    store.commit_append(files, {APP: 2})
    with pytest.raises(ValueError):
        store.commit_replace([files[0].path], files)
    with pytest.raises(ValueError):
        store.commit_replace([], [])


# --- clean-up ------------------------------------------------------------------------------


def test_untracked_data_files_finds_only_old_uncommitted_files(store: DeltaTableStore) -> None:
    committed = write(store, "committed", 0, 3)
    replaced = write(store, "replaced", 3, 3)
    store.commit_append(committed + replaced, {APP: 6})
    (replacement,) = write(store, "replacement", 3, 3)
    store.commit_replace([replaced[0].path], [replacement])
    (orphan,) = write(store, "orphan", 6, 3)
    (young,) = write(store, "young", 9, 3)
    partial = store.root / "date=2026-12-01/hour=19/.tmp-999999-x.parquet.partial"
    partial.write_bytes(b"half")
    for path in store.root.rglob("*"):
        if path.is_file() and path.name != young.path.rsplit("/", 1)[1]:
            age(path, 600)

    found = store.untracked_data_files(older_than_s=60)

    assert found == sorted([store.root / orphan.path, partial])
    assert not any("_delta_log" in p.parts for p in found)
    assert store.untracked_data_files(older_than_s=3600) == []


def test_untracked_data_files_reads_references_from_checkpoints(tmp_path: Path) -> None:
    store = DeltaTableStore(
        tmp_path / "raw",
        raw_table_schema(METRICS),
        PARTITION_COLUMNS,
        configuration={"delta.checkpointInterval": "2"},
    )
    store.ensure_created()
    for n in range(4):
        store.commit_append(write(store, f"f{n}", n * 2, 2), {APP: n * 2 + 2})
    log = store.root / "_delta_log"
    assert list(log.glob("*.checkpoint.parquet"))
    for commit_file in log.glob("0*.json"):  # as if log clean-up had run
        if commit_file.name < "00000000000000000004.json":
            commit_file.unlink()
    for path in store.root.rglob("*.parquet"):
        age(path, 600)
    assert store.untracked_data_files(older_than_s=60) == []


def test_a_removed_file_whose_tombstone_expired_is_found_as_untracked(tmp_path: Path) -> None:
    # delta-rs drops expired tombstones at checkpoints, so vacuum can no longer
    # see the file; once its remove leaves the log, untracked_data_files does.
    store = DeltaTableStore(
        tmp_path / "raw",
        raw_table_schema(METRICS),
        PARTITION_COLUMNS,
        configuration={
            "delta.checkpointInterval": "2",
            "delta.deletedFileRetentionDuration": "interval 1 seconds",
        },
    )
    store.ensure_created()
    old = write(store, "old", 0, 2)
    store.commit_append(old, {APP: 2})
    store.commit_replace([old[0].path], write(store, "new", 0, 2))
    time.sleep(1.1)
    for n in range(2):
        store.commit_append(write(store, f"more{n}", 2 + n, 1), {APP: 3 + n})
    for path in store.root.rglob("*.parquet"):
        age(path, 600)
    assert store.vacuum(0) == []  # the tombstone is gone from the checkpoint
    assert store.untracked_data_files(older_than_s=60) == []  # commit 2 still names it
    for log_file in (store.root / "_delta_log").glob("0*"):
        if log_file.name < "00000000000000000004":  # as log clean-up does
            log_file.unlink()
    assert store.untracked_data_files(older_than_s=60) == [store.root / old[0].path]


def test_vacuum_refuses_a_retention_the_tombstones_do_not_outlast(tmp_path: Path) -> None:
    store = DeltaTableStore(
        tmp_path / "raw",
        raw_table_schema(METRICS),
        PARTITION_COLUMNS,
        configuration={"delta.deletedFileRetentionDuration": "interval 1 hours"},
    )
    store.ensure_created()
    with pytest.raises(ValueError, match="deletedFileRetentionDuration"):
        store.vacuum(retention_s=3600)
    with pytest.raises(ValueError):
        store.vacuum(retention_s=1)  # rounded up to a whole hour
    assert store.vacuum(retention_s=0) == []


def test_vacuum_deletes_replaced_files_after_the_retention(store: DeltaTableStore) -> None:
    old = write(store, "old", 0, 4)
    store.commit_append(old, {APP: 4})
    (new,) = write(store, "new", 0, 4)
    store.commit_replace([old[0].path], [new])
    (orphan,) = write(store, "orphan", 4, 4)
    age(store.root / orphan.path, 7200)

    assert store.vacuum(retention_s=3600) == []  # removed just now: kept for old readers
    assert store.vacuum(retention_s=0) == [old[0].path]

    assert not (store.root / old[0].path).exists()
    assert (store.root / new.path).exists()
    assert (store.root / orphan.path).exists()  # untracked files are not vacuum's business
    version = store.refresh()
    assert store.vacuum(retention_s=0) == []  # nothing left to delete: no VACUUM commits
    assert store.refresh() == version
    assert offsets(store.root) == [0, 1, 2, 3]
    with pytest.raises(ValueError):
        store.vacuum(-1)
