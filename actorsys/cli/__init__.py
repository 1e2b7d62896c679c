"""The ``actorsys`` command line."""

from __future__ import annotations

import click

from actorsys import __version__


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="actorsys")
def main() -> None:
    """actorsys: Kafka records to Parquet files in batches, on Thespian actors.

    Nothing lost, nothing written twice, flat memory when input outruns workers.
    """


def _register() -> None:
    from actorsys.cli import broker, run, simulate

    main.add_command(run.run)
    main.add_command(broker.broker)
    main.add_command(simulate.simulate)


_register()
