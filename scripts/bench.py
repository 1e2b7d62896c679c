"""Benchmark actorsys end to end against plain confluent-kafka consumers.

One run (``make bench`` or ``.venv/bin/python scripts/bench.py --help``;
``make bench`` adds ``--scale-partitions 4,64 --job-sizes 5000,50000``):

1. starts an embedded (Tansu) broker on a free port and produces ``--records``
   simulated IoT records (1 % malformed) to a fresh topic of ``--partitions``
   partitions as fast as it can (the backlog);
2. **baseline-1**: one process, one confluent-kafka consumer subscribed to
   the topic (its own group), batches of ``batching.max_records`` per
   partition through the same handler (``[output] format = "parquet"``:
   ``IotParquetHandler.handle()``) and ``KafkaDeadLetterSink`` a worker uses,
   a synchronous commit after each batch, until every record is committed;
3. **baseline-N** (``--baseline-processes N``, default 2; 1 = off): the same
   consumer code (``_benchlib.run_baseline``) as N processes in one group,
   the partitions dealt round-robin (process i takes partitions i, i+N, …),
   each process ``assign()``ing its share from the beginning (no group
   rebalancing between them). The processes start, import and build their
   consumer and handler, then wait at a barrier; bench.py releases them
   together once all are ready. Window: from the moment the last of them has
   its partitions to the moment the last of them has committed its last
   batch. CPU: each process's own user+sys from its assignment to its last
   commit, summed; RSS: the peak of the sampled sum over the processes;
4. **actorsys**: ``actorsys run --config …`` as a subprocess on the same data
   (fresh group, SQLite job store and output in a temporary directory),
   until the committed offsets reach the end offsets and the job store has no
   PENDING/RUNNING job; then SIGTERM, and no process of it may be left (a
   sweep by the config path on the command line checks, and kills stragglers).
   ``--format both`` (the default) runs it once per output format (delta,
   then parquet), each on the same backlog with a fresh group; the later
   phases use the first format;
5. **latency**: a fresh daemon on a second topic fed at a steady
   ``--latency-rate`` for ``--latency-seconds``, well below capacity, so that
   latency measures the pipeline rather than a backlog;
6. **job sizes** (``--job-sizes S1,S2,…``, off by default): actorsys on the
   backlog of step 1 once per size S (fresh group each) with
   ``batching.max_records = S``; ``linger_ms`` and the in-flight caps of
   ``[flow]`` are scaled by S / default size (never below their defaults) so
   that the offset count, not linger, cuts the batches. Reported per size:
   the records per job actually reached, and the JobManager's CPU (the
   process labelled ``job_manager``) from the assignment to done, per job and
   per 1,000 records. A flat ms/job across sizes means
   JobManager cost is per job; one growing with the size means per record;
7. **partition scaling** (``--scale-partitions P1,P2,…``, off by default):
   per count P, ``--scale-records`` records produced to a fresh topic of P
   partitions, then actorsys (first format) on it, the same window as step 4
   (with 5 s more phase timeout per partition). Reported per P: the peak
   process count and the peak of the summed RSS (and PSS) of the daemon and
   its whole actor system, records/s and jobs/s, start-up (spawn ->
   assigned); and the last count over the first for each;
8. **worker hosts** (``--worker-hosts N``): for k = 1 .. N, on the backlog of
   step 1 (a fresh group each time), a leader daemon with
   ``workers.on_leader = false`` plus k ``actorsys join`` members on this
   machine (host names ``bench-host-1..k``, ``--slots-per-host`` slots each):
   the same window and figures as step 4, plus the jobs each host ran (from
   the job store: a job's ``worker`` is "<job manager>/<host>/<worker id>")
   and CPU per process, labelled by host and role. All hosts share this
   machine's CPUs: on a small machine this measures what the convention
   costs, not a speed-up. ``--skip-baseline --skip-latency --worker-hosts N``
   runs steps 4 and 8 only (step 4 is the one-daemon reference).

All consumers use the same librdkafka settings
(``actorsys.kafka_clients.consumer_properties`` plus ``-X``), printed below
the results. Throughput is measured from the moment the partitions are
assigned (baseline-1's ``on_assign``; baseline-N's last ``assign()``;
actorsys's "assigned" log line) to the moment everything is committed (and,
for actorsys, every job is DONE): group joining and process start-up are
excluded, and reported apart. "Done" is polled every 0.2 s, and actorsys
commits on a 0.5 s tick, so small runs understate actorsys; use the default
million records.

The contenders table puts baseline-1, baseline-N and every actorsys run of
step 4 side by side: records/s, CPU per record (µs: the CPU seconds of all
its processes over that window / records), peak RSS, and each actorsys run's
ratios to each baseline (records/s: above 1 is faster; CPU per record: above 1
costs more). Every actorsys run (steps 4 to 8) also reports its JobManager
CPU per job and per 1,000 records over its window.

Batch latency of a job = when its raw file became readable (plain Parquet:
its mtime; Delta: the mtime of the log entry that committed it) - ``ts`` of
its oldest record (the producer's wall clock when the record was made), i.e.
the worst record of each batch, from being produced to being readable. On the
pre-produced backlog this mostly says how long records waited in Kafka
(behind the baselines' runs, too); the latency phase is the real figure.

Memory: peak of the summed RSS of the daemon and every process of its actor
system, sampled every 0.5 s; forked processes share pages, so the RSS sum
overstates what they use together and the PSS sum is shown next to it.
CPU: user+sys seconds per actor role (learnt from the process tree), from
the assignment to done, and in total (each process's last sample before it
exits). "Other processes' CPU" is what the
rest of the machine used meanwhile: a disturbed run says so. ``--json FILE``
writes every figure above (``baseline``, ``baseline_multi``, ``actorsys``,
``actorsys_<format>``, ``latency``, ``job_sizes``, ``partition_scaling``,
``worker_hosts``, ``contenders``) and every setting.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import os
import platform
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import psutil
from _benchlib import (
    Sampler,
    actorsys_sections,
    baseline_shares,
    cpu_by_role,
    cpu_window,
    deferred_interrupts,
    job_latencies,
    key_settings,
    kill_processes,
    label_actor_processes,
    label_member_processes,
    latency_summary,
    say,
    stray_processes,
    system_cpu,
)

REPO = Path(__file__).resolve().parent.parent
# The daemon and worker-host processes, the TOML writer and the completion
# watch are the tests' own (tests/support), so that the benchmark starts,
# stops and judges a daemon exactly as they do.
sys.path.insert(0, str(REPO))

from actorsys.config import BatchingConfig, FlowConfig, load_config  # noqa: E402
from actorsys.embedded_broker import EmbeddedBroker  # noqa: E402
from actorsys.kafka_clients import consumer_properties, create_topic_if_missing  # noqa: E402
from actorsys.netutil import free_port, free_port_below_ephemeral  # noqa: E402
from actorsys.simulator import ProduceReport, produce  # noqa: E402
from tests.support.checks import Completion  # noqa: E402
from tests.support.daemon import DaemonProcess, write_toml  # noqa: E402
from tests.support.member import MemberProcess  # noqa: E402

MB = 1024 * 1024


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=(
            "Benchmark actorsys end to end against a single-process confluent-kafka "
            "consumer doing the same work, on an embedded broker."
        ),
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("--records", type=int, default=1_000_000, help="records to produce")
    parser.add_argument("--partitions", type=int, default=4, help="partitions of the topics")
    parser.add_argument("--devices", type=int, default=1000, help="simulated devices")
    parser.add_argument(
        "--malformed-ratio", type=float, default=0.01, help="share of malformed records"
    )
    parser.add_argument(
        "--workers",
        type=int,
        default=os.cpu_count() or 1,
        help="actorsys workers.count (default: the CPU count)",
    )
    parser.add_argument(
        "--max-records",
        type=int,
        default=BatchingConfig().max_records,
        help="batch size (batching.max_records), for both",
    )
    parser.add_argument(
        "--latency-rate", type=float, default=20_000, help="records/s of the latency phase"
    )
    parser.add_argument(
        "--latency-seconds", type=float, default=20, help="duration of the latency phase"
    )
    parser.add_argument(
        "--format",
        dest="output_format",
        choices=("both", "delta", "parquet"),
        default="both",
        help="[output] format of the actorsys backlog phase; 'both' runs it once per "
        "format, side by side on the same backlog (delta first: the later phases use it)",
    )
    parser.add_argument(
        "--baseline-processes",
        type=int,
        default=2,
        metavar="N",
        help="also run the plain consumer as N processes, the partitions dealt round-robin "
        "(each assign()s its share); 1: only the single-process baseline",
    )
    parser.add_argument(
        "--job-sizes",
        type=_int_list,
        default=[],
        metavar="N,N,...",
        help="after the other backlog phases, run actorsys on the backlog once per "
        "batching.max_records here, for JobManager CPU per job ('': off)",
    )
    parser.add_argument(
        "--scale-partitions",
        type=_int_list,
        default=[],
        metavar="P,P,...",
        help="per count P, a fresh topic of P partitions with --scale-records records and "
        "actorsys on it: memory, processes and throughput by partition count ('': off)",
    )
    parser.add_argument(
        "--scale-records",
        type=int,
        default=200_000,
        help="records of each --scale-partitions topic",
    )
    parser.add_argument("--skip-baseline", action="store_true", help="skip both baselines")
    parser.add_argument("--skip-latency", action="store_true", help="skip the latency phase")
    parser.add_argument("--skip-actorsys", action="store_true", help="skip actorsys on the backlog")
    parser.add_argument(
        "--worker-hosts",
        type=int,
        default=0,
        metavar="N",
        help="after the other phases, run a leader (no workers of its own) with k = 1..N "
        "`actorsys join` worker hosts on this machine, on the same backlog (0: off)",
    )
    parser.add_argument(
        "--slots-per-host",
        type=int,
        default=1,
        help="worker slots of each worker host (`actorsys join --slots`)",
    )
    parser.add_argument("--json", metavar="FILE", help="write every figure and setting here")
    parser.add_argument(
        "-X",
        dest="properties",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="extra librdkafka consumer property, for both (repeatable)",
    )
    parser.add_argument("--seed", type=int, default=1, help="simulator seed")
    parser.add_argument(
        "--timeout",
        type=float,
        default=0,
        help="give up on a phase after this many seconds (0: 300 s + 1 s per 2,000 records)",
    )
    parser.add_argument(
        "--keep", action="store_true", help="keep the temporary directory (outputs, logs)"
    )
    args = parser.parse_args(argv)
    for name in (
        "records",
        "partitions",
        "devices",
        "workers",
        "max_records",
        "slots_per_host",
        "baseline_processes",
        "scale_records",
    ):
        if getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be at least 1")
    if args.worker_hosts < 0:
        parser.error("--worker-hosts must be 0 (off) or more")
    if not 0 <= args.malformed_ratio <= 1:
        parser.error("--malformed-ratio must be between 0 and 1")
    if args.latency_rate <= 0 or args.latency_seconds <= 0:
        parser.error("--latency-rate and --latency-seconds must be > 0")
    props: dict[str, str] = {}
    for item in args.properties:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            parser.error(f"-X {item!r} is not KEY=VALUE")
        props[key.strip()] = value
    args.kafka_properties = props
    return args


def _int_list(text: str) -> list[int]:
    """ "4,64" -> [4, 64]; "" -> []."""
    try:
        values = [int(item) for item in text.replace(" ", "").split(",") if item]
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a comma-separated list of integers"
        ) from None
    if any(v < 1 for v in values):
        raise argparse.ArgumentTypeError(f"{text!r}: every value must be at least 1")
    return values


def actorsys_command() -> list[str]:
    """The virtualenv's ``actorsys`` script (what an operator runs), else ``-m``."""
    script = Path(sys.executable).with_name("actorsys")
    return [str(script)] if script.exists() else [sys.executable, "-m", "actorsys"]


