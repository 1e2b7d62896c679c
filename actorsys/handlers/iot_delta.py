"""The IoT handler for table output (``[output] format = "delta"``).

It validates records exactly as the Parquet handler does, then writes the
valid ones as data files of the ``raw`` Delta table — one file per event
hour, sorted by ``(device_id, ts)``, named per attempt — and reports them.
It publishes nothing: the table's committer does, in an atomic commit that
records the Kafka offsets it covers, and only then is the job DONE. Files of
an attempt that is never committed are invisible to readers (not in the
table's log) and are removed later (duplicates by the committer, orphans at
start).

It writes ``raw`` only: the final per-minute and per-hour aggregates are
computed by compaction jobs, from whole closed windows
(``actorsys.tables.compaction``), not per job.
"""

from __future__ import annotations

from pathlib import Path

from actorsys.handlers.api import DeadLetterSink, HandlerResult, HandlerSettings, JobInput
from actorsys.handlers.iot_parquet import rules_from_settings
from actorsys.handlers.parquet_output import build_raw_table, warm_up
from actorsys.handlers.validation import validate_batch
from actorsys.tables.layout import write_partitioned_files

RAW_TABLE = "raw"


class IotDeltaHandler:
    def __init__(self, settings: HandlerSettings) -> None:
        self._raw_root = Path(settings.output_dir) / RAW_TABLE
        self._rules = rules_from_settings(settings)

    def warm_up(self) -> None:
        """First-use costs, before the first job (see ``parquet_output.warm_up``)."""
        warm_up(self._rules.metrics, agg=False)

    def handle(self, job: JobInput, dead_letters: DeadLetterSink) -> HandlerResult:
        batch = validate_batch(job.records, self._rules)
        files = []
        if batch.valid_records:
            raw = build_raw_table(batch, job.topic, job.partition)
            stem = f"part-{job.topic}-{job.partition}-{job.start}-{job.end}-a{job.attempt}"
            files = write_partitioned_files(raw, self._raw_root, stem)
        # Dead letters only once the files are written (as the Parquet handler).
        for rejection in batch.rejections:
            dead_letters.reject(rejection.record, rejection.reason, rejection.detail)
        return HandlerResult(
            output_files=tuple(str(self._raw_root / f.path) for f in files),
            valid_records=batch.valid_records,
            invalid_records=len(batch.rejections),
            table_files=tuple((RAW_TABLE, f.to_json()) for f in files),
        )

    def discard(self, job: JobInput) -> None:
        """Nothing to do: uncommitted files are invisible, and every attempt's
        files are its own (the committer and the start-up sweep remove them)."""
