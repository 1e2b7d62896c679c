"""/metrics, /healthz and /readyz of a real daemon on the embedded broker.

The counters must move by exactly the amounts driven through the pipeline,
the gauges must settle on the facts Kafka and the job store report, and the
exposition must pass ``promtool check metrics``.
"""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from actorsys import metrics
from actorsys.config import BatchingConfig
from actorsys.embedded_broker import EmbeddedBroker
from actorsys.jobs.model import JobStatus
from actorsys.jobs.open import open_job_store
from actorsys.kafka_clients import create_topic_if_missing
from actorsys.simulator import ProduceReport, produce
from tests.support.checks import all_committed, jobs_unfinished, wait_complete
from tests.support.daemon import DaemonProcess, new_daemon, start_ready, topic_daemon
from tests.support.prom import Exposition, run_promtool
from tests.support.waiting import wait_for

pytestmark = pytest.mark.integration

# The roles of a daemon writing plain Parquet: no table committer.
PARQUET_ROLES = set[str](metrics.ROLES) - {"committer"}  # Role is a StrEnum

RECORDS = 20_000
PARTITIONS = 3
WORKERS = 2


def _daemon(tmp_path: Path, broker: EmbeddedBroker, topic: str, group: str = "g") -> DaemonProcess:
    return new_daemon(
        tmp_path,
        "daemon",
        bootstrap=broker.bootstrap_servers,
        topics=[topic],
        group_id=group,
        output_dir=tmp_path / "out",
        job_store=f"sqlite:///{tmp_path}/jobs.db",
        # Plain Parquet whatever the default format: PARQUET_ROLES, no table metrics.
        extra={"workers": {"count": WORKERS}, "output": {"format": "parquet"}},
    )


def _present(value: float | None) -> float:
    """The value of a sample the scrape must hold."""
    assert value is not None, "sample missing from the scrape"
    return value


def _scrape(daemon: DaemonProcess) -> Exposition:
    code, body = daemon.http("/metrics")
    assert code == 200, body
    return Exposition(body.decode())


def _store_facts(job_store: str) -> tuple[int, int]:
    """(DONE jobs, attempts made on them) according to the job store."""
    store = open_job_store(job_store)
    try:
        done = store.list_jobs(JobStatus.DONE, limit=1_000_000)
        return len(done), sum(job.attempts for job in done)
    finally:
        store.close()


def _unsettled(m: Exposition, report: ProduceReport, done_jobs: int) -> list[str]:
    """What the periodic gauges have not caught up with yet (nothing: settled)."""
    ends = {str(p): float(e) for p, e in report.end_offsets.items()}
    wanted = {
        "committed offsets": (m.by_label("actorsys_committed_offset", "partition"), ends),
        "high watermarks": (m.by_label("actorsys_high_watermark_offset", "partition"), ends),
        "lag": (m.sum("actorsys_consumer_lag_records"), 0),
        "DONE jobs": (m.value("actorsys_jobs", status="DONE"), done_jobs),
        "in flight": (m.sum("actorsys_inflight_records"), 0),
        "roles": (
            set(m.by_label("actorsys_process_resident_memory_bytes", "role")),
            PARQUET_ROLES,
        ),
        "workers": (m.sum("actorsys_workers"), WORKERS),
        # librdkafka statistics come every 5 s
        "brokers up": (m.value("actorsys_kafka_brokers_up"), 1),
    }
    return [
        f"{name}: {got!r}, want {want!r}" for name, (got, want) in wanted.items() if got != want
    ]


