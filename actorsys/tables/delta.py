"""One Delta table as its committer uses it: create, check offsets, commit, clean up.

Workers write data files into the table directory (:mod:`actorsys.tables.layout`);
a single writer per table publishes them, many files per Delta commit,
together with the Kafka offsets they cover as app transactions (``txn``
actions): app id per (consumer group, topic, partition), version = the end
offset covered, as kafka-delta-ingest does. A restarted committer reads the
versions back to know which offsets are in the table already.

Exactly-once rests on one compare-and-swap. delta-rs does not compare txn
versions itself (delta-rs#2580) and, left to retry, it would rebase a commit
onto whatever another writer committed meanwhile. So every commit here is
made with ``max_commit_retries=0``: it lands at exactly the snapshot version
the caller's checks were made against plus one, or it fails with
:class:`CommitConflict` when anything at all was committed since. The
caller's loop is::

    store.refresh()
    while True:
        ...check store.txn_version(...) against the offsets to publish...
        try:
            store.commit_append(files, txns)
            break
        except CommitConflict:
            store.refresh()   # another writer won: check again

Timings measured with deltalake 1.6.6 on local disk: ``txn_version`` ~1 ms
(cached here per snapshot), ``refresh`` ~7 ms, a commit ~10 ms including a
checkpoint every 100 commits.
"""

from __future__ import annotations

import json
import math
import os
import re
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path
from types import MappingProxyType
from typing import Any
from urllib.parse import unquote

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from deltalake import DeltaTable
from deltalake import Schema as DeltaSchema
from deltalake.exceptions import CommitFailedError, DeltaError
from deltalake.transaction import AddAction, CommitProperties, RemoveAction, Transaction

from actorsys.errors import ActorsysError
from actorsys.tables.layout import DataFile

# Defaults for a table committed about once a second: without them the log
# keeps 30 days of commit files and removed files linger for a week.
DEFAULT_CONFIGURATION: Mapping[str, str] = MappingProxyType(
    {
        # Commit JSON files older than this are deleted at checkpoints; time
        # travel (and the txn history) reaches back this far only.
        "delta.logRetentionDuration": "interval 1 days",
        # Readers replay at most 100 JSON commits on top of a checkpoint.
        "delta.checkpointInterval": "100",
        # How long a removed (replaced) file's tombstone is kept. It must
        # outlast vacuum's retention by more than the vacuum interval: delta-rs
        # drops expired tombstones at the next checkpoint, and its vacuum
        # finds removed files only through tombstones. Two hours suits
        # vacuum(3600) run at least hourly.
        "delta.deletedFileRetentionDuration": "interval 2 hours",
    }
)

LOG_DIR = "_delta_log"
_DELETED_RETENTION_KEY = "delta.deletedFileRetentionDuration"
_DELTA_DEFAULT_DELETED_RETENTION_S = 7 * 86_400.0
_INTERVAL = re.compile(r"(?:interval\s+)?(\d+)\s+(second|minute|hour|day|week)s?", re.IGNORECASE)
_UNIT_S = {"second": 1, "minute": 60, "hour": 3600, "day": 86_400, "week": 604_800}
_COMMIT_FILE = re.compile(r"\d{20}\.json")
_CHECKPOINT_FILE = re.compile(r"\d{20}\.checkpoint(?:\.\d+\.\d+|\.[0-9a-fA-F-]+)?\.parquet")


class CommitConflict(ActorsysError):
    """Another writer committed since this handle's snapshot: nothing was
    committed. Refresh, check the txn versions (or removes) again, retry."""


class StaleRemove(ActorsysError):
    """A file to remove is no longer active in the table: nothing was committed.

    delta-rs accepts a remove of an inactive file silently, so a replace
    built on an outdated listing would drop nothing and add duplicates.
    """

    def __init__(self, paths: Sequence[str]) -> None:
        super().__init__(f"{len(paths)} file(s) to remove are not active: {', '.join(paths[:5])}")
        self.paths = tuple(paths)


class OffsetsAlreadyCommitted(ActorsysError):
    """A txn version is not above the one the table holds: publishing would
    duplicate rows. Nothing was committed; drop the files instead."""

    def __init__(self, app_id: str, committed: int, requested: int) -> None:
        super().__init__(
            f"{app_id}: the table holds offsets up to {committed}, refusing to commit {requested}"
        )
        self.app_id = app_id
        self.committed = committed
        self.requested = requested


