"""Table output (``[output] format = "delta"``) against the real broker, real
daemons and the readers users use: rows appear only in atomic commits, every
valid record exactly once, at every instant a reader looks — also across a
kill -9 of every process and a restart."""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any

import duckdb
import pandas as pd
import polars as pl
import pyarrow.parquet as pq
import pytest
from deltalake import DeltaTable

from actorsys.embedded_broker import EmbeddedBroker
from actorsys.kafka_clients import create_topic_if_missing
from actorsys.simulator import ProduceReport, produce
from actorsys.tables.delta import app_id
from tests.support.checks import assert_final_aggregates, valid_positions, wait_complete
from tests.support.daemon import DaemonProcess, start_ready, topic_daemon
from tests.support.rig import Feeder
from tests.support.waiting import wait_for

pytestmark = pytest.mark.integration

PARTITIONS = 2


def _daemon(tmp_path: Path, broker: EmbeddedBroker, topic: str, **extra: Any) -> DaemonProcess:
    sections: dict[str, Any] = {
        "output": {"format": "delta"},
        "tables": {"commit_interval_ms": 300},
        "batching": {"max_records": 1000, "linger_ms": 200},
    }
    for section, values in extra.items():
        sections.setdefault(section, {}).update(values)
    return topic_daemon(tmp_path, broker.bootstrap_servers, topic, **sections)


def table_positions(raw: Path, topic: str) -> list[tuple[int, int]]:
    """(partition, offset) of every row of the table's current version."""
    dataset = DeltaTable(str(raw)).to_pyarrow_dataset()
    rows = (
        duckdb.from_arrow(dataset)
        .filter(f"_topic = '{topic}'")
        .project("_partition, _offset")
        .fetchall()
    )
    return [(int(p), int(o)) for p, o in rows]


class _Reader:
    """Polls the table the whole time, as an analyst would, and records any
    instant at which a record was visible twice."""

    def __init__(self, raw: Path, topic: str) -> None:
        self._raw, self._topic = raw, topic
        self._stop = threading.Event()
        self.polls = 0
        self.max_rows = 0
        self.duplicates: list[tuple[int, list[tuple[int, int]]]] = []
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            with suppress(Exception):  # no table yet, or a version vacuumed under us
                positions = table_positions(self._raw, self._topic)
                twice = [pos for pos, n in Counter(positions).items() if n > 1]
                if twice:
                    self.duplicates.append((len(positions), twice[:5]))
                self.polls += 1
                self.max_rows = max(self.max_rows, len(positions))
            self._stop.wait(0.2)

    @contextmanager
    def polling(self) -> Iterator[_Reader]:
        self._thread.start()
        try:
            yield self
        finally:
            self._stop.set()
            self._thread.join(30)


def _feed(broker: EmbeddedBroker, topic: str, count: int, rate: float, **shape: Any) -> Feeder:
    """Produce in the background (``report()`` waits for it). ``shape``: more
    arguments of ``produce`` (event time, late records), or other values for
    its defaults here."""
    options: dict[str, Any] = {"devices": 50, "malformed_ratio": 0.01, "seed": 11, **shape}
    return Feeder(
        broker.bootstrap_servers, topic, partitions=PARTITIONS, rate=rate, count=count, **options
    ).start()


def _assert_table_exactly_once(raw: Path, topic: str, report: ProduceReport, group: str) -> None:
    positions = table_positions(raw, topic)
    assert len(positions) == len(set(positions)), "a record is in the table twice"
    assert set(positions) == valid_positions(report)
    # The commits recorded how far each partition is in: the produced end offsets.
    table = DeltaTable(str(raw))
    for partition, end in report.end_offsets.items():
        assert table.transaction_version(app_id(group, topic, partition)) == end


