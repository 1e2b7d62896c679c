"""The PostgreSQL job store: for several hosts or JobManagers.

Concurrency comes from row locks, not from one big lock: ``submit_batch``
locks its partition's ``partition_offsets`` row (``FOR UPDATE``) so racing
JobManagers apply the offset chain one after the other, and ``claim_next``
takes the oldest due job with ``FOR UPDATE SKIP LOCKED`` so claimers never
wait on each other. READ COMMITTED suffices: a ``FOR UPDATE`` that waited
re-reads the row its competitor committed.

The connection runs in autocommit mode and each method opens an explicit
transaction. A connection lost between calls (server restart) is replaced
on the next call, so callers just retry after a ``JobStoreError``.

Every session is set up so that a call either succeeds durably or fails in
bounded time, never hangs the JobManager:

- ``synchronous_commit = on``: a commit returns once its WAL is on disk, so
  an ACK sent after ``submit_batch`` survives a server crash.
- ``statement_timeout`` (30 s) and ``lock_timeout`` (10 s): a stuck server
  or a forgotten lock fails the call with a ``JobStoreError``, which the
  JobManager retries, instead of blocking it forever.
- TCP keepalives (idle 30 s, then 3 probes 10 s apart): a server that
  vanished without closing the socket (power cut, network partition) is
  noticed in about a minute, not after the kernel's two hours.

They travel as libpq's startup ``options`` (``-c name=value``), so they are
in force before the first statement and again on every reconnection. What
the URL (or ``PGOPTIONS``) sets explicitly wins: libpq ``keepalives*``
parameters, ``options=-c name=value`` for any of the three settings, and our
own query parameters ``statement_timeout_ms`` / ``lock_timeout_ms``, which
are stripped before libpq sees the URL (0 turns a timeout off).
"""

from __future__ import annotations

import os
import re
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from functools import lru_cache
from typing import Any, cast
from urllib.parse import parse_qsl, quote, urlencode, urlsplit, urlunsplit

import psycopg
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict

from actorsys.errors import ConfigError, JobStoreError
from actorsys.jobs.dialect import Dialect, Row, one_line
from actorsys.jobs.schema import ensure_schema
from actorsys.jobs.sqlstore import SqlJobStore

DEFAULT_CONNECT_TIMEOUT_S = 5
DEFAULT_STATEMENT_TIMEOUT_MS = 30_000
DEFAULT_LOCK_TIMEOUT_MS = 10_000
# libpq's TCP keepalive parameters: probe after 30 s idle, every 10 s, give
# up after 3 unanswered probes.
KEEPALIVES: Mapping[str, str] = {
    "keepalives": "1",
    "keepalives_idle": "30",
    "keepalives_interval": "10",
    "keepalives_count": "3",
}
# Our own URL query parameters (libpq rejects names it does not know), by
# the server setting each one sets.
_TIMEOUT_PARAMS: Mapping[str, str] = {
    "statement_timeout_ms": "statement_timeout",
    "lock_timeout_ms": "lock_timeout",
}
_URI_SCHEMES = frozenset({"postgresql", "postgres"})
# A setting inside libpq's options string: "-c name=value", "-cname=value"
# or "--name=value".
_OPTION_SETTING = re.compile(r"(?:^|\s)(?:-c\s*|--)([A-Za-z0-9_.-]+)\s*=")


def redact_password(url: str) -> str:
    """The URL with any password replaced by ``***``, fit for messages and logs."""
    parts = urlsplit(url)
    userinfo, at, hostinfo = parts.netloc.rpartition("@")
    if at and ":" in userinfo:
        parts = parts._replace(netloc=f"{userinfo.split(':', 1)[0]}:***@{hostinfo}")
    return re.sub(r"(?i)(password=)[^&\s]*", r"\1***", urlunsplit(parts))


@lru_cache(maxsize=256)
def _pg_sql(statement: str) -> str:
    """The shared SQL's ``?`` placeholders as psycopg's binary ``%b`` (the
    shared SQL contains no other ``?`` or ``%``)."""
    return statement.replace("?", "%b")


