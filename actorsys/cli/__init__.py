"""The ``actorsys`` command line."""

from __future__ import annotations

from typing import Any

import click

from actorsys import __version__

# click >= 8.2 raises this for a group called without arguments: the help, not an error.
_NO_ARGS_IS_HELP: Any = getattr(click.exceptions, "NoArgsIsHelpError", ())


def _one_line(exc: click.UsageError, path: str) -> click.UsageError:
    # The message format of actorsys.cli.oneline.OneLineUsageCommand.
    return click.UsageError(f"{path}: {exc.format_message()} (see '{path} --help')", ctx=None)


class OneLineUsageGroup(click.Group):
    """Usage errors of the group (an unknown option or command), of nested
    groups, and those a subcommand raises once running (a bad value found by
    its callback) print as one line, like
    :class:`~actorsys.cli.oneline.OneLineUsageCommand`. A group called
    without arguments still prints its help."""

    def make_context(
        self,
        info_name: str | None,
        args: list[str],
        parent: click.Context | None = None,
        **extra: Any,
    ) -> click.Context:
        try:
            return super().make_context(info_name, args, parent=parent, **extra)
        except _NO_ARGS_IS_HELP:
            raise
        except click.UsageError as exc:
            path = exc.ctx.command_path if exc.ctx is not None else (info_name or self.name)
            raise _one_line(exc, path or "actorsys") from None

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except _NO_ARGS_IS_HELP:
            raise
        except click.UsageError as exc:
            if exc.ctx is None:  # already one line (a OneLineUsageCommand)
                raise
            raise _one_line(exc, exc.ctx.command_path) from None


@click.group(cls=OneLineUsageGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="actorsys")
def main() -> None:
    """actorsys: Kafka records to Parquet files in batches, on Thespian actors.

    Nothing lost, nothing written twice, flat memory when input outruns workers.
    """


def _register() -> None:
    from actorsys.cli import broker, jobs, join, run, simulate, status

    main.add_command(run.run)
    main.add_command(broker.broker)
    main.add_command(simulate.simulate)
    main.add_command(status.status)
    main.add_command(jobs.jobs)
    main.add_command(join.join)


_register()
