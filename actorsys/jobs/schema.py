"""Versioned schema of the SQL job stores, created and upgraded at open.

``schema_version`` has one row per applied migration; the schema's version
is the highest. Opening a store applies, in one transaction, every migration
above it, so a half-upgraded schema never exists. A schema newer than this
code (an older actorsys opened a database a newer one upgraded) is refused:
the old code cannot know what the new columns mean.

Migrations are written once, as templates whose ``{placeholders}`` name a
column role (``{id}``, ``{blob}``, ``{float}``, ``{bigint}``) that each
dialect fills with its own type. A statement the dialects cannot share is a
mapping from dialect name to its SQL (a dialect it does not name skips
it). Append new migrations; never edit one
that has shipped.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from actorsys.errors import JobStoreError
from actorsys.jobs.dialect import Dialect, Tx

Statement = str | Mapping[str, str]  # a template, or SQL per dialect name (absent: none)


@dataclass(frozen=True, slots=True)
class Migration:
    version: int
    description: str
    statements: tuple[Statement, ...]

    def render(self, dialect: Dialect) -> list[str]:
        chosen = (s if isinstance(s, str) else s.get(dialect.name) for s in self.statements)
        return [s.format_map(dialect.types) for s in chosen if s is not None]


_STATUS_CHECK = "status IN ('PENDING', 'RUNNING', 'DONE', 'FAILED')"

MIGRATIONS: tuple[Migration, ...] = (
    Migration(
        1,
        "jobs, payloads and the offset chain",
        (
            f"""CREATE TABLE jobs (
                id {{id}},
                consumer_group TEXT NOT NULL,
                topic TEXT NOT NULL,
                partition_id INTEGER NOT NULL,
                start_offset {{bigint}} NOT NULL,
                end_offset {{bigint}} NOT NULL,
                record_count INTEGER NOT NULL,
                payload_bytes {{bigint}} NOT NULL,
                status TEXT NOT NULL CHECK ({_STATUS_CHECK}),
                attempts INTEGER NOT NULL DEFAULT 0,
                created_at {{float}} NOT NULL,
                started_at {{float}},
                finished_at {{float}},
                next_attempt_at {{float}},
                last_error TEXT,
                worker TEXT,
                output_files TEXT NOT NULL DEFAULT '[]'
            )""",
            # Kept until the job is DONE; FAILED jobs keep it for replay.
            """CREATE TABLE job_payloads (
                job_id {bigint} PRIMARY KEY REFERENCES jobs (id) ON DELETE CASCADE,
                payload {blob} NOT NULL
            )""",
            # Payloads are transient (dropped when DONE): skip PostgreSQL's pglz
            # compression, which tripled the cost of storing a 500 KB batch.
            {"postgres": "ALTER TABLE job_payloads ALTER COLUMN payload SET STORAGE EXTERNAL"},
            # next_offset is NULL until the partition's first batch is stored.
            """CREATE TABLE partition_offsets (
                consumer_group TEXT NOT NULL,
                topic TEXT NOT NULL,
                partition_id INTEGER NOT NULL,
                next_offset {bigint},
                PRIMARY KEY (consumer_group, topic, partition_id)
            )""",
            # claim_next: the oldest PENDING job, in id order.
            "CREATE INDEX jobs_pending ON jobs (id) WHERE status = 'PENDING'",
            # next_due_at: the durable delay queue.
            "CREATE INDEX jobs_due ON jobs (next_attempt_at)"
            " WHERE status = 'PENDING' AND next_attempt_at IS NOT NULL",
            # list_jobs(status) newest first, count_by_status.
            "CREATE INDEX jobs_status ON jobs (status, id)",
            # purge_done_before.
            "CREATE INDEX jobs_done ON jobs (finished_at) WHERE status = 'DONE'",
        ),
    ),
    Migration(
        2,
        "job manager heartbeats, so any job manager can take back a dead one's jobs",
        (
            """CREATE TABLE job_managers (
                owner TEXT PRIMARY KEY,
                heartbeat_at {float} NOT NULL
            )""",
        ),
    ),
    Migration(
        3,
        "replays keep attempt numbers (tokens) unique: count attempts from a base",
        ("ALTER TABLE jobs ADD COLUMN replay_base INTEGER NOT NULL DEFAULT 0",),
    ),
    Migration(
        4,
        "one job per start offset: the database itself backs the offset chain",
        (
            # submit_batch already stores each offset in exactly one job; this
            # turns a bug there (or a hand-made INSERT) into an integrity error
            # instead of a second job writing the same files. A database that
            # already holds such twins fails this upgrade, naming the key.
            "CREATE UNIQUE INDEX jobs_interval"
            " ON jobs (consumer_group, topic, partition_id, start_offset)",
        ),
    ),
    Migration(
        5,
        "each job records where the offset chain stood before it (table commits in order)",
        # NULL for a partition's first job, and for jobs stored before this version.
        ("ALTER TABLE jobs ADD COLUMN chain_start {bigint}",),
    ),
    Migration(
        6,
        "compaction jobs: a job has a kind; one ingestion job per start offset",
        (
            "ALTER TABLE jobs ADD COLUMN kind TEXT NOT NULL DEFAULT 'ingest'",
            # A compaction job's event-time hour (epoch ms of its start).
            "ALTER TABLE jobs ADD COLUMN window_ms {bigint}",
            # The offset chain's guard holds for ingestion jobs; an hour may be
            # compacted several times (late records re-open it).
            "DROP INDEX jobs_interval",
            "CREATE UNIQUE INDEX jobs_interval"
            " ON jobs (consumer_group, topic, partition_id, start_offset) WHERE kind = 'ingest'",
            "CREATE INDEX jobs_windows ON jobs (window_ms) WHERE kind = 'compact'",
        ),
    ),
    Migration(
        7,
        "jobs are offset intervals: workers read their records from Kafka",
        (
            # Unfinished jobs of an older version keep their offsets, which is all
            # a worker needs now; their stored records are no longer read.
            "DROP TABLE job_payloads",
            "ALTER TABLE jobs DROP COLUMN payload_bytes",
        ),
    ),
)

LATEST_VERSION = MIGRATIONS[-1].version

_VERSION_TABLE = """CREATE TABLE IF NOT EXISTS schema_version (
    version INTEGER PRIMARY KEY,
    description TEXT NOT NULL,
    applied_at {float} NOT NULL
)"""


def ensure_schema(tx: Tx, dialect: Dialect, label: str, now: float) -> int:
    """Bring the schema to ``LATEST_VERSION`` inside ``tx``; returns the version
    found before. Raises ``JobStoreError`` if the schema is newer than the code."""
    if dialect.schema_lock:  # two processes opening a fresh database at once
        tx.one(dialect.schema_lock)
    tx.run(_VERSION_TABLE.format_map(dialect.types))
    row = tx.one("SELECT MAX(version) FROM schema_version")
    found = int(row[0]) if row and row[0] is not None else 0
    if found > LATEST_VERSION:
        raise JobStoreError(
            f"{label}: schema version {found} is newer than this actorsys supports"
            f" ({LATEST_VERSION}); upgrade actorsys to open it"
        )
    for migration in MIGRATIONS:
        if migration.version <= found:
            continue
        for statement in migration.render(dialect):
            tx.run(statement)
        tx.run(
            "INSERT INTO schema_version (version, description, applied_at) VALUES (?, ?, ?)",
            (migration.version, migration.description, now),
        )
    return found