def test_metrics_move_by_exactly_what_was_driven(
    tmp_path: Path,
    broker: EmbeddedBroker,
    topic: str,
    daemons: list[DaemonProcess],
    promtool: str,
) -> None:
    # Given records, some malformed, in a topic of several partitions
    report = produce(
        broker.bootstrap_servers,
        topic,
        devices=50,
        rate=0,
        count=RECORDS,
        malformed_ratio=0.02,
        partitions=PARTITIONS,
        seed=3,
    )
    assert report.malformed > 0
    job_store = f"sqlite:///{tmp_path}/jobs.db"
    group = f"g-{uuid.uuid4().hex[:8]}"
    daemon = _daemon(tmp_path, broker, topic, group)
    daemons.append(daemon.start())
    daemon.wait_ready()

    # When the daemon has committed everything and finished every job
    def complete() -> bool:
        daemon.check_alive()
        return (
            all_committed(broker.bootstrap_servers, group, topic, report)
            and jobs_unfinished(job_store) == 0
        )

    wait_for(complete, 120, "every offset committed and every job done", 0.5)
    done_jobs, attempts = _store_facts(job_store)

    problems: list[str] = []

    def settled() -> Exposition | None:
        scraped = _scrape(daemon)
        problems[:] = _unsettled(scraped, report, done_jobs)
        return None if problems else scraped

    try:
        m = wait_for(settled, 20, "the gauges to settle on the end state", 0.5)
    except AssertionError as exc:
        raise AssertionError(f"{exc}: {problems}") from None

    # Then records in = records out, per partition and in total
    assert m.by_label("actorsys_records_consumed_total", "partition", topic=topic) == {
        str(p): float(e) for p, e in report.end_offsets.items()
    }
    assert m.sum("actorsys_records_written_total") == report.valid
    assert m.sum("actorsys_dead_letters_total") == report.malformed
    # And every batch was sent once, stored once and ACKed once
    sent = m.sum("actorsys_batches_sent_total", topic=topic)
    assert sent == done_jobs
    assert m.sum("actorsys_offset_chain_total", topic=topic, verdict="store") == done_jobs
    assert m.sum("actorsys_ack_latency_seconds_count", topic=topic) == sent
    # (out_of_order verdicts are not asserted: Thespian may deliver a batch ahead
    # of the one before it; it is parked and still stored once, counted above.)
    # And jobs: finished = in the store = attempts = observed durations
    assert m.value("actorsys_jobs_finished_total", status="DONE") == done_jobs
    assert m.value("actorsys_job_attempts_total") == attempts == done_jobs
    assert m.value("actorsys_job_duration_seconds_count", outcome="done") == done_jobs
    assert m.sum("actorsys_job_attempt_failures_total") == 0
    assert m.value("actorsys_jobs", status="FAILED") == 0
    # And the Kafka side: committed = end offsets, no lag, nothing in flight or paused
    assert m.sum("actorsys_consumer_lag_seconds") == 0
    assert m.sum("actorsys_inflight_records") == 0
    assert m.sum("actorsys_partition_paused") == 0
    assert m.value("actorsys_assigned_partitions") == PARTITIONS
    assert m.sum("actorsys_commits_total") > 0
    assert m.sum("actorsys_commit_failures_total") == 0
    assert _present(m.value("actorsys_rebalances_total", kind="assign")) >= 1
    assert m.value("actorsys_kafka_brokers_up") == 1
    # And processes: one per role, the pool of Consumers, the configured workers
    processes = m.by_label("actorsys_processes", "role")
    assert processes == {
        **{role: 1.0 for role in PARQUET_ROLES},
        "consumer": float(BatchingConfig().consumers),
        "worker": float(WORKERS),
    }
    rss = m.by_label("actorsys_process_resident_memory_bytes", "role")
    assert all(v > 10_000_000 for v in rss.values()), rss
    assert m.value("actorsys_job_store_up") == 1
    assert m.value("actorsys_ready") == 1
    # And every family is declared in actorsys.metrics, with its help text
    ours = {name for name in m.help if name.startswith("actorsys_")}
    declared = {spec.name.removesuffix("_total") for spec in metrics.SPECS.values()}
    assert ours <= declared, ours - declared
    for spec in metrics.SPECS.values():
        family = spec.name.removesuffix("_total")
        if family in m.help:
            assert m.help[family] == spec.help
    # And promtool accepts the exposition (format and naming conventions)
    checked = run_promtool(promtool, "check", "metrics", stdin=m.text)
    assert checked.returncode == 0, checked.stdout + checked.stderr

    assert daemon.terminate() == 0, daemon.log_tail()
    daemon.assert_nothing_left()


