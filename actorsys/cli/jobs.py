"""`actorsys jobs`: inspect and replay jobs in the job store.

Works against the store directly (SQLite file or PostgreSQL), so it answers
whether or not a daemon is running. A retried job is picked up by the
running daemon's JobManager on its next tick.
"""

from __future__ import annotations

import datetime as dt
import json
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict
from typing import Any

import click

from actorsys.cli.run import JOB_STORE_PASSWORD_REFUSED
from actorsys.config import load_config
from actorsys.errors import ActorsysError
from actorsys.jobs.model import JobKind, JobRecord, JobStatus
from actorsys.jobs.open import open_job_store
from actorsys.jobs.store import JobStore
from actorsys.secrets import Secret, url_has_password


def _when(ts: float | None) -> str:
    if ts is None:
        return "-"
    return dt.datetime.fromtimestamp(ts, dt.UTC).strftime("%Y-%m-%d %H:%M:%S")


def _store_options(fn: Callable[..., Any]) -> Callable[..., Any]:
    fn = click.option(
        "--job-store", help="sqlite:///path.db or postgresql://... (default: the one in --config)"
    )(fn)
    fn = click.option(
        "-c",
        "--config",
        "config_path",
        type=click.Path(dir_okay=False),
        help="Daemon configuration to take the job store from.",
    )(fn)
    return fn


@contextmanager
def _opened(config_path: str | None, job_store: str | None) -> Iterator[JobStore]:
    if job_store and url_has_password(job_store):
        click.echo(f"actorsys: configuration error: {JOB_STORE_PASSWORD_REFUSED}", err=True)
        sys.exit(2)
    try:
        url: str | Secret = job_store or load_config(config_path).jobs.store
        store = open_job_store(url, create=False)
    except ActorsysError as exc:
        click.echo(f"actorsys: {exc}", err=True)
        sys.exit(2)
    try:
        yield store
    except ActorsysError as exc:
        click.echo(f"actorsys: {exc}", err=True)
        sys.exit(1)
    finally:
        store.close()


def _as_dict(job: JobRecord) -> dict[str, Any]:
    doc = asdict(job)
    doc["status"] = job.status.value
    doc["kind"] = job.kind.value
    doc["output_files"] = list(job.output_files)
    return doc


@click.group()
def jobs() -> None:
    """Inspect and replay jobs in the job store."""


@jobs.command("list")
@_store_options
@click.option(
    "--status",
    type=click.Choice([s.value for s in JobStatus], case_sensitive=False),
    help="Only jobs in this state.",
)
@click.option("--limit", type=click.IntRange(1), default=50, show_default=True)
@click.option("--json", "as_json", is_flag=True, help="One JSON document, for scripts.")
def list_jobs(
    config_path: str | None, job_store: str | None, status: str | None, limit: int, as_json: bool
) -> None:
    """List jobs, newest first, with a count per state."""
    with _opened(config_path, job_store) as store:
        wanted = JobStatus(status.upper()) if status else None
        records = store.list_jobs(wanted, limit)
        counts = {s.value: n for s, n in store.count_by_status().items()}
    if as_json:
        click.echo(json.dumps({"counts": counts, "jobs": [_as_dict(j) for j in records]}))
        return
    click.echo("  ".join(f"{s}={n}" for s, n in counts.items()))
    header = (
        f"{'ID':>8}  {'KIND':<7} {'STATUS':<8} {'TOPIC[PART]':<22} {'OFFSETS / HOUR':<23} "
        f"{'RECS':>6} {'TRY':>3}  {'CREATED (UTC)':<19}  LAST ERROR"
    )
    click.echo(header)
    for j in records:
        where = f"{j.topic}[{j.partition}]" if j.kind is JobKind.INGEST else j.consumer_group
        offsets = f"[{j.start_offset}, {j.end_offset})"
        if j.kind is JobKind.COMPACT and j.window_ms is not None:
            offsets = _when(j.window_ms / 1000)[:13] + ":00"
        error = (j.last_error or "").splitlines()[0][:60] if j.last_error else ""
        click.echo(
            f"{j.id:>8}  {j.kind.value:<7} {j.status.value:<8} {where:<22} {offsets:<23} "
            f"{j.record_count:>6} {j.attempts:>3}  {_when(j.created_at):<19}  {error}"
        )


@jobs.command("show")
@_store_options
@click.argument("job_id", type=int)
@click.option("--json", "as_json", is_flag=True, help="One JSON document, for scripts.")
def show(config_path: str | None, job_store: str | None, job_id: int, as_json: bool) -> None:
    """Everything about one job: offsets, attempts, errors, output files."""
    with _opened(config_path, job_store) as store:
        job = store.get(job_id)
    if job is None:
        click.echo(f"actorsys: no job {job_id}", err=True)
        sys.exit(1)
    if as_json:
        click.echo(json.dumps(_as_dict(job)))
        return
    rows = [
        ("id", job.id),
        ("status", job.status.value),
        ("group", job.consumer_group),
        ("topic", job.topic),
        ("partition", job.partition),
        ("offsets", f"[{job.start_offset}, {job.end_offset})"),
        ("records", job.record_count),
        ("attempts", job.attempts),
        ("worker", job.worker or "-"),
        ("created", _when(job.created_at)),
        ("started", _when(job.started_at)),
        ("finished", _when(job.finished_at)),
        ("next attempt", _when(job.next_attempt_at)),
        ("last error", job.last_error or "-"),
    ]
    for name, value in rows:
        click.echo(f"{name:>14}: {value}")
    click.echo(f"{'output files':>14}:" + ("" if job.output_files else " -"))
    for path in job.output_files:
        click.echo(f"{'':>16}{path}")


@jobs.command("retry")
@_store_options
@click.argument("job_id", type=int, required=False)
@click.option("--all-failed", is_flag=True, help="Replay every FAILED job.")
def retry(
    config_path: str | None, job_store: str | None, job_id: int | None, all_failed: bool
) -> None:
    """Put a FAILED job (or all of them) back to PENDING with fresh attempts."""
    if (job_id is None) == (not all_failed):
        raise click.UsageError("give a JOB_ID or --all-failed (not both)")
    with _opened(config_path, job_store) as store:
        count = store.retry_failed(None if all_failed else job_id, time.time())
    if job_id is not None and count == 0:
        click.echo(f"actorsys: job {job_id} is not FAILED; nothing to retry", err=True)
        sys.exit(1)
    click.echo(f"{count} job(s) queued again")


@jobs.command("purge")
@_store_options
@click.option(
    "--done-before",
    required=True,
    type=click.DateTime(formats=["%Y-%m-%d", "%Y-%m-%dT%H:%M:%S", "%Y-%m-%d %H:%M:%S"]),
    help="Delete DONE jobs finished before this UTC date or time.",
)
def purge(config_path: str | None, job_store: str | None, done_before: dt.datetime) -> None:
    """Delete DONE jobs finished before a date (their files stay)."""
    cutoff = done_before.replace(tzinfo=dt.UTC).timestamp()
    with _opened(config_path, job_store) as store:
        count = store.purge_done_before(cutoff)
    click.echo(f"{count} DONE job(s) purged")
