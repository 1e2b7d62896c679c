"""Committer: the one writer of the output tables (one actor, one process, on
the leader; each table has its own ``TableCommitter``).

Workers write data files; the JobManager passes each attempt's files here
(``CommitFiles``, naming the table); every ``tables.commit_interval_ms`` each
table publishes what is ready in ONE Delta commit that also records, per
(consumer group, topic, partition), the end offset it covers as an app
transaction. One process for the three tables, not one each: delta-rs and
pyarrow cost about 180 MB of resident memory per process that loads them. The logic
lives in ``CommitQueue`` (what may be published: each partition in offset
order from the table's txn version; duplicates; gaps) and ``DeltaTableStore``
(how: commits with no retries, so a concurrent writer makes ours fail and we
re-check, since delta-rs does not check txn versions itself).

Exactly once across crashes: an attempt whose offsets the table already holds
is never committed again (its files are deleted: they are its own, named per
attempt), and a job is DONE only when ``JobsCommitted`` says so.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

from thespian.actors import WakeupMessage

from actorsys import metrics
from actorsys.actors.base import ActorsysActor
from actorsys.errors import ActorsysError
from actorsys.logs import RateLimitedLog
from actorsys.messages import (
    CommitFiles,
    CommitRejected,
    CommitterStart,
    ComponentReady,
    JobsCommitted,
    ReplaceFiles,
    StartFailed,
    TableState,
    TableStateRequest,
)
from actorsys.roles import Role
from actorsys.status import TableStatus

log = logging.getLogger("actorsys.committer")

TICK_S = 0.2


class Committer(ActorsysActor):
    """Routes each message to its table's ``TableCommitter`` and ticks them."""

    ROLE = Role.COMMITTER

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._tables: dict[str, TableCommitter] = {}
        self._supervisor: Any = None

    def receiveMsg_CommitterStart(self, msg: CommitterStart, sender: Any) -> None:
        self._supervisor = sender
        for table in msg.tables:
            committer = TableCommitter(table, self.send)
            if (error := committer.open(msg.config)) is not None:
                self.send(sender, StartFailed(self.ROLE, error))
                return
            self._tables[table] = committer
        self.send(sender, ComponentReady(self.ROLE))
        self.wakeupAfter(timedelta(seconds=TICK_S))

    def receiveMsg_CommitFiles(self, msg: CommitFiles, sender: Any) -> None:
        if (table := self._tables.get(msg.table)) is not None:
            table.commit_files(msg, sender)
        # else not started: the JobManager sends it again when we are

    def receiveMsg_ReplaceFiles(self, msg: ReplaceFiles, sender: Any) -> None:
        if (table := self._tables.get(msg.table)) is not None:
            table.replace_files(msg, sender)

    def receiveMsg_TableStateRequest(self, msg: TableStateRequest, sender: Any) -> None:
        if (table := self._tables.get(msg.table)) is not None:
            table.table_state(sender)

    def receiveMsg_WakeupMessage(self, msg: WakeupMessage, sender: Any) -> None:
        if not self._tables:
            return
        if self.exit_if_orphaned():
            return
        for name, table in self._tables.items():
            table.tick()
            self.push_status(self._supervisor, table.status(), key=f"{self.ROLE}:{name}")
        self.wakeupAfter(timedelta(seconds=TICK_S))


