"""actorsys.metrics: the declarations, and what /metrics makes of the files
that processes write, die and fork (each scenario runs in child processes,
so this test process never switches prometheus-client to file mode)."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import CollectorRegistry, generate_latest

from actorsys import metrics
from actorsys.metrics import MetricSpec
from actorsys.web import MultiProcessView
from tests.support.prom import Exposition

# --- declarations ---------------------------------------------------------------------------


def test_every_metric_follows_the_conventions() -> None:
    assert len(metrics.SPECS) >= 35
    for name, spec in metrics.SPECS.items():
        assert name == spec.name
        assert name.startswith("actorsys_")
        assert spec.help.strip().endswith((".", ")")), f"{name}: help is a sentence"
        assert set(spec.labels) <= metrics.LABELS


@pytest.mark.parametrize(
    ("args", "why"),
    [
        (("actorsys_things", "counter", "Help."), "end in _total"),
        (("actorsys_x_total", "gauge", "Help.", (), "livesum"), "end in _total"),
        (("actorsys_x_total", "counter", " "), "help text"),
        (("actorsys_things", "gauge", "Help.", (), "all"), "live multiprocess mode"),
        (("actorsys_x_ms", "histogram", "Help.", (), "", (1.0,)), "base units"),
        (("actorsys_x_total", "counter", "Help.", ("job_id",)), "unbounded"),
        (("x_total", "counter", "Help."), "actorsys_snake_case"),
    ],
)
def test_a_bad_declaration_is_refused(args: tuple[Any, ...], why: str) -> None:
    with pytest.raises(ValueError, match=why):
        MetricSpec(*args)


def test_helpers_do_nothing_without_a_multiprocess_dir(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.delenv(metrics.MULTIPROC_DIR_ENV, raising=False)
    monkeypatch.chdir(tmp_path)
    assert not metrics.enabled()
    metrics.records_consumed("t", 0, 10)
    metrics.partition_removed("t", 0)
    metrics.process_memory("worker")
    metrics.AckTimer("t").acked(0, 1, 1.0)
    metrics.WorkerGauge().update({"h": 1})
    metrics.watermark("t", 0, 1_700_000_000_000)
    metrics.late_records("t", 3)
    metrics.table_opened("raw")
    metrics.table_commit("raw", "append", "done", 0.01, 2)
    metrics.compaction_failed(final=True)
    files = metrics.TableFiles("raw")
    files.reset(0, [("date=2026-01-01/hour=0/part-a.parquet", 10)])
    files.publish()
    assert list(tmp_path.iterdir()) == []


# --- the multiprocess directory, as /metrics reads it --------------------------------------


@pytest.fixture
def multiproc_dir(tmp_path: Path) -> Iterator[Path]:
    directory = tmp_path / "metrics"
    directory.mkdir()
    yield directory


def _scrape(directory: Path) -> Exposition:
    registry = CollectorRegistry()
    registry.register(MultiProcessView(str(directory)))
    return Exposition(generate_latest(registry).decode())


def _env(directory: Path) -> dict[str, str]:
    return {**os.environ, metrics.MULTIPROC_DIR_ENV: str(directory)}


def _run(directory: Path, code: str) -> None:
    """Run ``code`` (with ``metrics`` imported) in a child process to its end."""
    script = "from actorsys import metrics\n" + textwrap.dedent(code)
    subprocess.run([sys.executable, "-c", script], env=_env(directory), check=True, timeout=60)


class _Running:
    """A child process that runs ``code``, says so, and lives until told to end."""

    def __init__(self, directory: Path, code: str) -> None:
        script = (
            "import sys\nfrom actorsys import metrics\n"
            + textwrap.dedent(code)
            + "\nprint('ready', flush=True)\nsys.stdin.read()\n"
        )
        self.proc = subprocess.Popen(
            [sys.executable, "-c", script],
            env=_env(directory),
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert self.proc.stdout is not None
        assert self.proc.stdout.readline().strip() == "ready"

    def end(self) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.close()
        self.proc.wait(30)


@pytest.fixture
def running() -> Iterator[list[_Running]]:
    started: list[_Running] = []
    yield started
    for child in started:
        if child.proc.poll() is None:
            child.proc.kill()
            child.proc.wait(10)


def test_counters_add_up_across_processes_and_outlive_them(multiproc_dir: Path) -> None:
    # Given two processes that consumed records of one partition and exited
    _run(multiproc_dir, "metrics.records_consumed('t', 0, 5)")
    _run(multiproc_dir, "metrics.records_consumed('t', 0, 7)")
    # Then the exposition sums them
    m = _scrape(multiproc_dir)
    assert m.value("actorsys_records_consumed_total", topic="t", partition="0") == 12
    assert m.help["actorsys_records_consumed"] == metrics.RECORDS_CONSUMED.help


def test_a_dead_process_takes_its_gauges_with_it(
    multiproc_dir: Path, running: list[_Running]
) -> None:
    # Given a live worker process and one that has exited
    running.append(_Running(multiproc_dir, "metrics.process_memory('worker')"))
    _run(multiproc_dir, "metrics.process_memory('worker')")
    # Then only the live one counts
    m = _scrape(multiproc_dir)
    assert m.value("actorsys_processes", role="worker") == 1
    resident = m.value("actorsys_process_resident_memory_bytes", role="worker")
    assert resident is not None and resident > 1_000_000
    # When the live one ends too
    running[0].end()
    # Then no worker is left in the exposition, and its files are gone
    assert _scrape(multiproc_dir).select("actorsys_processes") == []
    assert not [p for p in multiproc_dir.iterdir() if p.name.startswith("gauge_livesum")]


def test_the_latest_writer_of_a_single_owner_gauge_wins(
    multiproc_dir: Path, running: list[_Running]
) -> None:
    # Given a JobManager that is still alive and its replacement (restarted by the Supervisor)
    running.append(_Running(multiproc_dir, "metrics.job_manager_state({'DONE': 5}, 0, True)"))
    running.append(_Running(multiproc_dir, "metrics.job_manager_state({'DONE': 7}, 2, True)"))
    # Then the exposition shows the replacement's view, not a sum
    m = _scrape(multiproc_dir)
    assert m.value("actorsys_jobs", status="DONE") == 7
    assert m.value("actorsys_jobs", status="PENDING") == 0
    assert m.value("actorsys_held_batches") == 2


def test_a_revoked_partition_leaves_the_exposition(
    multiproc_dir: Path, running: list[_Running]
) -> None:
    code = """
    for p in (0, 1):
        metrics.partition_state('t', p, committed=10, high_watermark=15, inflight_records=5,
                                paused=p == 1, seconds_behind=2.5)
    metrics.partition_removed('t', 1)
    """
    running.append(_Running(multiproc_dir, code))
    m = _scrape(multiproc_dir)
    for name in (
        "actorsys_committed_offset",
        "actorsys_high_watermark_offset",
        "actorsys_consumer_lag_records",
        "actorsys_consumer_lag_seconds",
        "actorsys_partition_paused",
        "actorsys_inflight_records",
    ):
        assert set(m.by_label(name, "partition")) == {"0"}, name
    assert m.value("actorsys_consumer_lag_records", partition="0") == 5
    assert m.value("actorsys_consumer_lag_seconds", partition="0") == 2.5


def test_a_forked_child_writes_its_own_files(multiproc_dir: Path, running: list[_Running]) -> None:
    # Given a process with metrics that forks a child (as Thespian creates actors)
    code = """
    import os
    metrics.process_memory('kafka_consumer')
    metrics.records_consumed('t', 0, 3)
    pid = os.fork()
    if pid == 0:
        metrics.process_memory('consumer')
        metrics.batch_sent('t', 0)
        metrics.records_consumed('t', 0, 1)
        os._exit(0)
    os.waitpid(pid, 0)
    """
    running.append(_Running(multiproc_dir, code))
    m = _scrape(multiproc_dir)
    # Then the parent's values are intact, the child's counters add up, and the
    # dead child's gauges are gone
    assert m.value("actorsys_records_consumed_total", partition="0") == 4
    assert m.value("actorsys_batches_sent_total", partition="0") == 1
    assert m.by_label("actorsys_processes", "role") == {"kafka_consumer": 1}


def test_workers_per_host_reads_zero_for_a_host_that_left(
    multiproc_dir: Path, running: list[_Running]
) -> None:
    code = """
    gauge = metrics.WorkerGauge()
    gauge.update({'a': 2, 'b': 1})
    gauge.update({'a': 2})
    """
    running.append(_Running(multiproc_dir, code))
    assert _scrape(multiproc_dir).by_label("actorsys_workers", "host") == {"a": 2, "b": 0}


def test_ack_latency_is_observed_once_per_batch_from_its_first_send(
    multiproc_dir: Path, running: list[_Running]
) -> None:
    code = """
    timer = metrics.AckTimer('t')
    timer.sent(0, 10, 100.0)
    timer.sent(0, 10, 101.0)  # a retransmit keeps the first send's time
    timer.acked(0, 10, 100.25)
    timer.acked(0, 10, 100.5)  # a duplicate ACK observes nothing
    """
    running.append(_Running(multiproc_dir, code))
    m = _scrape(multiproc_dir)
    assert m.value("actorsys_ack_latency_seconds_count", topic="t") == 1
    assert m.value("actorsys_ack_latency_seconds_sum", topic="t") == 0.25


# --- tables (format "delta") ----------------------------------------------------------------

HOUR_A = "date=2026-01-01/hour=5"
HOUR_B = "date=2026-01-01/hour=6"


def test_table_files_follow_appends_and_compactions_without_a_listing() -> None:
    # Given a table listed once: two ingestion files in hour A, one in B
    files = metrics.TableFiles("raw")
    files.reset(
        3,
        [(f"{HOUR_A}/part-1.parquet", 100), (f"{HOUR_A}/part-2.parquet", 50),
         (f"{HOUR_B}/part-3.parquet", 10)],
    )  # fmt: skip
    # Then nothing is closed yet (no hour holds compacted files)
    assert files.totals() == (3, 160, 0)
    # When an append adds a file to B, and a compaction replaces A's two files by one
    assert files.changed(4, [(f"{HOUR_B}/part-4.parquet", 20)])
    assert files.changed(
        5,
        [(f"{HOUR_A}/compact-a-0000.parquet", 120)],
        [f"{HOUR_A}/part-1.parquet", f"{HOUR_A}/part-2.parquet"],
    )
    # Then A is closed with one file, and the totals follow
    assert files.totals() == (3, 150, 1)
    # When two late files land in the compacted hour A
    assert files.changed(6, [(f"{HOUR_A}/part-5.parquet", 5), (f"{HOUR_A}/part-6.parquet", 5)])
    # Then the closed hour holds three files, B's two do not count
    assert files.totals() == (5, 160, 3)
    # When it is recompacted
    assert files.changed(
        7,
        [(f"{HOUR_A}/compact-b-0000.parquet", 130)],
        [f"{HOUR_A}/compact-a-0000.parquet", f"{HOUR_A}/part-5.parquet",
         f"{HOUR_A}/part-6.parquet"],
    )  # fmt: skip
    assert files.totals() == (3, 160, 1)
    assert files.version == 7


def test_table_files_refuse_what_they_cannot_apply_so_the_committer_lists_again() -> None:
    files = metrics.TableFiles("raw")
    # Nothing listed yet
    assert not files.changed(0, [(f"{HOUR_A}/part-1.parquet", 1)])
    files.reset(3, [(f"{HOUR_A}/part-1.parquet", 1)])
    # A version gap: another writer (or a vacuum) committed in between
    assert not files.changed(5, [(f"{HOUR_A}/part-2.parquet", 1)])
    # A removed file not known here: nothing is applied
    assert not files.changed(4, [], [f"{HOUR_A}/part-1.parquet", f"{HOUR_A}/part-9.parquet"])
    assert files.totals() == (1, 1, 0) and files.version == 3
    # A listing starts over
    files.reset(9, [])
    assert files.totals() == (0, 0, 0) and files.version == 9


def test_table_metrics_as_the_committer_and_job_manager_write_them(
    multiproc_dir: Path, running: list[_Running]
) -> None:
    code = """
    metrics.initialise(['t'])
    metrics.table_opened('raw', ('append', 'replace'))
    metrics.table_opened('agg', ('replace',))
    metrics.table_commit('raw', 'append', 'done', 0.02, 3)
    metrics.table_commit('raw', 'append', 'done', 0.04, 1)
    metrics.table_commit('raw', 'append', 'conflict')
    metrics.table_commit('raw', 'replace', 'done', 0.5, 1)
    metrics.table_commit('agg', 'replace', 'rejected')
    files = metrics.TableFiles('raw')
    files.reset(7, [('date=2026-01-01/hour=5/compact-x.parquet', 1000),
                    ('date=2026-01-01/hour=5/part-late.parquet', 10),
                    ('date=2026-01-01/hour=6/part-a.parquet', 20)])
    files.publish()
    metrics.watermark('t', 0, 1_767_246_000_500)
    metrics.watermark('t', 1, None)  # no event time yet: no series
    metrics.late_records('t', 4)
    metrics.late_records('t', 0)
    metrics.compaction_done()
    metrics.compaction_failed(final=False)
    metrics.compaction_failed(final=False)
    metrics.compaction_failed(final=True)
    """
    running.append(_Running(multiproc_dir, code))
    m = _scrape(multiproc_dir)
    # The commits: counted by outcome, only the done ones timed and their files added
    commits = m.by_label("actorsys_table_commits_total", "outcome", table="raw", kind="append")
    assert commits == {"done": 2, "conflict": 1, "rejected": 0}
    assert m.value("actorsys_table_commit_seconds_count", table="raw", kind="append") == 2
    assert m.value("actorsys_table_commit_seconds_sum", table="raw", kind="append") == 0.06
    assert m.value("actorsys_table_files_added_total", table="raw", kind="append") == 4
    assert m.value("actorsys_table_files_added_total", table="raw", kind="replace") == 1
    # And a table that only replaces has no append series; its zeros exist from its start
    assert m.select("actorsys_table_commits_total", table="agg", kind="append") == []
    assert m.value("actorsys_table_commits_total", table="agg", kind="replace", outcome="done") == 0
    assert m.value("actorsys_table_commit_seconds_count", table="agg", kind="replace") == 0
    # The table's files: all of them, their bytes, and the closed hour's two
    assert m.value("actorsys_table_files", table="raw") == 3
    assert m.value("actorsys_table_bytes", table="raw") == 1030
    assert m.value("actorsys_table_files_per_closed_hour", table="raw") == 2
    # Event time, in Unix seconds, for the partitions that have one
    assert m.by_label("actorsys_watermark_seconds", "partition", topic="t") == {"0": 1767246000.5}
    assert m.value("actorsys_late_records_total", topic="t") == 4
    # Compactions by outcome, every outcome present from the start
    assert m.by_label("actorsys_compactions_total", "outcome") == {
        "done": 1,
        "retried": 2,
        "failed": 1,
    }


def test_table_counters_exist_at_zero_from_the_start(multiproc_dir: Path) -> None:
    _run(multiproc_dir, "metrics.initialise(['t', 'u'])")
    m = _scrape(multiproc_dir)
    assert m.by_label("actorsys_late_records_total", "topic") == {"t": 0, "u": 0}
    assert m.by_label("actorsys_compactions_total", "outcome") == {
        "done": 0,
        "retried": 0,
        "failed": 0,
    }
