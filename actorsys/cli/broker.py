"""``actorsys broker``: run the embedded Kafka-compatible broker in the foreground."""

from __future__ import annotations

import sys

import click

from actorsys.cli.oneline import OneLineUsageCommand
from actorsys.embedded_broker import EmbeddedBroker
from actorsys.errors import ActorsysError
from actorsys.stop_signals import StopSignals

# How often the foreground loop checks that the broker is still alive.
_WATCH_INTERVAL_S = 0.5


@click.command(cls=OneLineUsageCommand)
@click.option(
    "--port",
    type=click.IntRange(0, 65535),
    default=9092,
    show_default=True,
    help="TCP port to listen on; 0 picks a free one.",
)
@click.option(
    "--host",
    default="127.0.0.1",
    show_default=True,
    help="Address to listen on and advertise to clients.",
)
def broker(port: int, host: str) -> None:
    """Run the embedded Kafka-compatible broker (Tansu, in-memory) until stopped.

    Prints the bootstrap address (HOST:PORT) on one line of stdout once the
    broker answers Kafka requests. Ctrl-C or SIGTERM stops it and exits 0.
    Data lives in memory only and is gone when the broker stops.
    """
    # Installed before starting, so a signal during startup is not lost: the
    # broker then starts, sees the request, and stops in order.
    with StopSignals() as stop:
        embedded = EmbeddedBroker(port=port, host=host)
        try:
            try:
                bootstrap = embedded.start()
            except ActorsysError as exc:
                raise click.ClickException(str(exc)) from None
            click.echo(bootstrap)
            click.echo(
                f"embedded broker pid {embedded.pid} ready on {bootstrap} (Ctrl-C to stop)",
                err=True,
            )
            sys.stdout.flush()
            while not stop.wait(_WATCH_INTERVAL_S):
                if not embedded.running:
                    # Read the log before stop() removes it.
                    tail = embedded.log_tail()
                    raise click.ClickException(f"embedded broker exited unexpectedly: {tail}")
        finally:
            code = embedded.stop()
    if stop.is_set():
        click.echo(f"embedded broker stopped (exit code {code})", err=True)