class TableCommitter:
    """One table's commits: a plain object the Committer actor feeds; it sends
    its replies with ``send`` (the actor's)."""

    def __init__(self, table: str, send: Callable[[Any, Any], None]) -> None:
        self._table_name = table
        self.send = send
        self._store: Any = None  # DeltaTableStore (imported in this process only)
        self._queue: Any = None  # CommitQueue
        self._job_manager: Any = None
        self._known: set[tuple[str, str, int]] = set()
        # Replayed jobs queued in the chain, by job id: their commit records
        # their replay app id too, so that offering them again is a duplicate.
        self._replays: dict[int, str] = {}
        self._errors = RateLimitedLog(log)
        self.stats = {"commits": 0, "jobs_committed": 0, "duplicates": 0, "conflicts": 0}
        self._last_commit_s = 0.0
        self._vacuum_retention_s = 3_600.0
        self._vacuum_every_s = 600.0
        self._vacuumed_at = 0.0
        self._files: metrics.TableFiles | None = None  # with metrics on only
        # A plan whose commit raised (a full disk...): (plan, started) until the
        # table says whether it landed.
        self._unsettled: tuple[Any, float] | None = None

    def open(self, config: Any) -> str | None:
        """Open (or create) the table; why not, when it cannot be."""
        # deltalake starts a runtime of threads: import it here, in the process
        # that uses it, never in one that forks children later.
        from actorsys.tables.commit_queue import CommitQueue
        from actorsys.tables.delta import DeltaTableStore
        from actorsys.tables.layout import PARTITION_COLUMNS

        table, tables = self._table_name, config.tables
        try:
            self._store = DeltaTableStore(
                Path(config.output.dir) / table,
                _schema(table, config.output.metrics),
                PARTITION_COLUMNS,
            )
            self._store.ensure_created()
            # Data files no commit ever referenced: attempts that crashed or lost
            # the race. Old enough that no running attempt can still be writing them.
            for orphan in self._store.untracked_data_files(config.jobs.job_timeout_s + 60):
                orphan.unlink(missing_ok=True)
                log.info("removed %s: written by an attempt that was never committed", orphan)
        except (ActorsysError, OSError, ValueError) as exc:
            return f"cannot open table {table}: {exc}"
        self._queue = CommitQueue(tables.commit_interval_ms / 1000, tables.max_files_per_commit)
        metrics.table_opened(table, ("append", "replace") if table == "raw" else ("replace",))
        if metrics.enabled():
            self._files = metrics.TableFiles(table)
            self._table_files_changed(-1, ())  # a full listing, once
        self._vacuum_retention_s = tables.vacuum_retention_s
        self._vacuum_every_s = tables.vacuum_interval_s
        self._vacuumed_at = time.monotonic()
        return None

    # --- files in --------------------------------------------------------------------------

    def commit_files(self, msg: CommitFiles, sender: Any) -> None:
        from actorsys.tables.commit_queue import SkippedJob, WrittenJob
        from actorsys.tables.layout import DataFile

        self._job_manager = sender
        interval = msg.interval
        key = (msg.consumer_group, interval.topic, interval.partition)
        self._learn(key)
        if msg.failed:
            skipped = SkippedJob(msg.job_id, key, msg.chain_start, interval.start, interval.end)
            self._queue.skip(skipped, time.monotonic())
            return
        files = tuple(DataFile.from_json(f) for f in msg.files)
        job = WrittenJob(
            msg.job_id, msg.token, key, msg.chain_start, interval.start, interval.end, files
        )
        if msg.replay:
            from actorsys.tables.delta import replay_app_id

            # A FAILED job put back with `actorsys jobs retry`: its skip may be in
            # the chain already (its records went to the dead letters, none to
            # the table), so it is not a duplicate unless its replay app id is in.
            self._replays[msg.job_id] = replay_app_id(*key, interval.start)
            if self._chain_past(job):
                self._publish_replay(job)
                return
        self._queue.offer(job, time.monotonic())

    def _chain_past(self, job: Any) -> bool:
        from actorsys.tables.delta import app_id

        chain = self._store.txn_version(app_id(*job.key))
        return chain is not None and chain >= job.end

    def _publish_replay(self, job: Any) -> None:
        """A replayed job the chain is past: its rows go in a commit of their own,
        recorded under its replay app id (so once); if the app id is in the
        table already (published before a restart), its files go."""
        from actorsys.jobs.output_health import is_transient
        from actorsys.tables.delta import CommitConflict, OffsetsAlreadyCommitted

        replay = self._replays[job.job_id]
        for _attempt in range(3):  # a concurrent commit of this table is a conflict
            if self._store.txn_version(replay) is not None:
                self._drop([job])
                return
            try:
                version = self._store.commit_append(
                    job.files, {replay: job.end}, info={"actorsys.replay": job.job_id}
                )
            except (CommitConflict, OffsetsAlreadyCommitted):
                self._store.refresh()
                continue
            except Exception as exc:  # a full disk, an I/O error: did it land?
                self._errors.log(logging.WARNING, "replay", "table %s: replay of job %d not "
                                 "committed: %s", self._table_name, job.job_id, exc)  # fmt: skip
                self._store.refresh()
                if self._store.txn_version(replay) is None:
                    self._replays.pop(job.job_id, None)
                    reason = f"cannot commit: {exc}"
                    self.send(
                        self._job_manager,
                        CommitRejected(job.job_id, job.token, reason, is_transient(exc)),
                    )
                    return
                version = self._store.version
            self._replays.pop(job.job_id, None)
            log.info("table %s: replayed job %d published, offsets [%d, %d)",
                     self._table_name, job.job_id, job.start, job.end)  # fmt: skip
            self.stats["replays"] = self.stats.get("replays", 0) + 1
            self._reply([(job.job_id, job.token)], version)
            self._table_files_changed(version, job.files)
            return
        self._replays.pop(job.job_id, None)
        self.send(
            self._job_manager, CommitRejected(job.job_id, job.token, "the table kept changing")
        )

    def replace_files(self, msg: ReplaceFiles, sender: Any) -> None:
        """One compaction's commit, at once (compactions are rare, and readers
        should get the compacted hour soon)."""
        from actorsys.tables.delta import CommitConflict, StaleRemove
        from actorsys.tables.layout import DataFile

        self._job_manager = sender
        adds = [DataFile.from_json(f) for f in msg.files]
        for _attempt in range(3):  # a concurrent ingestion commit is the usual conflict
            removes = msg.removes
            if removes is None:  # an aggregate table: this hour's rows are replaced whole
                removes = tuple(sorted(self._store.active_paths(dict(msg.partition))))
            started = time.monotonic()
            try:
                version = self._store.commit_replace(
                    removes, adds, info={"actorsys.compaction": msg.job_id}
                )
            except CommitConflict:
                metrics.table_commit(self._table_name, "replace", "conflict")
                self.stats["conflicts"] += 1
                self._store.refresh()
                continue
            except StaleRemove as exc:
                # Another attempt compacted these files already: this one is stale.
                metrics.table_commit(self._table_name, "replace", "rejected")
                for data_file in adds:
                    (self._store.root / data_file.path).unlink(missing_ok=True)
                self.send(sender, CommitRejected(msg.job_id, msg.token, str(exc)))
                return
            except Exception as exc:  # a full disk, an I/O error: did it land?
                self._replace_failed(msg, adds, removes, exc, sender)
                return
            metrics.table_commit(
                self._table_name, "replace", "done", time.monotonic() - started, len(adds)
            )
            self.stats["compactions"] = self.stats.get("compactions", 0) + 1
            self.send(sender, JobsCommitted(self._table_name, ((msg.job_id, msg.token),), version))
            self._table_files_changed(version, adds, removes)
            return
        self.send(sender, CommitRejected(msg.job_id, msg.token, "the table kept changing"))

    def _replace_failed(
        self, msg: ReplaceFiles, adds: list[Any], removes: tuple[str, ...], exc: Exception,
        sender: Any,
    ) -> None:  # fmt: skip
        """A compaction's commit raised something else than a conflict (a full
        disk: ENOSPC writing the log). The table, read again, says whether it
        landed: then the attempt is committed. If not, the attempt fails (as a
        transient fault, when it is one: no attempt of the job's budget used)
        and its files go, as no commit references them. If the table cannot be
        read either, it fails all the same and its files stay for the start-up
        sweep: the retry compacts whatever the table then holds, so the hour's
        rows are in it once either way."""
        from actorsys.jobs.output_health import is_transient

        active: set[str] | None
        try:
            self._store.refresh()
            active = self._store.active_paths()
        except Exception:  # the outcome stays unknown: settled by the retry
            active = None
        if active is not None and all(f.path in active for f in adds) and not active & set(removes):
            version = self._store.version
            self.stats["compactions"] = self.stats.get("compactions", 0) + 1
            self.send(sender, JobsCommitted(self._table_name, ((msg.job_id, msg.token),), version))
            self._table_files_changed(version, adds, removes)
            return
        for data_file in adds if active is not None else ():
            if active is not None and data_file.path not in active:
                (self._store.root / data_file.path).unlink(missing_ok=True)
        self._errors.log(logging.WARNING, "replace", "table %s: compaction job %d not committed: "
                         "%s", self._table_name, msg.job_id, exc)  # fmt: skip
        reason = f"cannot commit: {exc}"
        self.send(sender, CommitRejected(msg.job_id, msg.token, reason, is_transient(exc)))

    def table_state(self, sender: Any) -> None:
        """Where event time stands and which hours still hold ingestion files,
        read from the table itself: what the JobManager's windows restart from."""
        import pyarrow as pa

        actions = pa.table(self._store.table.get_add_actions(flatten=True))
        watermarks: dict[tuple[str, int], int] = {}
        dirty: dict[tuple[str, int, int], int] = {}
        for row in actions.to_pylist():
            topic, partition, max_ts = (
                row.get("min._topic"),
                row.get("min._partition"),
                row.get("max.ts"),
            )
            if topic is None or partition is None or max_ts is None:
                continue
            key = (str(topic), int(partition))
            ts_ms = int(max_ts.timestamp() * 1000)
            watermarks[key] = max(watermarks.get(key, ts_ms), ts_ms)
            if Path(row["path"]).name.startswith("part-"):
                day, hour = row["partition.date"], int(row["partition.hour"])
                hour_ms = _hour_ms(day, hour)
                dirty[(*key, hour_ms)] = dirty.get((*key, hour_ms), 0) + int(row["num_records"])
        self.send(
            sender,
            TableState(
                tuple((t, p, ms) for (t, p), ms in watermarks.items()),
                tuple((t, p, h, n) for (t, p, h), n in dirty.items()),
            ),
        )

    def _learn(self, key: tuple[str, str, int]) -> None:
        """Tell the queue where the table stands for a partition it meets first."""
        from actorsys.tables.delta import app_id

        if key in self._known:
            return
        self._queue.known_version(key, self._store.txn_version(app_id(*key)))
        self._known.add(key)

    # --- commits ---------------------------------------------------------------------------

    def tick(self) -> None:
        self._drop_duplicates()
        if self._unsettled is not None:
            self._settle()
        elif self._queue.due(time.monotonic()):
            self._commit()
        if time.monotonic() - self._vacuumed_at >= self._vacuum_every_s:
            self._vacuum()

    def _drop_duplicates(self) -> None:
        """Attempts whose offsets the table already holds (an earlier attempt was
        committed, then the job ran again after a crash): their own files go."""
        duplicates = self._queue.duplicates()
        if not duplicates:
            return
        # A replay behind its own skip (both were queued) is past the chain: published
        # on its own, not dropped.
        replays = [j for j in duplicates if j.job_id in self._replays]
        self._drop([j for j in duplicates if j.job_id not in self._replays])
        for job in replays:
            self._publish_replay(job)

    def _drop(self, duplicates: list[Any]) -> None:
        """Attempts already in the table: their own files go, and they are done."""
        if not duplicates:
            return
        for job in duplicates:
            self._replays.pop(job.job_id, None)
            for data_file in job.files:
                with contextlib.suppress(FileNotFoundError):
                    (self._store.root / data_file.path).unlink()
        self.stats["duplicates"] += len(duplicates)
        self._reply([(j.job_id, j.token) for j in duplicates])

    def _commit(self) -> None:
        from actorsys.tables.delta import (
            CommitConflict,
            MissingDataFile,
            OffsetsAlreadyCommitted,
            app_id,
        )

        plan = self._queue.plan(time.monotonic())
        if plan is None:
            return
        txns = {app_id(*key): version for key, version in plan.txns.items()}
        txns.update(
            {self._replays[j.job_id]: j.end for j in plan.jobs if j.job_id in self._replays}
        )
        started = time.monotonic()
        try:
            version = self._store.commit_append(
                plan.files,
                txns,
                info={"actorsys.jobs": [j.job_id for j in plan.jobs]},
            )
        except (CommitConflict, OffsetsAlreadyCommitted) as exc:
            # Another writer committed meanwhile: re-read where the table stands.
            metrics.table_commit(self._table_name, "append", "conflict")
            self.stats["conflicts"] += 1
            self._queue.conflicted()
            self._errors.log(logging.WARNING, "conflict", "table %s: %s; re-checking",
                             self._table_name, exc)  # fmt: skip
            self._store.refresh()
            for key in self._known:
                self._queue.known_version(key, self._store.txn_version(app_id(*key)))
            return
        except MissingDataFile as exc:
            metrics.table_commit(self._table_name, "append", "rejected")
            self._reject_missing(plan, str(exc))
            return
        except Exception as exc:  # a full disk, an I/O error: the outcome is unknown
            self._errors.log(logging.WARNING, "commit", "table %s: commit failed: %s",
                             self._table_name, exc)  # fmt: skip
            self._unsettled = (plan, started)
            self._settle()
            return
        self._committed(plan, version, started)

    def _settle(self) -> None:
        """After a commit that raised: the table's txn versions say whether the
        plan landed (then it is committed, as if the commit had returned) or
        not (then as after a conflict: its jobs are planned again). Nothing else
        is committed until the table can be read: a plan made meanwhile could
        take the landed jobs for duplicates, and delete files the table holds."""
        from actorsys.tables.delta import app_id

        assert self._unsettled is not None
        plan, started = self._unsettled
        try:
            version = self._store.refresh()
            landed = bool(plan.txns) and all(
                self._store.txn_version(app_id(*key)) == end for key, end in plan.txns.items()
            )
        except Exception as exc:  # cannot read it now: try again next tick
            self._errors.log(logging.WARNING, "settle", "table %s: cannot read it after a "
                             "failed commit: %s", self._table_name, exc)  # fmt: skip
            return
        self._unsettled = None
        if landed:
            self._committed(plan, version, started)
            return
        self._queue.conflicted()
        for key in self._known:
            self._queue.known_version(key, self._store.txn_version(app_id(*key)))

    def _committed(self, plan: Any, version: int, started: float) -> None:
        """The commit of ``plan`` made ``version``: its jobs are done."""
        self._queue.committed(plan, started)
        for job in plan.jobs:
            self._replays.pop(job.job_id, None)
        self._last_commit_s = time.monotonic() - started
        metrics.table_commit(
            self._table_name, "append", "done", self._last_commit_s, len(plan.files)
        )
        self.stats["commits"] += 1
        self.stats["jobs_committed"] += len(plan.jobs)
        self._reply([(j.job_id, j.token) for j in plan.jobs], version)
        self._table_files_changed(version, plan.files)

    def _table_files_changed(self, version: int, added: Any, removed: tuple[str, ...] = ()) -> None:
        """Our commit made ``version``: the table gauges follow it, from the
        files it added and removed, or from a listing of the snapshot held when
        the table moved otherwise too (another writer, a vacuum's commits)."""
        if self._files is None:
            return
        if not self._files.changed(version, ((f.path, f.size) for f in added), removed):
            import pyarrow as pa

            try:
                actions = pa.table(self._store.table.get_add_actions(flatten=True))
                paths = actions.column("path").to_pylist()
                sizes = actions.column("size_bytes").to_pylist()
                self._files.reset(self._store.version, zip(paths, sizes, strict=True))
            except Exception as exc:  # a metric never stops the commits
                self._errors.log(logging.WARNING, "table-files", "table %s: cannot list its "
                                 "files for the metrics: %s", self._table_name, exc)  # fmt: skip
                return
        self._files.publish()

    def _vacuum(self) -> None:
        """Delete files compactions replaced, once no recent reader needs them."""
        self._vacuumed_at = time.monotonic()
        try:
            deleted = self._store.vacuum(self._vacuum_retention_s)
        except (ActorsysError, OSError, ValueError) as exc:
            self._errors.log(logging.WARNING, "vacuum", "table %s: vacuum: %s",
                             self._table_name, exc)  # fmt: skip
            return
        if deleted:
            self.stats["vacuumed_files"] = self.stats.get("vacuumed_files", 0) + len(deleted)
            log.info("table %s: vacuum deleted %d replaced file(s)", self._table_name, len(deleted))

    def _reject_missing(self, plan: Any, reason: str) -> None:
        """A file vanished (deleted by hand, a full vacuum): its attempts run again."""
        from actorsys.tables.delta import app_id

        for job in plan.jobs:
            if any(not (self._store.root / f.path).exists() for f in job.files):
                for dropped in self._queue.forget(job.key):
                    if self._job_manager is not None:
                        self.send(
                            self._job_manager, CommitRejected(dropped.job_id, dropped.token, reason)
                        )
                self._queue.known_version(job.key, self._store.txn_version(app_id(*job.key)))

    def _reply(self, jobs: list[tuple[int, int]], version: int | None = None) -> None:
        if self._job_manager is not None and jobs:
            current = self._store.version if version is None else version
            self.send(self._job_manager, JobsCommitted(self._table_name, tuple(jobs), current))

    def status(self) -> TableStatus:
        return TableStatus(
            self._table_name,
            version=self._store.version,
            queued_jobs=len(self._queue),
            waiting_for_predecessor=sum(self._queue.waiting().values()),
            last_commit_s=round(self._last_commit_s, 4),
            counters=dict(self.stats),
        )


def _schema(table: str, metrics: tuple[str, ...]) -> Any:
    """The Delta schema of one of the output tables."""
    from actorsys.tables import compaction
    from actorsys.tables.layout import raw_table_schema

    if table == "raw":
        return raw_table_schema(metrics)
    if table == "agg":
        return compaction.agg_table_schema(metrics)
    return compaction.agg_hourly_table_schema(metrics)


def _hour_ms(day: Any, hour: int) -> int:
    from datetime import UTC, datetime
    from datetime import time as dtime

    moment = datetime.combine(day, dtime(hour=hour), tzinfo=UTC)
    return int(moment.timestamp() * 1000)
