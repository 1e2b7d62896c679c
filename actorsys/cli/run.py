"""`actorsys run`: the daemon in the foreground."""

from __future__ import annotations

import sys
from typing import Any

import click

from actorsys.cli.oneline import OneLineUsageCommand
from actorsys.config import load_config
from actorsys.errors import ActorsysError, ConfigError


def parse_kafka_property(value: str) -> tuple[str, str]:
    key, sep, val = value.partition("=")
    if not sep or not key.strip():
        raise click.BadParameter(f"{value!r} is not KEY=VALUE", param_hint="-X/--kafka-property")
    return key.strip(), val


@click.command(cls=OneLineUsageCommand)
@click.option(
    "-c",
    "--config",
    "config_path",
    type=click.Path(dir_okay=False),
    help="TOML configuration file (defaults apply without one).",
)
@click.option("--bootstrap-servers", help='Kafka bootstrap servers, or "embedded".')
@click.option("--topic", "topics", multiple=True, help="Topic to consume (repeatable).")
@click.option("--group-id", help="Kafka consumer group.")
@click.option("--output-dir", help="Where Parquet files are written.")
@click.option("--job-store", help="sqlite:///path.db or postgresql://user@host/db")
@click.option(
    "--admin-port",
    type=click.IntRange(1, 65535),
    help="Thespian admin port (one per daemon on a machine).",
)
@click.option(
    "--metrics-port",
    type=click.IntRange(0, 65535),
    help="HTTP port for /metrics, /healthz, /readyz, /status (0: off).",
)
@click.option("--workers", type=click.IntRange(0), help="Worker processes (0: one per CPU).")
@click.option("--log-format", type=click.Choice(["text", "json"]), help="Log line format.")
@click.option(
    "-X",
    "--kafka-property",
    "kafka_properties",
    multiple=True,
    metavar="KEY=VALUE",
    help="librdkafka property, passed through (repeatable).",
)
def run(
    config_path: str | None,
    bootstrap_servers: str | None,
    topics: tuple[str, ...],
    group_id: str | None,
    output_dir: str | None,
    job_store: str | None,
    admin_port: int | None,
    metrics_port: int | None,
    workers: int | None,
    log_format: str | None,
    kafka_properties: tuple[str, ...],
) -> None:
    """Run the daemon until SIGTERM or Ctrl-C, then drain and exit 0.

    Flags override the configuration file. A configuration mistake prints one
    line and exits 2.
    """
    from actorsys.daemon import run_daemon

    try:
        config = load_config(config_path)
        overrides: dict[str, dict[str, Any]] = {}

        def put(section: str, key: str, value: Any) -> None:
            if value is not None and value != ():
                overrides.setdefault(section, {})[key] = value

        put("kafka", "bootstrap_servers", bootstrap_servers)
        put("kafka", "topics", list(topics) if topics else None)
        put("kafka", "group_id", group_id)
        if kafka_properties:
            props = dict(config.kafka.properties)
            props.update(parse_kafka_property(p) for p in kafka_properties)
            put("kafka", "properties", props)
        put("output", "dir", output_dir)
        put("jobs", "store", job_store)
        put("daemon", "admin_port", admin_port)
        put("daemon", "metrics_port", metrics_port)
        put("daemon", "log_format", log_format)
        put("workers", "count", workers)
        if overrides:
            config = config.with_overrides(overrides)
    except ConfigError as exc:
        click.echo(f"actorsys: configuration error: {exc}", err=True)
        sys.exit(2)
    try:
        code = run_daemon(config)
    except ConfigError as exc:
        click.echo(f"actorsys: configuration error: {exc}", err=True)
        sys.exit(2)
    except ActorsysError as exc:
        click.echo(f"actorsys: {exc}", err=True)
        sys.exit(1)
    sys.exit(code)
