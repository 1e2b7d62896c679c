"""What a worker's range reads cost, side by side in one run.

A worker reads each job's offset interval with :class:`actorsys.range_reader.RangeReader`.
This script produces a backlog of IoT records to the embedded broker, then
reads all of it as fixed-size ranges in several orders and with several
prefetch settings, one fresh reader per variant, and reports for each:
records/s, this process's CPU per record (librdkafka's threads included) and
the broker's CPU per record. The orders:

* ``contiguous``: one partition after another, each range where the last ended
  (what a worker that keeps to one partition sees);
* ``round-robin``: ranges take turns over the partitions (what a worker that
  takes the oldest job of any partition sees), so every range starts with a
  move to another partition and what librdkafka prefetched is thrown away.

Usage: .venv/bin/python scripts/bench_reader.py [--records 400000] [--partitions 4]
       [--range 5000] [--repeat 2]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

import psutil

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from actorsys.embedded_broker import EmbeddedBroker  # noqa: E402
from actorsys.range_reader import RangeReader  # noqa: E402
from actorsys.simulator import produce  # noqa: E402

# The settings a worker's reader gets from the default configuration
# (kafka_clients.consumer_properties, then range_reader.reader_properties).
BASE = {
    "fetch.queue.backoff.ms": "10",
    "queued.max.messages.kbytes": "16384",
    "enable.auto.commit": "false",
    "enable.auto.offset.store": "false",
    "auto.offset.reset": "error",
    "enable.partition.eof": "true",
    "fetch.wait.max.ms": "20",
    "log.connection.close": "false",
}


def variants(range_records: int) -> dict[str, dict[str, str]]:
    return {
        "default prefetch": {},
        # Prefetch bounded near one range: a move to another partition throws
        # away at most about one fetch.
        f"queued.min.messages={range_records}": {"queued.min.messages": str(range_records)},
        f"queued.min.messages={range_records}, max.partition.fetch.bytes=256KiB": {
            "queued.min.messages": str(range_records),
            "max.partition.fetch.bytes": str(256 * 1024),
        },
    }


def ranges(ends: dict[int, int], size: int, order: str) -> list[tuple[int, int, int]]:
    per_partition = {
        p: [(p, start, min(start + size, end)) for start in range(0, end, size)]
        for p, end in ends.items()
    }
    if order == "contiguous":
        return [r for p in sorted(per_partition) for r in per_partition[p]]
    out: list[tuple[int, int, int]] = []
    longest = max(len(v) for v in per_partition.values())
    for i in range(longest):
        out += [per_partition[p][i] for p in sorted(per_partition) if i < len(per_partition[p])]
    return out


def read_all(
    broker: EmbeddedBroker, topic: str, plan: list[tuple[int, int, int]], extra: dict[str, str]
) -> dict[str, Any]:
    me, server = psutil.Process(), psutil.Process(broker.pid)
    props = {
        **BASE,
        **extra,
        "bootstrap.servers": broker.bootstrap_servers,
        "group.id": "bench-reader",
    }
    reader = RangeReader(props)
    try:
        cpu0, broker0 = me.cpu_times(), server.cpu_times()
        t0 = time.perf_counter()
        records = 0
        for partition, start, end in plan:
            records += len(reader.read(topic, partition, start, end, 60).records)
        wall = time.perf_counter() - t0
        cpu1 = me.cpu_times()
        cpu = (cpu1.user - cpu0.user) + (cpu1.system - cpu0.system)
        b1 = server.cpu_times()
        broker_cpu = (b1.user - broker0.user) + (b1.system - broker0.system)
    finally:
        reader.close()
    return {
        "records": records,
        "records_per_s": round(records / wall),
        "reader_cpu_us_per_record": round(cpu / records * 1e6, 2),
        "broker_cpu_us_per_record": round(broker_cpu / records * 1e6, 2),
        "ms_per_range": round(wall / len(plan) * 1000, 1),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--records", type=int, default=400_000)
    parser.add_argument("--partitions", type=int, default=4)
    parser.add_argument("--range", type=int, default=5000, dest="range_records")
    parser.add_argument("--repeat", type=int, default=2, help="runs of each variant (median)")
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args(argv)
    results: dict[str, Any] = {"settings": vars(args) | {"json": None}, "runs": []}
    with EmbeddedBroker() as broker:
        topic = "bench-reader"
        report = produce(
            broker.bootstrap_servers,
            topic,
            devices=1000,
            rate=0,
            count=args.records,
            malformed_ratio=0,
            partitions=args.partitions,
            seed=1,
        )
        ends = {int(p): int(n) for p, n in report.end_offsets.items()}
        print(f"produced {sum(ends.values()):,} records over {len(ends)} partitions", flush=True)
        for name, extra in variants(args.range_records).items():
            for order in ("contiguous", "round-robin"):
                plan = ranges(ends, args.range_records, order)
                runs = [read_all(broker, topic, plan, extra)]
                runs += [read_all(broker, topic, plan, extra) for _ in range(args.repeat - 1)]
                runs.sort(key=lambda r: r["records_per_s"])
                median = runs[len(runs) // 2]
                results["runs"].append({"variant": name, "order": order, **median})
                print(
                    f"{name:62} {order:12} {median['records_per_s']:>9,} rec/s"
                    f"  reader {median['reader_cpu_us_per_record']:5.2f} µs/rec"
                    f"  broker {median['broker_cpu_us_per_record']} µs/rec"
                    f"  {median['ms_per_range']} ms/range",
                    flush=True,
                )
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
