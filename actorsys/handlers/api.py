"""The job handler interface.

A handler turns one job (a batch of Kafka records covering the offset
interval ``[start, end)`` of one partition) into output files. Configure it
as ``handler = "package.module:factory"``; ``factory(settings)`` is called
once per worker process and returns an object with a ``handle`` method.

Contract, which every handler must keep for actorsys's promise to hold:

* **Idempotent.** A job may run more than once (a worker dies, a lease
  expires). Name every output file from ``job.topic``, ``job.partition``,
  ``job.start`` and ``job.end`` only, and write it atomically, so a rerun
  rewrites the same files. Never name files from the wall clock.
* **Bad records are not failures.** Give a record you cannot read to
  ``dead_letters.reject(record, reason, detail)`` and carry on; it reaches
  the dead-letter topic with its provenance in headers.
* **Raise to fail the attempt.** An exception fails this attempt of the
  job; the JobManager retries it with backoff, up to ``max_attempts``.
* **Blocking is fine.** A worker runs one job at a time in its own process.
* **Optional ``discard(job)``.** Called after an attempt fails: remove any
  output that attempt left, so a job that ends FAILED (its records go to the
  dead-letter topic) leaves no rows behind. Must not raise for missing files.
* **Optional ``warm_up()``.** Called once per worker process, on the thread
  that runs its jobs, before the first job: pay first-use costs there
  (imports, lazily built kernels) rather than in the first job. It must write
  no output; if it raises, the worker logs it and goes on (the first job
  then fails or succeeds on its own).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from actorsys.records import Record


@dataclass(frozen=True, slots=True)
class JobInput:
    """One job as a handler receives it."""

    job_id: int
    topic: str
    partition: int
    start: int
    end: int
    records: Sequence[Record]
    # The attempt's token (1, 2, ...): a handler that writes table data files
    # names them per attempt, so a stale attempt never overwrites, and a
    # discarded attempt never removes, files another attempt had committed.
    attempt: int = 0


@dataclass(frozen=True, slots=True)
class HandlerResult:
    """What a handler reports back for one job."""

    output_files: tuple[str, ...]
    valid_records: int
    invalid_records: int
    # Table data files to publish, as (table name, DataFile JSON): the job is
    # DONE only once the table's committer has committed them (format "delta").
    table_files: tuple[tuple[str, str], ...] = ()
    # Table files a compaction rewrote: removed in the commit that adds the new ones.
    removes: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class HandlerSettings:
    """What a handler factory is given once per worker process."""

    output_dir: Path
    metrics: tuple[str, ...] = ("temperature", "humidity", "battery")
    options: Mapping[str, Any] = field(default_factory=dict)


class DeadLetterSink(Protocol):
    """Where a handler sends records it cannot read."""

    def reject(self, record: Record, reason: str, detail: str) -> None:
        """Send ``record`` to the dead-letter topic.

        ``reason`` is a short machine-readable word (``not_json``,
        ``missing_field``, ``wrong_type``, ``tombstone``, ...), used as a
        metric label; ``detail`` is the human-readable error header.
        This method should not block for long: sends are flushed by the
        worker before it reports the job done.
        """
        ...


class JobHandler(Protocol):
    def handle(self, job: JobInput, dead_letters: DeadLetterSink) -> HandlerResult:
        """Process one job; raise to fail this attempt."""
        ...


HandlerFactory = Callable[[HandlerSettings], JobHandler]