class MissingDataFile(ActorsysError):
    """A file to add is absent or not the size its description says: committing
    it would break every reader of the table. Nothing was committed."""


class TableMismatch(ActorsysError):
    """The table at the root exists with another schema or partitioning."""


def replay_app_id(group: str, topic: str, partition: int, start: int) -> str:
    """The Delta app id recording that the replay of the job starting at
    ``start`` (a FAILED job put back with `actorsys jobs retry`) was published:
    ``actorsys-replay:<group>:<topic>:<partition>:<start>``, its version the
    job's end offset. Never a chain's app id: those start ``actorsys:``."""
    return f"actorsys-replay:{app_id(group, topic, partition).removeprefix('actorsys:')}:{start}"


def app_id(group: str, topic: str, partition: int) -> str:
    """The Delta app id under which a (consumer group, topic, partition)'s
    committed end offset is recorded: ``actorsys:<group>:<topic>:<partition>``.

    Unambiguous although a group id may contain ``:``, as a topic name cannot.
    """
    if not topic or ":" in topic or partition < 0:
        raise ValueError(f"bad topic partition {topic!r}/{partition}")
    return f"actorsys:{group}:{topic}:{partition}"


@dataclass(frozen=True, slots=True)
class _ActiveFile:
    size: int
    partition_values: tuple[tuple[str, str | None], ...]