def test_health_endpoints_say_what_is_wrong(
    tmp_path: Path, broker: EmbeddedBroker, topic: str, daemons: list[DaemonProcess]
) -> None:
    # Given a daemon subscribed to a topic that does not exist (nothing to assign)
    daemon = _daemon(tmp_path, broker, f"{topic}-missing")
    daemons.append(daemon.start())

    def answering() -> bool:
        daemon.check_alive()
        try:
            return daemon.http("/healthz")[0] == 200
        except OSError:
            return False

    wait_for(answering, 60, "/healthz to answer")
    # Then /healthz says the process is alive
    code, body = daemon.http("/healthz")
    health = json.loads(body)
    assert code == 200
    assert health["status"] == "ok"
    assert health["pid"] == daemon.proc.pid
    assert health["uptime_s"] >= 0

    # And /readyz is 503 and names the failing check, once the rest is up
    def readiness() -> dict[str, Any] | None:
        code, body = daemon.http("/readyz")
        doc = json.loads(body)
        checks = doc.get("checks", {})
        settled = checks.get("components") and checks["broker"] and checks["topics"] is False
        return doc if code == 503 and settled else None

    doc = wait_for(readiness, 60, "/readyz to report the missing topic and assignment", 0.25)
    assert doc is not None  # wait_for returns only a truthy value
    assert doc["ready"] is False
    assert doc["checks"] == {
        "actor_system": True,
        "components": True,
        "broker": True,
        "topics": False,
        "assignment": False,
        "job_store": True,
    }
    assert doc["problems"] == [
        f"waiting for topic(s) {topic}-missing to exist",
        "no partition assigned yet",
    ]
    # And /metrics reports the daemon as not ready
    assert _scrape(daemon).value("actorsys_ready") == 0

    assert daemon.terminate() == 0, daemon.log_tail()
    daemon.assert_nothing_left()


def test_readyz_is_200_with_every_check_passing(
    tmp_path: Path, broker: EmbeddedBroker, topic: str, daemons: list[DaemonProcess]
) -> None:
    produce(
        broker.bootstrap_servers,
        topic,
        devices=5,
        rate=0,
        count=10,
        malformed_ratio=0,
        partitions=2,
    )
    daemon = _daemon(tmp_path, broker, topic)
    daemons.append(daemon.start())
    daemon.wait_ready()
    code, body = daemon.http("/readyz")
    assert code == 200
    assert json.loads(body) == {
        "ready": True,
        "problems": [],
        "checks": {
            "actor_system": True,
            "components": True,
            "broker": True,
            "topics": True,
            "assignment": True,
            "job_store": True,
        },
    }
    assert daemon.terminate() == 0, daemon.log_tail()
    daemon.assert_nothing_left()