def _daemon(config_path: Path, log_path: Path, ports: dict[str, int]) -> DaemonProcess:
    """One benchmark daemon (not started), run as an operator would run it."""
    return DaemonProcess(
        config_path, log_path, ports["metrics"], ports["admin"], program=actorsys_command()
    )


def _status(run: DaemonProcess) -> dict[str, Any]:
    """/status, or {} when the daemon does not answer (a report must still be written)."""
    try:
        return run.status()
    except (OSError, AssertionError, ValueError):
        return {}


def git_state() -> dict[str, Any]:
    def git(*argv: str) -> str:
        try:
            return subprocess.run(
                ["git", "-C", str(REPO), *argv], capture_output=True, text=True, timeout=10
            ).stdout.rstrip()
        except (OSError, subprocess.SubprocessError):
            return ""

    modified = [line[3:] for line in git("status", "--porcelain", "--", "actorsys").splitlines()]
    return {"commit": git("rev-parse", "--short", "HEAD"), "modified_actorsys_files": modified}


def _rate(records: int, seconds: float | None) -> float | None:
    return round(records / seconds, 1) if seconds and seconds > 0 else None


def _seconds(start: float | None, end: float | None) -> float | None:
    return round(end - start, 3) if start is not None and end is not None else None


class Bench:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.run_id = uuid.uuid4().hex[:8]
        self.workdir = Path(tempfile.mkdtemp(prefix="actorsys-bench-"))
        self.broker: EmbeddedBroker | None = None
        self.bootstrap = ""
        self.context: dict[str, psutil.Process] = {"bench": psutil.Process()}
        self.results: dict[str, Any] = {
            "run_id": self.run_id,
            "started_at": time.time(),
            "args": {k: v for k, v in vars(args).items() if k != "properties"},
            "machine": {
                "cpus": os.cpu_count(),
                "platform": platform.platform(),
                "python": platform.python_version(),
                "loadavg_at_start": [round(x, 2) for x in os.getloadavg()],
            },
            "git": git_state(),
        }

    @property
    def output_formats(self) -> list[str]:
        chosen = self.args.output_format
        return ["delta", "parquet"] if chosen == "both" else [chosen]

    @property
    def phase_timeout(self) -> float:
        return float(self.args.timeout or 300 + self.args.records / 2000)

    # --- the whole run --------------------------------------------------------------------

    def run(self) -> dict[str, Any]:
        from importlib.metadata import version

        import confluent_kafka

        import actorsys

        self.results["actorsys_source"] = str(Path(actorsys.__file__).parent)
        self.results["versions"] = {
            **{
                name: version(name)
                for name in ("confluent-kafka", "pyarrow", "thespian", "msgpack")
            },
            "librdkafka": confluent_kafka.libversion()[0],
        }
        try:
            self.broker = EmbeddedBroker()
            self.bootstrap = self.broker.start()
            assert self.broker.pid is not None
            self.context["broker"] = psutil.Process(self.broker.pid)
            say(f"embedded broker pid {self.broker.pid} at {self.bootstrap}")
            topic = f"bench-{self.run_id}"
            report = self.produce_backlog(topic)
            if not self.args.skip_baseline:
                self.results["baseline"] = self.baseline(topic, report)
                # Never more processes than partitions (each takes at least one).
                processes = min(self.args.baseline_processes, self.args.partitions)
                if processes > 1:
                    self.results["baseline_multi"] = self.baseline(topic, report, processes)
                elif self.args.baseline_processes > 1:
                    say(f"baseline-N: skipped ({self.args.partitions} partition(s) only)")
            if not self.args.skip_actorsys:
                for i, fmt in enumerate(self.output_formats):
                    key = "actorsys" if i == 0 else f"actorsys_{fmt}"
                    name = "throughput" if i == 0 else f"throughput-{fmt}"
                    self.results[key] = self.daemon_phase(
                        name, topic, report=report, output_format=fmt
                    )
            if not self.args.skip_latency:
                self.results["latency"] = self.latency_phase()
            if self.args.job_sizes:
                self.job_sizes_phases(topic, report)
            if self.args.scale_partitions:
                self.partition_scaling_phases()
            if self.args.worker_hosts:
                self.worker_hosts_phases(topic, report)
        finally:
            self.results["machine"]["loadavg_at_end"] = [round(x, 2) for x in os.getloadavg()]
            self.results["finished_at"] = time.time()
            if self.broker is not None:
                self.broker.stop()
            if self.args.keep:
                say(f"kept {self.workdir}")
            else:
                shutil.rmtree(self.workdir, ignore_errors=True)
        return self.results

    def settings_for(self, group: str, name: str) -> dict[str, Any]:
        """The TOML sections of a daemon (or the baseline) and its config path."""
        workdir = self.workdir / name
        workdir.mkdir(parents=True, exist_ok=True)
        ports = {"admin": free_port_below_ephemeral(), "metrics": free_port_below_ephemeral()}
        sections = actorsys_sections(
            bootstrap=self.bootstrap,
            topic="",
            group=group,
            workdir=workdir,
            admin_port=ports["admin"],
            metrics_port=ports["metrics"],
            workers=self.args.workers,
            max_records=self.args.max_records,
            kafka_properties=self.args.kafka_properties,
        )
        return {"workdir": workdir, "ports": ports, "sections": sections}

    # --- data -----------------------------------------------------------------------------

    def produce_backlog(self, topic: str) -> ProduceReport:
        args = self.args
        say(f"producing {args.records:,} records to {topic} ({args.partitions} partitions)")
        report = produce(
            self.bootstrap,
            topic,
            devices=args.devices,
            rate=0,
            count=args.records,
            malformed_ratio=args.malformed_ratio,
            partitions=args.partitions,
            seed=args.seed,
            progress=True,
        )
        say(report.summary())
        self.results["produce"] = _report_dict(report)
        return report

    # --- (a) baselines --------------------------------------------------------------------

    def baseline(self, topic: str, report: ProduceReport, processes: int = 1) -> dict[str, Any]:
        """The plain consumer on the backlog, as ``processes`` processes: one
        subscribes to the whole topic; several each ``assign()`` a round-robin
        share of the partitions (all in one group), behind a start barrier."""
        name = "baseline" if processes == 1 else f"baseline-{processes}p"
        group = f"bench-{name}-{self.run_id}"
        setup = self.settings_for(group, name)
        workdir: Path = setup["workdir"]
        setup["sections"]["kafka"]["topics"] = [topic]
        # Plain Parquet files, readable once written: this handler needs no committer.
        setup["sections"]["output"]["format"] = "parquet"
        config_path = write_toml(workdir / "baseline.toml", setup["sections"])
        config = load_config(config_path)
        dlq = f"{topic}.{name}-dlq"
        create_topic_if_missing(self.bootstrap, dlq, 1)
        shares: list[list[int] | None] = (
            [None]
            if processes == 1
            else list(baseline_shares(range(self.args.partitions), processes))
        )
        go_file = workdir / "go"
        all_params: list[dict[str, Any]] = []
        for i, share in enumerate(shares):
            params = {
                "config": str(config_path),
                "bootstrap": self.bootstrap,
                "topic": topic,
                "dead_letter_topic": dlq,
                "end_offsets": report.end_offsets,
                "partitions": share,
                "result": str(workdir / f"result-{i}.json"),
                "ready_file": str(workdir / f"ready-{i}"),
                "go_file": str(go_file),
                "go_timeout_s": 300,
            }
            (workdir / f"params-{i}.json").write_text(json.dumps(params))
            all_params.append(params)
        command = [sys.executable, str(Path(__file__).with_name("_benchlib.py")), "baseline"]
        if processes == 1:
            say(f"{name}: one consumer process (subscribes to {topic}), group {group}")
        else:
            say(
                f"{name}: {len(shares)} consumer processes, partitions "
                f"{' | '.join(','.join(map(str, s or [])) for s in shares)} (assigned), "
                f"group {group}"
            )
        procs: list[subprocess.Popen[bytes]] = []
        children: list[psutil.Process] = []
        sampler = Sampler(
            lambda: [c for p, c in zip(procs, children, strict=True) if p.poll() is None],
            dict(self.context),
        )
        sys_before, ctx_before = system_cpu(), sampler.context_snapshot()
        try:
            for i in range(len(shares)):
                proc = subprocess.Popen(
                    [*command, str(workdir / f"params-{i}.json")],
                    stdin=subprocess.DEVNULL,
                    start_new_session=True,
                )
                procs.append(proc)
                children.append(psutil.Process(proc.pid))
            sampler.tick()
            ctx_before = sampler.context_snapshot()
            sampler.start()
            self._baseline_barrier(name, procs, all_params, go_file)
            deadline = time.monotonic() + self.phase_timeout
            codes = [proc.wait(max(0.1, deadline - time.monotonic())) for proc in procs]
        except subprocess.TimeoutExpired:
            raise RuntimeError(f"{name} did not finish within {self.phase_timeout:.0f}s") from None
        finally:
            sampler.stop()
            for proc in procs:
                if proc.poll() is None:
                    proc.terminate()
                    try:
                        proc.wait(10)
                    except subprocess.TimeoutExpired:
                        proc.kill()
                        proc.wait()
        if any(codes):
            raise RuntimeError(f"{name}: a consumer process exited with {codes}")
        sys_after, ctx_after = system_cpu(), sampler.context_snapshot()
        parts = [json.loads(Path(p["result"]).read_text()) for p in all_params]
        records = sum(r["records"] for r in parts)
        jobs = sum(r["jobs"] for r in parts)
        # All processes have their partitions -> the last one's last batch committed.
        assigned_at = max(r["assigned_at"] for r in parts if r["assigned_at"] is not None)
        done_at = max(r["done_at"] for r in parts)
        started_at = min(r["started_at"] for r in parts)
        window = _seconds(assigned_at, done_at)
        cpu_window_s = sum(r["cpu_s_at_done"] - (r["cpu_s_at_assigned"] or 0) for r in parts)
        latencies = job_latencies(workdir / "out" / "raw")
        cpu_total = sum(r["cpu_user_s"] + r["cpu_sys_s"] for r in parts)
        out = {
            "group": group,
            "processes": len(parts),
            "mode": parts[0]["mode"],
            "handler": parts[0]["handler"],
            "config": setup["sections"],
            "consumer_properties": consumer_properties(config, self.bootstrap),
            "records": records,
            "jobs": jobs,
            "valid": sum(r["valid"] for r in parts),
            "invalid": sum(r["invalid"] for r in parts),
            "rows_written": sum(j["rows"] for j in latencies),
            "window": (
                "partitions assigned -> last batch committed"
                if len(parts) == 1
                else "every process has its partitions -> every process's last batch committed"
            ),
            "window_s": window,
            "records_per_s": _rate(records, window),
            "jobs_per_s": _rate(jobs, window),
            "from_process_start_s": _seconds(started_at, done_at),
            "records_per_s_from_process_start": _rate(records, _seconds(started_at, done_at)),
            "latency_backlog": latency_summary(latencies),
            # One process: its ru_maxrss (or a higher sample); several: the sampled
            # peak of their summed RSS (the sum of their peaks is an upper bound).
            "peak_rss_bytes": max(sampler.peak_rss, *(r["ru_maxrss_bytes"] for r in parts)),
            "peak_rss_sampled_bytes": sampler.peak_rss,
            "sum_of_process_peak_rss_bytes": sum(r["ru_maxrss_bytes"] for r in parts),
            "peak_pss_bytes": sampler.peak_pss,
            "peak_processes": len(parts),
            "records_per_job": round(records / max(1, jobs), 1),
            "cpu_s": round(cpu_total, 2),
            "cpu_user_s": round(sum(r["cpu_user_s"] for r in parts), 2),
            "cpu_sys_s": round(sum(r["cpu_sys_s"] for r in parts), 2),
            "cpu_s_window": round(cpu_window_s, 2),
            "cpu_window": "each process from having its partitions to its last commit, summed",
            "cpu_us_per_record": _per(cpu_window_s * 1e6, records),
            "context_cpu_s": cpu_window(ctx_before, ctx_after),
            "system_cpu_s": cpu_window(sys_before, sys_after),
            "per_process": [
                {
                    "partitions": r["partitions"],
                    "records": r["records"],
                    "jobs": r["jobs"],
                    "assigned_relative_to_last_s": _seconds(assigned_at, r["assigned_at"]),
                    "window_s": _seconds(r["assigned_at"], r["done_at"]),
                    "cpu_s_window": round(r["cpu_s_at_done"] - (r["cpu_s_at_assigned"] or 0), 2),
                    "cpu_s": round(r["cpu_user_s"] + r["cpu_sys_s"], 2),
                    "ru_maxrss_bytes": r["ru_maxrss_bytes"],
                    # Wall seconds in the handler, the dead-letter flush, the sync commit.
                    "wall_s_in": r.get("wall_s_in"),
                }
                for r in parts
            ],
        }
        out["foreign_cpu_s"] = _foreign(out["system_cpu_s"], out["context_cpu_s"], cpu_total)
        out["check"] = _check(report, out["valid"], out["invalid"], out["rows_written"])
        say(
            f"{name}: {records:,} records in {window or 0:.2f}s = "
            f"{out['records_per_s'] or 0:,.0f} records/s, {jobs} jobs, "
            f"{out['cpu_us_per_record']} CPU us/record, "
            f"peak RSS {out['peak_rss_bytes'] / MB:.0f} MB"
        )
        return out

    def _baseline_barrier(
        self,
        name: str,
        procs: list[subprocess.Popen[bytes]],
        params: list[dict[str, Any]],
        go_file: Path,
    ) -> None:
        """Wait until every baseline process is set up (ready file), then say go."""
        deadline = time.monotonic() + 300
        while not all(Path(p["ready_file"]).exists() for p in params):
            for proc in procs:
                if proc.poll() is not None:
                    raise RuntimeError(f"{name}: a consumer process exited with {proc.returncode}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"{name}: consumer processes not ready within 300s")
            time.sleep(0.01)
        go_file.write_text("go")

    # --- (b) actorsys ---------------------------------------------------------------------

    def latency_phase(self) -> dict[str, Any]:
        args = self.args
        topic = f"bench-latency-{self.run_id}"
        create_topic_if_missing(self.bootstrap, topic, args.partitions)
        count = int(args.latency_rate * args.latency_seconds)

        def feed() -> ProduceReport:
            say(f"latency: producing {count:,} records at {args.latency_rate:,.0f}/s")
            report = produce(
                self.bootstrap,
                topic,
                devices=args.devices,
                rate=args.latency_rate,
                count=count,
                malformed_ratio=args.malformed_ratio,
                partitions=args.partitions,
                seed=args.seed + 1,
            )
            say(report.summary())
            return report

        return self.daemon_phase("latency", topic, feed=feed)

    def daemon_phase(
        self,
        name: str,
        topic: str,
        *,
        report: ProduceReport | None = None,
        feed: Callable[[], ProduceReport] | None = None,
        output_format: str | None = None,
        overrides: dict[str, dict[str, Any]] | None = None,
        timeout_s: float | None = None,
    ) -> dict[str, Any]:
        """Run one daemon until it has committed and finished everything of ``topic``.

        ``overrides``: {section: {key: value}} on top of the bench's settings;
        ``timeout_s``: how long it may take from the assignment to done (default:
        the phase timeout)."""
        group = f"bench-{name}-{self.run_id}"
        setup = self.settings_for(group, name)
        workdir: Path = setup["workdir"]
        setup["sections"]["kafka"]["topics"] = [topic]
        output_format = output_format or self.output_formats[0]
        setup["sections"]["output"]["format"] = output_format
        for section, values in (overrides or {}).items():
            setup["sections"].setdefault(section, {}).update(values)
        config_path = write_toml(workdir / "actorsys.toml", setup["sections"])
        config = load_config(config_path)
        run = _daemon(config_path, workdir / "actorsys.log", setup["ports"])
        sampler = Sampler(run.live_processes, dict(self.context))
        completion: Completion | None = None
        out: dict[str, Any] = {
            "phase": name,
            "group": group,
            "format": output_format,
            "command": " ".join(run.command),
            "config": setup["sections"],
            "consumer_properties": consumer_properties(config, self.bootstrap),
        }
        try:
            run.start_process()
            sampler.start()
            say(f"{name}: started `{' '.join(run.command)}` (pid {run.pid}), group {group}")
            assigned_at = run.wait_assigned(120)
            cpu_assigned, sys_assigned = sampler.tick(), system_cpu()
            ctx_assigned = sampler.context_snapshot()
            labels = label_actor_processes(run.actor_system.alive())
            say(f"{name}: partitions assigned {assigned_at - run.spawned_at:.1f}s after start")
            if feed is not None:
                report = feed()
            assert report is not None
            completion = Completion(
                self.bootstrap, group, topic, report.end_offsets, config.jobs.store
            )
            waited = self._wait_done(
                name, run, completion, sampler, assigned_at, timeout_s=timeout_s
            )
            done_at = waited["done_at"]
            cpu_done, sys_done = sampler.tick(), system_cpu()
            ctx_done = sampler.context_snapshot()
            labels.update(label_actor_processes(run.actor_system.alive()))
            labels[run.pid] = "daemon"
            say(f"{name}: processes: {_roles(labels)}")
            counts = completion.job_counts()
            job_manager = run.component("job_manager")
            say(f"{name}: done; stopping actorsys (SIGTERM)")
            # A drain ends every actor process: give many of them the time to.
            out["stop"] = run.stop(90 + sampler.peak_processes)
            say(f"{name}: stopped: {out['stop']}")
        finally:
            with deferred_interrupts():
                sampler.stop()
                if completion is not None:
                    completion.close()
                run.cleanup()
                out["leftovers"] = _sweep(name, [str(config_path)], "the daemon, its actor system")

        records = report.produced
        window = _seconds(assigned_at, done_at)
        latencies = job_latencies(workdir / "out" / "raw")
        jobs_done = counts.get("DONE", 0)
        window_cpu = {pid: cpu_done[pid] - cpu_assigned.get(pid, 0) for pid in cpu_done}
        out.update(
            {
                "records": records,
                "produce": _report_dict(report) if feed is not None else None,
                "jobs_by_status": counts,
                "jobs": jobs_done,
                "rows_written": sum(j["rows"] for j in latencies),
                "window": "partitions assigned (log line) -> offsets committed and no open job",
                "spawned_at": run.spawned_at,
                "assigned_at": assigned_at,
                "first_commit_seen_at": waited["first_commit_at"],
                "done_at": done_at,
                "window_s": window,
                "records_per_s": _rate(records, window),
                "jobs_per_s": _rate(jobs_done, window),
                "from_spawn_s": _seconds(run.spawned_at, done_at),
                "records_per_s_from_spawn": _rate(records, _seconds(run.spawned_at, done_at)),
                "from_first_commit_s": _seconds(waited["first_commit_at"], done_at),
                "records_per_s_from_first_commit": _rate(
                    records, _seconds(waited["first_commit_at"], done_at)
                ),
                "latency": latency_summary(latencies),
                "peak_rss_bytes": sampler.peak_rss,
                "peak_pss_bytes": sampler.peak_pss,
                "peak_processes": sampler.peak_processes,
                "records_per_job": round(records / max(1, jobs_done), 1),
                "peak_rss_by_process": {
                    f"{labels.get(pid, 'unlabelled')}({pid})": rss
                    for pid, rss in sorted(sampler.peak_rss_by_pid.items())
                },
                "cpu_s_total": round(sum(cpu_done.values()), 2),
                "cpu_by_role_total": cpu_by_role(cpu_done, labels),
                "cpu_s_window": round(sum(window_cpu.values()), 2),
                "cpu_by_role_window": cpu_by_role(window_cpu, labels),
                "cpu_window": "from partitions assigned to done",
                "context_cpu_s_window": cpu_window(ctx_assigned, ctx_done),
                "system_cpu_s_window": cpu_window(sys_assigned, sys_done),
                "job_manager_stats": {
                    k: v for k, v in job_manager.items() if isinstance(v, int | float)
                },
                "process_labels": {str(pid): label for pid, label in sorted(labels.items())},
            }
        )
        out["foreign_cpu_s_window"] = _foreign(
            out["system_cpu_s_window"], out["context_cpu_s_window"], out["cpu_s_window"]
        )
        out["check"] = _check(report, None, None, out["rows_written"])
        out.update(_per_work(out))
        rate = out["records_per_s"]
        say(
            f"{name}: {records:,} records in {window or 0:.2f}s = {rate or 0:,.0f} records/s, "
            f"{jobs_done} jobs, peak RSS {sampler.peak_rss / MB:.0f} MB, "
            f"{sampler.peak_processes} processes, {out['cpu_us_per_record']} CPU us/record, "
            f"JobManager {out['job_manager_cpu_ms_per_job']} ms/job, "
            f"latency p50 {out['latency'].get('p50_s')}s p99 {out['latency'].get('p99_s')}s"
        )
        return out

    # --- (e) job sizes --------------------------------------------------------------------

    def job_size_overrides(self, size: int) -> dict[str, dict[str, Any]]:
        """The settings that make ``size`` the size of a job on a backlog.

        A batch is cut at ``max_records`` and after ``linger_ms``, and a
        partition is held back at its in-flight caps: those scale with the size
        (never below their defaults), so that the offset count cuts the
        batches. At the default size every setting is the default.
        """
        batching, flow = BatchingConfig(), FlowConfig()
        scale = max(1.0, size / batching.max_records)
        partitions = self.args.partitions
        return {
            "batching": {"max_records": size, "linger_ms": int(batching.linger_ms * scale)},
            "flow": {
                "max_inflight_records_per_partition": max(
                    flow.max_inflight_records_per_partition, 2 * size
                ),
                "max_inflight_records": max(flow.max_inflight_records, 2 * size * partitions),
            },
        }

    def job_sizes_phases(self, topic: str, report: ProduceReport) -> None:
        """actorsys on the backlog once per ``--job-sizes`` entry (fresh group each)."""
        doc: dict[str, Any] = {
            "sizes": self.args.job_sizes,
            "format": self.output_formats[0],
            "topic": topic,
            "runs": [],
        }
        self.results["job_sizes"] = doc
        for size in self.args.job_sizes:
            overrides = self.job_size_overrides(size)
            say(f"jobsize-{size}: settings {overrides}")
            run = self.daemon_phase(f"jobsize-{size}", topic, report=report, overrides=overrides)
            run["max_records"] = size
            run["overrides"] = overrides
            doc["runs"].append(run)
            doc["summary"] = _job_sizes_summary(doc["runs"])

    # --- (f) partition scaling ------------------------------------------------------------

    def partition_scaling_phases(self) -> None:
        """Per ``--scale-partitions`` count P: a fresh topic of P partitions with
        ``--scale-records`` records, and actorsys on it."""
        args = self.args
        doc: dict[str, Any] = {
            "partitions": args.scale_partitions,
            "records": args.scale_records,
            "format": self.output_formats[0],
            "runs": [],
        }
        self.results["partition_scaling"] = doc
        for count in args.scale_partitions:
            name = f"scale-p{count}"
            topic = f"bench-scale{count}-{self.run_id}"
            say(f"{name}: producing {args.scale_records:,} records to {topic} ({count} partitions)")
            report = produce(
                self.bootstrap,
                topic,
                devices=args.devices,
                rate=0,
                count=args.scale_records,
                malformed_ratio=args.malformed_ratio,
                partitions=count,
                seed=args.seed + 2,
            )
            say(report.summary())
            # Every partition costs processes to start and to stop: more time.
            timeout = args.timeout or 300 + args.scale_records / 2000 + 5 * count
            run = self.daemon_phase(name, topic, report=report, timeout_s=timeout)
            run["partitions"] = count
            run["produce_backlog"] = _report_dict(report)
            doc["runs"].append(run)
            doc["summary"] = _scaling_summary(doc["runs"])

    # --- (d) worker hosts -----------------------------------------------------------------

    def worker_hosts_phases(self, topic: str, report: ProduceReport) -> None:
        doc: dict[str, Any] = {
            "hosts": self.args.worker_hosts,
            "slots_per_host": self.args.slots_per_host,
            "note": (
                "every host runs on this machine and shares its CPUs with the leader and the broker"
            ),
            "runs": [],
        }
        self.results["worker_hosts"] = doc
        for k in range(1, self.args.worker_hosts + 1):
            # Recorded from the start: a failed or interrupted run still shows its
            # commands, stops and leftovers ("finished": false).
            out: dict[str, Any] = {"k": k, "finished": False}
            doc["runs"].append(out)
            self.worker_hosts_phase(k, topic, report, out)
            out["finished"] = True

    def worker_hosts_phase(
        self, k: int, topic: str, report: ProduceReport, out: dict[str, Any]
    ) -> dict[str, Any]:
        """A leader that runs no workers, plus ``k`` worker hosts, on the backlog."""
        name = f"hosts-{k}"
        slots = self.args.slots_per_host
        group = f"bench-{name}-{self.run_id}"
        setup = self.settings_for(group, name)
        workdir: Path = setup["workdir"]
        setup["sections"]["kafka"]["topics"] = [topic]
        setup["sections"]["workers"]["on_leader"] = False
        setup["sections"]["output"]["format"] = self.output_formats[0]
        config_path = write_toml(workdir / "actorsys.toml", setup["sections"])
        config = load_config(config_path)
        command = actorsys_command()
        leader = _daemon(config_path, workdir / "leader.log", setup["ports"])
        ports = set(setup["ports"].values())
        members: list[MemberProcess] = []
        for i in range(1, k + 1):
            port = free_port()
            while port in ports:
                port = free_port()
            ports.add(port)
            host = f"bench-host-{i}"
            members.append(
                MemberProcess(
                    host,
                    leader.admin_port,
                    workdir / f"{host}.log",
                    slots=slots,
                    admin_port=port,
                    program=command,
                )
            )
        runs: list[DaemonProcess | MemberProcess] = [leader, *members]
        sampler = Sampler(lambda: [p for r in runs for p in r.live_processes()], dict(self.context))
        completion: Completion | None = None
        expected = {m.name: m.slots for m in members}
        labels: dict[int, str] = {}
        out.update(
            {
                "phase": name,
                "group": group,
                "format": self.output_formats[0],
                "slots_per_host": slots,
                "leader_command": " ".join(leader.command),
                "member_commands": {m.name: " ".join(m.command) for m in members},
                "config": setup["sections"],
            }
        )
        # Everything of this run carries one of these on its command line.
        markers = [str(config_path), f"--convention 127.0.0.1:{leader.admin_port}"]
        try:
            leader.start_process()
            sampler.start()
            say(f"{name}: started leader `{' '.join(leader.command)}` (pid {leader.pid})")
            leader.wait_actor_system(60, 0.05)
            for member in members:
                member.start_process()
                say(f"{name}: started `{' '.join(member.command)}` (pid {member.pid})")
            for member in members:
                member.wait_actor_system(60, 0.05)
            placed = self._wait_placed_and_assigned(name, leader, members, expected, sampler)
            assigned_at = placed["assigned_at"]
            cpu_assigned, sys_assigned, ctx_assigned = placed["samples"]
            labels.update(_host_labels(leader, members))
            say(
                f"{name}: partitions assigned {assigned_at - leader.spawned_at:.1f}s after "
                f"start; workers {expected} placed "
                f"{placed['placed_at'] - leader.spawned_at:.1f}s after start"
            )
            completion = Completion(
                self.bootstrap, group, topic, report.end_offsets, config.jobs.store
            )
            waited = self._wait_done(name, leader, completion, sampler, assigned_at, members)
            done_at = waited["done_at"]
            # The last samples before anything exits.
            cpu_done, sys_done = sampler.tick(), system_cpu()
            ctx_done = sampler.context_snapshot()
            labels.update(_host_labels(leader, members))
            say(f"{name}: processes: {_roles(labels)}")
            counts = completion.job_counts()
            by_worker = completion.jobs_by_worker()
            workers_at_done = leader.workers_by_host()
            job_manager = leader.component("job_manager")
            say(f"{name}: done; stopping the worker hosts (drain), then the leader (SIGTERM)")
            for member in members:
                member.send_stop()
            stops = {member.name: member.stop() for member in members}
            stops["leader"] = leader.stop()
            out["stop"] = stops
            say(f"{name}: stopped: {stops}")
        finally:
            with deferred_interrupts():
                sampler.stop()
                if completion is not None:
                    completion.close()
                for run in reversed(runs):
                    run.cleanup()
                out["leftovers"] = _sweep(name, markers)

        records = report.produced
        window = _seconds(assigned_at, done_at)
        latencies = job_latencies(workdir / "out" / "raw")
        jobs_done = counts.get("DONE", 0)
        window_cpu = {pid: cpu_done[pid] - cpu_assigned.get(pid, 0) for pid in cpu_done}
        by_host: dict[str, int] = {}
        for worker, n in by_worker.items():
            parts = worker.split("/")
            host = parts[1] if len(parts) >= 3 else f"? ({worker})"
            by_host[host] = by_host.get(host, 0) + n
        out.update(
            {
                "hosts": list(expected),
                "records": records,
                "jobs_by_status": counts,
                "jobs": jobs_done,
                "jobs_by_host": by_host,
                "jobs_by_worker": by_worker,
                "jobs_not_on_a_worker_host": sum(
                    n for host, n in by_host.items() if host not in expected
                ),
                "workers_by_host_at_done": workers_at_done,
                "rows_written": sum(j["rows"] for j in latencies),
                "window": "partitions assigned (log line) -> offsets committed and no open job",
                "spawned_at": leader.spawned_at,
                "assigned_at": assigned_at,
                "workers_placed_at": placed["placed_at"],
                "placed_after_assigned_s": round(placed["placed_at"] - assigned_at, 3),
                "first_commit_seen_at": waited["first_commit_at"],
                "done_at": done_at,
                "window_s": window,
                "records_per_s": _rate(records, window),
                "jobs_per_s": _rate(jobs_done, window),
                "from_spawn_s": _seconds(leader.spawned_at, done_at),
                "records_per_s_from_spawn": _rate(records, _seconds(leader.spawned_at, done_at)),
                "records_per_job": round(records / max(1, jobs_done), 1),
                "latency": latency_summary(latencies),
                "peak_rss_bytes": sampler.peak_rss,
                "peak_pss_bytes": sampler.peak_pss,
                "peak_processes": sampler.peak_processes,
                "peak_rss_by_process": {
                    f"{labels.get(pid, 'unlabelled')}({pid})": rss
                    for pid, rss in sorted(sampler.peak_rss_by_pid.items())
                },
                "cpu_s_total": round(sum(cpu_done.values()), 2),
                "cpu_s_window": round(sum(window_cpu.values()), 2),
                "cpu_window": "from partitions assigned to done",
                "cpu_by_host_window": _cpu_by_host(window_cpu, labels),
                "cpu_by_role_window": cpu_by_role(window_cpu, labels),
                "cpu_by_role_total": cpu_by_role(cpu_done, labels),
                "cpu_s_by_process_window": _by_process(window_cpu, labels),
                "cpu_s_by_process_total": _by_process(cpu_done, labels),
                "context_cpu_s_window": cpu_window(ctx_assigned, ctx_done),
                "system_cpu_s_window": cpu_window(sys_assigned, sys_done),
                "job_manager_stats": {
                    k: v for k, v in job_manager.items() if isinstance(v, int | float)
                },
                "process_labels": {str(pid): label for pid, label in sorted(labels.items())},
            }
        )
        out["foreign_cpu_s_window"] = _foreign(
            out["system_cpu_s_window"], out["context_cpu_s_window"], out["cpu_s_window"]
        )
        out["check"] = _check(report, None, None, out["rows_written"])
        out.update(_per_work(out))
        say(
            f"{name}: {records:,} records in {window or 0:.2f}s = "
            f"{out['records_per_s'] or 0:,.0f} records/s, {jobs_done} jobs "
            f"({', '.join(f'{h}={n}' for h, n in by_host.items())}), "
            f"peak RSS {sampler.peak_rss / MB:.0f} MB, raw rows OK: {out['check']['ok']}"
        )
        return out

    def _wait_placed_and_assigned(
        self,
        name: str,
        leader: DaemonProcess,
        members: list[MemberProcess],
        expected: dict[str, int],
        sampler: Sampler,
    ) -> dict[str, Any]:
        """Until the leader has its partitions and every host its workers. The
        window's first CPU sample is taken as soon as the assignment is seen."""
        deadline = time.monotonic() + 120
        assigned_at: float | None = None
        placed_at: float | None = None
        samples: tuple[dict[int, float], dict[str, float], dict[str, float]] | None = None
        next_status = 0.0
        seen: dict[str, int] = {}
        while True:
            leader.check_alive()
            for member in members:
                member.check_alive()
            if assigned_at is None:
                assigned_at = leader.first_assigned_at()
                if assigned_at is not None:
                    samples = (sampler.tick(), system_cpu(), sampler.context_snapshot())
            if placed_at is None and time.monotonic() >= next_status:
                next_status = time.monotonic() + 0.2
                seen = leader.workers_by_host()
                if seen == expected:
                    placed_at = time.time()
            if assigned_at is not None and placed_at is not None:
                assert samples is not None
                return {"assigned_at": assigned_at, "placed_at": placed_at, "samples": samples}
            if time.monotonic() > deadline:
                raise RuntimeError(
                    f"{name}: within 120s: assigned={assigned_at is not None}, workers by "
                    f"host {seen} (want {expected}); leader log tail:\n{leader.log_tail()}"
                )
            time.sleep(0.05)

    def _wait_done(
        self,
        name: str,
        run: DaemonProcess,
        completion: Completion,
        sampler: Sampler,
        since: float,
        others: Sequence[MemberProcess] = (),
        timeout_s: float | None = None,
    ) -> dict[str, Any]:
        timeout_s = timeout_s or self.phase_timeout
        deadline = time.monotonic() + timeout_s
        first_commit_at: float | None = None
        next_report = time.monotonic() + 5
        while True:
            run.check_alive()
            for other in others:
                other.check_alive()
            committed = completion.committed()
            now = time.time()
            done_count = sum(committed.values())
            if first_commit_at is None and done_count > 0:
                first_commit_at = now
            counts: dict[str, int] = {}
            if completion.all_committed(committed):
                counts = completion.job_counts()
                if counts.get("PENDING", 0) + counts.get("RUNNING", 0) == 0:
                    return {"done_at": now, "first_commit_at": first_commit_at}
            if time.monotonic() >= next_report:
                next_report += 5
                counts = counts or completion.job_counts()
                say(
                    f"{name}: committed {done_count:,}/{completion.total:,} "
                    f"({done_count / max(1e-9, now - since):,.0f}/s since assigned), jobs "
                    + ", ".join(f"{k}={v}" for k, v in counts.items() if v)
                    + f", peak RSS {sampler.peak_rss / MB:.0f} MB"
                )
            if time.monotonic() >= deadline:
                status_path = self.workdir / f"{name}-status-at-timeout.json"
                status_path.write_text(json.dumps(_status(run), indent=2))
                say(f"{name}: timed out; daemon /status saved to {status_path}")
                raise RuntimeError(
                    f"{name}: not done within {timeout_s:.0f}s "
                    f"(committed {committed}, want {completion.end_offsets})"
                )
            time.sleep(0.2)


def _roles(labels: dict[int, str]) -> str:
    counts: dict[str, int] = {}
    for label in labels.values():
        role = label.split("#", 1)[0]
        counts[role] = counts.get(role, 0) + 1
    return ", ".join(f"{n}x {role}" if n > 1 else role for role, n in counts.items())


def _host_labels(leader: DaemonProcess, members: Sequence[MemberProcess]) -> dict[int, str]:
    """ "<leader|host>/<role>" for every live process of a multi-host run."""
    labels = {
        pid: f"leader/{label}"
        for pid, label in label_actor_processes(leader.actor_system.alive()).items()
    }
    if leader.alive():
        labels[leader.pid] = "leader/daemon"
    for member in members:
        found = label_member_processes(member.actor_system.alive())
        labels.update({pid: f"{member.name}/{label}" for pid, label in found.items()})
        if member.alive():
            labels[member.pid] = f"{member.name}/join"
    return labels


def _cpu_by_host(cpu_by_pid: dict[int, float], labels: dict[int, str]) -> dict[str, float]:
    hosts: dict[str, float] = {}
    for pid, seconds in cpu_by_pid.items():
        host = labels.get(pid, "unlabelled").split("/", 1)[0]
        hosts[host] = round(hosts.get(host, 0.0) + seconds, 2)
    return hosts


def _by_process(cpu_by_pid: dict[int, float], labels: dict[int, str]) -> dict[str, float]:
    return {
        f"{labels.get(pid, 'unlabelled')}({pid})": round(seconds, 2)
        for pid, seconds in sorted(cpu_by_pid.items(), key=lambda kv: labels.get(kv[0], ""))
    }


def _sweep(
    name: str,
    markers: list[str],
    what: str = "leader, worker hosts, their actor systems",
) -> list[dict[str, Any]]:
    """After a run's cleanup: is anything of it still alive? Report and kill it."""
    left = stray_processes(markers)
    found = []
    for proc in left:
        with contextlib.suppress(psutil.Error):
            found.append({"pid": proc.pid, "cmdline": " ".join(proc.cmdline())[:200]})
    if left:
        killed = kill_processes(left)
        say(f"{name}: LEFTOVER processes after cleanup: {found}; killed {killed}")
    else:
        say(f"{name}: no process left ({what})")
    return found


def _report_dict(report: ProduceReport) -> dict[str, Any]:
    doc = dataclasses.asdict(report)
    doc.pop("malformed_positions")
    doc["records_per_s"] = round(report.records_per_s, 1)
    return doc


def _foreign(system: dict[str, float], context: dict[str, float], ours: float) -> float:
    """CPU seconds the machine spent on processes other than ours, the broker and
    this script (other engineers' tests, say): a disturbed run shows here."""
    return round(system.get("busy", 0) - ours - sum(context.values()), 2)


def _check(
    report: ProduceReport, valid: int | None, invalid: int | None, rows: int
) -> dict[str, Any]:
    """Did every valid record reach a raw file exactly once (by count)?"""
    ok = rows == report.valid and (valid is None or valid == report.valid)
    ok = ok and (invalid is None or invalid == report.malformed)
    return {"ok": ok, "raw_rows": rows, "expected_valid": report.valid}


def _per(value: float | None, count: int | None, digits: int = 2) -> float | None:
    return round(value / count, digits) if value is not None and count else None


def _job_manager_cpu_s(cpu_by_role: dict[str, dict[str, float]]) -> float | None:
    """The JobManager's CPU seconds of a per-role table (a role may carry a host
    prefix, "leader/job_manager"); None when no process was labelled so."""
    found = [e["cpu_s"] for role, e in cpu_by_role.items() if role.endswith("job_manager")]
    return round(sum(found), 2) if found else None


def _per_work(run: dict[str, Any]) -> dict[str, Any]:
    """CPU per record (every process of the run) and JobManager CPU per job and
    per 1,000 records, all over the window (assigned -> done)."""
    records, jobs = run.get("records") or 0, run.get("jobs") or 0
    jm = _job_manager_cpu_s(run.get("cpu_by_role_window") or {})
    return {
        "cpu_us_per_record": _per((run.get("cpu_s_window") or 0) * 1e6, records),
        "job_manager_cpu_s_window": jm,
        "job_manager_cpu_ms_per_job": _per(jm * 1000, jobs, 3) if jm is not None else None,
        "job_manager_cpu_ms_per_1k_records": (
            _per(jm * 1e6, records, 3) if jm is not None else None
        ),
    }


def _ratio(a: float | None, b: float | None) -> float | None:
    return round(a / b, 3) if a and b else None


def contenders(results: dict[str, Any]) -> dict[str, Any]:
    """Every contender on the main backlog in one list: records/s and CPU per
    record, and each actorsys run's ratios to the baselines."""
    baselines = [
        (f"baseline-{doc.get('processes', 1)}", doc)
        for doc in (results.get("baseline"), results.get("baseline_multi"))
        if isinstance(doc, dict)
    ]
    actorsys_runs = [
        (f"actorsys ({doc.get('format')})", doc)
        for key, doc in results.items()
        if (key == "actorsys" or key.startswith("actorsys_")) and isinstance(doc, dict)
    ]
    rows = []
    for name, doc in baselines + actorsys_runs:
        row: dict[str, Any] = {
            "name": name,
            "processes": doc.get("peak_processes"),
            "records": doc.get("records"),
            "window_s": doc.get("window_s"),
            "records_per_s": doc.get("records_per_s"),
            "cpu_s_window": doc.get("cpu_s_window"),
            "cpu_us_per_record": doc.get("cpu_us_per_record"),
            "peak_rss_bytes": doc.get("peak_rss_bytes"),
            "peak_pss_bytes": doc.get("peak_pss_bytes"),
        }
        if name.startswith("actorsys"):
            row["job_manager_cpu_ms_per_job"] = doc.get("job_manager_cpu_ms_per_job")
            row["vs"] = {
                base_name: {
                    "records_per_s": _ratio(doc.get("records_per_s"), base.get("records_per_s")),
                    "cpu_us_per_record": _ratio(
                        doc.get("cpu_us_per_record"), base.get("cpu_us_per_record")
                    ),
                }
                for base_name, base in baselines
            }
        rows.append(row)
    return {
        "window": "partitions assigned (every process's) -> all committed (actorsys: and no "
        "open job); CPU over that window, every process of the contender",
        "ratios": "actorsys / baseline (records/s: > 1 is faster; CPU per record: > 1 costs more)",
        "rows": rows,
    }


def _scaling_summary(runs: list[dict[str, Any]]) -> dict[str, Any]:
    rows = [
        {
            "partitions": doc["partitions"],
            "records": doc.get("records"),
            "records_per_s": doc.get("records_per_s"),
            "jobs": doc.get("jobs"),
            "jobs_per_s": doc.get("jobs_per_s"),
            "records_per_job": doc.get("records_per_job"),
            "window_s": doc.get("window_s"),
            "from_spawn_s": doc.get("from_spawn_s"),
            "assigned_after_spawn_s": _seconds(doc.get("spawned_at"), doc.get("assigned_at")),
            "peak_rss_bytes": doc.get("peak_rss_bytes"),
            "peak_pss_bytes": doc.get("peak_pss_bytes"),
            "peak_processes": doc.get("peak_processes"),
            "partition_consumer_processes": (doc.get("cpu_by_role_total") or {})
            .get("partition_consumer", {})
            .get("processes"),
            "cpu_us_per_record": doc.get("cpu_us_per_record"),
            "job_manager_cpu_ms_per_job": doc.get("job_manager_cpu_ms_per_job"),
            "rows_ok": (doc.get("check") or {}).get("ok"),
            "leftovers": len(doc.get("leftovers") or []),
        }
        for doc in runs
    ]
    out: dict[str, Any] = {"rows": rows}
    if len(rows) >= 2:
        first, last = rows[0], rows[-1]
        out["ratio"] = {
            "of": f"P={last['partitions']} / P={first['partitions']}",
            "peak_rss": _ratio(last["peak_rss_bytes"], first["peak_rss_bytes"]),
            "peak_pss": _ratio(last["peak_pss_bytes"], first["peak_pss_bytes"]),
            "peak_processes": _ratio(last["peak_processes"], first["peak_processes"]),
            "records_per_s": _ratio(last["records_per_s"], first["records_per_s"]),
            "jobs_per_s": _ratio(last["jobs_per_s"], first["jobs_per_s"]),
        }
    return out


def _job_sizes_summary(runs: list[dict[str, Any]]) -> dict[str, Any]:
    rows = [
        {
            "max_records": doc["max_records"],
            "records_per_job": doc.get("records_per_job"),
            "jobs": doc.get("jobs"),
            "records_per_s": doc.get("records_per_s"),
            "jobs_per_s": doc.get("jobs_per_s"),
            "window_s": doc.get("window_s"),
            "job_manager_cpu_s_window": doc.get("job_manager_cpu_s_window"),
            "job_manager_cpu_ms_per_job": doc.get("job_manager_cpu_ms_per_job"),
            "job_manager_cpu_ms_per_1k_records": doc.get("job_manager_cpu_ms_per_1k_records"),
            "cpu_us_per_record": doc.get("cpu_us_per_record"),
            "peak_rss_bytes": doc.get("peak_rss_bytes"),
            "rows_ok": (doc.get("check") or {}).get("ok"),
        }
        for doc in runs
    ]
    out: dict[str, Any] = {"rows": rows}
    if len(rows) >= 2:
        small, large = rows[0], rows[-1]
        out["ratio"] = {
            "of": f"max_records {large['max_records']} / {small['max_records']}",
            "records_per_job": _ratio(large["records_per_job"], small["records_per_job"]),
            "job_manager_cpu_ms_per_job": _ratio(
                large["job_manager_cpu_ms_per_job"], small["job_manager_cpu_ms_per_job"]
            ),
            "job_manager_cpu_ms_per_1k_records": _ratio(
                large["job_manager_cpu_ms_per_1k_records"],
                small["job_manager_cpu_ms_per_1k_records"],
            ),
            "reading": "ms/job ratio ~1: JobManager cost per job is flat in the job size; "
            "~ the records_per_job ratio: it grows with the records",
        }
    return out


# --- the human table ------------------------------------------------------------------------


def _fmt(value: Any, spec: str = ",.0f", suffix: str = "") -> str:
    if value is None:
        return "-"
    return f"{value:{spec}}{suffix}"


def print_table(results: dict[str, Any]) -> None:
    args = results["args"]
    base = results.get("baseline")
    act = results.get("actorsys")
    lat = results.get("latency")
    produced = results.get("produce", {})
    lines = [
        "",
        f"actorsys benchmark {results['run_id']}: {produced.get('produced', 0):,} records "
        f"({produced.get('malformed', 0):,} malformed), {args['partitions']} partitions, "
        f"{args['devices']} devices, batch {args['max_records']}, {args['workers']} workers, "
        f"{results['machine']['cpus']} CPUs",
        f"produced at {produced.get('records_per_s', 0):,.0f} records/s (backlog, rate 0)",
        "",
        f"{'':38}{'baseline':>14}{'actorsys':>14}",
    ]

    def row(label: str, b: str, a: str) -> None:
        lines.append(f"{label:38}{b:>14}{a:>14}")

    def get(doc: dict[str, Any] | None, *path: str) -> Any:
        for key in path:
            if not isinstance(doc, dict):
                return None
            doc = doc.get(key)
        return doc

    row(
        "records/s (assigned -> done)",
        _fmt(get(base, "records_per_s")),
        _fmt(get(act, "records_per_s")),
    )
    if base and act and base.get("records_per_s") and act.get("records_per_s"):
        row(
            "  ratio actorsys / baseline",
            "",
            f"{act['records_per_s'] / base['records_per_s']:.2f}x",
        )
    row("window s", _fmt(get(base, "window_s"), ".2f"), _fmt(get(act, "window_s"), ".2f"))
    row(
        "records/s incl. start-up",
        _fmt(get(base, "records_per_s_from_process_start")),
        _fmt(get(act, "records_per_s_from_spawn")),
    )
    row("records/s from first commit", "", _fmt(get(act, "records_per_s_from_first_commit")))
    row("jobs", _fmt(get(base, "jobs")), _fmt(get(act, "jobs")))
    row("jobs/s", _fmt(get(base, "jobs_per_s"), ".1f"), _fmt(get(act, "jobs_per_s"), ".1f"))
    row("records per job", _fmt(get(base, "records_per_job")), _fmt(get(act, "records_per_job")))
    row(
        "batch latency p50 / p99 s (backlog)",
        f"{_fmt(get(base, 'latency_backlog', 'p50_s'), '.2f')} / "
        f"{_fmt(get(base, 'latency_backlog', 'p99_s'), '.2f')}",
        f"{_fmt(get(act, 'latency', 'p50_s'), '.2f')} / "
        f"{_fmt(get(act, 'latency', 'p99_s'), '.2f')}",
    )
    row(
        "peak RSS MB",
        _fmt((get(base, "peak_rss_bytes") or 0) / MB if base else None),
        _fmt((get(act, "peak_rss_bytes") or 0) / MB if act else None),
    )
    row(
        "peak PSS MB (shared pages split)",
        _fmt((get(base, "peak_pss_bytes") or 0) / MB if base else None),
        _fmt((get(act, "peak_pss_bytes") or 0) / MB if act else None),
    )
    row(
        "CPU s (window; total)",
        f"{_fmt(get(base, 'cpu_s_window'), '.1f')}; {_fmt(get(base, 'cpu_s'), '.1f')}",
        f"{_fmt(get(act, 'cpu_s_window'), '.1f')}; {_fmt(get(act, 'cpu_s_total'), '.1f')}",
    )
    row(
        "broker CPU s (window)",
        _fmt(get(base, "context_cpu_s", "broker"), ".1f"),
        _fmt(get(act, "context_cpu_s_window", "broker"), ".1f"),
    )
    row(
        "other processes' CPU s (disturbance)",
        _fmt(get(base, "foreign_cpu_s"), ".1f"),
        _fmt(get(act, "foreign_cpu_s_window"), ".1f"),
    )
    row("rows in raw files OK", str(get(base, "check", "ok") or "-"), str(get(act, "check", "ok")))
    cpus = results["machine"]["cpus"] or 1
    for name, doc, foreign, span in (
        ("baseline", base, "foreign_cpu_s", "from_process_start_s"),
        ("baseline-N", results.get("baseline_multi"), "foreign_cpu_s", "from_process_start_s"),
        ("actorsys", act, "foreign_cpu_s_window", "window_s"),
        ("latency phase", lat, "foreign_cpu_s_window", "window_s"),
    ):
        share = (get(doc, foreign) or 0) / max(1e-9, (get(doc, span) or 0) * cpus)
        if doc and share > 0.1:
            lines.append(
                f"WARNING: other processes used {share:.0%} of the machine during the "
                f"{name} run: its figures are disturbed; repeat when the machine is quiet"
            )
    lines += _formats_table(results)
    lines += _contenders_table(results)
    if act:
        lines.append("")
        lines.append("actorsys CPU s by role, assigned -> done (processes):")
        for role, entry in (act.get("cpu_by_role_window") or {}).items():
            lines.append(f"  {role:24}{entry['cpu_s']:8.1f}  ({entry['processes']})")
        sys_cpu = act.get("system_cpu_s_window", {})
        window = act.get("window_s") or 0
        if sys_cpu and window:
            lines.append(
                f"  machine busy {sys_cpu.get('busy', 0):.1f} CPU s of "
                f"{window * (results['machine']['cpus'] or 1):.1f} available "
                f"(steal {sys_cpu.get('steal', 0):.1f})"
            )
    if lat:
        lp = lat.get("produce") or {}
        lines += [
            "",
            f"latency phase: {lp.get('produced', 0):,} records at "
            f"{args['latency_rate']:,.0f}/s for {args['latency_seconds']:g}s "
            f"(achieved {lp.get('records_per_s', 0):,.0f}/s)",
            f"  batch latency p50 {_fmt(get(lat, 'latency', 'p50_s'), '.2f')}s, "
            f"p99 {_fmt(get(lat, 'latency', 'p99_s'), '.2f')}s, "
            f"max {_fmt(get(lat, 'latency', 'max_s'), '.2f')}s over "
            f"{get(lat, 'latency', 'jobs')} jobs; peak RSS {lat['peak_rss_bytes'] / MB:,.0f} MB; "
            f"CPU {lat.get('cpu_s_window', 0):.1f}s",
        ]
    hosts = results.get("worker_hosts")
    if hosts:
        lines += _hosts_table(hosts, act, results["machine"]["cpus"] or 1)
    lines += _job_sizes_table(results)
    lines += _scaling_table(results)
    lines += _job_manager_table(results)
    props = (act or base or {}).get("consumer_properties", {})
    if props:
        lines += ["", "librdkafka consumer settings (every consumer: baselines and actorsys):"]
        shown = {k: v for k, v in props.items() if k not in ("group.id", "bootstrap.servers")}
        lines += [f"  {k} = {v}" for k, v in shown.items()]
        lines.append("  fetch settings as in effect:")
        lines += [f"    {k} = {v}" for k, v in key_settings(props).items()]
    lines.append(
        f"load average at start {results['machine']['loadavg_at_start']}, "
        f"at end {results['machine'].get('loadavg_at_end')}"
    )
    source = results.get("actorsys_source", "?")
    if Path(source).is_relative_to(REPO):
        modified = results["git"].get("modified_actorsys_files")
        lines.append(
            f"actorsys from the working tree at git {results['git'].get('commit')}"
            + (f", uncommitted changes in {', '.join(modified)}" if modified else "")
        )
    else:
        lines.append(f"actorsys imported from {source} (not the repository's working tree)")
    print("\n".join(lines), flush=True)


def _formats_table(results: dict[str, Any]) -> list[str]:
    """The backlog phase once per output format, side by side (``--format both``)."""
    candidates = [results.get("actorsys")] + [
        doc for key, doc in results.items() if key.startswith("actorsys_") and isinstance(doc, dict)
    ]
    runs: list[dict[str, Any]] = [d for d in candidates if isinstance(d, dict) and d.get("format")]
    if len(runs) < 2:
        return []
    first, other = runs[0], runs[1]
    lines = ["", f"{'output format (same backlog)':38}{first['format']:>14}{other['format']:>14}"]

    def row(label: str, key: str, spec: str, scale: float = 1) -> None:
        a, b = first.get(key), other.get(key)
        ratio = f"  {a / b:.2f}x" if a and b else ""
        lines.append(
            f"{label:38}{_fmt(a / scale if a else a, spec):>14}"
            f"{_fmt(b / scale if b else b, spec):>14}{ratio}"
        )

    row("records/s (assigned -> done)", "records_per_s", ",.0f")
    row("records/s from first commit", "records_per_s_from_first_commit", ",.0f")
    row("peak RSS MB", "peak_rss_bytes", ",.0f", MB)
    row("CPU s (window)", "cpu_s_window", ".1f")
    for doc in (first, other):
        lat = doc.get("latency") or {}
        lines.append(
            f"  {doc['format']}: batch latency p50 {_fmt(lat.get('p50_s'), '.2f')}s / "
            f"p99 {_fmt(lat.get('p99_s'), '.2f')}s, rows OK {(doc.get('check') or {}).get('ok')}"
        )
    lines.append(f"  (ratio column: {first['format']} / {other['format']})")
    return lines


def _x(value: float | None) -> str:
    return f"{value:.2f}x" if value is not None else "-"


def _contenders_table(results: dict[str, Any]) -> list[str]:
    """Baselines and actorsys runs on the backlog: records/s, CPU per record, ratios."""
    doc = results.get("contenders") or {}
    rows = doc.get("rows") or []
    if len(rows) < 2:
        return []
    bases = [r["name"] for r in rows if r["name"].startswith("baseline")]
    head = "".join(f"{'rec/s /b' + b[9:]:>11}{'CPU/rec /b' + b[9:]:>13}" for b in bases)
    lines = [
        "",
        "contenders on the backlog (window: every process has its partitions -> all committed)",
        f"  {'':20}{'procs':>6}{'records/s':>11}{'CPU us/rec':>11}{'RSS MB':>8}{head}",
    ]
    for row in rows:
        vs = row.get("vs") or {}
        ratios = "".join(
            f"{_x((vs.get(b) or {}).get('records_per_s')):>11}"
            f"{_x((vs.get(b) or {}).get('cpu_us_per_record')):>13}"
            for b in bases
        )
        if not vs:
            ratios = ""
        lines.append(
            f"  {row['name']:20}{_fmt(row.get('processes')):>6}"
            f"{_fmt(row.get('records_per_s')):>11}{_fmt(row.get('cpu_us_per_record'), '.1f'):>11}"
            f"{_fmt(_mb(row.get('peak_rss_bytes'))):>8}{ratios}"
        )
    lines.append(
        "  (/bN: actorsys / baseline-N; records/s > 1 is faster, CPU/rec > 1 costs more; "
        "procs: baseline consumer processes, actorsys peak processes)"
    )
    return lines


def _job_sizes_table(results: dict[str, Any]) -> list[str]:
    doc = results.get("job_sizes") or {}
    summary = doc.get("summary") or {}
    rows = summary.get("rows") or []
    if not rows:
        return []
    lines = [
        "",
        f"job sizes: actorsys ({doc.get('format')}) on the backlog per batching.max_records "
        "(linger, in-flight caps scaled along); JobManager CPU assigned -> done",
        f"  {'max_records':>11}{'rec/job':>9}{'jobs':>7}{'records/s':>11}{'jobs/s':>8}"
        f"{'JM CPU s':>9}{'JM ms/job':>10}{'JM ms/1k rec':>13}{'CPU us/rec':>11}{'rows OK':>8}",
    ]
    for row in rows:
        lines.append(
            f"  {row['max_records']:>11,}{_fmt(row.get('records_per_job')):>9}"
            f"{_fmt(row.get('jobs')):>7}{_fmt(row.get('records_per_s')):>11}"
            f"{_fmt(row.get('jobs_per_s'), '.1f'):>8}"
            f"{_fmt(row.get('job_manager_cpu_s_window'), '.2f'):>9}"
            f"{_fmt(row.get('job_manager_cpu_ms_per_job'), '.2f'):>10}"
            f"{_fmt(row.get('job_manager_cpu_ms_per_1k_records'), '.2f'):>13}"
            f"{_fmt(row.get('cpu_us_per_record'), '.1f'):>11}{row.get('rows_ok')!s:>8}"
        )
    ratio = summary.get("ratio")
    if ratio:
        lines.append(
            f"  {ratio['of']}: records per job {_x(ratio['records_per_job'])}, JobManager ms "
            f"per job {_x(ratio['job_manager_cpu_ms_per_job'])}, per 1k records "
            f"{_x(ratio['job_manager_cpu_ms_per_1k_records'])} (flat per job: ms/job ~1x)"
        )
    return lines


def _scaling_table(results: dict[str, Any]) -> list[str]:
    doc = results.get("partition_scaling") or {}
    summary = doc.get("summary") or {}
    rows = summary.get("rows") or []
    if not rows:
        return []
    lines = [
        "",
        f"partition scaling: {doc.get('records', 0):,} records per topic, actorsys "
        f"({doc.get('format')}); RSS/PSS: peak of the sum over the daemon's processes",
        f"  {'P':>4}{'procs':>7}{'consumers':>10}{'RSS MB':>8}{'PSS MB':>8}{'records/s':>11}"
        f"{'jobs/s':>8}{'rec/job':>9}{'window s':>10}{'start s':>8}{'rows OK':>8}{'left':>5}",
    ]
    for row in rows:
        lines.append(
            f"  {row['partitions']:>4}{_fmt(row.get('peak_processes')):>7}"
            f"{_fmt(row.get('partition_consumer_processes')):>10}"
            f"{_fmt(_mb(row.get('peak_rss_bytes'))):>8}{_fmt(_mb(row.get('peak_pss_bytes'))):>8}"
            f"{_fmt(row.get('records_per_s')):>11}{_fmt(row.get('jobs_per_s'), '.1f'):>8}"
            f"{_fmt(row.get('records_per_job')):>9}{_fmt(row.get('window_s'), '.2f'):>10}"
            f"{_fmt(row.get('assigned_after_spawn_s'), '.1f'):>8}{row.get('rows_ok')!s:>8}"
            f"{row.get('leftovers', 0):>5}"
        )
    ratio = summary.get("ratio")
    if ratio:
        lines.append(
            f"  {ratio['of']}: RSS {_x(ratio['peak_rss'])}, PSS {_x(ratio['peak_pss'])}, "
            f"processes {_x(ratio['peak_processes'])}, records/s {_x(ratio['records_per_s'])}, "
            f"jobs/s {_x(ratio['jobs_per_s'])}"
        )
    lines.append(
        "  (consumers: per-partition Consumer processes; start s: spawn -> partitions "
        "assigned; left: processes found after cleanup)"
    )
    return lines


def _actorsys_runs(results: dict[str, Any]) -> list[dict[str, Any]]:
    """Every actorsys run of the results, in the order they ran."""
    runs = [
        doc
        for key, doc in results.items()
        if (key == "actorsys" or key.startswith("actorsys_") or key == "latency")
        and isinstance(doc, dict)
    ]
    for key in ("job_sizes", "partition_scaling", "worker_hosts"):
        runs += [d for d in (results.get(key) or {}).get("runs") or [] if d.get("records")]
    return runs


def _job_manager_table(results: dict[str, Any]) -> list[str]:
    runs = _actorsys_runs(results)
    if not runs:
        return []
    lines = [
        "",
        "JobManager CPU (assigned -> done), every actorsys run:",
        f"  {'run':22}{'jobs':>7}{'rec/job':>9}{'JM CPU s':>9}{'ms/job':>8}{'ms/1k rec':>10}"
        f"{'all CPU us/rec':>15}",
    ]
    for doc in runs:
        name = doc.get("phase", "?")
        if doc.get("format") and not name.endswith(doc["format"]):
            name = f"{name} ({doc['format']})"
        lines.append(
            f"  {name:22}{_fmt(doc.get('jobs')):>7}{_fmt(doc.get('records_per_job')):>9}"
            f"{_fmt(doc.get('job_manager_cpu_s_window'), '.2f'):>9}"
            f"{_fmt(doc.get('job_manager_cpu_ms_per_job'), '.2f'):>8}"
            f"{_fmt(doc.get('job_manager_cpu_ms_per_1k_records'), '.2f'):>10}"
            f"{_fmt(doc.get('cpu_us_per_record'), '.1f'):>15}"
        )
    return lines


def _mb(value: float | None) -> float | None:
    return value / MB if value is not None else None


def _hosts_table(hosts: dict[str, Any], act: dict[str, Any] | None, cpus: int) -> list[str]:
    runs = hosts.get("runs") or []
    lines = [
        "",
        f"worker hosts: a leader with workers.on_leader = false plus k `actorsys join` hosts "
        f"({hosts['slots_per_host']} slot(s) each), all on this machine's {cpus} CPUs",
        f"  {'k':>3}{'records/s':>11}{'jobs/s':>8}{'window s':>10}{'RSS MB':>8}{'PSS MB':>8}"
        f"{'rows OK':>9}  jobs per host",
    ]

    def row(k: str, doc: dict[str, Any], per_host: str) -> None:
        lines.append(
            f"  {k:>3}{_fmt(doc.get('records_per_s')):>11}{_fmt(doc.get('jobs_per_s'), '.1f'):>8}"
            f"{_fmt(doc.get('window_s'), '.2f'):>10}"
            f"{_fmt(_mb(doc.get('peak_rss_bytes'))):>8}"
            f"{_fmt(_mb(doc.get('peak_pss_bytes'))):>8}"
            f"{(doc.get('check') or {}).get('ok', '-')!s:>9}  {per_host}"
        )

    if act:
        workers = (act.get("config") or {}).get("workers", {}).get("count")
        row("ref", act, f"(one daemon, {workers} workers on it: the actorsys run above)")
    for doc in runs:
        per_host = ", ".join(f"{h}={n}" for h, n in (doc.get("jobs_by_host") or {}).items())
        row(str(doc["k"]), doc, per_host)
    if not runs:
        return lines
    lines.append("  CPU s, assigned -> done, by host and role (processes):")
    for doc in runs:
        if not doc.get("cpu_by_host_window"):
            continue
        by_host: dict[str, list[str]] = {}
        for role, entry in (doc.get("cpu_by_role_window") or {}).items():
            host, _, name = role.partition("/")
            count = f" ({entry['processes']})" if entry["processes"] > 1 else ""
            by_host.setdefault(host, []).append(f"{name or role} {entry['cpu_s']:.1f}{count}")
        totals = doc.get("cpu_by_host_window") or {}
        prefix = f"  k={doc['k']}"
        for host in totals:
            lines.append(
                f"{prefix:7}{host} {totals[host]:.1f}: " + ", ".join(by_host.get(host, []))
            )
            prefix = ""
        sys_cpu = doc.get("system_cpu_s_window") or {}
        window = doc.get("window_s") or 0
        lines.append(
            f"{'':7}total {doc.get('cpu_s_window', 0):.1f}; broker "
            f"{(doc.get('context_cpu_s_window') or {}).get('broker', 0):.1f}; machine busy "
            f"{sys_cpu.get('busy', 0):.1f} of {window * cpus:.1f} CPU s"
        )
    for doc in runs:
        notes = [] if doc.get("finished", True) else ["did not finish"]
        if doc.get("placed_after_assigned_s", 0) > 0:
            notes.append(
                f"workers were placed {doc['placed_after_assigned_s']:.2f}s after the "
                "assignment (inside the window)"
            )
        if doc.get("jobs_not_on_a_worker_host"):
            notes.append(f"{doc['jobs_not_on_a_worker_host']} job(s) ran off the worker hosts")
        if doc.get("leftovers"):
            notes.append(f"{len(doc['leftovers'])} leftover process(es) found and killed")
        share = (doc.get("foreign_cpu_s_window") or 0) / max(
            1e-9, (doc.get("window_s") or 0) * cpus
        )
        if share > 0.1:
            notes.append(f"other processes used {share:.0%} of the machine: disturbed")
        if notes:
            lines.append(f"  NOTE k={doc['k']}: " + "; ".join(notes))
    return lines


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)

    def on_sigterm(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, on_sigterm)
    os.environ.setdefault("ACTORSYS_BENCH_T0", str(time.time()))
    bench = Bench(args)
    error: str | None = None
    try:
        bench.run()
    except KeyboardInterrupt:
        error = "interrupted"
    except Exception as exc:
        error = f"{type(exc).__name__}: {exc}"
    results = bench.results
    results["contenders"] = contenders(results)
    results["key_settings"] = key_settings(
        (results.get("actorsys") or results.get("baseline") or {}).get("consumer_properties", {})
    )
    if error:
        results["error"] = error
        say(f"FAILED: {error}")
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2, default=str))
        say(f"wrote {args.json}")
    with contextlib.suppress(Exception):
        print_table(results)
    if error == "interrupted":
        return 130
    return 1 if error else 0


if __name__ == "__main__":
    sys.exit(main())