class DeltaTableStore:
    """A Delta table at ``root`` with a fixed schema and partitioning.

    Holds one snapshot (a table version) at a time; only :meth:`refresh`
    and this object's own commits move it forward, so checks and the commit
    that relies on them see the same table. Not thread-safe: one committer
    thread owns it.
    """

    def __init__(
        self,
        root: Path,
        schema: pa.Schema,
        partition_by: Sequence[str],
        configuration: Mapping[str, str] | None = None,
    ) -> None:
        missing = [name for name in partition_by if name not in schema.names]
        if missing:
            raise ValueError(f"partition columns {missing} are not in the schema")
        self._root = Path(root)
        self._schema = schema
        self._partition_by = list(partition_by)
        self._configuration = {**DEFAULT_CONFIGURATION, **(configuration or {})}
        self._table: DeltaTable | None = None
        self._cached_version = -1
        self._txns: dict[str, int | None] = {}
        self._active: dict[str, _ActiveFile] | None = None

    @property
    def root(self) -> Path:
        return self._root

    @property
    def version(self) -> int:
        """The version of the snapshot held (no refresh)."""
        return self._delta().version()

    @property
    def table(self) -> DeltaTable:
        """The underlying handle, for reading at the held snapshot. Committing
        through it would bypass the checks here: don't."""
        return self._delta()

    # --- creation and snapshots ----------------------------------------------------------

    def ensure_created(self) -> int:
        """Create the table (empty, with the schema, partitioning and
        configuration) unless it exists; return the snapshot's version.

        Idempotent, and safe when several processes race: exactly one create
        commits version 0, the others fail (no retries) or find the table,
        and all open the winner's table. An existing table must have this
        schema and partitioning (``TableMismatch``): delta-rs's
        ``mode="ignore"`` would accept any.
        """
        if not DeltaTable.is_deltatable(str(self._root)):
            self._root.mkdir(parents=True, exist_ok=True)
            try:
                DeltaTable.create(
                    self._root,
                    self._schema,
                    mode="ignore",
                    partition_by=self._partition_by,
                    configuration=self._configuration,
                    # Left to retry, a creator that lost the race rebases its
                    # CREATE TABLE onto the winner's as version 1: a second
                    # metaData action, with a new table id (and its own schema).
                    commit_properties=CommitProperties(max_commit_retries=0),
                )
            except DeltaError:
                # Racing creators: one wins version 0, the others fail here.
                if not DeltaTable.is_deltatable(str(self._root)):
                    raise
        self._table = self._open()
        return self._sync()

    def refresh(self) -> int:
        """Move to the latest committed version and return it."""
        self._delta().update_incremental()
        return self._sync()

    def txn_version(self, app_id: str) -> int | None:
        """The end offset recorded for ``app_id`` at the held snapshot, or None."""
        self._sync()
        if app_id not in self._txns:
            self._txns[app_id] = self._delta().transaction_version(app_id)
        return self._txns[app_id]

    def active_paths(self, partition_values: Mapping[str, str] | None = None) -> set[str]:
        """Relative paths of the files in the held snapshot, optionally only
        those whose partition values (Delta string forms) equal the given ones."""
        wanted = dict(partition_values or {})
        unknown = sorted(set(wanted) - set(self._partition_by))
        if unknown:
            raise ValueError(f"{unknown} are not partition columns of {self._root}")
        return {
            path
            for path, active in self._active_files().items()
            if all(dict(active.partition_values).get(k) == v for k, v in wanted.items())
        }

    # --- commits -------------------------------------------------------------------------

    def commit_append(
        self,
        files: Sequence[DataFile],
        txns: Mapping[str, int],
        *,
        info: Mapping[str, Any] | None = None,
    ) -> int:
        """Publish ``files`` and record ``txns`` (app id -> end offset) in one
        commit on top of the held snapshot; return the new version.

        The caller checks the txn versions against the offsets the files
        cover first; this re-checks that every version rises above the held
        one (``OffsetsAlreadyCommitted``) and that every file is on disk as
        described (``MissingDataFile``). ``CommitConflict`` if anything was
        committed since the snapshot. ``files`` may be empty, to advance
        offsets whose records were all rejected. ``info`` goes into the
        commit's ``commitInfo`` (JSON-serialisable values).

        Any other exception leaves the outcome unknown (the commit may have
        landed just before it): refresh and read the txn versions to learn.
        """
        if not files and not txns:
            raise ValueError("nothing to commit: no files and no offsets")
        read_version = self._sync()
        for app, requested in txns.items():
            committed = self.txn_version(app)
            if committed is not None and requested <= committed:
                raise OffsetsAlreadyCommitted(app, committed, requested)
        self._check_on_disk(files)
        actions: list[AddAction | RemoveAction] = [data_file.add_action() for data_file in files]
        self._commit(actions, txns, info)
        return read_version + 1

    def commit_replace(
        self,
        removes: Sequence[str],
        adds: Sequence[DataFile],
        *,
        info: Mapping[str, Any] | None = None,
        data_change: bool = True,
    ) -> int:
        """Atomically remove the active files ``removes`` (relative paths) and
        add ``adds``, on top of the latest version; return the new version.

        Readers see either every old file or every new one, never both. This
        refreshes first, then refuses (``StaleRemove``) when any file to
        remove is no longer active: delta-rs would accept it silently and the
        replacement rows would duplicate whatever replaced that file before.
        ``CommitConflict`` if another commit lands between the refresh and
        this commit: call again, which re-checks. ``data_change=False``
        marks a pure rearrangement (compaction: the same rows in fewer files)
        so that streaming readers skip it.
        """
        if not removes and not adds:
            raise ValueError("nothing to commit: no removes and no adds")
        both = sorted(set(removes) & {data_file.path for data_file in adds})
        if both:
            raise ValueError(f"files both removed and added: {both}")
        read_version = self.refresh()
        active = self._active_files()
        stale = [path for path in removes if path not in active]
        if stale:
            raise StaleRemove(stale)
        self._check_on_disk(adds)
        now_ms = int(time.time() * 1000)
        actions: list[AddAction | RemoveAction] = [
            RemoveAction(
                path=path,
                data_change=data_change,
                deletion_timestamp=now_ms,
                size=active[path].size,
                partition_values=dict(active[path].partition_values),
            )
            for path in dict.fromkeys(removes)
        ]
        actions += [data_file.add_action(data_change=data_change) for data_file in adds]
        self._commit(actions, {}, info)
        return read_version + 1

    def _commit(
        self,
        actions: list[AddAction | RemoveAction],
        txns: Mapping[str, int],
        info: Mapping[str, Any] | None,
    ) -> None:
        """One commit with no retries (the compare-and-swap), then refresh:
        delta-rs does not advance the handle past its own commit."""
        properties = CommitProperties(
            custom_metadata=dict(info) if info else None,
            max_commit_retries=0,
            app_transactions=[Transaction(app, version) for app, version in txns.items()] or None,
        )
        try:
            self._delta().create_write_transaction(
                actions,
                mode="append",
                schema=self._schema,
                partition_by=self._partition_by,
                commit_properties=properties,
            )
        except CommitFailedError as exc:
            raise CommitConflict(
                f"{self._root}: version {self._cached_version} is no longer the latest: {exc}"
            ) from exc
        self.refresh()

    def _check_on_disk(self, files: Iterable[DataFile]) -> None:
        for data_file in files:
            try:
                size = (self._root / data_file.path).stat().st_size
            except FileNotFoundError:
                raise MissingDataFile(f"{self._root}/{data_file.path} does not exist") from None
            if size != data_file.size:
                raise MissingDataFile(
                    f"{self._root}/{data_file.path} has {size} bytes, expected {data_file.size}"
                )

    # --- clean-up ------------------------------------------------------------------------

    def vacuum(self, retention_s: float) -> list[str]:
        """Delete the files removed from the table more than ``retention_s``
        ago (delta-rs counts whole hours: rounded up, never sooner); return
        their relative paths.

        Only removed files: delta-rs's non-full vacuum leaves untracked
        files alone (see :meth:`untracked_data_files`), and it finds removed
        files through their tombstones only, which the next checkpoint drops
        once older than ``delta.deletedFileRetentionDuration``. A removed
        file that no vacuum saw in between stays on disk until its commit
        leaves the log (``delta.logRetentionDuration``) and
        :meth:`untracked_data_files` lists it. So run this more often than
        that duration minus ``retention_s``. A retention at or above the
        table's duration is refused (``ValueError``): the tombstones it needs
        would be gone at the next checkpoint.

        A vacuum that deletes something writes two commits (VACUUM START and
        END), which a committer on another handle meets as one
        ``CommitConflict``; when nothing is due (a dry run checks first) it
        commits nothing. Readers of a snapshot older than the retention may
        lose files they still need.
        """
        if retention_s < 0:
            raise ValueError(f"retention_s must not be negative, got {retention_s}")
        hours = math.ceil(retention_s / 3600)
        table = self._delta()
        kept_s = _interval_s(table.metadata().configuration.get(_DELETED_RETENTION_KEY))
        if kept_s is not None and hours * 3600 >= kept_s:
            raise ValueError(
                f"vacuum retention of {hours} h is not below the table's {_DELETED_RETENTION_KEY} "
                f"({kept_s:.0f} s): tombstones would expire before vacuum could use them"
            )
        # Tombstones outlive their files until they expire, and delta-rs
        # lists (and "deletes") them on every run: keep only files still there.
        due = {self._relative(path) for path in self._vacuum(table, hours, dry_run=True)}
        gone = {path for path in due if not (self._root / path).exists()}
        if not due - gone:
            return []
        deleted = {self._relative(path) for path in self._vacuum(table, hours, dry_run=False)}
        self.refresh()
        return sorted(deleted - gone)

    @staticmethod
    def _vacuum(table: DeltaTable, hours: int, *, dry_run: bool) -> list[str]:
        return table.vacuum(
            retention_hours=hours,
            dry_run=dry_run,
            enforce_retention_duration=False,
            full=False,
        )

    def untracked_data_files(self, older_than_s: float) -> list[Path]:
        """Data files under the root that no retained snapshot references and
        that were last modified more than ``older_than_s`` ago: orphans of
        attempts whose files were never committed (and ``.tmp-`` leftovers of
        killed writers). Returns absolute paths; deletes nothing.

        "Referenced" means active now, or named by any add or remove action
        still in the log (so files of replaced versions, which readers of
        older snapshots may need, are left to :meth:`vacuum`). ``_delta_log``
        and other ``_``/``.``-prefixed directories are never listed.

        A file listed here might still be committed by a writer that is slow
        to commit: ``older_than_s`` must exceed the longest time a written
        file can wait for its commit, or the caller must be the table's only
        committer calling this between its own commits.
        """
        cutoff = time.time() - older_than_s
        # Files first, log second: a file committed before the log is read is
        # then seen as referenced.
        candidates = self._data_files_older_than(cutoff)
        if not candidates:
            return []
        self.refresh()
        referenced = set(self._active_files()) | _log_references(self._root / LOG_DIR)
        return sorted(self._root / path for path in candidates if path not in referenced)

    def _data_files_older_than(self, cutoff: float) -> list[str]:
        found = []
        for directory, subdirs, names in os.walk(self._root):
            # Hidden and Delta-internal directories (_delta_log, _change_data, ...).
            subdirs[:] = [name for name in subdirs if not name.startswith(("_", "."))]
            for name in names:
                if not (name.endswith(".parquet") or name.startswith(".tmp-")):
                    continue
                path = Path(directory, name)
                try:
                    status = path.lstat()
                except FileNotFoundError:
                    continue
                if path.is_symlink() or status.st_mtime >= cutoff:
                    continue
                found.append(path.relative_to(self._root).as_posix())
        return found

    # --- internals -----------------------------------------------------------------------

    def _delta(self) -> DeltaTable:
        if self._table is None:
            self._table = self._open()
        return self._table

    def _open(self) -> DeltaTable:
        table = DeltaTable(self._root)
        expected = DeltaSchema.from_arrow(self._schema)
        partitions = list(table.metadata().partition_columns)
        if table.schema() != expected or partitions != self._partition_by:
            raise TableMismatch(
                f"{self._root}: the table's schema {table.schema().to_arrow()} partitioned by "
                f"{partitions} differs from the expected {self._schema} partitioned by "
                f"{self._partition_by}; changing an existing table's columns is not supported"
            )
        return table

    def _sync(self) -> int:
        """Drop per-snapshot caches when the handle's version moved."""
        version = self._delta().version()
        if version != self._cached_version:
            self._cached_version = version
            self._txns.clear()
            self._active = None
        return version

    def _active_files(self) -> dict[str, _ActiveFile]:
        self._sync()
        if self._active is None:
            self._active = self._load_active_files()
        return self._active

    def _load_active_files(self) -> dict[str, _ActiveFile]:
        actions = pa.table(self._delta().get_add_actions(flatten=True))
        count = actions.num_rows
        columns = {
            name: (
                actions.column(f"partition.{name}").to_pylist()
                if f"partition.{name}" in actions.column_names
                else [None] * count
            )
            for name in self._partition_by
        }
        paths = actions.column("path").to_pylist()
        sizes = actions.column("size_bytes").to_pylist()
        return {
            path: _ActiveFile(
                size=size,
                partition_values=tuple(
                    (name, _partition_string(values[row])) for name, values in columns.items()
                ),
            )
            for row, (path, size) in enumerate(zip(paths, sizes, strict=True))
        }

    def _relative(self, path: str) -> str:
        """A path as vacuum reports it (relative, or absolute on a second
        run), relative to the root."""
        if not os.path.isabs(path):
            return path
        for root in (self._root, self._root.resolve()):
            try:
                return Path(path).relative_to(root).as_posix()
            except ValueError:
                continue
        return path


