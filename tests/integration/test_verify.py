"""`actorsys verify` against a real broker, real daemons and their real output:
after a clean run it says OK with the exact counts, and it names the offsets
of rows an outsider duplicated — for Delta tables and plain Parquet files."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any, TypedDict, Unpack

import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest
from deltalake import DeltaTable, write_deltalake

from actorsys.embedded_broker import EmbeddedBroker
from actorsys.kafka_clients import create_topic_if_missing
from actorsys.simulator import ProduceReport, produce
from actorsys.verify import runs
from tests.support.checks import committed_offsets, wait_complete
from tests.support.daemon import DaemonProcess, topic_daemon
from tests.support.waiting import wait_for

pytestmark = pytest.mark.integration

PARTITIONS = 2
RECORDS = 5_000


class Sections(TypedDict, total=False):
    """Config sections for topic_daemon's ``**extra``; named, so none can land
    on one of its other parameters."""

    output: dict[str, Any]
    tables: dict[str, Any]


def _finished_run(
    tmp_path: Path,
    broker: EmbeddedBroker,
    topic: str,
    daemons: list[DaemonProcess],
    **sections: Unpack[Sections],
) -> tuple[DaemonProcess, ProduceReport]:
    """A daemon that consumed ``RECORDS`` records (1 % malformed) to the end and
    stopped cleanly: everything committed, every job done."""
    create_topic_if_missing(broker.bootstrap_servers, topic, PARTITIONS)
    daemon = topic_daemon(tmp_path, broker.bootstrap_servers, topic, **sections)
    daemons.append(daemon)
    daemon.start()
    daemon.wait_ready()
    report = produce(
        broker.bootstrap_servers,
        topic,
        devices=50,
        rate=0,
        count=RECORDS,
        malformed_ratio=0.01,
        partitions=PARTITIONS,
        seed=5,
    )
    job_store = f"sqlite:///{tmp_path}/jobs.db"
    wait_complete(daemon, broker.bootstrap_servers, f"g-{topic}", topic, report, job_store)
    assert daemon.terminate() == 0
    return daemon, report


def _verify(config_path: Path, *flags: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "actorsys", "verify", "--config", str(config_path), *flags],
        capture_output=True,
        text=True,
        timeout=180,
    )


def _verify_json(config_path: Path, expected_exit: int) -> dict[str, Any]:
    done = _verify(config_path, "--json")
    assert done.returncode == expected_exit, (done.stdout, done.stderr)
    assert done.stderr == ""
    doc: dict[str, Any] = json.loads(done.stdout)
    return doc


def _assert_ok_with_exact_counts(doc: dict[str, Any], topic: str, report: ProduceReport) -> None:
    assert doc["ok"] is True
    assert doc["totals"] == {
        "partitions": PARTITIONS,
        "partitions_with_problems": 0,
        "kafka_records_checked": report.produced,
        "raw_rows": report.valid,
        "dead_lettered": report.malformed,
        "missing": 0,
        "duplicated": 0,
        "extra_rows": 0,
        "unexpected": 0,
        "in_progress": 0,
    }
    assert doc["dead_letter_topics"] == {topic: f"{topic}.dlq"}
    assert doc["jobs"]["failed"] == []
    by_status = doc["jobs"]["by_status"]
    assert by_status["PENDING"] == by_status["RUNNING"] == by_status["FAILED"] == 0
    assert by_status["DONE"] > 0
    for part in doc["partitions"]:
        p, end = part["partition"], report.end_offsets[part["partition"]]
        malformed = sum(1 for q, _ in report.malformed_positions if q == p)
        assert part["kafka"]["committed"] == end and part["kafka"]["records_checked"] == end
        assert part["store_next_offset"] == end
        assert part["raw"]["rows"] == end - malformed and part["dead_lettered"] == malformed


def test_verify_delta_output_is_ok_then_names_rows_duplicated_by_an_outside_commit(
    tmp_path: Path, broker: EmbeddedBroker, topic: str, daemons: list[DaemonProcess]
) -> None:
    # Given a daemon that wrote a Delta table and stopped cleanly
    daemon, report = _finished_run(
        tmp_path,
        broker,
        topic,
        daemons,
        output={"format": "delta"},
        tables={"commit_interval_ms": 300},
    )
    # When verify runs
    doc = _verify_json(daemon.config_path, 0)
    # Then it is OK with the exact counts, and the table's txn versions are Kafka's commits
    _assert_ok_with_exact_counts(doc, topic, report)
    assert doc["format"] == "delta" and doc["table_version"] >= 1
    for part in doc["partitions"]:
        assert part["table_txn_version"] == report.end_offsets[part["partition"]]

    # When one data file's rows are committed again, in a new file
    raw = tmp_path / "out" / "raw"
    table = DeltaTable(str(raw))
    copied = pq.read_table(table.file_uris()[0], columns=["_partition", "_offset"])
    (partition,) = set(copied.column("_partition").to_pylist())
    offsets = copied.column("_offset").to_pylist()
    rows = table.to_pyarrow_dataset().to_table(
        filter=(pc.field("_partition") == partition) & pc.field("_offset").isin(offsets)
    )
    assert rows.num_rows == len(offsets)
    write_deltalake(str(raw), rows, mode="append")
    # Then verify exits 1 and names exactly those offsets as duplicated, nothing missing
    doc = _verify_json(daemon.config_path, 1)
    assert doc["ok"] is False
    bad = [part for part in doc["partitions"] if not part["ok"]]
    assert [part["partition"] for part in bad] == [partition]
    assert bad[0]["duplicated"] == {
        "count": len(offsets),
        "ranges": [list(r) for r in runs(offsets)],
        "extra_rows": len(offsets),
    }
    assert doc["totals"]["missing"] == 0 and doc["totals"]["raw_rows"] == report.valid + len(
        offsets
    )


def test_verify_parquet_output_is_ok_ignores_files_being_written_and_finds_a_copy(
    tmp_path: Path, broker: EmbeddedBroker, topic: str, daemons: list[DaemonProcess]
) -> None:
    # Given a daemon that wrote plain Parquet files and stopped cleanly
    daemon, report = _finished_run(tmp_path, broker, topic, daemons, output={"format": "parquet"})
    # And a file that looks like one being written (a copy of a published one)
    published = sorted((tmp_path / "out" / "raw").rglob("*.parquet"))
    original = published[0]
    shutil.copy(original, original.parent / f".tmp-{original.name}")
    # When verify runs
    doc = _verify_json(daemon.config_path, 0)
    # Then it is OK with the exact counts; Parquet output has no table version
    _assert_ok_with_exact_counts(doc, topic, report)
    assert doc["format"] == "parquet" and doc["table_version"] is None
    assert all(part["table_txn_version"] is None for part in doc["partitions"])
    # And the human summary is one line per partition, the jobs, and OK
    human = _verify(daemon.config_path)
    assert human.returncode == 0, human.stderr
    lines = human.stdout.splitlines()
    assert [line.split()[0] for line in lines[:PARTITIONS]] == [
        f"{topic}[{p}]" for p in range(PARTITIONS)
    ]
    assert lines[PARTITIONS].startswith("jobs: ") and lines[-1].startswith("OK: ")

    # When a published file is copied under another published name
    shutil.copy(original, original.parent / f"copy-{original.name}")
    # Then verify exits 1 naming the copied offsets as duplicated
    copied = pq.read_table(original, columns=["_partition", "_offset"])
    (partition,) = set(copied.column("_partition").to_pylist())
    offsets = copied.column("_offset").to_pylist()
    doc = _verify_json(daemon.config_path, 1)
    (bad,) = [part for part in doc["partitions"] if not part["ok"]]
    assert bad["partition"] == partition
    assert bad["duplicated"]["ranges"] == [list(r) for r in runs(offsets)]
    assert bad["missing"]["count"] == 0


def test_verify_while_the_daemon_consumes_finds_nothing_missing_or_duplicated(
    tmp_path: Path, broker: EmbeddedBroker, topic: str, daemons: list[DaemonProcess]
) -> None:
    # Given a daemon writing a Delta table while records stream in at 1,000/s
    create_topic_if_missing(broker.bootstrap_servers, topic, PARTITIONS)
    daemon = topic_daemon(
        tmp_path,
        broker.bootstrap_servers,
        topic,
        output={"format": "delta"},
        tables={"commit_interval_ms": 300},
    )
    daemons.append(daemon)
    daemon.start()
    daemon.wait_ready()
    box: dict[str, ProduceReport] = {}

    def feed() -> None:
        box["report"] = produce(
            broker.bootstrap_servers,
            topic,
            devices=50,
            rate=1_000,
            count=8_000,
            malformed_ratio=0.01,
            partitions=PARTITIONS,
            seed=6,
        )

    producer = threading.Thread(target=feed, daemon=True)
    producer.start()
    try:
        group = f"g-{topic}"

        def some_committed() -> bool:
            daemon.check_alive()
            offsets = committed_offsets(broker.bootstrap_servers, group, topic, [0, 1])
            return any(offset > 0 for offset in offsets.values())

        wait_for(some_committed, 60, "a first commit", 0.2)
        # When verify runs while the daemon commits and writes (twice at least)
        live = [_verify_json(daemon.config_path, 0)]
        while producer.is_alive() or len(live) < 2:
            live.append(_verify_json(daemon.config_path, 0))
    finally:
        producer.join(120)
    # Then every run found nothing missing or duplicated, having checked something
    for doc in live:
        assert doc["totals"]["missing"] == doc["totals"]["duplicated"] == 0, doc["totals"]
    assert all(doc["totals"]["kafka_records_checked"] > 0 for doc in live)
    # And once everything is done and the daemon stopped, the counts are exact
    report = box["report"]
    job_store = f"sqlite:///{tmp_path}/jobs.db"
    wait_complete(daemon, broker.bootstrap_servers, group, topic, report, job_store)
    assert daemon.terminate() == 0
    _assert_ok_with_exact_counts(_verify_json(daemon.config_path, 0), topic, report)
