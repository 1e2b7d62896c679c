"""The SQLite job store: the default, for a single host.

WAL mode lets readers (the CLI, metrics) run while the JobManager writes;
``busy_timeout`` makes a writer wait for another process's write instead of
failing at once; every writing method starts with ``BEGIN IMMEDIATE`` so it
takes the write lock before reading ``next_offset`` (a deferred transaction
that upgrades later can fail with SQLITE_BUSY without waiting).
"""

from __future__ import annotations

import os
import sqlite3
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any

from actorsys.errors import ConfigError, JobStoreError
from actorsys.jobs.dialect import Dialect, Row, one_line
from actorsys.jobs.sqlstore import SqlJobStore

SYNCHRONOUS_LEVELS = ("NORMAL", "FULL", "EXTRA")  # OFF is not durable: refused
DEFAULT_BUSY_TIMEOUT_MS = 5000
_WAL_SIZE_LIMIT = 64 * 1024 * 1024  # truncate the WAL back to this after checkpoints
_MIN_VERSION = (3, 35, 0)  # RETURNING


class _SqliteTx:
    def __init__(self, cursor: sqlite3.Cursor) -> None:
        self._cursor = cursor

    def one(self, sql: str, params: Sequence[Any] = ()) -> Row | None:
        # fetchall, not fetchone: a RETURNING statement left unfinished would
        # still be "in progress" when the transaction commits.
        rows = self._cursor.execute(sql, params).fetchall()
        return rows[0] if rows else None

    def all(self, sql: str, params: Sequence[Any] = ()) -> list[Row]:
        return self._cursor.execute(sql, params).fetchall()

    def run(self, sql: str, params: Sequence[Any] = ()) -> int:
        return self._cursor.execute(sql, params).rowcount


class SqliteJobStore(SqlJobStore):
    """``JobStore`` in one SQLite file, created (with its schema) if missing.
    The file's parent directory must exist."""

    dialect = Dialect(
        name="sqlite",
        types={
            # AUTOINCREMENT: ids are never reused, even after the newest jobs are purged.
            "id": "INTEGER PRIMARY KEY AUTOINCREMENT",
            "bigint": "INTEGER",
            "blob": "BLOB",
            "float": "REAL",
        },
        row_lock="",  # BEGIN IMMEDIATE already holds the database's write lock
        skip_locked="",  # one writer at a time: nothing to skip
        schema_lock=None,
    )
    driver_errors = (sqlite3.Error,)

    def __init__(
        self,
        path: str | os.PathLike[str],
        synchronous: str = "FULL",
        busy_timeout_ms: int = DEFAULT_BUSY_TIMEOUT_MS,
    ) -> None:
        self.path = Path(path)
        super().__init__(f"sqlite job store {self.path}")
        self.synchronous = synchronous.upper()
        if self.synchronous not in SYNCHRONOUS_LEVELS:
            raise ConfigError(
                f"{self._label}: synchronous={synchronous!r} is not one of"
                f" {', '.join(SYNCHRONOUS_LEVELS)}"
            )
        if busy_timeout_ms < 0:
            raise ConfigError(f"{self._label}: busy_timeout_ms must be >= 0, not {busy_timeout_ms}")
        if sqlite3.sqlite_version_info < _MIN_VERSION:
            raise JobStoreError(
                f"{self._label}: SQLite {sqlite3.sqlite_version} is too old"
                f" (need {'.'.join(map(str, _MIN_VERSION))} or later)"
            )
        try:
            self._conn = sqlite3.connect(
                self.path,
                timeout=busy_timeout_ms / 1000,  # sets SQLite's busy_timeout
                isolation_level=None,  # we issue BEGIN/COMMIT ourselves
                check_same_thread=False,  # SqlJobStore's lock serialises use
            )
        except sqlite3.Error as exc:
            raise JobStoreError(f"{self._label}: cannot open: {one_line(exc)}") from exc
        try:
            self._configure(busy_timeout_ms)
            self._migrate(time.time())
        except BaseException:
            self._conn.close()
            raise

    def _configure(self, busy_timeout_ms: int) -> None:
        try:
            mode = self._switch_to_wal(time.monotonic() + busy_timeout_ms / 1000)
            if str(mode).lower() != "wal":
                raise JobStoreError(f"{self._label}: cannot switch to WAL mode (got {mode})")
            self._conn.execute(f"PRAGMA synchronous = {self.synchronous}")
            self._conn.execute("PRAGMA foreign_keys = ON")
            self._conn.execute(f"PRAGMA journal_size_limit = {_WAL_SIZE_LIMIT}")
        except sqlite3.Error as exc:
            raise JobStoreError(f"{self._label}: cannot configure: {one_line(exc)}") from exc

    def _switch_to_wal(self, deadline: float) -> object:
        # Two processes switching a new file to WAL together deadlock, and
        # SQLite answers one "database is locked" at once, without calling the
        # busy handler (measured: 14 rounds in 50 of six processes opening one
        # new file). So the switch is retried for as long as the busy timeout
        # would have waited.
        pause_s = 0.005
        while True:
            try:
                (mode,) = self._conn.execute("PRAGMA journal_mode = WAL").fetchone()
                return mode
            except sqlite3.OperationalError as exc:
                if not _is_busy(exc) or time.monotonic() + pause_s > deadline:
                    raise
            time.sleep(pause_s)
            pause_s = min(pause_s * 2, 0.1)

    @contextmanager
    def _begin(self, write: bool) -> Iterator[_SqliteTx]:
        cursor = self._conn.cursor()
        try:
            cursor.execute("BEGIN IMMEDIATE" if write else "BEGIN")
            yield _SqliteTx(cursor)
            cursor.execute("COMMIT")
        except BaseException:
            if self._conn.in_transaction:
                with suppress(sqlite3.Error):  # keep the original error
                    self._conn.rollback()
            raise
        finally:
            cursor.close()

    def _close(self) -> None:
        self._conn.close()


def _is_busy(exc: sqlite3.OperationalError) -> bool:
    """SQLITE_BUSY or SQLITE_LOCKED: another connection holds the lock."""
    return exc.sqlite_errorcode & 0xFF in (sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED)
