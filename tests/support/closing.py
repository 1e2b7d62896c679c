"""``with`` for the helpers that own something to give back (processes, a
consumer, a producer thread): leaving the block calls ``close()``, whether
the block passed or failed, so a failed test leaves nothing behind."""

from __future__ import annotations

from types import TracebackType
from typing import Self


class Closes:
    """Mixin: ``with obj as o:`` gives ``obj`` and calls ``obj.close()`` on the way out."""

    def close(self) -> None:
        raise NotImplementedError

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
