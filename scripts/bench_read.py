"""Read-side benchmark of table output (format "delta"), all in one run.

A steady feed (2,000 records/s from 1,000 devices over 4 partitions; event time
runs --time-scale x wall time so event hours close in minutes) into a real
daemon on the embedded broker, then, side by side:

* files per closed event hour and rows per file (raw);
* agg rows per (device, minute) in closed hours (target 1.00);
* a DuckDB hourly-mean-per-device query on raw, against the same rows written
  as one file sorted by (device_id, ts) (target <= 1.5x);
* freshness: from a record's delivery by the broker to the first moment a
  reader polling the table sees it (target p99 <= 15 s).

Usage: .venv/bin/python scripts/bench_read.py [--seconds 180] [--time-scale 60]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import duckdb  # noqa: E402
import pyarrow.parquet as pq  # noqa: E402
from confluent_kafka import Producer  # noqa: E402
from deltalake import DeltaTable  # noqa: E402

from actorsys.embedded_broker import EmbeddedBroker  # noqa: E402
from actorsys.kafka_clients import create_topic_if_missing  # noqa: E402
from actorsys.simulator import IotRecordFactory  # noqa: E402
from actorsys.tables.delta import app_id  # noqa: E402
from tests.support.daemon import topic_daemon  # noqa: E402
from tests.support.waiting import wait_for  # noqa: E402

PARTITIONS = 4


def feed(
    bootstrap: str, topic: str, seconds: float, rate: float, scale: float
) -> dict[tuple[int, int], float]:
    """Produce at ``rate``; remember when the broker acknowledged each offset."""
    factory = IotRecordFactory(1000, 0.0, seed=5, time_scale=scale)
    acked: dict[tuple[int, int], float] = {}

    def on_delivery(err: Any, msg: Any) -> None:
        if err is None:
            acked[(msg.partition(), msg.offset())] = time.time()

    producer = Producer({"bootstrap.servers": bootstrap, "linger.ms": 20})
    start = time.monotonic()
    sent = 0
    while (elapsed := time.monotonic() - start) < seconds:
        due = int(elapsed * rate) - sent
        for _ in range(max(0, due)):
            key, value, _kind = factory.record()
            producer.produce(topic, value, key, on_delivery=on_delivery)
        sent += max(0, due)
        producer.poll(0.005)
    producer.flush(30)
    return acked


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=180.0)
    parser.add_argument("--time-scale", type=float, default=60.0)
    parser.add_argument("--rate", type=float, default=2000.0)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="bench-read-"))
    broker = EmbeddedBroker()
    bootstrap = broker.start()
    topic = "bench-read"
    create_topic_if_missing(bootstrap, topic, PARTITIONS)
    daemon = topic_daemon(
        work,
        bootstrap,
        topic,
        output={"format": "delta"},
        batching={"max_records": 5000, "linger_ms": 500},
        tables={"allowed_lateness_s": 120.0, "idle_partition_s": 10.0},
        workers={"count": 2},
    )
    raw = work / "out" / "raw"
    seen: dict[int, list[tuple[int, float]]] = {p: [] for p in range(PARTITIONS)}
    stop = threading.Event()

    def poll() -> None:
        """Each partition's table offset, as a reader sees it, every 100 ms."""
        while not stop.is_set():
            try:
                table = DeltaTable(str(raw))
                now = time.time()
                for p in range(PARTITIONS):
                    version = table.transaction_version(app_id(f"g-{topic}", topic, p))
                    if version is not None and (not seen[p] or seen[p][-1][0] < version):
                        seen[p].append((version, now))
            except Exception:  # no table yet
                pass
            stop.wait(0.1)

    try:
        daemon.start()
        daemon.wait_ready(120)
        reader = threading.Thread(target=poll, daemon=True)
        reader.start()
        acked = feed(bootstrap, topic, args.seconds, args.rate, args.time_scale)
        ends: dict[int, int] = {}
        for p, o in acked:
            ends[p] = max(ends.get(p, 0), o + 1)

        def all_visible() -> bool:
            return all(seen[p] and seen[p][-1][0] >= e for p, e in ends.items())

        wait_for(all_visible, 120, "every record to be visible", 0.5)

        def compacted() -> bool:
            names = [Path(u).name for u in DeltaTable(str(raw)).file_uris()]
            return all(n.startswith("compact-") for n in names)

        wait_for(compacted, 300, "every hour to be compacted (idle partitions close them)", 1)
        stop.set()
        reader.join(5)
        results = measure(raw, work, acked, seen)
        print(json.dumps(results, indent=2))
        return 0
    finally:
        stop.set()
        daemon.cleanup()
        broker.stop()


def measure(
    raw: Path,
    work: Path,
    acked: dict[tuple[int, int], float],
    seen: dict[int, list[tuple[int, float]]],
) -> dict[str, float]:
    # freshness: broker ack -> first poll whose table offset covers the record
    lags = []
    for (p, o), t_ack in acked.items():
        first = next((t for version, t in seen[p] if version > o), None)
        if first is not None:
            lags.append(first - t_ack)
    lags.sort()
    table = DeltaTable(str(raw))
    files = table.file_uris()
    hours: dict[str, int] = {}
    for uri in files:
        hours[str(Path(uri).parent)] = hours.get(str(Path(uri).parent), 0) + 1
    rows = table.to_pyarrow_table()
    one = work / "one_sorted.parquet"
    pq.write_table(rows.sort_by([("device_id", "ascending"), ("ts", "ascending")]), one)
    con = duckdb.connect()
    con.register("raw_rows", table.to_pyarrow_dataset())
    query = (
        "SELECT device_id, date_trunc('hour', ts) AS h, avg(temperature)"
        " FROM {src} GROUP BY ALL ORDER BY ALL"
    )
    timings = {}
    for name, src in (("table", "raw_rows"), ("one_file", f"read_parquet('{one}')")):
        best = float("inf")
        for _ in range(5):
            started = time.perf_counter()
            con.sql(query.format(src=src)).fetchall()
            best = min(best, time.perf_counter() - started)
        timings[name] = best
    agg = DeltaTable(str(work / "out" / "agg")).to_pyarrow_table(columns=["device_id", "minute"])
    keys = list(zip(agg["device_id"].to_pylist(), agg["minute"].to_pylist(), strict=True))
    return {
        "records": len(acked),
        "raw_files": len(files),
        "closed_hours": len(hours),
        "files_per_hour_max": max(hours.values()),
        "rows_per_file_mean": round(rows.num_rows / max(1, len(files))),
        "agg_rows_per_device_minute": round(len(keys) / max(1, len(set(keys))), 4),
        "query_table_s": round(timings["table"], 4),
        "query_one_sorted_file_s": round(timings["one_file"], 4),
        "query_ratio": round(timings["table"] / timings["one_file"], 2),
        "freshness_p50_s": round(statistics.median(lags), 2),
        "freshness_p99_s": round(lags[int(len(lags) * 0.99) - 1], 2),
        "freshness_samples": len(lags),
    }


if __name__ == "__main__":
    sys.exit(main())
