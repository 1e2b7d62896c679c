"""Click command and group classes whose usage errors are one line on stderr.

Click prints a usage error as the usage synopsis, a "Try --help" hint and the
error: three lines a script or a log has to pick apart. Commands built on
:class:`OneLineUsageCommand` print only ``Error: <command>: <what is wrong>
(see '<command> --help')`` and still exit 2.
"""

from __future__ import annotations

from typing import Any

import click


def one_line(exc: click.UsageError, path: str) -> click.UsageError:
    # Without a context, UsageError.show() prints the message line alone.
    return click.UsageError(f"{path}: {exc.format_message()} (see '{path} --help')", ctx=None)


class OneLineUsageCommand(click.Command):
    def make_context(
        self,
        info_name: str | None,
        args: list[str],
        parent: click.Context | None = None,
        **extra: Any,
    ) -> click.Context:
        try:
            return super().make_context(info_name, args, parent=parent, **extra)
        except click.UsageError as exc:
            path = exc.ctx.command_path if exc.ctx is not None else (info_name or self.name)
            raise one_line(exc, path or "actorsys") from None


# click >= 8.2 raises this for a group called without arguments: the help, not an error.
_NO_ARGS_IS_HELP: Any = getattr(click.exceptions, "NoArgsIsHelpError", ())


class OneLineUsageGroup(click.Group):
    """Usage errors of the group (an unknown option or command), of nested
    groups, and those a subcommand raises once running (a bad value found by
    its callback) print as one line, like
    :class:`OneLineUsageCommand`. A group called
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
            raise one_line(exc, path or "actorsys") from None

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except _NO_ARGS_IS_HELP:
            raise
        except click.UsageError as exc:
            if exc.ctx is None:  # already one line (a OneLineUsageCommand)
                raise
            raise one_line(exc, exc.ctx.command_path) from None
