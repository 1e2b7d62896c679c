"""Building blocks of ``scripts/bench.py``.

- :class:`Sampler`: RSS and CPU of a changing set of processes, every 0.5 s.
- :func:`actorsys_sections`: the configuration of one benchmark daemon.
- :func:`job_latencies`: per job, when its raw file became readable (written,
  or committed to the Delta table) minus the oldest record's producer
  timestamp (``ts``, read from the Parquet statistics).
- :func:`label_actor_processes`, :func:`label_member_processes`: which actor
  runs in which process (on the leader, on a worker host).
- :func:`stray_processes`: anything of a run still alive, found by markers
  only its processes carry on their command lines.
- The baseline consumer, run as ``python scripts/_benchlib.py baseline
  PARAMS.json`` so that its memory and CPU are its own: the whole topic
  (subscribed), or one share of its partitions (assigned; see
  :func:`baseline_shares`) when the baseline runs as several processes.

The daemon and worker-host processes, the TOML writer and the completion
watch are the tests' own (``tests/support``: ``daemon``, ``member``,
``checks``), imported by ``bench.py``: a benchmark must start, stop and judge
a daemon exactly as the tests do. This module does not import them, so the
baseline child process carries none of that code in the memory it reports.
"""

from __future__ import annotations

import contextlib
import json
import os
import resource
import signal
import sys
import threading
import time
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import unquote

import psutil

# Progress lines count from here; bench.py passes its own start to the baseline child.
_STARTED = float(os.environ.get("ACTORSYS_BENCH_T0", "0") or 0) or time.time()

# librdkafka's documented defaults for the consumer settings that decide
# fetch throughput: printed next to what a run sets, so a reader sees both.
LIBRDKAFKA_DEFAULTS: dict[str, str] = {
    "fetch.queue.backoff.ms": "1000",
    "queued.max.messages.kbytes": "65536",
    "queued.min.messages": "100000",
    "fetch.max.bytes": "52428800",
    "max.partition.fetch.bytes": "1048576",
    "fetch.min.bytes": "1",
    "fetch.wait.max.ms": "500",
    "fetch.error.backoff.ms": "500",
    "receive.message.max.bytes": "100000000",
}


def say(message: str) -> None:
    """A progress line on stderr."""
    print(f"[bench {time.time() - _STARTED:7.1f}s] {message}", file=sys.stderr, flush=True)


