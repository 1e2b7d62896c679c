"""What metrics cost: prometheus-client multiprocess mode against messages.

``.venv/bin/python scripts/bench_metrics.py`` measures, on this machine:

1. each ``actorsys.metrics`` helper as the actors call it (file-backed
   values in a temporary ``PROMETHEUS_MULTIPROC_DIR``), and the sum of the
   updates one batch causes on its way through the pipeline;
2. one scrape (``/metrics``) over the files of N processes;
3. the alternative, a collecting actor: what an actor pays to ``send`` one
   small message on multiprocTCPBase, and how long delivery takes.

It prints one line per measurement; nothing is written outside temporary
directories, and the actor system it starts is shut down.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from typing import Any

from thespian.actors import ActorSystem, ActorTypeDispatcher

SENDS = 2_000


def per_call_us(fn: Callable[[], object], n: int = 20_000) -> float:
    fn()  # first call creates the series
    started = time.perf_counter()
    for _ in range(n):
        fn()
    return (time.perf_counter() - started) / n * 1e6


def bench_helpers() -> None:
    from actorsys import metrics

    assert metrics.enabled(), "PROMETHEUS_MULTIPROC_DIR must be set"
    timer = metrics.AckTimer("t")
    keys = iter(range(10**9))

    def ack_round() -> None:
        k = next(keys)
        timer.sent(k, k + 1, 0.0)
        timer.acked(k, k + 1, 0.01)

    def partition_state() -> None:
        metrics.partition_state(
            "t",
            0,
            committed=100,
            high_watermark=200,
            inflight_records=10,
            paused=False,
            seconds_behind=0.5,
        )

    calls: dict[str, Callable[[], object]] = {
        "records_consumed (1 counter)": lambda: metrics.records_consumed("t", 0, 100),
        "batch_sent (1 counter)": lambda: metrics.batch_sent("t", 0),
        "AckTimer sent+acked (1 histogram)": ack_round,
        "chain_verdict (1 counter)": lambda: metrics.chain_verdict("t", "store"),
        "job_attempt_started": metrics.job_attempt_started,
        "job_attempt_ran (1 histogram)": lambda: metrics.job_attempt_ran("done", 0.2),
        "job_finished": lambda: metrics.job_finished("DONE"),
        "records_written": lambda: metrics.records_written(100),
        "dead_letters (2 reasons)": lambda: metrics.dead_letters([("a", 1), ("b", 2)]),
        "partition_state (6 gauges, per tick)": partition_state,
        "process_memory (throttled)": lambda: metrics.process_memory("worker"),
    }
    costs = {name: per_call_us(fn) for name, fn in calls.items()}
    for name, us in costs.items():
        print(f"  {name:40s} {us:7.2f} µs")
    per_batch = sum(
        costs[name]
        for name in (
            "records_consumed (1 counter)",  # one interval per batch at least
            "batch_sent (1 counter)",
            "AckTimer sent+acked (1 histogram)",
            "chain_verdict (1 counter)",
            "job_attempt_started",
            "job_attempt_ran (1 histogram)",
            "job_finished",
            "records_written",
            "dead_letters (2 reasons)",
        )
    )
    print(f"  {'=> per batch, all processes together':40s} {per_batch:7.2f} µs")


def bench_scrape(processes: int) -> None:
    """Files of ``processes`` processes, each with every helper's series."""
    from prometheus_client import CollectorRegistry, generate_latest

    from actorsys.web import MultiProcessView

    code = (
        "from actorsys import metrics\n"
        "metrics.records_consumed('t', 0, 1); metrics.batch_sent('t', 0)\n"
        "metrics.job_attempt_ran('done', 0.1); metrics.process_memory('worker')\n"
        "metrics.partition_state('t', 0, committed=1, high_watermark=2, inflight_records=0,"
        " paused=False, seconds_behind=0)\n"
        "import time; time.sleep(30)\n"
    )
    children = [
        subprocess.Popen([sys.executable, "-c", code], env=dict(os.environ))
        for _ in range(processes)
    ]
    try:
        directory = os.environ["PROMETHEUS_MULTIPROC_DIR"]
        wanted = processes + 1  # and this process
        deadline = time.monotonic() + 30
        while len({n.rsplit("_", 1)[-1] for n in os.listdir(directory)}) < wanted:
            if time.monotonic() > deadline:
                raise SystemExit("the writer processes did not start")
            time.sleep(0.05)
        registry = CollectorRegistry()
        registry.register(MultiProcessView(directory))
        generate_latest(registry)
        n = 20
        started = time.perf_counter()
        for _ in range(n):
            body = generate_latest(registry)
        ms = (time.perf_counter() - started) / n * 1e3
        print(f"  scrape over {wanted} processes' files: {ms:.1f} ms, {len(body)} bytes")
    finally:
        for child in children:
            child.kill()
            child.wait()


class Sink(ActorTypeDispatcher):  # type: ignore[misc]  # Thespian ships no type hints
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.count = 0
        self.waiting: Any = None
        self.want = 0

    def receiveMsg_int(self, msg: int, sender: Any) -> None:
        self.count += 1
        self._answer()

    def receiveMsg_tuple(self, msg: tuple[str, int], sender: Any) -> None:  # ("wait", n)
        self.waiting, self.want = sender, msg[1]
        self._answer()

    def _answer(self) -> None:
        if self.waiting is not None and self.count >= self.want:
            self.send(self.waiting, self.count)
            self.waiting = None


class Sender(ActorTypeDispatcher):  # type: ignore[misc]  # Thespian ships no type hints
    def receiveMsg_tuple(self, msg: tuple[Any, int], sender: Any) -> None:  # (sink, n)
        sink, n = msg
        started = time.perf_counter()
        for i in range(n):
            self.send(sink, i)
        self.send(sender, time.perf_counter() - started)


def bench_messages() -> None:
    from actorsys.netutil import free_port
    from actorsys.procs import ActorSystemProcesses

    port = free_port()
    asys = ActorSystem(
        "multiprocTCPBase",
        {"Admin Port": port},
        logDefs={"version": 1, "root": {"level": "WARNING", "handlers": []}},
    )
    procs = ActorSystemProcesses(port)
    procs.refresh()
    try:
        import bench_metrics  # this module, importable by name in actor processes

        sink = asys.createActor(bench_metrics.Sink)
        sender = asys.createActor(bench_metrics.Sender)
        started = time.perf_counter()
        send_s = asys.ask(sender, (sink, SENDS), 60)
        received = asys.ask(sink, ("wait", SENDS), 120)
        total_s = time.perf_counter() - started
        print(
            f"  actor send (sender's cost): {send_s / SENDS * 1e6:.0f} µs per message; "
            f"{received} delivered in {total_s:.2f} s = {total_s / SENDS * 1e3:.2f} ms each"
        )
    finally:
        asys.shutdown()
        procs.kill_all()


def main() -> None:
    with tempfile.TemporaryDirectory(prefix="bench-metrics-") as directory:
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = directory
        print("prometheus-client multiprocess mode, per update (file-backed):")
        bench_helpers()
        print("scrape:")
        for processes in (10, 40):
            bench_scrape(processes)
    os.environ.pop("PROMETHEUS_MULTIPROC_DIR", None)
    print("a collecting actor instead (multiprocTCPBase):")
    bench_messages()


if __name__ == "__main__":
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    main()
