"""`actorsys status`: a compact live view of a running daemon.

Asks the daemon's HTTP endpoint (/status), which answers from the snapshot
its actors push every second, so asking never disturbs the pipeline.
"""

from __future__ import annotations

import json
import sys
import time
import urllib.error
import urllib.request
from typing import Any, cast

import click

from actorsys.status import JobManagerStatus, StatusDocument


def fetch_status(url: str, timeout_s: float = 3.0) -> dict[str, Any]:
    with urllib.request.urlopen(f"{url.rstrip('/')}/status", timeout=timeout_s) as resp:
        # /status always answers a JSON object.
        return cast("dict[str, Any]", json.loads(resp.read()))


def _mib(n: int | None) -> str:
    return "-" if n is None else f"{n / 1048576:.1f} MiB"


def render(status: dict[str, Any]) -> str:
    doc = StatusDocument.from_json(status.get("components", {}))
    manager, pool, sup = doc.job_manager(), doc.worker_master(), doc.supervisor()
    restarts = dict(sup.restarts) or "-"
    lines = [
        f"group {status.get('group_id')}  topics {','.join(status.get('topics', []))}  "
        f"bootstrap {status.get('bootstrap_servers')}",
        f"ready: {','.join(sup.ready) or '-'}   draining: {sup.draining}   "
        f"restarts: {restarts}   rss: {_mib(status.get('rss_bytes'))}",
        "",
        f"{'PARTITION':<28} {'COMMITTED':>10} {'LOG END':>10} {'LAG':>8} {'IN-FLIGHT':>10}"
        "  PAUSED  CONSUMER",
    ]
    rows = [(owner, p) for owner, c in doc.kafka_consumers().items() for p in c.partitions]
    for owner, p in rows:
        where = f"{p.topic}[{p.partition}]"
        paused = "yes" if p.paused else "no"
        lines.append(
            f"{where:<28} {_dash(p.committed):>10} {_dash(p.high_watermark):>10} "
            f"{_dash(p.lag):>8} {p.inflight_records:>10}"
            f"  {paused:<6}  {owner}"
        )
    if not rows:
        lines.append("(no partition assigned)")
    lines += [
        "",
        "jobs: "
        + ("  ".join(f"{k}={v}" for k, v in manager.jobs.items()) or "-")
        + f"   held batches: {manager.held_batches}",
        "retention: " + _retention(manager),
        "workers: "
        + (", ".join(f"{h}={n}" for h, n in pool.workers_by_host.items()) or "-")
        + "   running jobs: "
        + (", ".join(f"{h}={n}" for h, n in manager.running_by_host.items()) or "0"),
    ]
    for member, host in sorted(pool.worker_hosts.items()):
        state = "LOST" if host.lost else "up"
        lines.append(
            f"  host {host.host} ({member}): {state}, {host.slots} "
            f"slot(s), last heartbeat {host.last_heartbeat_s}s ago"
        )
    for member, why in sorted(pool.refused_hosts.items()):
        lines.append(f"  host {member} REFUSED: {why}")
    for peer in status.get("rejected_peers", []):
        lines.append(
            f"  peer {peer['peer']} REFUSED: {peer['count']} frame(s) dropped unread "
            f"({peer['reason']}: {_REJECTION_MEANING.get(peer['reason'], peer['reason'])})"
        )
    return "\n".join(lines)


_REJECTION_MEANING = {
    "bad_mac": "not signed with this cluster's key",
    "too_large": "over the frame size cap",
    "malformed": "not an actorsys frame",
}


def _dash(value: Any) -> str:
    return "-" if value is None else str(value)


@click.command()
@click.option(
    "--metrics-port",
    type=click.IntRange(1, 65535),
    default=9108,
    show_default=True,
    help="The daemon's HTTP port (daemon.metrics_port).",
)
@click.option("--host", default="127.0.0.1", show_default=True, help="The daemon's host.")
@click.option("--url", help="Full base URL instead of --host/--metrics-port.")
@click.option("--watch", is_flag=True, help="Refresh until Ctrl-C.")
@click.option(
    "--interval",
    type=click.FloatRange(0.2),
    default=2.0,
    show_default=True,
    help="Seconds between refreshes with --watch.",
)
@click.option("--json", "as_json", is_flag=True, help="The raw status document.")
def status(
    metrics_port: int, host: str, url: str | None, watch: bool, interval: float, as_json: bool
) -> None:
    """Show assignment, lag, in-flight work, jobs and workers of a running daemon."""
    base = url or f"http://{host}:{metrics_port}"
    while True:
        try:
            doc = fetch_status(base)
        except (urllib.error.URLError, OSError, ValueError) as exc:
            click.echo(f"actorsys: cannot reach the daemon at {base}: {exc}", err=True)
            sys.exit(1)
        text = json.dumps(doc) if as_json else render(doc)
        if watch and not as_json:
            click.clear()
        click.echo(text)
        if not watch:
            return
        try:
            time.sleep(interval)  # a refresh period for a person, not synchronisation
        except KeyboardInterrupt:
            return


def _retention(manager: JobManagerStatus) -> str:
    """Per topic: the oldest unfinished job's age against the topic's retention."""
    parts = []
    for entry in manager.retention:
        age = entry.oldest_job_age_s
        if entry.retention_s is None:
            parts.append(f"{entry.topic} oldest job {age:.0f}s (retention unlimited)")
        else:
            parts.append(
                f"{entry.topic} oldest job {age:.0f}s, headroom "
                f"{entry.headroom_s or 0:.0f}s of {entry.retention_s:.0f}s"
            )
    held = "   NEW BATCHES HELD BACK" if manager.retention_hold else ""
    return ("; ".join(parts) or "-") + held