def test_a_rebalance_moves_partition_series_to_the_new_owner(
    tmp_path: Path, broker: EmbeddedBroker, topic: str, daemons: list[DaemonProcess]
) -> None:
    # Given a daemon that owns all four partitions of a topic, caught up
    report = produce(
        broker.bootstrap_servers,
        topic,
        devices=10,
        rate=0,
        count=2_000,
        malformed_ratio=0,
        partitions=4,
        seed=5,
    )
    ends = {str(p): float(e) for p, e in report.end_offsets.items()}
    group = f"g-{uuid.uuid4().hex[:8]}"
    first = _daemon(tmp_path, broker, topic, group)
    daemons.append(first.start())
    first.wait_ready()

    def committed(daemon: DaemonProcess) -> dict[str, float]:
        return _scrape(daemon).by_label("actorsys_committed_offset", "partition", topic=topic)

    wait_for(lambda: committed(first) == ends, 60, "the first daemon to commit everything", 0.5)
    # When a second daemon joins the group (its own metrics port and admin port)
    second = new_daemon(
        tmp_path,
        "second",
        bootstrap=broker.bootstrap_servers,
        topics=[topic],
        group_id=group,
        output_dir=tmp_path / "out",
        job_store=f"sqlite:///{tmp_path}/jobs.db",
        extra={"workers": {"count": 1}, "output": {"format": "parquet"}},
    )
    daemons.append(second.start())
    second.wait_ready()

    # Then each daemon reports exactly the partitions it owns, between them all four,
    # with the committed offsets (the newcomer learns them from the group)
    def split() -> tuple[dict[str, float], dict[str, float]] | None:
        a, b = committed(first), committed(second)
        return (a, b) if a and b and not set(a) & set(b) and {**a, **b} == ends else None

    owned = wait_for(split, 60, "the partitions to split between the daemons", 0.5)
    assert owned is not None  # wait_for returns only a truthy value
    mine, _theirs = owned
    m = _scrape(first)
    for name in ("actorsys_consumer_lag_records", "actorsys_inflight_records"):
        assert set(m.by_label(name, "partition", topic=topic)) == set(mine), name
    # And each daemon keeps its pool of Consumers, whatever it owns now
    pool = BatchingConfig().consumers
    assert m.value("actorsys_processes", role="consumer") == pool
    assert _present(m.value("actorsys_rebalances_total", kind="revoke")) >= 1
    theirs_scraped = _scrape(second)
    assert theirs_scraped.value("actorsys_processes", role="consumer") == pool
    assert theirs_scraped.sum("actorsys_consumer_lag_records", topic=topic) == 0

    assert second.terminate() == 0, second.log_tail()
    assert first.terminate() == 0, first.log_tail()
    first.assert_nothing_left()
    second.assert_nothing_left()


# --- tables (format "delta") ----------------------------------------------------------------

# All records in one past event hour; partitions idle for 3 s close it.
EVENT_MS = int(datetime(2026, 1, 1, 5, 10, tzinfo=UTC).timestamp() * 1000)
TABLES = ("raw", "agg", "agg_hourly")


def _table_listing(table: Path) -> tuple[int, int, int]:
    """(files, bytes, most files of one hour) of the table's current version."""
    import pyarrow as pa
    from deltalake import DeltaTable

    actions = pa.table(DeltaTable(str(table)).get_add_actions(flatten=True)).to_pydict()
    per_hour: dict[str, int] = {}
    for path in actions["path"]:
        hour = path.rpartition("/")[0]
        per_hour[hour] = per_hour.get(hour, 0) + 1
    return len(actions["path"]), sum(actions["size_bytes"]), max(per_hour.values(), default=0)


def _table_gauges(m: Exposition, table: str) -> tuple[float | None, ...]:
    return (
        m.value("actorsys_table_files", table=table),
        m.value("actorsys_table_bytes", table=table),
        m.value("actorsys_table_files_per_closed_hour", table=table),
    )


def _compacted_and_reported(
    daemon: DaemonProcess, out: Path, compactions: int
) -> Exposition | None:
    """A scrape once ``compactions`` are done, raw holds compacted files only,
    and the table gauges equal a listing of every table."""
    daemon.check_alive()
    m = _scrape(daemon)
    if (m.value("actorsys_compactions_total", outcome="done") or 0) < compactions:
        return None
    for table in TABLES:
        if _table_gauges(m, table) != tuple(float(v) for v in _table_listing(out / table)):
            return None
    from deltalake import DeltaTable

    names = [Path(uri).name for uri in DeltaTable(str(out / "raw")).file_uris()]
    return m if names and all(n.startswith("compact-") for n in names) else None