def split_timeout_params(url: str) -> tuple[str, dict[str, int]]:
    """``url`` without our ``statement_timeout_ms`` / ``lock_timeout_ms`` query
    parameters, and their values by server setting name (only those given).

    Only URIs carry them; a ``key=value`` connection string passes unchanged.
    Raises ``ConfigError`` for a value that is not a whole number >= 0."""
    parts = urlsplit(url)
    if parts.scheme.lower() not in _URI_SCHEMES or not parts.query:
        return url, {}
    kept: list[tuple[str, str]] = []
    found: dict[str, int] = {}
    for name, value in parse_qsl(parts.query, keep_blank_values=True):
        setting = _TIMEOUT_PARAMS.get(name)
        if setting is None:
            kept.append((name, value))
            continue
        if setting in found:
            raise ConfigError(f"job store URL {redact_password(url)!r}: {name} is given twice")
        found[setting] = _milliseconds(url, name, value)
    if not found:
        return url, {}
    # quote, not urlencode's default quote_plus: libpq reads "+" as a plus sign.
    return urlunsplit(parts._replace(query=urlencode(kept, quote_via=quote))), found


def _milliseconds(url: str, name: str, value: str) -> int:
    try:
        number = int(value)
    except ValueError:
        number = -1
    if number < 0:
        raise ConfigError(
            f"job store URL {redact_password(url)!r}: {name} must be a whole number of"
            f" milliseconds >= 0 (0: no limit), not {value!r}"
        )
    return number


def options_settings(options: str) -> set[str]:
    """The server settings a libpq ``options`` string sets, lower-cased (the
    server folds names and reads ``--a-b`` as ``a_b``)."""
    return {m.group(1).lower().replace("-", "_") for m in _OPTION_SETTING.finditer(options)}


def session_connect_args(given: Mapping[str, str], defaults: Mapping[str, str]) -> dict[str, str]:
    """The libpq parameters to add to a connection whose URL holds ``given``:
    the keepalives it does not set, and an ``options`` string that sets each
    of ``defaults`` (server setting -> value) its own options do not set,
    ahead of its own options so those stay as they were."""
    args = {name: value for name, value in KEEPALIVES.items() if name not in given}
    # An explicit options parameter replaces PGOPTIONS: keep the operator's.
    own = given.get("options", os.environ.get("PGOPTIONS", ""))
    taken = options_settings(own)
    ours = [f"-c {name}={value}" for name, value in defaults.items() if name not in taken]
    if ours:
        args["options"] = " ".join([*ours, own]).strip()
    return args


class _PgTx:
    def __init__(self, cursor: psycopg.Cursor[Row]) -> None:
        self._cursor = cursor

    def one(self, statement: str, params: Sequence[Any] = ()) -> Row | None:
        self._cursor.execute(_pg_sql(statement), params)
        return self._cursor.fetchone() if self._cursor.description else None

    def all(self, statement: str, params: Sequence[Any] = ()) -> list[Row]:
        self._cursor.execute(_pg_sql(statement), params)
        return self._cursor.fetchall()

    def run(self, statement: str, params: Sequence[Any] = ()) -> int:
        self._cursor.execute(_pg_sql(statement), params)
        return self._cursor.rowcount


