"""``actorsys simulate``: feed simulated IoT telemetry into a Kafka topic."""

from __future__ import annotations

import contextlib
import math
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING

import click

from actorsys.cli.oneline import OneLineUsageCommand
from actorsys.errors import ActorsysError
from actorsys.handlers.validation import VALUE_FORMATS
from actorsys.simulator import ProduceReport, produce
from actorsys.stop_signals import StopFlag, StopSignals

if TYPE_CHECKING:
    from click._termui_impl import ProgressBar  # click's bar type, not exported


def _finite(_ctx: click.Context, param: click.Parameter, value: float) -> float:
    """Refuse nan and inf, which click's FloatRange lets through (nan fails no comparison)."""
    if not math.isfinite(value):
        raise click.BadParameter(f"{value} is not a finite number.", param=param)
    return value


def _late_option(ctx: click.Context, param: click.Parameter, value: float) -> float:
    """Check --late-ratio against --late-max-s, in whichever of the two click parses second.

    A ratio above 0 with a maximum under 1 ms asks for late records and would
    silently get none. Checked while parsing, so it is one line and exit 2 like
    any bad flag, before the broker is contacted.
    """
    value = _finite(ctx, param, value)
    given = {**ctx.params, str(param.name): value}
    ratio, max_s = given.get("late_ratio"), given.get("late_max_s")
    if ratio is not None and max_s is not None and ratio > 0 and max_s < 0.001:
        raise click.UsageError(f"--late-ratio {ratio:g} needs --late-max-s >= 0.001", ctx=ctx)
    return value


@click.command(cls=OneLineUsageCommand)
@click.option(
    "--bootstrap-servers",
    "-b",
    default="127.0.0.1:9092",
    show_default=True,
    metavar="HOST:PORT[,...]",
    help="Kafka bootstrap servers.",
)
@click.option("--topic", "-t", default="iot", show_default=True, help="Topic to produce to.")
@click.option(
    "--devices",
    type=click.IntRange(min=1),
    default=100,
    show_default=True,
    help="Number of simulated devices (record keys dev-0000, dev-0001, ...).",
)
@click.option(
    "--rate",
    type=click.FloatRange(min=0),
    default=1000.0,
    show_default=True,
    callback=_finite,
    help="Records per second; 0 produces as fast as possible.",
)
@click.option(
    "--count",
    type=click.IntRange(min=0),
    default=0,
    show_default=True,
    help="Records to produce; 0 runs until Ctrl-C.",
)
@click.option(
    "--malformed-ratio",
    type=click.FloatRange(0.0, 1.0),
    default=0.01,
    show_default=True,
    callback=_finite,
    help="Probability that a record is malformed (undecodable, missing field, "
    "wrong type or tombstone).",
)
@click.option(
    "--value-format",
    type=click.Choice(VALUE_FORMATS),
    default="json",
    show_default=True,
    help="Encoding of the record values: a JSON object, or a MessagePack map of the "
    'same fields (for a handler with value_format = "msgpack").',
)
@click.option(
    "--partitions",
    type=click.IntRange(min=1),
    default=4,
    show_default=True,
    help="Partitions of the topic if it has to be created (an existing topic is kept).",
)
@click.option("--seed", type=int, default=None, help="Random seed, for a repeatable feed.")
@click.option(
    "--time-scale",
    type=click.FloatRange(min=0, min_open=True),
    default=1.0,
    show_default=True,
    metavar="K",
    callback=_finite,
    help="Event time (the records' ts) runs K times wall time: at 60 a wall minute "
    "fills an hour of event time, starting now.",
)
@click.option(
    "--late-ratio",
    type=click.FloatRange(0.0, 1.0),
    default=0.0,
    show_default=True,
    metavar="R",
    callback=_late_option,
    help="Probability that a valid record is late: its ts is moved back by up to "
    "--late-max-s seconds of event time.",
)
@click.option(
    "--late-max-s",
    type=click.FloatRange(min=0),
    default=0.0,
    show_default=True,
    metavar="S",
    callback=_late_option,
    help="How far back a late record's ts moves, at most, in seconds of event time "
    "(needs at least 0.001 when --late-ratio is above 0).",
)
@click.option(
    "--connect-timeout",
    type=click.FloatRange(min=0, min_open=True),
    default=10.0,
    show_default=True,
    callback=_finite,
    help="Seconds to wait for the broker before giving up.",
)
def simulate(
    bootstrap_servers: str,
    topic: str,
    devices: int,
    rate: float,
    count: int,
    malformed_ratio: float,
    value_format: str,
    partitions: int,
    seed: int | None,
    time_scale: float,
    late_ratio: float,
    late_max_s: float,
    connect_timeout: float,
) -> None:
    """Produce simulated IoT sensor readings to a Kafka topic.

    Each record is keyed by its device id and holds JSON such as

    \b
      {"device_id": "dev-0042", "ts": <epoch ms>, "temperature": 21.4,
       "humidity": 48.2, "battery": 87.5}

    or, with --value-format msgpack, a MessagePack map of the same fields.

    A share of records is deliberately malformed (--malformed-ratio) to
    exercise the dead-letter path. Creates the topic if missing.

    For tests and benchmarks: with --time-scale K, event time (ts) runs K
    times wall time, so event-time hours close in minutes; with --late-ratio
    R and --late-max-s S, a share R of valid records is late, moved back up
    to S seconds of event time. The summary then also gives the event-time
    range produced.

    Ctrl-C (or SIGTERM) stops producing, waits for the records already sent,
    prints the summary and exits 0; a second Ctrl-C aborts at once.
    """

    def abort(_signum: int) -> None:
        raise KeyboardInterrupt  # second signal: abort without waiting

    notice = "stopping: waiting for outstanding deliveries"
    try:
        with StopSignals(on_repeat=abort, notice=notice) as stop:
            report = _run(
                bootstrap_servers,
                topic,
                devices=devices,
                rate=rate,
                count=count,
                malformed_ratio=malformed_ratio,
                value_format=value_format,
                partitions=partitions,
                seed=seed,
                time_scale=time_scale,
                late_ratio=late_ratio,
                late_max_s=late_max_s,
                stop=stop,
                connect_timeout=connect_timeout,
            )
    except ActorsysError as exc:
        raise click.ClickException(str(exc)) from None
    except KeyboardInterrupt:
        click.echo("aborted", err=True)
        sys.exit(130)
    click.echo(report.summary(event_time=time_scale != 1.0 or late_ratio > 0))