def test_table_metrics_follow_commits_compactions_and_late_records(
    tmp_path: Path,
    broker: EmbeddedBroker,
    topic: str,
    daemons: list[DaemonProcess],
    promtool: str,
) -> None:
    # Given a delta-mode daemon whose hours close 3 s after their partitions go quiet
    create_topic_if_missing(broker.bootstrap_servers, topic, 2)
    daemon = topic_daemon(
        tmp_path,
        broker.bootstrap_servers,
        topic,
        output={"format": "delta"},
        tables={
            "commit_interval_ms": 300,
            "allowed_lateness_s": 120.0,
            "idle_partition_s": 3.0,
            "recompact_delay_s": 1.0,
        },
        batching={"max_records": 500, "linger_ms": 200},
    )
    start_ready(daemons, daemon)
    out, group = tmp_path / "out", f"g-{topic}"
    job_store = f"sqlite:///{tmp_path}/jobs.db"

    # When records of one event hour are committed, and the quiet hour is compacted
    def feed(count: int, seed: int) -> ProduceReport:
        report = produce(
            broker.bootstrap_servers, topic, devices=20, rate=0, count=count,
            malformed_ratio=0.0, partitions=2, seed=seed, epoch_ms=EVENT_MS,
        )  # fmt: skip
        wait_complete(daemon, broker.bootstrap_servers, group, topic, report, job_store)
        return report

    first = feed(2_000, 21)
    m = wait_for(
        lambda: _compacted_and_reported(daemon, out, 1), 90, "the hour compacted and reported", 0.5
    )
    assert m is not None  # wait_for returns only a truthy value

    # Then each partition's watermark is the newest event time it committed
    assert first.event_ms_range is not None
    watermarks = m.by_label("actorsys_watermark_seconds", "partition", topic=topic)
    assert set(watermarks) == {"0", "1"}
    assert all(EVENT_MS / 1000 <= w <= first.event_ms_range[1] / 1000 for w in watermarks.values())
    assert max(watermarks.values()) == first.event_ms_range[1] / 1000
    # And nothing was late
    assert m.value("actorsys_late_records_total", topic=topic) == 0
    # And the table gauges equal the tables (checked while waiting): one closed hour each
    for table in TABLES:
        files, nbytes, per_closed_hour = _table_gauges(m, table)
        assert files and nbytes and per_closed_hour == files, table
    # And every commit was timed: ingestion appends to raw, one replace per table
    raw_appends = m.value("actorsys_table_commit_seconds_count", table="raw", kind="append")
    assert raw_appends and raw_appends > 0
    done = m.value("actorsys_table_commits_total", table="raw", kind="append", outcome="done")
    assert done == raw_appends
    added = m.value("actorsys_table_files_added_total", table="raw", kind="append")
    assert _present(added) >= _present(done)
    for table in TABLES:
        count = m.value("actorsys_table_commit_seconds_count", table=table, kind="replace")
        assert _present(count) >= 1
        total = m.value("actorsys_table_commit_seconds_sum", table=table, kind="replace")
        assert _present(total) > 0
    assert m.select("actorsys_table_commits_total", table="agg", kind="append") == []
    assert m.value("actorsys_compactions_total", outcome="failed") == 0

    # When more records arrive for the compacted hour
    second = feed(500, 22)

    # Then every one of them is counted late, and the hour is compacted again
    def recompacted() -> Exposition | None:
        found = _compacted_and_reported(daemon, out, 2)
        late = found and found.value("actorsys_late_records_total", topic=topic)
        return found if late == second.valid else None

    m = wait_for(recompacted, 90, "the late records counted and the hour recompacted", 0.5)
    assert m is not None  # wait_for returns only a truthy value
    print({table: _table_gauges(m, table) for table in TABLES}, watermarks)
    assert second.valid == 500
    assert (
        m.value("actorsys_table_files_per_closed_hour", table="raw")
        == _table_listing(out / "raw")[0]
    )
    # And promtool accepts the exposition with the table metrics in it
    checked = run_promtool(promtool, "check", "metrics", stdin=m.text)
    assert checked.returncode == 0, checked.stdout + checked.stderr

    assert daemon.terminate() == 0, daemon.log_tail()
    daemon.assert_nothing_left()
