"""Benchmark actorsys end to end against a plain single-process consumer.

One run (``make bench`` or ``.venv/bin/python scripts/bench.py --help``):

1. starts an embedded (Tansu) broker on a free port and produces ``--records``
   simulated IoT records (1 % malformed) to a fresh topic as fast as it can;
2. **baseline**: one process, one confluent-kafka consumer (its own group),
   batches of ``batching.max_records`` per partition through the same
   ``IotParquetHandler.handle()`` and ``KafkaDeadLetterSink`` a worker uses,
   a synchronous commit after each batch, until every record is committed;
3. **actorsys**: ``actorsys run --config …`` as a subprocess on the same data
   (fresh group, SQLite job store and output in a temporary directory),
   until the committed offsets reach the end offsets and the job store has no
   PENDING/RUNNING job; then SIGTERM, and no process of it may be left;
4. **latency**: a fresh daemon on a second topic fed at a steady
   ``--latency-rate`` for ``--latency-seconds``, well below capacity, so that
   latency measures the pipeline rather than a backlog;
5. **worker hosts** (``--worker-hosts N``): for k = 1 .. N, on the backlog of
   step 1 (a fresh group each time), a leader daemon with
   ``workers.on_leader = false`` plus k ``actorsys join`` members on this
   machine (host names ``bench-host-1..k``, ``--slots-per-host`` slots each):
   the same window and figures as step 3, plus the jobs each host ran (from
   the job store: a job's ``worker`` is "<job manager>/<host>/<worker id>")
   and CPU per process, labelled by host and role. All hosts share this
   machine's CPUs: on a small machine this measures what the convention
   costs, not a speed-up. ``--skip-baseline --skip-latency --worker-hosts N``
   runs steps 3 and 5 only (step 3 is the one-daemon reference).

Both consumers use the same librdkafka settings
(``actorsys.kafka_clients.consumer_properties`` plus ``-X``), printed below
the results. Throughput is measured from the moment the partitions are
assigned (the baseline's ``on_assign``; actorsys's "assigned" log line) to the
moment everything is committed (and, for actorsys, every job is DONE): group
joining and process start-up are excluded, and reported apart. "Done" is
polled every 0.2 s, and actorsys commits on a 0.5 s tick, so small runs
understate actorsys; use the default million records.

Batch latency of a job = mtime of its raw Parquet file - ``ts`` of its oldest
record (the producer's wall clock when the record was made), i.e. the worst
record of each batch, from being produced to being in a file. On the
pre-produced backlog this mostly says how long records waited in Kafka
(behind the baseline's run, too); the latency phase is the real figure.

Memory: peak of the summed RSS of the daemon and every process of its actor
system, sampled every 0.5 s; forked processes share pages, so the RSS sum
overstates what they use together and the PSS sum is shown next to it.
CPU: user+sys seconds per actor role (learnt from the process tree), from
the assignment to done, and in total (each process's last sample before it
exits). "Other processes' CPU" is what the
rest of the machine used meanwhile: a disturbed run says so.
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
    Completion,
    DaemonRun,
    MemberRun,
    Sampler,
    actorsys_sections,
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
    write_toml,
)

from actorsys.config import BatchingConfig, load_config
from actorsys.embedded_broker import EmbeddedBroker
from actorsys.kafka_clients import consumer_properties
from actorsys.netutil import free_port, free_port_below_ephemeral
from actorsys.simulator import ProduceReport, create_topic_if_missing, produce

REPO = Path(__file__).resolve().parent.parent
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
    parser.add_argument("--skip-baseline", action="store_true", help="skip the baseline")
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
    for name in ("records", "partitions", "devices", "workers", "max_records", "slots_per_host"):
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


def actorsys_command() -> list[str]:
    script = Path(sys.executable).with_name("actorsys")
    return [str(script)] if script.exists() else [sys.executable, "-m", "actorsys"]


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
    def phase_timeout(self) -> float:
        return self.args.timeout or 300 + self.args.records / 2000

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
            if not self.args.skip_actorsys:
                self.results["actorsys"] = self.daemon_phase("throughput", topic, report=report)
            if not self.args.skip_latency:
                self.results["latency"] = self.latency_phase()
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

    # --- (a) baseline ---------------------------------------------------------------------

    def baseline(self, topic: str, report: ProduceReport) -> dict[str, Any]:
        group = f"bench-baseline-{self.run_id}"
        setup = self.settings_for(group, "baseline")
        workdir: Path = setup["workdir"]
        setup["sections"]["kafka"]["topics"] = [topic]
        config_path = write_toml(workdir / "baseline.toml", setup["sections"])
        config = load_config(config_path)
        dlq = f"{topic}.baseline-dlq"
        create_topic_if_missing(self.bootstrap, dlq, 1)
        params = {
            "config": str(config_path),
            "bootstrap": self.bootstrap,
            "topic": topic,
            "dead_letter_topic": dlq,
            "end_offsets": report.end_offsets,
            "result": str(workdir / "result.json"),
        }
        params_path = workdir / "params.json"
        params_path.write_text(json.dumps(params))
        command = [sys.executable, str(Path(__file__).with_name("_benchlib.py")), "baseline"]
        say(f"baseline: one consumer process, group {group}")
        proc = subprocess.Popen(
            [*command, str(params_path)], stdin=subprocess.DEVNULL, start_new_session=True
        )
        child = psutil.Process(proc.pid)
        sampler = Sampler(lambda: [child] if proc.poll() is None else [], dict(self.context))
        sampler.tick()
        sys_before, ctx_before = system_cpu(), sampler.context_snapshot()
        try:
            sampler.start()
            code = proc.wait(self.phase_timeout)
        except subprocess.TimeoutExpired:
            raise RuntimeError(
                f"baseline did not finish within {self.phase_timeout:.0f}s"
            ) from None
        finally:
            sampler.stop()
            if proc.poll() is None:
                proc.terminate()
                try:
                    proc.wait(10)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
        if code != 0:
            raise RuntimeError(f"baseline exited with {code}")
        sys_after, ctx_after = system_cpu(), sampler.context_snapshot()
        result = json.loads(Path(params["result"]).read_text())
        records = result["records"]
        window = _seconds(result["assigned_at"], result["done_at"])
        latencies = job_latencies(workdir / "out" / "raw")
        cpu_total = result["cpu_user_s"] + result["cpu_sys_s"]
        out = {
            "group": group,
            "config": setup["sections"],
            "consumer_properties": consumer_properties(config, self.bootstrap),
            "records": records,
            "jobs": result["jobs"],
            "valid": result["valid"],
            "invalid": result["invalid"],
            "rows_written": sum(j["rows"] for j in latencies),
            "window": "partitions assigned -> last batch committed",
            "window_s": window,
            "records_per_s": _rate(records, window),
            "jobs_per_s": _rate(result["jobs"], window),
            "from_process_start_s": _seconds(result["started_at"], result["done_at"]),
            "records_per_s_from_process_start": _rate(
                records, _seconds(result["started_at"], result["done_at"])
            ),
            "latency_backlog": latency_summary(latencies),
            "peak_rss_bytes": max(result["ru_maxrss_bytes"], sampler.peak_rss),
            "peak_rss_sampled_bytes": sampler.peak_rss,
            "peak_pss_bytes": sampler.peak_pss,
            "records_per_job": round(records / max(1, result["jobs"]), 1),
            "cpu_s": round(cpu_total, 2),
            "cpu_user_s": result["cpu_user_s"],
            "cpu_sys_s": result["cpu_sys_s"],
            "context_cpu_s": cpu_window(ctx_before, ctx_after),
            "system_cpu_s": cpu_window(sys_before, sys_after),
        }
        out["foreign_cpu_s"] = _foreign(out["system_cpu_s"], out["context_cpu_s"], cpu_total)
        out["check"] = _check(report, out["valid"], out["invalid"], out["rows_written"])
        say(
            f"baseline: {records:,} records in {window:.2f}s = {out['records_per_s']:,.0f} "
            f"records/s, {result['jobs']} jobs, peak RSS {out['peak_rss_bytes'] / MB:.0f} MB"
        )
        return out

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
    ) -> dict[str, Any]:
        """Run one daemon until it has committed and finished everything of ``topic``."""
        group = f"bench-{name}-{self.run_id}"
        setup = self.settings_for(group, name)
        workdir: Path = setup["workdir"]
        setup["sections"]["kafka"]["topics"] = [topic]
        config_path = write_toml(workdir / "actorsys.toml", setup["sections"])
        config = load_config(config_path)
        run = DaemonRun(actorsys_command(), config_path, workdir / "actorsys.log", setup["ports"])
        sampler = Sampler(run.members, dict(self.context))
        completion: Completion | None = None
        out: dict[str, Any] = {
            "group": group,
            "command": " ".join(run.command),
            "config": setup["sections"],
            "consumer_properties": consumer_properties(config, self.bootstrap),
        }
        try:
            run.start()
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
            completion = Completion(self.bootstrap, group, topic, report.end_offsets)
            completion.open_store(config.jobs.store)
            waited = self._wait_done(name, run, completion, sampler, assigned_at)
            done_at = waited["done_at"]
            cpu_done, sys_done = sampler.tick(), system_cpu()
            ctx_done = sampler.context_snapshot()
            labels.update(label_actor_processes(run.actor_system.alive()))
            labels[run.pid] = "daemon"
            say(f"{name}: processes: {_roles(labels)}")
            counts = completion.job_counts()
            status = run.status()
            say(f"{name}: done; stopping actorsys (SIGTERM)")
            out["stop"] = run.stop()
            say(f"{name}: stopped: {out['stop']}")
        finally:
            sampler.stop()
            if completion is not None:
                completion.close()
            run.cleanup()

        records = report.produced
        window = _seconds(assigned_at, done_at)
        latencies = job_latencies(workdir / "out" / "raw")
        jobs_done = counts.get("DONE", 0)
        window_cpu = {pid: cpu_done[pid] - cpu_assigned.get(pid, 0) for pid in cpu_done}
        jm = status.get("components", {}).get("job_manager", {})
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
                "job_manager_stats": {k: v for k, v in jm.items() if isinstance(v, int | float)},
                "process_labels": {str(pid): label for pid, label in sorted(labels.items())},
            }
        )
        out["foreign_cpu_s_window"] = _foreign(
            out["system_cpu_s_window"], out["context_cpu_s_window"], out["cpu_s_window"]
        )
        out["check"] = _check(report, None, None, out["rows_written"])
        rate = out["records_per_s"]
        say(
            f"{name}: {records:,} records in {window or 0:.2f}s = {rate or 0:,.0f} records/s, "
            f"{jobs_done} jobs, peak RSS {sampler.peak_rss / MB:.0f} MB, "
            f"latency p50 {out['latency'].get('p50_s')}s p99 {out['latency'].get('p99_s')}s"
        )
        return out

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
        config_path = write_toml(workdir / "actorsys.toml", setup["sections"])
        config = load_config(config_path)
        command = actorsys_command()
        leader = DaemonRun(command, config_path, workdir / "leader.log", setup["ports"])
        ports = set(setup["ports"].values())
        members: list[MemberRun] = []
        for i in range(1, k + 1):
            port = free_port()
            while port in ports:
                port = free_port()
            ports.add(port)
            host = f"bench-host-{i}"
            members.append(
                MemberRun(
                    command,
                    host=host,
                    leader_admin_port=leader.admin_port,
                    admin_port=port,
                    slots=slots,
                    log_path=workdir / f"{host}.log",
                )
            )
        runs: list[DaemonRun | MemberRun] = [leader, *members]
        sampler = Sampler(lambda: [p for r in runs for p in r.members()], dict(self.context))
        completion: Completion | None = None
        expected = {m.host: m.slots for m in members}
        labels: dict[int, str] = {}
        out.update(
            {
                "group": group,
                "slots_per_host": slots,
                "leader_command": " ".join(leader.command),
                "member_commands": {m.host: " ".join(m.command) for m in members},
                "config": setup["sections"],
            }
        )
        # Everything of this run carries one of these on its command line.
        markers = [str(config_path), f"--convention 127.0.0.1:{leader.admin_port}"]
        try:
            leader.start()
            sampler.start()
            say(f"{name}: started leader `{' '.join(leader.command)}` (pid {leader.pid})")
            leader.wait_actor_system(60)
            for member in members:
                member.start()
                say(f"{name}: started `{' '.join(member.command)}` (pid {member.pid})")
            for member in members:
                member.wait_actor_system(60)
            placed = self._wait_placed_and_assigned(name, leader, members, expected, sampler)
            assigned_at = placed["assigned_at"]
            cpu_assigned, sys_assigned, ctx_assigned = placed["samples"]
            labels.update(_host_labels(leader, members))
            say(
                f"{name}: partitions assigned {assigned_at - leader.spawned_at:.1f}s after "
                f"start; workers {expected} placed "
                f"{placed['placed_at'] - leader.spawned_at:.1f}s after start"
            )
            completion = Completion(self.bootstrap, group, topic, report.end_offsets)
            completion.open_store(config.jobs.store)
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
            status = leader.status()
            say(f"{name}: done; stopping the worker hosts (drain), then the leader (SIGTERM)")
            for member in members:
                member.send_stop()
            stops = {member.host: member.stop() for member in members}
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
        jm = status.get("components", {}).get("job_manager", {})
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
                "job_manager_stats": {k: v for k, v in jm.items() if isinstance(v, int | float)},
                "process_labels": {str(pid): label for pid, label in sorted(labels.items())},
            }
        )
        out["foreign_cpu_s_window"] = _foreign(
            out["system_cpu_s_window"], out["context_cpu_s_window"], out["cpu_s_window"]
        )
        out["check"] = _check(report, None, None, out["rows_written"])
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
        leader: DaemonRun,
        members: list[MemberRun],
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
        run: DaemonRun,
        completion: Completion,
        sampler: Sampler,
        since: float,
        others: Sequence[MemberRun] = (),
    ) -> dict[str, Any]:
        deadline = time.monotonic() + self.phase_timeout
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
                status_path.write_text(json.dumps(run.status(), indent=2))
                say(f"{name}: timed out; daemon /status saved to {status_path}")
                raise RuntimeError(
                    f"{name}: not done within {self.phase_timeout:.0f}s "
                    f"(committed {committed}, want {completion.end_offsets})"
                )
            time.sleep(0.2)


def _roles(labels: dict[int, str]) -> str:
    counts: dict[str, int] = {}
    for label in labels.values():
        role = label.split("#", 1)[0]
        counts[role] = counts.get(role, 0) + 1
    return ", ".join(f"{n}x {role}" if n > 1 else role for role, n in counts.items())


def _host_labels(leader: DaemonRun, members: Sequence[MemberRun]) -> dict[int, str]:
    """ "<leader|host>/<role>" for every live process of a multi-host run."""
    labels = {
        pid: f"leader/{label}"
        for pid, label in label_actor_processes(leader.actor_system.alive()).items()
    }
    if leader.alive():
        labels[leader.pid] = "leader/daemon"
    for member in members:
        found = label_member_processes(member.actor_system.alive())
        labels.update({pid: f"{member.host}/{label}" for pid, label in found.items()})
        if member.alive():
            labels[member.pid] = f"{member.host}/join"
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


def _sweep(name: str, markers: list[str]) -> list[dict[str, Any]]:
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
        say(f"{name}: no process left (leader, worker hosts, their actor systems)")
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
        _fmt(get(base, "cpu_s"), ".1f"),
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
        ("actorsys", act, "foreign_cpu_s_window", "window_s"),
        ("latency phase", lat, "foreign_cpu_s_window", "window_s"),
    ):
        share = (get(doc, foreign) or 0) / max(1e-9, (get(doc, span) or 0) * cpus)
        if doc and share > 0.1:
            lines.append(
                f"WARNING: other processes used {share:.0%} of the machine during the "
                f"{name} run: its figures are disturbed; repeat when the machine is quiet"
            )
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
    props = (act or base or {}).get("consumer_properties", {})
    if props:
        lines += ["", "librdkafka consumer settings (both):"]
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