def percentile(values: Iterable[float], q: float) -> float | None:
    """Nearest-rank percentile (q in 0..100); None for no values."""
    ordered = sorted(values)
    if not ordered:
        return None
    rank = max(1, min(len(ordered), int(-(-q * len(ordered) // 100))))
    return ordered[rank - 1]


def key_settings(props: Mapping[str, str]) -> dict[str, str]:
    """The fetch-related settings, each as set or as librdkafka's default."""
    return {
        key: props.get(key, f"{default} (librdkafka default)")
        for key, default in LIBRDKAFKA_DEFAULTS.items()
    }


# --------------------------------------------------------------------------------------
# Configuration


def actorsys_sections(
    *,
    bootstrap: str,
    topic: str,
    group: str,
    workdir: Path,
    admin_port: int,
    metrics_port: int,
    workers: int,
    max_records: int,
    kafka_properties: Mapping[str, str],
) -> dict[str, dict[str, Any]]:
    """The configuration of one benchmark daemon (everything else: defaults)."""
    kafka: dict[str, Any] = {
        "bootstrap_servers": bootstrap,
        "topics": [topic],
        "group_id": group,
        # Tansu takes about half the session timeout to form a group.
        "session_timeout_ms": 6000,
    }
    if kafka_properties:
        kafka["properties"] = dict(kafka_properties)
    return {
        "kafka": kafka,
        "batching": {"max_records": max_records},
        "jobs": {"store": f"sqlite:///{workdir / 'jobs.db'}"},
        "workers": {"count": workers},
        "output": {"dir": str(workdir / "out")},
        "daemon": {
            "admin_port": admin_port,
            "metrics_port": metrics_port,
            "shutdown_grace_s": 30,
            "log_level": "INFO",
        },
    }


# --------------------------------------------------------------------------------------
# Process sampling


def _cpu_s(proc: psutil.Process) -> float:
    times = proc.cpu_times()
    return float(times.user + times.system)


@dataclass
class Sampler:
    """Samples the RSS and CPU time of ``subjects()`` (summed) every ``interval_s``,
    and of a few named ``context`` processes (the broker, this script) apart."""

    subjects: Callable[[], list[psutil.Process]]
    context: dict[str, psutil.Process] = field(default_factory=dict)
    interval_s: float = 0.5
    peak_rss: int = 0
    peak_pss: int = 0
    peak_processes: int = 0
    samples: int = 0
    cpu_by_pid: dict[int, float] = field(default_factory=dict)
    peak_rss_by_pid: dict[int, int] = field(default_factory=dict)
    context_cpu: dict[str, float] = field(default_factory=dict)
    context_peak_rss: dict[str, int] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="sampler", daemon=True)

    def start(self) -> Sampler:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(5)

    def _run(self) -> None:
        while not self._stop.is_set():
            with contextlib.suppress(Exception):  # a sampling hiccup must not end sampling
                self.tick()
            self._stop.wait(self.interval_s)

    def tick(self) -> dict[int, float]:
        """Take one sample now; returns the subjects' cumulative CPU seconds by pid."""
        procs = self.subjects()
        total = total_pss = 0
        cpu: dict[int, float] = {}
        for proc in procs:
            with contextlib.suppress(psutil.Error):
                # rss counts pages shared between forked processes once per process;
                # pss divides them among their sharers, so its sum is the group's memory.
                memory = proc.memory_full_info()
                cpu[proc.pid] = _cpu_s(proc)
                total += memory.rss
                total_pss += memory.pss
                with self._lock:
                    if memory.rss > self.peak_rss_by_pid.get(proc.pid, 0):
                        self.peak_rss_by_pid[proc.pid] = memory.rss
        with self._lock:
            self.cpu_by_pid.update(cpu)
            self.samples += 1
            self.peak_rss = max(self.peak_rss, total)
            self.peak_pss = max(self.peak_pss, total_pss)
            self.peak_processes = max(self.peak_processes, len(cpu))
            for name, proc in self.context.items():
                with contextlib.suppress(psutil.Error):
                    self.context_cpu[name] = _cpu_s(proc)
                    rss = proc.memory_info().rss
                    self.context_peak_rss[name] = max(self.context_peak_rss.get(name, 0), rss)
            return dict(self.cpu_by_pid)

    def context_snapshot(self) -> dict[str, float]:
        with self._lock:
            return dict(self.context_cpu)


def system_cpu() -> dict[str, float]:
    """Machine-wide CPU seconds so far: busy (everything but idle and iowait) and steal."""
    t = psutil.cpu_times()
    busy = t.user + t.nice + t.system + getattr(t, "irq", 0) + getattr(t, "softirq", 0)
    return {"busy": busy, "steal": getattr(t, "steal", 0.0), "iowait": getattr(t, "iowait", 0.0)}


def cpu_window(before: Mapping[str, float], after: Mapping[str, float]) -> dict[str, float]:
    return {k: round(after[k] - before.get(k, 0.0), 2) for k in after}


# --------------------------------------------------------------------------------------
# Which actor lives in which process


def _has_open(proc: psutil.Process, suffix: str) -> bool:
    with contextlib.suppress(psutil.Error):
        return any(f.path.endswith(suffix) for f in proc.open_files())
    return False


def _threads(proc: psutil.Process) -> int:
    with contextlib.suppress(psutil.Error):
        return int(proc.num_threads())
    return 0


def label_actor_processes(members: list[psutil.Process]) -> dict[int, str]:
    """Name each actor-system process by its place in the process tree.

    Thespian forks an actor's process from its parent actor's process, so the
    tree mirrors the actor tree: admin (the member whose parent is not a
    member) -> {logger, Supervisor}; Supervisor -> {the Committer (Delta
    output only: created before the JobManager, so of lower pid, and without
    children), JobManager (has jobs.db open), KafkaConsumerActor (has
    children and librdkafka's threads), WorkerMaster (one thread; no children
    when the leader runs no workers)}; WorkerMaster -> Workers;
    KafkaConsumerActor -> per-partition Consumers. (Socket ownership does not
    tell them apart: a forked child inherits its parent's Kafka sockets.)
    """
    children: dict[int, list[int]] = defaultdict(list)
    parent: dict[int, int] = {}
    by_pid = {p.pid: p for p in members}
    for proc in members:
        with contextlib.suppress(psutil.Error):
            parent[proc.pid] = proc.ppid()
            children[parent[proc.pid]].append(proc.pid)
    labels: dict[int, str] = {}
    for admin in (pid for pid, ppid in parent.items() if ppid not in by_pid):
        labels[admin] = "thespian_admin"
        supervisors = [c for c in children[admin] if children[c]]
        for pid in children[admin]:
            labels[pid] = "supervisor" if pid in supervisors else "thespian_logger"
        for sup in supervisors:
            kids = sorted(children[sup])
            store_open = {pid for pid in kids if _has_open(by_pid[pid], "jobs.db")}
            committers = [
                pid for pid in kids if store_open and pid < min(store_open) and not children[pid]
            ]
            for i, pid in enumerate(committers):
                labels[pid] = f"committer#{i}"
            for pid in kids:
                if pid in labels:
                    continue
                # With workers.on_leader = false the WorkerMaster has no children:
                # it is then told from the JobManager by the store it has open.
                if pid in store_open or (not store_open and not children[pid]):
                    labels[pid] = "job_manager"
                    continue
                kafka = _threads(by_pid[pid]) > 1
                role, kid_role = (
                    ("kafka_consumer", "partition_consumer")
                    if kafka
                    else ("worker_master", "worker")
                )
                labels[pid] = role
                for i, kid in enumerate(sorted(children[pid])):
                    labels[kid] = f"{kid_role}#{i}"
    return labels


def label_member_processes(members: list[psutil.Process]) -> dict[int, str]:
    """Name each process of a worker host's (``actorsys join``) actor system.

    Its admin forks every actor the leader places there, so they are all the
    admin's children: the Thespian logger (forked first, at start-up), the
    Watchdog (created by ``actorsys join``), the HostAgent, and the Workers --
    the only ones with more than one thread (librdkafka's, of the dead-letter
    producer a worker makes when it starts). Watchdog and HostAgent (both idle
    but for a ping every 2 s) cannot be told apart from outside.
    """
    by_pid = {p.pid: p for p in members}
    parent: dict[int, int] = {}
    for proc in members:
        with contextlib.suppress(psutil.Error):
            parent[proc.pid] = proc.ppid()
    labels: dict[int, str] = {}
    for admin in (pid for pid, ppid in parent.items() if ppid not in by_pid):
        labels[admin] = "thespian_admin"
        kids = sorted(pid for pid, ppid in parent.items() if ppid == admin)
        workers = [pid for pid in kids if _threads(by_pid[pid]) > 1]
        light = [pid for pid in kids if pid not in workers]
        for i, pid in enumerate(workers):
            labels[pid] = f"worker#{i}"
        for i, pid in enumerate(light):
            labels[pid] = "thespian_logger" if i == 0 else "agent_or_watchdog"
    for pid in parent:  # anything deeper (not expected)
        labels.setdefault(pid, "actor")
    return labels


def role_of(label: str) -> str:
    return label.split("#", 1)[0]


def cpu_by_role(
    cpu_by_pid: Mapping[int, float], labels: Mapping[int, str]
) -> dict[str, dict[str, float]]:
    """CPU seconds per role (workers and partition consumers summed, with a count)."""
    roles: dict[str, dict[str, float]] = {}
    for pid, seconds in cpu_by_pid.items():
        role = role_of(labels.get(pid, "unlabelled"))
        entry = roles.setdefault(role, {"cpu_s": 0.0, "processes": 0})
        entry["cpu_s"] = round(entry["cpu_s"] + seconds, 2)
        entry["processes"] += 1
    return dict(sorted(roles.items(), key=lambda kv: -kv[1]["cpu_s"]))


# --------------------------------------------------------------------------------------
# Leftovers


def stray_processes(markers: Iterable[str]) -> list[psutil.Process]:
    """Live processes (not this one) whose command line contains one of ``markers``.

    Thespian forks actors without exec, so every actor process carries the
    command line of the ``actorsys run``/``join`` that started its system; a
    unique config path or convention address finds them even when their
    process group was never learnt.
    """
    wanted = [m for m in markers if m]
    found = []
    for proc in psutil.process_iter(["pid", "cmdline"]):
        with contextlib.suppress(psutil.Error):
            if proc.pid == os.getpid() or proc.status() == psutil.STATUS_ZOMBIE:
                continue
            line = " ".join(proc.info["cmdline"] or [])
            if any(m in line for m in wanted):
                found.append(proc)
    return found


def kill_processes(procs: list[psutil.Process], timeout_s: float = 5.0) -> list[int]:
    """SIGKILL these processes (by pid); returns the pids signalled."""
    killed = []
    for proc in procs:
        with contextlib.suppress(psutil.Error):
            proc.kill()
            killed.append(proc.pid)
    psutil.wait_procs(procs, timeout=timeout_s)
    return killed


@contextlib.contextmanager
def deferred_interrupts() -> Iterator[None]:
    """Hold SIGINT/SIGTERM while cleaning up, then raise KeyboardInterrupt if one
    came: a Ctrl-C must not cut a cleanup short and leave processes behind."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    caught: list[int] = []
    previous = {
        sig: signal.signal(sig, lambda signum, frame: caught.append(signum))
        for sig in (signal.SIGINT, signal.SIGTERM)
    }
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        if caught:
            raise KeyboardInterrupt


# --------------------------------------------------------------------------------------
# Latency from the output files


def _published_files(raw_root: Path) -> list[tuple[Path, float]]:
    """Each ingested data file of ``raw_root`` and when readers could first see it.

    Plain Parquet (``format = "parquet"``): every ``date=*/*.parquet``, seen
    once written (its mtime). A Delta table: every file an ingestion commit
    added (``part-*``; compaction rewrites are not new data), seen at that
    commit (the mtime of its ``_delta_log`` entry), whether or not a later
    compaction removed it again.
    """
    log = raw_root / "_delta_log"
    if not log.is_dir():
        return [(path, path.stat().st_mtime) for path in raw_root.glob("date=*/*.parquet")]
    published: list[tuple[Path, float]] = []
    for entry in sorted(log.glob("*.json")):
        committed_at = entry.stat().st_mtime
        for line in entry.read_text().splitlines():
            add = json.loads(line).get("add") if line.strip() else None
            if add and Path(add["path"]).name.startswith("part-"):
                published.append((raw_root / unquote(add["path"]), committed_at))
    return published


def job_latencies(raw_root: Path) -> list[dict[str, Any]]:
    """Per job (one raw file name, maybe in several partition directories): when
    its raw file became readable, the oldest record's ``ts``, the difference,
    its rows."""
    import pyarrow.parquet as pq

    jobs: dict[str, dict[str, Any]] = {}
    for path, mtime in _published_files(raw_root):
        meta = pq.read_metadata(path)
        ts_index = meta.schema.names.index("ts")
        oldest: int | None = None
        for i in range(meta.num_row_groups):
            stats = meta.row_group(i).column(ts_index).statistics
            if stats is None or not stats.has_min_max:
                oldest = None
                break
            value = int(stats.min_raw)
            oldest = value if oldest is None else min(oldest, value)
        if oldest is None:  # no statistics: read the column
            import pyarrow.compute as pc

            column = pq.read_table(path, columns=["ts"])["ts"]
            oldest = int(pc.min(column).cast("int64").as_py())
        if getattr(meta.schema.to_arrow_schema().field("ts").type, "unit", "ms") == "us":
            oldest //= 1000  # the table layout stores microseconds, plain Parquet ms
        job = jobs.setdefault(path.name, {"mtime": mtime, "oldest_ts_ms": oldest, "rows": 0})
        job["mtime"] = max(job["mtime"], mtime)
        job["oldest_ts_ms"] = min(job["oldest_ts_ms"], oldest)
        job["rows"] += meta.num_rows
    for job in jobs.values():
        job["latency_s"] = job["mtime"] - job["oldest_ts_ms"] / 1000
    return sorted(jobs.values(), key=lambda j: j["mtime"])


def latency_summary(jobs: list[dict[str, Any]]) -> dict[str, Any]:
    values = [j["latency_s"] for j in jobs]
    if not values:
        return {"jobs": 0}
    p50, p99 = percentile(values, 50), percentile(values, 99)
    first = min(j["mtime"] for j in jobs)
    return {
        "jobs": len(values),
        "rows": sum(j["rows"] for j in jobs),
        # [file written (s after the first file), latency s, rows], in write order.
        "per_job": [
            [round(j["mtime"] - first, 3), round(j["latency_s"], 3), j["rows"]] for j in jobs
        ],
        "p50_s": round(p50, 3) if p50 is not None else None,
        "p99_s": round(p99, 3) if p99 is not None else None,
        "max_s": round(max(values), 3),
        "min_s": round(min(values), 3),
        "first_file_at": min(j["mtime"] for j in jobs),
        "last_file_at": max(j["mtime"] for j in jobs),
    }


# --------------------------------------------------------------------------------------
# The baseline: plain confluent-kafka consumer processes, the same handler


def baseline_shares(partitions: Iterable[int], processes: int) -> list[list[int]]:
    """``partitions`` dealt round-robin over at most ``processes`` processes
    (never an empty share: fewer processes when there are fewer partitions)."""
    ordered = sorted(partitions)
    count = max(1, min(processes, len(ordered)))
    return [ordered[i::count] for i in range(count)]


def _wait_for_go(params: Mapping[str, Any]) -> None:
    """The start barrier of a multi-process baseline: say "ready" (set up, not
    consuming yet), then wait for bench.py's "go", so that no process consumes
    while another is still importing and building its consumer."""
    ready, go = params.get("ready_file"), params.get("go_file")
    if not go:
        return
    if ready:
        Path(ready).write_text(str(os.getpid()))
    deadline = time.monotonic() + float(params.get("go_timeout_s", 300))
    while not Path(go).exists():
        if time.monotonic() > deadline:
            raise RuntimeError(f"baseline: no go signal ({go}) in time")
        time.sleep(0.005)


def _cpu_self() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return float(usage.ru_utime + usage.ru_stime)


def run_baseline(params: dict[str, Any]) -> dict[str, Any]:
    """Consume ``params["end_offsets"]`` of a topic the plain way.

    ``params["partitions"]``: None (or absent) subscribes to the whole topic in
    the group, as one consumer of a group does; a list ``assign()``s just those
    partitions (one share of a multi-process baseline), from their beginning,
    committing to the same group. Per partition, records are buffered until
    ``max_records`` (or the partition's end offset), then the batch goes
    through the same handler and dead-letter sink a worker uses; its end is
    committed synchronously. ``assigned_at`` is when this process had its
    partitions (``on_assign``, or right after ``assign()``), ``cpu_s_at_assigned``
    its CPU time then, ``done_at``/``cpu_s_at_done`` once its last batch was
    committed.
    """
    from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition

    from actorsys.config import load_config
    from actorsys.dead_letters import KafkaDeadLetterSink
    from actorsys.handlers import load_handler_factory
    from actorsys.handlers.api import HandlerSettings, JobInput
    from actorsys.kafka_clients import consumer_properties, dead_letter_producer
    from actorsys.records import Record

    started_at = time.time()
    config = load_config(params["config"])
    bootstrap: str = params["bootstrap"]
    topic: str = params["topic"]
    dlq: str = params["dead_letter_topic"]
    max_records = config.batching.max_records
    share: list[int] | None = params.get("partitions")
    ends = {int(p): int(o) for p, o in params["end_offsets"].items()}
    if share is not None:
        ends = {p: ends.get(p, 0) for p in share}
    total = sum(ends.values())
    tag = "baseline" if share is None else f"baseline[{','.join(map(str, share))}]"

    output = config.output
    factory = load_handler_factory(output.effective_handler)
    handler = factory(HandlerSettings(Path(output.dir), output.metrics, dict(output.options)))
    producer = dead_letter_producer(config, bootstrap)
    consumer = Consumer(consumer_properties(config, bootstrap))
    assigned: list[tuple[float, float]] = []  # (when, CPU s of this process then)

    def on_assign(_consumer: Any, _partitions: Any) -> None:
        if not assigned:
            assigned.append((time.time(), _cpu_self()))

    _wait_for_go(params)
    if share is None:
        consumer.subscribe([topic], on_assign=on_assign)
    else:
        consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in share])
        assigned.append((time.time(), _cpu_self()))
    buffers: dict[int, list[Record]] = {p: [] for p in ends}
    position = dict.fromkeys(ends, 0)  # next offset to process (and committed)
    jobs = valid = invalid = consumed = 0
    first_record_at: float | None = None
    next_report = time.monotonic() + 5
    # Wall seconds spent in each step of a batch (the rest: polling Kafka).
    spent = {"handler_s": 0.0, "dead_letter_flush_s": 0.0, "commit_s": 0.0}

    def process(partition: int, records: list[Record]) -> None:
        nonlocal jobs, valid, invalid
        end = records[-1].offset + 1
        job = JobInput(jobs + 1, topic, partition, position[partition], end, records)
        sink = KafkaDeadLetterSink(producer, topic, partition, dead_letter_topic=dlq)
        t0 = time.perf_counter()
        result = handler.handle(job, sink)
        t1 = time.perf_counter()
        sink.flush(30.0)
        t2 = time.perf_counter()
        consumer.commit(offsets=[TopicPartition(topic, partition, end)], asynchronous=False)
        spent["handler_s"] += t1 - t0
        spent["dead_letter_flush_s"] += t2 - t1
        spent["commit_s"] += time.perf_counter() - t2
        position[partition] = end
        jobs += 1
        valid += result.valid_records
        invalid += result.invalid_records

    try:
        while any(position[p] < ends[p] for p in ends):
            messages = consumer.consume(max_records, timeout=0.05)
            for m in messages:
                if m.error() is not None:
                    continue
                if first_record_at is None:
                    first_record_at = time.time()
                partition, offset = m.partition(), m.offset()
                assert partition is not None and offset is not None  # a record has both
                ts_type, ts = m.timestamp()
                buffer = buffers[partition]
                buffer.append(Record(offset, ts if ts_type else None, m.key(), m.value()))
                if len(buffer) >= max_records or offset + 1 >= ends[partition]:
                    buffers[partition] = []
                    process(partition, buffer)
            consumed += len(messages)
            if time.monotonic() >= next_report:
                next_report += 5
                say(f"{tag}: {consumed:,}/{total:,} records consumed, {jobs} jobs")
        done_at, cpu_at_done = time.time(), _cpu_self()
    finally:
        consumer.close()
        producer.flush(10)
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return {
        "partitions": sorted(ends),
        "mode": "subscribe" if share is None else "assign",
        "started_at": started_at,
        "assigned_at": assigned[0][0] if assigned else None,
        "cpu_s_at_assigned": round(assigned[0][1], 3) if assigned else None,
        "first_record_at": first_record_at,
        "done_at": done_at,
        "cpu_s_at_done": round(cpu_at_done, 3),
        "records": consumed,
        "jobs": jobs,
        "valid": valid,
        "invalid": invalid,
        "cpu_user_s": round(usage.ru_utime, 2),
        "cpu_sys_s": round(usage.ru_stime, 2),
        "ru_maxrss_bytes": usage.ru_maxrss * 1024,
        "wall_s_in": {k: round(v, 3) for k, v in spent.items()},
        "handler": output.effective_handler,
        "consumer_properties": consumer_properties(config, bootstrap),
    }


def _baseline_main(params_path: str) -> int:
    params = json.loads(Path(params_path).read_text())
    # SIGTERM from bench.py: leave through the finally blocks (closes the consumer).
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    result = run_baseline(params)
    Path(params["result"]).write_text(json.dumps(result))
    return 0


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "baseline":
        sys.exit(_baseline_main(sys.argv[2]))
    print("usage: _benchlib.py baseline PARAMS.json (run by scripts/bench.py)", file=sys.stderr)
    sys.exit(2)
