"""The ``actorsys`` command line."""

from __future__ import annotations

import click

from actorsys import __version__
from actorsys.cli.oneline import OneLineUsageGroup


@click.group(cls=OneLineUsageGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="actorsys")
def main() -> None:
    """actorsys: Kafka records to Parquet files in batches, on Thespian actors.

    Nothing lost, nothing written twice, flat memory when input outruns workers.
    """


def _register() -> None:
    from actorsys.cli import broker, compact, jobs, join, run, simulate, status, verify

    main.add_command(run.run)
    main.add_command(broker.broker)
    main.add_command(simulate.simulate)
    main.add_command(status.status)
    main.add_command(jobs.jobs)
    main.add_command(join.join)
    main.add_command(verify.verify)
    main.add_command(compact.compact)


_register()
