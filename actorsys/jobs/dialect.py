"""What the SQL job stores share with their drivers: a transaction handle
and the few facts that differ between SQL dialects."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

Row = tuple[Any, ...]


class Tx(Protocol):
    """One open transaction, whatever the driver. SQL uses ``?`` placeholders."""

    def one(self, sql: str, params: Sequence[Any] = ()) -> Row | None:
        """Run a statement and return its first row (or None)."""
        ...

    def all(self, sql: str, params: Sequence[Any] = ()) -> list[Row]: ...

    def run(self, sql: str, params: Sequence[Any] = ()) -> int:
        """Run a statement; returns the number of rows it changed."""
        ...


@dataclass(frozen=True, slots=True)
class Dialect:
    """What differs between the SQL backends, as data."""

    name: str
    types: Mapping[str, str]  # column types by role; fills the schema templates
    row_lock: str  # suffix that locks the selected rows until commit
    skip_locked: str  # suffix that locks and skips rows other transactions hold
    schema_lock: str | None  # statement serialising concurrent schema upgrades


def one_line(exc: BaseException) -> str:
    """Driver messages span lines (PostgreSQL adds DETAIL/HINT); callers log one."""
    return " ".join(str(exc).split()) or type(exc).__name__
