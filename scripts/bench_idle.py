"""What an idle daemon costs: CPU per second of each actor process, with nothing to do.

A real daemon (defaults, 2 workers) on the embedded broker, subscribed to an
empty topic of --partitions partitions; once its partitions are assigned and
--settle-s more seconds have passed, each actor process's CPU (user + system)
is read before and after --seconds of idleness. Its periodic work (ticks,
store chores, status pushes, log-end queries) is all there is to see.

Usage: .venv/bin/python scripts/bench_idle.py [--seconds 60] [--partitions 4]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "scripts"))

import psutil  # noqa: E402
from _benchlib import label_actor_processes, role_of  # noqa: E402

from actorsys.embedded_broker import EmbeddedBroker  # noqa: E402
from actorsys.kafka_clients import create_topic_if_missing  # noqa: E402
from tests.support.daemon import topic_daemon  # noqa: E402


def cpu_seconds(pids: dict[int, str]) -> dict[int, float]:
    seconds = {}
    for pid in pids:
        try:
            times = psutil.Process(pid).cpu_times()
        except psutil.Error:
            continue
        seconds[pid] = times.user + times.system
    return seconds


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=60.0, help="idle window measured")
    parser.add_argument("--partitions", type=int, default=4, help="partitions of the topic")
    parser.add_argument("--settle-s", type=float, default=10.0, help="wait after assignment")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args()
    if args.seconds <= 0 or args.partitions < 1 or args.settle_s < 0:
        parser.error("--seconds must be > 0, --partitions >= 1, --settle-s >= 0")
    workdir = Path(tempfile.mkdtemp(prefix="actorsys-idle-"))
    with EmbeddedBroker() as broker:
        create_topic_if_missing(broker.bootstrap_servers, "idle", args.partitions)
        daemon = topic_daemon(workdir, broker.bootstrap_servers, "idle")
        daemon.start()
        try:
            daemon.wait_ready(90)
            daemon.wait_assigned(60)
            # The start-up's own work (imports, first commits) is over by then.
            time.sleep(args.settle_s)
            labels = label_actor_processes(daemon.actor_system.alive())
            labels[daemon.pid] = "daemon"
            before, started = cpu_seconds(labels), time.monotonic()
            time.sleep(args.seconds)  # the window measured: nothing happens in it
            after, window_s = cpu_seconds(labels), time.monotonic() - started
        finally:
            stopped = daemon.stop(60)
    by_role: dict[str, float] = {}
    for pid, label in labels.items():
        if pid in before and pid in after:
            role = role_of(label)
            by_role[role] = by_role.get(role, 0.0) + (after[pid] - before[pid]) * 1000 / window_s
    total = sum(by_role.values())
    print(f"idle daemon, {args.partitions} partitions, {window_s:.0f} s: CPU ms per second")
    for role, ms in sorted(by_role.items(), key=lambda kv: -kv[1]):
        print(f"  {role:20}{ms:8.2f}")
    print(f"  {'all processes':20}{total:8.2f}  ({total / 10:.2f} % of one CPU)")
    if stopped.get("exit_code") != 0 or stopped.get("leftover_processes_killed"):
        print(f"warning: the daemon did not stop cleanly: {stopped}", file=sys.stderr)
    if args.json is not None:
        figures = {"window_s": window_s, "partitions": args.partitions, "cpu_ms_per_s": by_role}
        args.json.write_text(json.dumps(figures, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
