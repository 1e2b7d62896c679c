"""The progress line of `actorsys run`, from status snapshots and a fake clock."""

from __future__ import annotations

import json
import logging

from actorsys.logs import JsonFormatter
from actorsys.progress import ProgressReporter
from actorsys.status import StatusDocument


def snapshot(consumed: int, rows: int, files: int, **jobs: int) -> StatusDocument:
    """The components of a /status document (as `actorsys status --json` shows), read back."""
    partition = {"topic": "iot", "lag": 0, "paused": False, "seconds_behind": None}
    return StatusDocument.from_json(
        {
            "kafka_consumer": {
                "records_consumed": consumed,
                "partitions": [
                    {**partition, "partition": 0, "lag": 1_200, "seconds_behind": 3.2},
                    {**partition, "partition": 1, "lag": 300, "paused": True},
                ],
            },
            "kafka_consumer@b:1": {
                "records_consumed": 1_000,
                "partitions": [{**partition, "partition": 2, "seconds_behind": 0.4}],
            },
            "job_manager": {"jobs": jobs, "rows_ingested": rows, "files_ingested": files},
        }
    )


def test_the_first_line_comes_one_interval_after_the_first_snapshot() -> None:
    reporter = ProgressReporter(every_s=5.0)
    assert reporter.update(snapshot(0, 0, 0), now=100.0) is None
    assert reporter.update(snapshot(10, 0, 0), now=104.9) is None
    assert reporter.update(snapshot(20, 0, 0), now=105.0) is not None


def test_rates_are_over_the_interval_and_every_consumer_counts() -> None:
    reporter = ProgressReporter(every_s=5.0)
    reporter.update(snapshot(0, 0, 0), now=0.0)
    progress = reporter.update(
        snapshot(50_000, 40_000, 12, PENDING=7, RUNNING=2, FAILED=1, DONE=90), now=5.0
    )
    assert progress is not None
    assert (progress.records_in_per_s, progress.records_out_per_s) == (10_000.0, 8_000.0)
    assert (progress.lag_records, progress.lag_s) == (1_500, 3.2)
    assert (progress.pending, progress.running, progress.failed) == (7, 2, 1)
    assert (progress.files_committed, progress.rows_written) == (12, 40_000)
    assert (progress.partitions, progress.paused) == (3, 1)
    assert progress.line() == (
        "in 10,000/s  out 8,000/s  lag 1,500 rec 3s  jobs 7 pending 2 running 1 failed  "
        "committed 12 files 40,000 rows  paused 1/3"
    )


def test_a_restarted_component_counting_from_zero_gives_no_negative_rate() -> None:
    reporter = ProgressReporter(every_s=1.0)
    reporter.update(snapshot(9_000, 5_000, 3), now=0.0)
    progress = reporter.update(snapshot(0, 0, 0), now=1.0)
    assert progress is not None
    assert progress.records_in_per_s == 0.0 and progress.records_out_per_s == 0.0


def test_an_empty_status_says_nothing_is_known() -> None:
    reporter = ProgressReporter(every_s=1.0)
    reporter.update(StatusDocument(), now=0.0)
    progress = reporter.update(StatusDocument(), now=2.0)
    assert progress is not None
    assert progress.line() == (
        "in 0/s  out 0/s  lag 0 rec -  jobs 0 pending 0 running 0 failed  "
        "committed 0 files 0 rows  paused 0/0"
    )


def test_as_a_json_log_event_the_figures_are_fields() -> None:
    reporter = ProgressReporter(every_s=1.0)
    reporter.update(snapshot(0, 0, 0), now=0.0)
    progress = reporter.update(snapshot(2_000, 1_000, 1, PENDING=3), now=2.0)
    assert progress is not None
    record = logging.LogRecord("actorsys.progress", logging.INFO, "", 0, "progress: %s",
                               (progress.line(),), None)  # fmt: skip
    record.fields = progress.fields()
    doc = json.loads(JsonFormatter().format(record))
    assert doc["fields"]["records_in_per_s"] == 1_000.0  # 2,000 in 2 s
    assert doc["fields"]["jobs_pending"] == 3 and doc["msg"].startswith("progress: in 1,000/s")