def test_table_output_is_exactly_once_at_every_instant_a_reader_looks(
    tmp_path: Path, broker: EmbeddedBroker, topic: str, daemons: list[DaemonProcess]
) -> None:
    # Given a daemon writing a Delta table, and a reader polling it throughout
    create_topic_if_missing(broker.bootstrap_servers, topic, PARTITIONS)
    daemon = _daemon(tmp_path, broker, topic)
    start_ready(daemons, daemon)
    raw = tmp_path / "out" / "raw"
    with _Reader(raw, topic).polling() as reader:
        # When records stream in at 4,000/s for 5 s
        report = _feed(broker, topic, 20_000, 4_000).report()
        job_store = f"sqlite:///{tmp_path}/jobs.db"
        wait_complete(daemon, broker.bootstrap_servers, f"g-{topic}", topic, report, job_store)
    # Then no poll ever saw a record twice, and the table holds each valid one once
    print(f"{reader.polls} polls, up to {reader.max_rows} rows seen")
    assert reader.polls > 10 and not reader.duplicates, reader.duplicates[:3]
    _assert_table_exactly_once(raw, topic, report, f"g-{topic}")
    # And pandas, polars and DuckDB read it as UTC timestamps, files sorted for queries
    frame = DeltaTable(str(raw)).to_pandas()
    assert len(frame) == report.valid and str(frame["ts"].dtype) == "datetime64[us, UTC]"
    polars_frame = pl.read_delta(str(raw))
    assert polars_frame.height == report.valid
    assert polars_frame.schema["ts"] == pl.Datetime("us", "UTC")
    for path in DeltaTable(str(raw)).file_uris()[:5]:
        rows = pq.read_table(path).to_pandas()
        assert rows.equals(rows.sort_values(["device_id", "ts"], kind="stable")), path
    assert isinstance(frame, pd.DataFrame)
    assert daemon.terminate() == 0


def test_kill_9_of_every_process_while_committing_then_restart_is_exactly_once(
    tmp_path: Path, broker: EmbeddedBroker, topic: str, daemons: list[DaemonProcess]
) -> None:
    # Given a daemon committing to its table while records stream in
    create_topic_if_missing(broker.bootstrap_servers, topic, PARTITIONS)
    daemon = _daemon(tmp_path, broker, topic)
    start_ready(daemons, daemon)
    raw = tmp_path / "out" / "raw"
    with _Reader(raw, topic).polling() as reader:
        feed = _feed(broker, topic, 30_000, 3_000)
        wait_for(lambda: reader.max_rows > 3_000, 60, "rows to be committed", 0.2)
        # When every process of the daemon is killed -9, mid-stream
        daemon.kill9()
        daemon.assert_nothing_left()
        report = feed.report()
        # And it starts again on the same store and table
        again = DaemonProcess(
            daemon.config_path, tmp_path / "again.log", daemon.metrics_port, daemon.admin_port,
            daemon.env,
        )  # fmt: skip
        daemons.append(again)
        again.start()
        job_store = f"sqlite:///{tmp_path}/jobs.db"
        wait_complete(again, broker.bootstrap_servers, f"g-{topic}", topic, report, job_store)
    # Then no reader ever saw a record twice, and each valid record is in once
    print(f"{reader.polls} polls, up to {reader.max_rows} rows seen")
    assert not reader.duplicates, reader.duplicates[:3]
    _assert_table_exactly_once(raw, topic, report, f"g-{topic}")
    assert again.terminate() == 0


def _all_compacted(raw: Path) -> bool:
    """Whether the table holds compacted files only (no ingestion file is left)."""
    names = [Path(uri).name for uri in DeltaTable(str(raw)).file_uris()]
    return bool(names) and all(n.startswith("compact-") for n in names)


def _assert_final_aggregates(out: Path, report: ProduceReport) -> None:
    """Every hour closed: agg holds exactly one row per (device, minute), whose
    counts and means are the raw rows', covering every valid record once; so
    does agg_hourly."""
    assert assert_final_aggregates(out) == report.valid
    hourly = DeltaTable(str(out / "agg_hourly")).to_pandas()
    assert hourly["count"].sum() == report.valid