def _interval_s(text: str | None) -> float | None:
    """Seconds in a Delta interval such as ``interval 2 hours``; Delta's
    default (a week) when unset, None when unreadable (no check then)."""
    if text is None:
        return _DELTA_DEFAULT_DELETED_RETENTION_S
    match = _INTERVAL.fullmatch(text.strip())
    if match is None:
        return None
    return float(int(match.group(1)) * _UNIT_S[match.group(2).lower()])


def _partition_string(value: Any) -> str | None:
    """A typed partition value back in Delta's string form."""
    if value is None:
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, datetime):
        naive = value.astimezone(UTC).replace(tzinfo=None) if value.tzinfo else value
        return naive.isoformat(sep=" ", timespec="microseconds")
    if isinstance(value, date):
        return value.isoformat()
    return str(value)


def _log_references(log_dir: Path) -> set[str]:
    """Every data file path named by an add, remove or cdc action in the
    commits and checkpoints still in ``log_dir`` (decoded: log paths are
    URL-encoded)."""
    referenced: set[str] = set()
    for entry in os.scandir(log_dir):
        if _COMMIT_FILE.fullmatch(entry.name):
            referenced |= _commit_references(Path(entry.path))
        elif _CHECKPOINT_FILE.fullmatch(entry.name):
            referenced |= _checkpoint_references(Path(entry.path))
    sidecars = log_dir / "_sidecars"
    if sidecars.is_dir():
        for entry in os.scandir(sidecars):
            if entry.name.endswith(".parquet"):
                referenced |= _checkpoint_references(Path(entry.path))
    return referenced


def _commit_references(path: Path) -> set[str]:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return set()  # cleaned up meanwhile: only after a checkpoint took it over
    referenced = set()
    for line in text.splitlines():
        if not line.strip():
            continue
        action = json.loads(line)
        for kind in ("add", "remove", "cdc"):
            if kind in action:
                referenced.add(unquote(action[kind]["path"]))
    return referenced


def _checkpoint_references(path: Path) -> set[str]:
    try:
        parquet = pq.ParquetFile(path)
    except FileNotFoundError:
        return set()
    kinds = [kind for kind in ("add", "remove") if kind in parquet.schema_arrow.names]
    if not kinds:
        return set()
    table = parquet.read(columns=[f"{kind}.path" for kind in kinds])
    referenced = set()
    for kind in kinds:
        column = table.column(kind)
        present = column.filter(pc.is_valid(column))  # null structs: other action kinds
        for value in pc.struct_field(present, "path").to_pylist():
            if value:
                referenced.add(unquote(value))
    return referenced
