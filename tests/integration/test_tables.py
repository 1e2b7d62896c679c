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
from actorsys.simulator import ProduceReport, create_topic_if_missing, produce
from actorsys.tables.delta import app_id
from tests.support.checks import valid_positions, wait_complete
from tests.support.daemon import DaemonProcess, topic_daemon
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


def _feed(broker: EmbeddedBroker, topic: str, count: int, rate: float) -> Any:
    """Produce in the background; ``result()`` gives the ProduceReport."""
    box: dict[str, ProduceReport] = {}

    def run() -> None:
        box["report"] = produce(
            broker.bootstrap_servers,
            topic,
            devices=50,
            rate=rate,
            count=count,
            malformed_ratio=0.01,
            partitions=PARTITIONS,
            seed=11,
        )

    thread = threading.Thread(target=run, daemon=True)
    thread.start()

    class Feed:
        def result(self) -> ProduceReport:
            thread.join(120)
            return box["report"]

    return Feed()


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
    daemons.append(daemon)
    daemon.start()
    daemon.wait_ready()
    raw = tmp_path / "out" / "raw"
    with _Reader(raw, topic).polling() as reader:
        # When records stream in at 4,000/s for 5 s
        report = _feed(broker, topic, 20_000, 4_000).result()
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
    daemons.append(daemon)
    daemon.start()
    daemon.wait_ready()
    raw = tmp_path / "out" / "raw"
    with _Reader(raw, topic).polling() as reader:
        feed = _feed(broker, topic, 30_000, 3_000)
        wait_for(lambda: reader.max_rows > 3_000, 60, "rows to be committed", 0.2)
        # When every process of the daemon is killed -9, mid-stream
        daemon.kill9()
        daemon.assert_nothing_left()
        report = feed.result()
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
