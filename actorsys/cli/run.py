"""`actorsys run`: the daemon in the foreground.

Nothing secret is accepted on the command line: every user of the machine
sees argv (``ps``, ``/proc/PID/cmdline``). Secrets go in the configuration
file as ``{ env = "NAME" }`` or ``{ file = "/path" }``. Everything is
validated, librdkafka's properties included, before any process starts.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any, NoReturn

import click

from actorsys.cli.oneline import OneLineUsageCommand
from actorsys.config import load_config
from actorsys.errors import ActorsysError, ConfigError
from actorsys.secrets import is_secret_property, url_has_password

JOB_STORE_PASSWORD_REFUSED = (
    "--job-store: a password must not be given on the command line (ps shows it); set"
    ' [jobs] store in the config as { env = "NAME" } or { file = "/path" }, or leave the'
    " password to PGPASSWORD or ~/.pgpass"
)


def secret_property_refused(key: str) -> str:
    return (
        f"-X {key}: secrets must not be given on the command line (ps shows them); set it in"
        ' [kafka.properties] as { env = "NAME" } or { file = "/path" }'
    )


def config_error(message: object) -> NoReturn:
    """Print a configuration mistake as one line and exit 2."""
    click.echo(f"actorsys: configuration error: {message}", err=True)
    sys.exit(2)


def parse_kafka_property(value: str) -> tuple[str, str]:
    key, sep, val = value.partition("=")
    if not sep or not key.strip():
        raise click.BadParameter(f"{value!r} is not KEY=VALUE", param_hint="-X/--kafka-property")
    return key.strip(), val


def cluster_overrides(
    bind_host: str | None, advertised_host: str | None, key_file: str | None
) -> dict[str, str]:
    """The [cluster] keys given as flags (shared by `run` and `join`)."""
    flags = {"bind_host": bind_host, "advertised_host": advertised_host, "key_file": key_file}
    return {key: value for key, value in flags.items() if value is not None}


def cluster_options(fn: Callable[..., Any]) -> Callable[..., Any]:
    """--bind-host, --advertised-host and --key-file, overriding [cluster]."""
    options = [
        ("--bind-host", "Where the actor system listens ([cluster] bind_host)."),
        ("--advertised-host", "The address other hosts reach this one at."),
        ("--key-file", "The cluster key file, the same on every host ([cluster] key_file)."),
    ]
    for flag, help_text in reversed(options):
        fn = click.option(flag, help=help_text)(fn)
    return fn


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
@click.option(
    "--job-store",
    help="sqlite:///path.db or postgresql://user@host/db (no password here: ps shows argv)",
)
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
    "-q",
    "--quiet",
    is_flag=True,
    help="No progress line ([daemon] progress_interval_s = 0).",
)
@click.option(
    "-X",
    "--kafka-property",
    "kafka_properties",
    multiple=True,
    metavar="KEY=VALUE",
    help="librdkafka property, passed through (repeatable; never a secret: ps shows argv).",
)
@cluster_options
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
    quiet: bool,
    kafka_properties: tuple[str, ...],
    bind_host: str | None,
    advertised_host: str | None,
    key_file: str | None,
) -> None:
    """Run the daemon until SIGTERM or Ctrl-C, then drain and exit 0.

    Every few seconds it shows one progress line: records/s in and out, lag,
    jobs, what is committed, paused partitions (a log event when not on a
    terminal or with --log-format json; --quiet for none).

    Flags override the configuration file. A configuration mistake prints one
    line and exits 2.

    Secrets are refused on the command line, where `ps` shows them: a -X
    password, secret or private key, and a --job-store URL with a password.
    Write them in the configuration file as { env = "NAME" } or
    { file = "/path" }.
    """
    from actorsys.daemon import run_daemon
    from actorsys.kafka_clients import validate_client_properties

    parsed = [parse_kafka_property(p) for p in kafka_properties]
    for key, _value in parsed:
        if is_secret_property(key):
            config_error(secret_property_refused(key))
    if job_store is not None and url_has_password(job_store):
        config_error(JOB_STORE_PASSWORD_REFUSED)
    try:
        config = load_config(config_path)
        overrides: dict[str, dict[str, Any]] = {}

        def put(section: str, key: str, value: Any) -> None:
            if value is not None and value != ():
                overrides.setdefault(section, {})[key] = value

        put("kafka", "bootstrap_servers", bootstrap_servers)
        put("kafka", "topics", list(topics) if topics else None)
        put("kafka", "group_id", group_id)
        if parsed:
            put("kafka", "properties", {**config.kafka.properties, **dict(parsed)})
        put("output", "dir", output_dir)
        put("jobs", "store", job_store)
        put("daemon", "admin_port", admin_port)
        put("daemon", "metrics_port", metrics_port)
        put("daemon", "log_format", log_format)
        put("daemon", "progress_interval_s", 0.0 if quiet else None)
        put("workers", "count", workers)
        for key, value in cluster_overrides(bind_host, advertised_host, key_file).items():
            put("cluster", key, value)
        if overrides:
            config = config.with_overrides(overrides)
        validate_client_properties(config)
    except ConfigError as exc:
        config_error(exc)
    try:
        code = run_daemon(config)
    except ConfigError as exc:
        config_error(exc)
    except ActorsysError as exc:
        click.echo(f"actorsys: {exc}", err=True)
        sys.exit(1)
    sys.exit(code)