class PostgresJobStore(SqlJobStore):
    """``JobStore`` in a PostgreSQL database; creates its tables (in ``schema``
    when given, which is created if missing) on first open."""

    dialect = Dialect(
        name="postgres",
        types={
            "id": "BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY",
            "bigint": "BIGINT",
            "blob": "BYTEA",
            "float": "DOUBLE PRECISION",
        },
        row_lock=" FOR UPDATE",
        skip_locked=" FOR UPDATE SKIP LOCKED",
        # CREATE TABLE IF NOT EXISTS is not safe against a concurrent twin:
        # serialise upgrades of the same schema with a transaction-scoped lock.
        schema_lock=(
            "SELECT pg_advisory_xact_lock(hashtext('actorsys.schema:'"
            " || coalesce(current_schema(), '')))"
        ),
    )
    driver_errors = (psycopg.Error,)

    def __init__(
        self,
        url: str,
        *,
        schema: str | None = None,
        connect_timeout_s: int = DEFAULT_CONNECT_TIMEOUT_S,
        statement_timeout_ms: int = DEFAULT_STATEMENT_TIMEOUT_MS,
        lock_timeout_ms: int = DEFAULT_LOCK_TIMEOUT_MS,
    ) -> None:
        label = f"postgres job store {redact_password(url)}"
        super().__init__(f"{label} (schema {schema})" if schema else label)
        url, settings = self._session_settings(url, statement_timeout_ms, lock_timeout_ms)
        try:
            # Typed for keyword overrides (int, None) too; parsed from a
            # string alone, it holds the strings libpq read.
            given = cast("dict[str, str]", conninfo_to_dict(url))
        except psycopg.Error as exc:
            raise ConfigError(f"{self._label}: bad URL: {one_line(exc)}") from exc
        # Unpacked into psycopg.connect(), whose keywords have many types; dict()
        # keeps mypy from narrowing it to dict[str, str] (connect_timeout is an int).
        self._connect_args: dict[str, Any] = dict(session_connect_args(given, settings))
        # A connect_timeout in the URL wins; without one libpq would wait for TCP.
        if "connect_timeout" not in given:
            self._connect_args["connect_timeout"] = connect_timeout_s
        self._url = url
        self._schema = schema
        self._closed = False
        self._conn: psycopg.Connection[Row] = self._connect()
        try:
            self._migrate(time.time())
        except BaseException:
            self._conn.close()
            raise

    def _session_settings(
        self, url: str, statement_timeout_ms: int, lock_timeout_ms: int
    ) -> tuple[str, dict[str, str]]:
        """The URL libpq may see, and the server settings every session wants
        (the URL's ``*_timeout_ms`` parameters beating the arguments)."""
        for name, ms in (
            ("statement_timeout_ms", statement_timeout_ms),
            ("lock_timeout_ms", lock_timeout_ms),
        ):
            if ms < 0:
                raise ConfigError(f"{self._label}: {name} must be >= 0 (0: no limit), not {ms}")
        libpq_url, from_url = split_timeout_params(url)
        settings = {
            "synchronous_commit": "on",
            "statement_timeout": str(statement_timeout_ms),
            "lock_timeout": str(lock_timeout_ms),
            **{name: str(ms) for name, ms in from_url.items()},
        }
        return libpq_url, settings

    def _connect(self) -> psycopg.Connection[Row]:
        try:
            conn = psycopg.connect(self._url, autocommit=True, **self._connect_args)
        except psycopg.Error as exc:
            raise JobStoreError(f"{self._label}: cannot connect: {one_line(exc)}") from exc
        try:
            if self._schema:
                self._use_schema(conn, self._schema)
        except psycopg.Error as exc:
            conn.close()
            raise JobStoreError(f"{self._label}: cannot use schema: {one_line(exc)}") from exc
        except BaseException:
            conn.close()
            raise
        return conn

    def _migrate(self, now: float) -> None:
        """As the base class, without the statement timeout: building an index
        on a large ``jobs`` table may take minutes, and an upgrade cut off at
        30 s would roll back and be cut off again at every start. Lock waits
        stay bounded by ``lock_timeout``."""
        with self._tx("schema upgrade") as tx:
            tx.run("SET LOCAL statement_timeout = 0")
            ensure_schema(tx, self.dialect, self._label, now)

    @staticmethod
    def _use_schema(conn: psycopg.Connection[Row], schema: str) -> None:
        # Look before creating: CREATE SCHEMA IF NOT EXISTS still demands the
        # CREATE privilege, which a user of an existing schema may lack.
        found = conn.execute("SELECT 1 FROM pg_namespace WHERE nspname = %s", (schema,))
        if found.fetchone() is None:
            conn.execute(sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(sql.Identifier(schema)))
        conn.execute(sql.SQL("SET search_path TO {}").format(sql.Identifier(schema)))

    @contextmanager
    def _begin(self, write: bool) -> Iterator[_PgTx]:
        if self._closed:
            raise JobStoreError(f"{self._label}: the store is closed")
        if self._conn.closed:  # lost since the last call: reconnect, then carry on
            self._conn = self._connect()
        # Binary results: a 500 KB bytea read as hex text took 3.9 ms, binary 0.6 ms.
        with self._conn.transaction(), self._conn.cursor(binary=True) as cursor:
            yield _PgTx(cursor)

    def _close(self) -> None:
        self._closed = True
        self._conn.close()