def test_closed_hours_are_compacted_with_exact_final_aggregates_and_late_records(
    tmp_path: Path, broker: EmbeddedBroker, topic: str, daemons: list[DaemonProcess]
) -> None:
    # Given a daemon whose hours close quickly (event time runs 600x wall time in
    # the feed, partitions idle for 3 s close their open hours)
    create_topic_if_missing(broker.bootstrap_servers, topic, PARTITIONS)
    daemon = _daemon(
        tmp_path,
        broker,
        topic,
        tables={
            "commit_interval_ms": 300,
            "allowed_lateness_s": 120.0,
            "idle_partition_s": 3.0,
            "recompact_delay_s": 1.0,
        },
    )
    start_ready(daemons, daemon)
    raw = tmp_path / "out" / "raw"
    with _Reader(raw, topic).polling() as reader:
        # When 30,000 records stream in over ~10 s, spanning ~1.7 event hours,
        # 2 % of them up to 30 event-minutes late
        report = produce(
            broker.bootstrap_servers, topic, devices=40, rate=3000, count=30_000,
            malformed_ratio=0.0, partitions=PARTITIONS, seed=12,
            time_scale=600.0, late_ratio=0.02, late_max_s=1800.0,
        )  # fmt: skip
        job_store = f"sqlite:///{tmp_path}/jobs.db"
        wait_complete(daemon, broker.bootstrap_servers, f"g-{topic}", topic, report, job_store)

        # Then every hour is compacted: no ingestion file is left in the table
        def compacted() -> bool:
            daemon.check_alive()
            return _all_compacted(raw)

        wait_for(compacted, 90, "every hour to be compacted", 0.5)
        wait_complete(daemon, broker.bootstrap_servers, f"g-{topic}", topic, report, job_store)
    assert report.late > 0 and not reader.duplicates, reader.duplicates[:3]
    _assert_table_exactly_once(raw, topic, report, f"g-{topic}")
    files = DeltaTable(str(raw)).file_uris()
    hours = {Path(uri).parent.name for uri in files}
    print(f"{len(files)} files for {len(hours)} hours; {report.late} late records")
    assert len(files) <= 2 * len(hours)
    for uri in files:  # each compacted file is sorted for queries
        rows = pq.read_table(uri, columns=["device_id", "ts"]).to_pandas()
        assert rows.equals(rows.sort_values(["device_id", "ts"], kind="stable")), uri
    # And agg holds exactly one row per (device, minute), whose counts are the raw counts
    _assert_final_aggregates(tmp_path / "out", report)
    assert daemon.terminate() == 0


def test_actorsys_compact_compacts_open_hours_on_demand(
    tmp_path: Path, broker: EmbeddedBroker, topic: str, daemons: list[DaemonProcess]
) -> None:
    import subprocess
    import sys

    # Given records of an hour that is still open (real time: it closes in an hour)
    create_topic_if_missing(broker.bootstrap_servers, topic, PARTITIONS)
    daemon = _daemon(tmp_path, broker, topic)
    start_ready(daemons, daemon)
    report = _feed(broker, topic, 3_000, 0).report()
    job_store = f"sqlite:///{tmp_path}/jobs.db"
    wait_complete(daemon, broker.bootstrap_servers, f"g-{topic}", topic, report, job_store)
    raw = tmp_path / "out" / "raw"
    assert any(Path(u).name.startswith("part-") for u in DeltaTable(str(raw)).file_uris())
    # When an operator asks for compaction now
    done = subprocess.run(
        [sys.executable, "-m", "actorsys", "compact", "--config", str(daemon.config_path)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert "compaction job(s) queued" in done.stdout
    # Then the daemon compacts it: compacted files only, every row still once
    wait_for(
        lambda: all(Path(u).name.startswith("compact-") for u in DeltaTable(str(raw)).file_uris()),
        60,
        "the hour to be compacted",
        0.5,
    )
    wait_complete(daemon, broker.bootstrap_servers, f"g-{topic}", topic, report, job_store)
    _assert_table_exactly_once(raw, topic, report, f"g-{topic}")
    assert DeltaTable(str(tmp_path / "out" / "agg")).to_pandas()["count"].sum() == report.valid
    assert daemon.terminate() == 0
