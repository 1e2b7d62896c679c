"""`actorsys join`: start a worker host that joins a leader's convention.

The leader sends its configuration to the actors it places here, but never
its secrets: those travel by name, and this host resolves each name from its
own configuration (``--config``), which also gives its [cluster] section
(bind address, advertised address, cluster key file).
"""

from __future__ import annotations

import os
import sys

import click

from actorsys.cli.run import cluster_options, cluster_overrides, config_error
from actorsys.config import AppConfig, load_config
from actorsys.convention import MemberCapabilities, default_host_name, parse_address
from actorsys.errors import ActorsysError, ConfigError
from actorsys.member import MemberSettings, run_member


def host_config(
    config_path: str | None,
    bind_host: str | None,
    advertised_host: str | None,
    key_file: str | None,
) -> AppConfig:
    """This host's own configuration, with the [cluster] flags applied.

    Its Kafka properties are checked by librdkafka here, before any process
    starts, when a file is given (it holds this host's secrets)."""
    from actorsys.kafka_clients import validate_client_properties

    config = load_config(config_path)
    overrides = cluster_overrides(bind_host, advertised_host, key_file)
    if overrides:
        config = config.with_overrides({"cluster": overrides})
    if config_path is not None:
        validate_client_properties(config)
    return config


@click.command()
@click.option(
    "-c",
    "--config",
    "config_path",
    type=click.Path(dir_okay=False),
    help="This host's configuration: its [cluster] section and its secrets (optional).",
)
@cluster_options
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
    config_path: str | None,
    bind_host: str | None,
    advertised_host: str | None,
    key_file: str | None,
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

    Secrets the leader's configuration names (a SASL password, say) are taken
    from this host's --config, never sent by the leader.
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
        config = host_config(config_path, bind_host, advertised_host, key_file)
    except ConfigError as exc:
        config_error(exc)
    try:
        code = run_member(MemberSettings(caps, drain_grace_s, log_level, log_format, config))
    except ConfigError as exc:
        config_error(exc)
    except ActorsysError as exc:
        click.echo(f"actorsys: {exc}", err=True)
        sys.exit(1)
    sys.exit(code)
