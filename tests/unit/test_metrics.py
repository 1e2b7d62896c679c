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
def test_a_bad_declaration_is_refused(args: tuple, why: str) -> None:
    with pytest.raises(ValueError, match=why):
        MetricSpec(*args)


def test_helpers_do_nothing_without_a_multiprocess_dir(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.delenv(metrics.MULTIPROC_DIR_ENV, raising=False)
    monkeypatch.chdir(tmp_path)
    assert not metrics.enabled()
    metrics.records_consumed("t", 0, 10, 100)
    metrics.partition_removed("t", 0)
    metrics.process_memory("worker")
    metrics.AckTimer("t").acked(0, 1, 1.0)
    metrics.WorkerGauge().update({"h": 1})
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
    _run(multiproc_dir, "metrics.records_consumed('t', 0, 5, 50)")
    _run(multiproc_dir, "metrics.records_consumed('t', 0, 7, 70)")
    # Then the exposition sums them
    m = _scrape(multiproc_dir)
    assert m.value("actorsys_records_consumed_total", topic="t", partition="0") == 12
    assert m.value("actorsys_consumed_bytes_total", topic="t", partition="0") == 120
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
    assert m.value("actorsys_process_resident_memory_bytes", role="worker") > 1_000_000
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
                                inflight_bytes=50, paused=p == 1, seconds_behind=2.5)
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
        "actorsys_inflight_bytes",
    ):
        assert set(m.by_label(name, "partition")) == {"0"}, name
    assert m.value("actorsys_consumer_lag_records", partition="0") == 5
    assert m.value("actorsys_consumer_lag_seconds", partition="0") == 2.5


def test_a_forked_child_writes_its_own_files(multiproc_dir: Path, running: list[_Running]) -> None:
    # Given a process with metrics that forks a child (as Thespian creates actors)
    code = """
    import os
    metrics.process_memory('kafka_consumer')
    metrics.records_consumed('t', 0, 3, 30)
    pid = os.fork()
    if pid == 0:
        metrics.process_memory('consumer')
        metrics.batch_sent('t', 0)
        metrics.records_consumed('t', 0, 1, 10)
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
