"""`actorsys verify`: is every record below the committed offset in ``raw``
exactly once, or dead-lettered?

The comparison itself is :mod:`actorsys.verify`; this module reads the
configuration, prints the summary or the JSON document, and maps the outcome
to the exit code: 0 nothing missing or duplicated, 1 otherwise, 2 when the
check could not be made (a configuration mistake, or Kafka, the job store or
the output unreadable) — always one line on stderr then, no traceback.
"""

from __future__ import annotations

import json
import sys

import click

from actorsys.cli.oneline import OneLineUsageCommand
from actorsys.cli.run import config_error
from actorsys.config import load_config
from actorsys.errors import ActorsysError, ConfigError

_HELP = """Check the raw output against Kafka and the job store.

For each partition of the config's topics it compares four sources:

\b
  Kafka        the group's committed offset (read without joining the group)
               and which offsets hold a record, from the low watermark up
  dead letters the source_* headers of the dead-letter topic
  raw          the (_partition, _offset) of every row: the Delta table at
               <output.dir>/raw (one snapshot, with its txn versions), or the
               Parquet files under it (.tmp-* files ignored)
  job store    jobs by status; PENDING/RUNNING jobs are work in progress,
               FAILED jobs' records belong in the dead-letter topic

Offsets are checked up to the committed offset or, for Delta, the table's
txn version when that is higher (the table may be ahead of Kafka's commit).
Below that, every record Kafka holds must be in raw or dead-lettered: one
that is in neither, nor in an unfinished job, is MISSING; an offset with
two rows or more is DUPLICATED. Rows at offsets Kafka does not hold (compacted
or past the checked end) are reported as unexpected, not as a failure.
Offsets below the low watermark (deleted by retention) are not judged.

\b
Exit codes: 0 nothing missing or duplicated; 1 something is;
2 the check could not be made (configuration, Kafka, job store or output).
"""


@click.command(cls=OneLineUsageCommand, help=_HELP, short_help="Check raw against Kafka.")
@click.option(
    "-c",
    "--config",
    "config_path",
    required=True,
    type=click.Path(dir_okay=False),
    help="The daemon's configuration: Kafka, group, topics, output and job store.",
)
@click.option(
    "--topic",
    "topics",
    multiple=True,
    help="Check only this topic of the config (repeatable; default: all of them).",
)
@click.option("--json", "as_json", is_flag=True, help="One JSON document, for scripts.")
@click.option(
    "--timeout",
    "timeout_s",
    type=click.FloatRange(min=0.1),
    default=30.0,
    show_default=True,
    help="Seconds to wait for Kafka to answer or make progress.",
)
def verify(config_path: str, topics: tuple[str, ...], as_json: bool, timeout_s: float) -> None:
    # Imported here: it reads tables with pyarrow, which `actorsys run` must not
    # import (every actor process is forked from the daemon and keeps it).
    from actorsys.verify import report_doc, summary_lines
    from actorsys.verify import verify as run_verify

    try:
        report = run_verify(load_config(config_path), topics, timeout_s)
    except ConfigError as exc:
        config_error(exc)
    except ActorsysError as exc:
        click.echo(f"actorsys: cannot verify: {exc}", err=True)
        sys.exit(2)
    if as_json:
        click.echo(json.dumps(report_doc(report)))
    else:
        for line in summary_lines(report):
            click.echo(line)
    sys.exit(report.exit_code)
