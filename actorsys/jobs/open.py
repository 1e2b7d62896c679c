"""Open a job store from its URL (the ``job_store.url`` setting).

SQLite, one host (the default)::

    sqlite:///data/jobs.db               relative to the working directory
    sqlite:////var/lib/actorsys/jobs.db  absolute (four slashes, as in SQLAlchemy)

  Missing parent directories are created. Query parameters:

  - ``synchronous=FULL|NORMAL|EXTRA`` (default FULL). NORMAL in WAL mode
    survives a process crash but may lose the last commits on power loss,
    which would un-persist batches already ACKed; keep FULL unless the disk
    is battery-backed.
  - ``busy_timeout_ms=N`` (default 5000): how long a write waits for
    another process (the CLI) holding the write lock.

PostgreSQL, several hosts::

    postgresql://user:password@host:5432/dbname?sslmode=require
    postgres://...                        the same

  Every libpq parameter passes through (``sslmode``, ``connect_timeout``,
  ``application_name``, ``options=-csearch_path%3Dname`` ...). One is ours:

  - ``schema=NAME``: keep the tables in schema NAME (created if missing)
    instead of the search_path's first schema. Isolates tests or several
    pipelines sharing one database.

A malformed URL raises ``ConfigError``, an unreachable store ``JobStoreError``;
both with one line that names the URL without its password. The URL may be
a :class:`~actorsys.secrets.Secret` (``[jobs] store`` with a password is
one): it is revealed here, for the driver only.
"""

from __future__ import annotations

from pathlib import Path
from urllib.parse import parse_qsl, quote, urlencode, urlsplit, urlunsplit

from actorsys.errors import ConfigError, JobStoreError
from actorsys.jobs.store import JobStore
from actorsys.secrets import Secret, redact_url, reveal

_SQLITE_PARAMS = frozenset({"synchronous", "busy_timeout_ms"})
_POSTGRES_SCHEMES = frozenset({"postgresql", "postgres"})


def open_job_store(url: str | Secret, create: bool = True) -> JobStore:
    """Open (creating or upgrading its schema if needed) the store at ``url``.

    With ``create=False`` a SQLite file that does not exist is an error rather
    than a new, empty store (inspection commands must not invent one)."""
    plain = reveal(url)
    scheme = urlsplit(plain).scheme.lower()
    if scheme == "sqlite":
        return _open_sqlite(plain, create)
    if scheme in _POSTGRES_SCHEMES:
        return _open_postgres(plain)
    raise ConfigError(
        f"job store URL {redact_url(plain)!r}: unsupported scheme {scheme or '(none)'!r};"
        " expected sqlite:///path.db or postgresql://user@host/dbname"
    )


def _query(url: str, raw_query: str) -> dict[str, str]:
    try:
        pairs = parse_qsl(raw_query, keep_blank_values=True, strict_parsing=bool(raw_query))
    except ValueError as exc:
        raise ConfigError(
            f"job store URL {redact_url(url)!r}: bad query string: {redact_url(str(exc))}"
        ) from exc
    params: dict[str, str] = {}
    for name, value in pairs:
        if name in params:
            raise ConfigError(f"job store URL {redact_url(url)!r}: {name} is given twice")
        params[name] = value
    return params


def _open_sqlite(url: str, create: bool = True) -> JobStore:
    from actorsys.jobs.sqlite import DEFAULT_BUSY_TIMEOUT_MS, SqliteJobStore

    parts = urlsplit(url)
    if parts.netloc:
        raise ConfigError(
            f"job store URL {redact_url(url)!r}: a SQLite URL has no host; write sqlite:///relative.db"
            " or sqlite:////absolute/path.db"
        )
    # urlsplit keeps the slash after the (empty) host: strip exactly that one.
    path = parts.path[1:] if parts.path.startswith("/") else parts.path
    if not path or path.endswith("/"):
        raise ConfigError(f"job store URL {redact_url(url)!r}: no database file named")
    params = _query(url, parts.query)
    unknown = sorted(set(params) - _SQLITE_PARAMS)
    if unknown:
        raise ConfigError(
            f"job store URL {redact_url(url)!r}: unknown parameter {unknown[0]!r}"
            f" (SQLite takes {', '.join(sorted(_SQLITE_PARAMS))})"
        )
    try:
        busy_timeout_ms = int(params.get("busy_timeout_ms", DEFAULT_BUSY_TIMEOUT_MS))
    except ValueError as exc:
        raise ConfigError(
            f"job store URL {redact_url(url)!r}: busy_timeout_ms must be an integer"
        ) from exc
    db_file = Path(path)
    if not create and not db_file.exists():
        raise JobStoreError(f"job store {redact_url(url)!r}: {db_file} does not exist")
    try:
        db_file.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise JobStoreError(
            f"job store URL {redact_url(url)!r}: cannot create {db_file.parent}:"
            f" {exc.strerror or exc}"
        ) from exc
    return SqliteJobStore(
        db_file,
        synchronous=params.get("synchronous", "FULL"),
        busy_timeout_ms=busy_timeout_ms,
    )


def _open_postgres(url: str) -> JobStore:
    from actorsys.jobs.postgres import PostgresJobStore

    parts = urlsplit(url)
    params = _query(url, parts.query)
    schema = params.pop("schema", None)
    if schema is not None and not schema:
        raise ConfigError(f"job store URL {redact_url(url)!r}: schema= needs a name")
    # libpq must not see our own parameter; it rejects names it does not know.
    # quote, not quote_plus: libpq reads "+" literally (options=-c%20x=1 must stay a space).
    libpq_url = urlunsplit(parts._replace(query=urlencode(params, quote_via=quote)))
    return PostgresJobStore(libpq_url, schema=schema)
