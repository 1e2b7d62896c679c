"""The exactly-once output check, and the Kafka-side facts it compares with."""

from __future__ import annotations

import time
from collections import Counter
from pathlib import Path

import duckdb
from confluent_kafka import Consumer, TopicPartition

from actorsys.jobs.model import JobStatus
from actorsys.jobs.open import open_job_store
from actorsys.simulator import ProduceReport
from tests.support.daemon import DaemonProcess
from tests.support.waiting import wait_for


def committed_offsets(
    bootstrap: str, group: str, topic: str, partitions: list[int]
) -> dict[int, int]:
    """The group's committed offsets (read without joining the group)."""
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": group})
    try:
        tps = consumer.committed([TopicPartition(topic, p) for p in partitions], timeout=10)
        return {tp.partition: tp.offset for tp in tps}
    finally:
        consumer.close()


def all_committed(bootstrap: str, group: str, topic: str, report: ProduceReport) -> bool:
    want = dict(report.end_offsets)
    return committed_offsets(bootstrap, group, topic, sorted(want)) == want


def jobs_unfinished(job_store: str) -> int:
    store = open_job_store(job_store)
    try:
        counts = store.count_by_status()
        return counts.get(JobStatus.PENDING, 0) + counts.get(JobStatus.RUNNING, 0)
    finally:
        store.close()


def job_intervals(job_store: str) -> list[tuple[int, int, int, JobStatus]]:
    """(partition, start, end, status) of every job in the store, in offset order."""
    store = open_job_store(job_store, create=False)
    try:
        return sorted(
            (j.partition, j.start_offset, j.end_offset, j.status)
            for j in store.list_jobs(limit=100_000)
        )
    finally:
        store.close()


def valid_positions(report: ProduceReport) -> set[tuple[int, int]]:
    every = {(p, o) for p, end in report.end_offsets.items() for o in range(end)}
    return every - set(report.malformed_positions)


def is_table(path: Path) -> bool:
    """``format = "delta"`` output: a Delta table, read through its log."""
    return (path / "_delta_log").is_dir()


def _relation(con: duckdb.DuckDBPyConnection, path: Path, name: str) -> str:
    """Register ``path`` (a Delta table or a plain Parquet directory) as ``name``."""
    if is_table(path):
        from deltalake import DeltaTable

        con.register(name, DeltaTable(str(path)).to_pyarrow_dataset())
    else:
        con.execute(
            f"create view {name} as select * from "
            f"read_parquet('{path}/**/*.parquet', hive_partitioning=true)"
        )
    return name


def raw_positions(output_dir: Path, topic: str) -> list[tuple[int, int]]:
    """(partition, offset) of every raw row readers see (a table: its current version)."""
    con = duckdb.connect()
    raw = _relation(con, output_dir / "raw", "raw_rows")
    rows = con.sql(f"select _partition, _offset from {raw} where _topic = '{topic}'").fetchall()
    return [(int(p), int(o)) for p, o in rows]


def agg_count(output_dir: Path) -> int:
    """Records the plain-Parquet ``agg`` files count (partial rows per job, summed)."""
    con = duckdb.connect()
    agg = _relation(con, output_dir / "agg", "agg_rows")
    return int(con.sql(f"select coalesce(sum(count), 0) from {agg}").fetchall()[0][0])


def assert_final_aggregates(output_dir: Path) -> int:
    """A table's ``agg``: one row per (device_id, minute), each equal to what its
    raw rows give (count and mean); returns the records they cover. Open hours
    have no rows yet, so this holds at any time, and covers every record once
    every hour has closed."""
    if not is_table(output_dir / "agg"):
        return 0  # no closed hour yet
    con = duckdb.connect()
    raw = _relation(con, output_dir / "raw", "raw_rows")
    agg = _relation(con, output_dir / "agg", "agg_rows")
    twice = con.sql(
        f"select device_id, minute, count(*) n from {agg} group by all having n > 1 limit 5"
    ).fetchall()
    assert not twice, f"agg has several rows for one (device, minute): {twice}"
    mismatched = con.sql(
        f"""
        with r as (select device_id, date_trunc('minute', ts) as minute, count(*) as n,
                          avg(temperature) as t from {raw} group by all)
        select a.device_id, a.minute, r.n, a.count
        from {agg} a left join r using (device_id, minute)
        where r.n is distinct from a.count or abs(r.t - a.temperature_mean) > 1e-9
        limit 5
        """
    ).fetchall()
    assert not mismatched, f"agg rows differ from their raw rows: {mismatched}"
    return int(con.sql(f"select coalesce(sum(count), 0) from {agg}").fetchall()[0][0])


