"""A click command class whose usage errors are one line on stderr.

Click prints a usage error as the usage synopsis, a "Try --help" hint and the
error: three lines a script or a log has to pick apart. Commands built on
:class:`OneLineUsageCommand` print only ``Error: <command>: <what is wrong>
(see '<command> --help')`` and still exit 2.
"""

from __future__ import annotations

from typing import Any

import click


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
            # Without a context, UsageError.show() prints the message line alone.
            raise click.UsageError(
                f"{path}: {exc.format_message()} (see '{path} --help')", ctx=None
            ) from None
