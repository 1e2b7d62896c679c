"""The exactly-once output check, and the Kafka-side facts it compares with:
committed offsets and open jobs ("has the pipeline finished this data?"),
and what a topic holds (:func:`consume_all`), shared by the tests, the fault
scenarios and the benchmarks.

duckdb is imported where the output is read: the benchmarks import this
module for :class:`Completion`, and their own process's memory is a figure.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition

from actorsys.jobs.model import JobRecord, JobStatus
from actorsys.jobs.open import open_job_store
from actorsys.secrets import Secret
from actorsys.simulator import ProduceReport
from tests.support.closing import Closes
from tests.support.daemon import DaemonProcess
from tests.support.waiting import wait_for

if TYPE_CHECKING:
    import duckdb

JOB_FAILED = "job_failed"  # the dead-letter reason of every record of a FAILED job

_quiet = logging.getLogger("tests.kafka")

ConsumedRecord = tuple[int, int, bytes | None, bytes | None]  # partition, offset, key, value


def consume_all(
    bootstrap: str, topic: str, end_offsets: dict[int, int], timeout_s: float = 60
) -> tuple[list[ConsumedRecord], dict[int, int]]:
    """Read every partition from the beginning up to ``end_offsets``.

    Uses assign(), not a group subscription: no group join to wait for. Also
    returns the high watermarks the fetches reported (Tansu's ListOffsets is
    stale, the cached fetch watermark is not).
    """
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": f"verify-{topic}",
            "enable.auto.commit": False,
            "fetch.queue.backoff.ms": 10,
            "logger": _quiet,
        }
    )
    try:
        consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in end_offsets])
        records: list[ConsumedRecord] = []
        position = dict.fromkeys(end_offsets, 0)
        deadline = time.monotonic() + timeout_s
        while any(position[p] < end for p, end in end_offsets.items()):
            assert time.monotonic() < deadline, f"consumed only up to {position} of {end_offsets}"
            for msg in consumer.consume(10_000, timeout=0.5):
                assert msg.error() is None, msg.error()
                partition, offset = msg.partition(), msg.offset()
                assert partition is not None and offset is not None  # a fetched record has both
                records.append((partition, offset, msg.key(), msg.value()))
                position[partition] = offset + 1
        watermarks = {
            p: consumer.get_watermark_offsets(TopicPartition(topic, p), cached=True)[1]
            for p in end_offsets
        }
        return records, watermarks
    finally:
        consumer.close()


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


class Completion(Closes):
    """Has the pipeline finished a topic's data? Every end offset committed by
    the group (read without joining it) and, with a job store, no job PENDING
    or RUNNING. One consumer and one store connection for the whole watch, so
    that polling it often costs little (a benchmark polls every 0.2 s)."""

    def __init__(
        self,
        bootstrap: str,
        group: str,
        topic: str,
        end_offsets: Mapping[int, int],
        job_store: str | Secret | None = None,
    ) -> None:
        self._tps = [TopicPartition(topic, p) for p in sorted(end_offsets)]
        self._consumer = Consumer(
            {"bootstrap.servers": bootstrap, "group.id": group, "enable.auto.commit": False}
        )
        self.end_offsets = dict(end_offsets)
        self.total = sum(end_offsets.values())
        self._store: Any = open_job_store(job_store) if job_store else None

    def committed(self) -> dict[int, int]:
        """Committed offsets by partition (0 where none is committed yet)."""
        tps = self._consumer.committed(self._tps, timeout=10)
        return {tp.partition: max(tp.offset, 0) for tp in tps}

    def all_committed(self, committed: Mapping[int, int] | None = None) -> bool:
        """Exactly the end offsets committed: never fewer, and never more (a
        commit past the last record would be a bug too)."""
        return dict(self.committed() if committed is None else committed) == self.end_offsets

    def job_counts(self) -> dict[str, int]:
        if self._store is None:
            return {}
        return {status.value: n for status, n in self._store.count_by_status().items()}

    def jobs_unfinished(self) -> int:
        counts = self.job_counts()
        return counts.get(JobStatus.PENDING.value, 0) + counts.get(JobStatus.RUNNING.value, 0)

    def done(self) -> bool:
        return self.all_committed() and self.jobs_unfinished() == 0

    def jobs_by_worker(self) -> dict[str, int]:
        """DONE jobs per worker, as job records name it: "<job manager>/<host>/<worker id>"."""
        if self._store is None:
            return {}
        ran: dict[str, int] = defaultdict(int)
        for job in self._store.list_jobs(JobStatus.DONE, limit=10_000_000):
            ran[job.worker or "?"] += 1
        return dict(sorted(ran.items()))

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self._consumer.close()
        if self._store is not None:
            with contextlib.suppress(Exception):
                self._store.close()


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


def _connect() -> duckdb.DuckDBPyConnection:
    import duckdb

    return duckdb.connect()


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
    con = _connect()
    raw = _relation(con, output_dir / "raw", "raw_rows")
    rows = con.sql(f"select _partition, _offset from {raw} where _topic = '{topic}'").fetchall()
    return [(int(p), int(o)) for p, o in rows]


def agg_count(output_dir: Path) -> int:
    """Records the plain-Parquet ``agg`` files count (partial rows per job, summed)."""
    con = _connect()
    agg = _relation(con, output_dir / "agg", "agg_rows")
    return int(con.sql(f"select coalesce(sum(count), 0) from {agg}").fetchall()[0][0])


def assert_final_aggregates(output_dir: Path) -> int:
    """A table's ``agg``: one row per (device_id, minute), each equal to what its
    raw rows give (count and mean); returns the records they cover. Open hours
    have no rows yet, so this holds at any time, and covers every record once
    every hour has closed."""
    if not is_table(output_dir / "agg"):
        return 0  # no closed hour yet
    con = _connect()
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
                headers = cast("list[tuple[str, bytes]]", m.headers() or [])  # as produced
                found.append({k: v.decode() for k, v in headers})
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
) -> float:
    """Wait (deadline-bounded) until every produced offset is committed and
    no job is PENDING or RUNNING; fail at once if the daemon dies. Returns the
    seconds it took."""
    started = time.monotonic()
    with Completion(bootstrap, group, topic, report.end_offsets, job_store) as completion:

        def done() -> bool:
            daemon.check_alive()
            return completion.done()

        try:
            wait_for(done, timeout_s, "every offset committed and every job done", 0.5)
        except AssertionError as exc:
            raise AssertionError(
                f"{exc}; produced up to {completion.end_offsets}, committed"
                f" {completion.committed()}, unfinished jobs {completion.jobs_unfinished()}"
            ) from None
    return time.monotonic() - started


def _positions(jobs: Iterable[JobRecord]) -> set[tuple[int, int]]:
    return {(j.partition, o) for j in jobs for o in range(j.start_offset, j.end_offset)}


def assert_output(
    output_dir: Path,
    topic: str,
    report: ProduceReport,
    bootstrap: str,
    dlq_topic: str,
    *,
    failed_jobs: Iterable[JobRecord] = (),
    replayed_jobs: Iterable[JobRecord] = (),
    failed_error: str | None = None,
    dead_letters_exactly_once: bool = True,
) -> dict[str, int]:
    """The exactly-once output check, extended to jobs that ended FAILED; returns
    its figures (records in raw, dead letters).

    Without such jobs it is :func:`assert_exactly_once` itself. With them:
    ``failed_jobs`` are FAILED now, so their records are in the dead-letter
    topic with reason ``job_failed`` (and ``failed_error`` in ``error``), not
    in raw; ``replayed_jobs`` were dead-lettered that way, then replayed with
    `actorsys jobs retry` and succeeded, so their records are in both. Every
    other valid record is exactly once in raw, every other malformed one in
    the dead-letter topic with its own reason. ``agg``: counted per job file
    (plain Parquet), or each final row checked against raw (tables)."""
    failed, replayed = list(failed_jobs), list(replayed_jobs)
    if not failed and not replayed:
        assert_exactly_once(
            output_dir, topic, report, bootstrap, dlq_topic, dead_letters_exactly_once
        )
        figures = {"raw_records": len(raw_positions(output_dir, topic))}
        if dead_letters_exactly_once:
            return {**figures, "dead_letters": report.malformed}
        letters = [
            h
            for h in dead_letters(bootstrap, dlq_topic, report.malformed)
            if h.get("source_topic") == topic
        ]
        return {
            **figures,
            "dead_letters": len(letters),
            "dead_letters_repeated": len(letters) - report.malformed,
        }

    failed_positions = _positions(failed)
    job_failed_positions = failed_positions | _positions(replayed)
    # Raw: every valid record but those of jobs that are FAILED now, exactly once.
    positions = raw_positions(output_dir, topic)
    twice = [pos for pos, n in Counter(positions).items() if n > 1]
    assert not twice, f"{len(twice)} records written twice, e.g. {twice[:5]}"
    want_raw = valid_positions(report) - failed_positions
    got = set(positions)
    assert got == want_raw, (
        f"raw has {len(got)} records, expected {len(want_raw)}: "
        f"missing {sorted(want_raw - got)[:5]}, unexpected {sorted(got - want_raw)[:5]}"
    )
    if is_table(output_dir / "raw"):
        # Tables: agg holds the closed hours' final rows, each what raw gives.
        assert_final_aggregates(output_dir)
    else:  # plain Parquet: partial agg rows per job, which sum to raw
        assert agg_count(output_dir) == len(want_raw)
    # Dead letters: malformed records by their own reason (those of FAILED jobs
    # never reached the handler), and every record of a job that ended FAILED.
    want_malformed = set(report.malformed_positions) - failed_positions
    letters = [
        h
        for h in dead_letters(bootstrap, dlq_topic, len(want_malformed) + len(job_failed_positions))
        if h.get("source_topic") == topic
    ]
    by_reason = [
        (int(h["source_partition"]), int(h["source_offset"]))
        for h in letters
        if h.get("reason") != JOB_FAILED
    ]
    by_job = [
        (int(h["source_partition"]), int(h["source_offset"]))
        for h in letters
        if h.get("reason") == JOB_FAILED
    ]
    assert set(by_reason) == want_malformed, (
        f"malformed dead letters: missing {sorted(want_malformed - set(by_reason))[:5]}, "
        f"unexpected {sorted(set(by_reason) - want_malformed)[:5]}"
    )
    assert set(by_job) == job_failed_positions, (
        f"job_failed dead letters: missing {sorted(job_failed_positions - set(by_job))[:5]}, "
        f"unexpected {sorted(set(by_job) - job_failed_positions)[:5]}"
    )
    if dead_letters_exactly_once:
        assert len(by_reason) == len(set(by_reason)), "a malformed dead letter was produced twice"
        assert len(by_job) == len(set(by_job)), "a job_failed dead letter was produced twice"
    assert all(h.get("error") for h in letters), "every dead letter says why"
    if failed_error is not None:
        errors = {h["error"] for h in letters if h.get("reason") == JOB_FAILED}
        assert all(failed_error in e for e in errors), f"job_failed errors: {sorted(errors)[:3]}"
    return {
        "raw_records": len(positions),
        "dead_letters": len(letters),
        "dead_letters_malformed": len(by_reason),
        "dead_letters_job_failed": len(by_job),
    }
