"""`actorsys join`: start a worker host that joins a leader's convention."""

from __future__ import annotations

import os
import sys

import click

from actorsys.convention import MemberCapabilities, default_host_name, parse_address
from actorsys.errors import ActorsysError
from actorsys.member import MemberSettings, run_member


@click.command()
@click.option(
    "--convention",
    required=True,
    metavar="HOST:PORT",
    help="The leader daemon's advertised host and admin port.",
)
@click.option(
    "--admin-port",
    type=click.IntRange(1, 65535),
    default=1901,
    show_default=True,
    help="This host's Thespian admin port.",
)
@click.option(
    "--slots",
    type=click.IntRange(0),
    default=None,
    help="Worker processes to offer (default: the CPU count).",
)
@click.option(
    "--consume",
    is_flag=True,
    help="Also run a Kafka consumer here (a second consumer daemon of the group).",
)
@click.option(
    "--host-name",
    default=None,
    help="This host's name in status, metrics and job records (default: hostname).",
)
@click.option(
    "--drain-grace-s",
    type=click.FloatRange(0),
    default=60.0,
    show_default=True,
    help="On SIGTERM, how long running jobs may take before the host leaves.",
)
@click.option(
    "--log-format", type=click.Choice(["text", "json"]), default="text", show_default=True
)
@click.option(
    "--log-level",
    type=click.Choice(["DEBUG", "INFO", "WARNING", "ERROR"]),
    default="INFO",
    show_default=True,
)
def join(
    convention: str,
    admin_port: int,
    slots: int | None,
    consume: bool,
    host_name: str | None,
    drain_grace_s: float,
    log_format: str,
    log_level: str,
) -> None:
    """Run a worker host: join the leader's convention and offer worker slots.

    The leader places workers (and, with --consume, a Kafka consumer) here and
    takes them back on SIGTERM, after their running jobs. Install the same
    actorsys version on every host.
    """
    try:
        leader = parse_address(convention, "--convention")
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--convention") from None
    caps = MemberCapabilities(
        host=host_name or default_host_name(),
        admin_port=admin_port,
        leader=leader,
        worker_slots=(os.cpu_count() or 1) if slots is None else slots,
        consumer=consume,
    )
    try:
        code = run_member(MemberSettings(caps, drain_grace_s, log_level, log_format))
    except ActorsysError as exc:
        click.echo(f"actorsys: {exc}", err=True)
        sys.exit(1)
    sys.exit(code)
