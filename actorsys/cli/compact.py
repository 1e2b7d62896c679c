"""`actorsys compact`: compact event hours now, whether or not they are closed.

The daemon compacts an hour by itself once it closes (see the README). This
queues the same durable compaction jobs on demand — for hours before a given
time, or every hour that still holds ingestion files — and the running
daemon's workers run them (a late record re-opens an hour as usual).
"""

from __future__ import annotations

import datetime as dt
import sys
import time
from pathlib import Path

import click

from actorsys.config import load_config
from actorsys.errors import ActorsysError
from actorsys.jobs.open import open_job_store

HOUR_MS = 3_600_000


def uncompacted_hours(raw_root: Path) -> list[int]:
    """Event hours (epoch ms of their start) of the raw table that still hold
    ingestion files, oldest first."""
    from deltalake import DeltaTable

    hours: set[int] = set()
    for uri in DeltaTable(str(raw_root)).file_uris():
        path = Path(uri)
        if not path.name.startswith("part-"):
            continue
        day = path.parent.parent.name.removeprefix("date=")
        hour = int(path.parent.name.removeprefix("hour="))
        start = dt.datetime.fromisoformat(day).replace(hour=hour, tzinfo=dt.UTC)
        hours.add(int(start.timestamp() * 1000))
    return sorted(hours)


@click.command()
@click.option(
    "-c",
    "--config",
    "config_path",
    type=click.Path(dir_okay=False),
    required=True,
    help="The daemon's configuration (its output dir and job store).",
)
@click.option(
    "--before",
    type=click.DateTime(formats=["%Y-%m-%d", "%Y-%m-%dT%H:%M", "%Y-%m-%dT%H:%M:%S"]),
    help="Only hours that end at or before this UTC time (default: every hour).",
)
def compact(config_path: str, before: dt.datetime | None) -> None:
    """Queue compaction jobs for event hours that still hold small ingestion files.

    For output format "delta". The running daemon's workers rewrite each hour
    into few sorted files and recompute its final aggregates; see
    `actorsys jobs list` for the jobs.
    """
    try:
        config = load_config(config_path)
        if config.output.format != "delta":
            raise ActorsysError('[output] format is not "delta": there is nothing to compact')
        raw = Path(config.output.dir).expanduser() / "raw"
        if not (raw / "_delta_log").is_dir():
            raise ActorsysError(f"no raw table at {raw}")
        hours = uncompacted_hours(raw)
        if before is not None:
            limit = int(before.replace(tzinfo=dt.UTC).timestamp() * 1000)
            hours = [h for h in hours if h + HOUR_MS <= limit]
        store = open_job_store(config.jobs.store, create=False)
        try:
            queued = [h for h in hours if store.submit_compaction("raw", h, time.time())]
        finally:
            store.close()
    except ActorsysError as exc:
        click.echo(f"actorsys: {exc}", err=True)
        sys.exit(2)
    for hour in queued:
        stamp = dt.datetime.fromtimestamp(hour / 1000, dt.UTC).strftime("%Y-%m-%dT%H:00Z")
        click.echo(f"queued the compaction of {stamp}")
    click.echo(
        f"{len(queued)} compaction job(s) queued ({len(hours) - len(queued)} already queued)"
    )