def _run(
    bootstrap_servers: str,
    topic: str,
    *,
    devices: int,
    rate: float,
    count: int,
    malformed_ratio: float,
    value_format: str,
    partitions: int,
    seed: int | None,
    time_scale: float,
    late_ratio: float,
    late_max_s: float,
    stop: StopFlag,
    connect_timeout: float,
) -> ProduceReport:
    """Produce, showing a progress bar on a terminal and status lines elsewhere."""
    with contextlib.ExitStack() as stack:
        # A bar needs a known length and a terminal; logs get a line every few seconds.
        progress: bool | Callable[[int], None] = True
        if count > 0 and sys.stderr.isatty():
            bar = stack.enter_context(
                click.progressbar(
                    length=count, label=f"producing to {topic}", file=sys.stderr, show_pos=True
                )
            )
            progress = _BarAdvance(bar)
        return produce(
            bootstrap_servers,
            topic,
            devices=devices,
            rate=rate,
            count=count,
            malformed_ratio=malformed_ratio,
            value_format=value_format,
            partitions=partitions,
            seed=seed,
            time_scale=time_scale,
            late_ratio=late_ratio,
            late_max_s=late_max_s,
            progress=progress,
            stop=stop,
            timeout_s=connect_timeout,
        )


class _BarAdvance:
    """Turns produce()'s running totals into progress-bar increments."""

    def __init__(self, bar: ProgressBar[int]) -> None:
        self._bar = bar
        self._shown = 0

    def __call__(self, produced: int) -> None:
        self._bar.update(produced - self._shown)
        self._shown = produced