def dead_letters(
    bootstrap: str, dlq_topic: str, expected: int, timeout_s: float = 60
) -> list[dict[str, str]]:
    """Every record of the dead-letter topic, as its headers; reads until at
    least ``expected`` arrived and the topic has been quiet for a moment."""
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": f"check-{time.time_ns()}",
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
            "session.timeout.ms": 6000,
        }
    )
    consumer.subscribe([dlq_topic])
    found: list[dict[str, str]] = []
    deadline = time.monotonic() + timeout_s
    quiet_since = None
    try:
        while time.monotonic() < deadline:
            batch = consumer.consume(1000, 0.5)
            got = [m for m in batch if m.error() is None]
            for m in got:
                found.append({k: v.decode() for k, v in (m.headers() or [])})
            if got:
                quiet_since = None
            elif len(found) >= expected:
                quiet_since = quiet_since or time.monotonic()
                if time.monotonic() - quiet_since > 2:
                    break
    finally:
        consumer.close()
    return found


def assert_exactly_once(
    output_dir: Path,
    topic: str,
    report: ProduceReport,
    bootstrap: str,
    dlq_topic: str,
    dead_letters_exactly_once: bool = True,
) -> None:
    """Every valid record exactly once in raw; agg sums to the same; malformed
    records in the dead-letter topic (exactly once, or at least once after a crash)."""
    positions = raw_positions(output_dir, topic)
    duplicates = [pos for pos, n in Counter(positions).items() if n > 1]
    assert not duplicates, f"{len(duplicates)} records written twice, e.g. {duplicates[:5]}"
    want = valid_positions(report)
    got = set(positions)
    assert got == want, (
        f"raw has {len(got)} records, expected {len(want)}: "
        f"missing {sorted(want - got)[:5]}, unexpected {sorted(got - want)[:5]}"
    )
    if is_table(output_dir / "raw"):
        assert_final_aggregates(output_dir)
    else:
        assert agg_count(output_dir) == report.valid
    letters = dead_letters(bootstrap, dlq_topic, len(report.malformed_positions))
    sources = [
        (int(h["source_partition"]), int(h["source_offset"]))
        for h in letters
        if h.get("source_topic") == topic
    ]
    assert set(sources) == set(report.malformed_positions)
    if dead_letters_exactly_once:
        assert len(sources) == len(set(sources)), "a dead letter was produced twice"
    assert all(h.get("error") for h in letters), "every dead letter says why"


def wait_complete(
    daemon: DaemonProcess,
    bootstrap: str,
    group: str,
    topic: str,
    report: ProduceReport,
    job_store: str,
    timeout_s: float = 180,
) -> None:
    """Wait (deadline-bounded) until every produced offset is committed and
    no job is PENDING or RUNNING; fail at once if the daemon dies."""

    def done() -> bool:
        daemon.check_alive()
        return all_committed(bootstrap, group, topic, report) and jobs_unfinished(job_store) == 0

    try:
        wait_for(done, timeout_s, "every offset committed and every job done", 0.5)
    except AssertionError as exc:
        want = dict(report.end_offsets)
        committed = committed_offsets(bootstrap, group, topic, sorted(want))
        raise AssertionError(
            f"{exc}; produced up to {want}, committed {committed},"
            f" unfinished jobs {jobs_unfinished(job_store)}"
        ) from None
