"""`actorsys verify` without Kafka: the offset arithmetic, the verdict per
partition, the report and its JSON, the raw readers on real files, the job
store reader on a real SQLite store, and the command's exit codes."""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner, Result
from confluent_kafka import KafkaError
from deltalake import write_deltalake
from hypothesis import given
from hypothesis import strategies as st

import actorsys.cli.verify
import actorsys.verify
from actorsys.cli import main
from actorsys.config import build_config
from actorsys.jobs.model import BatchSubmission, JobStatus
from actorsys.jobs.open import open_job_store
from actorsys.tables.delta import app_id
from actorsys.verify import (
    FailedJob,
    PartitionFacts,
    RawOffsets,
    RunBuilder,
    StoreFacts,
    VerifyError,
    build_report,
    clip,
    dead_letter_source,
    intersect,
    judge,
    normalise,
    parquet_files,
    read_delta,
    read_parquet,
    read_store,
    reader_properties,
    record_offsets,
    report_doc,
    runs,
    size,
    subtract,
    summary_lines,
    union,
)

# --- offset ranges --------------------------------------------------------------------------

offset_sets = st.sets(st.integers(min_value=0, max_value=60), max_size=40)


def as_set(ranges: tuple[tuple[int, int], ...]) -> set[int]:
    return {o for start, end in ranges for o in range(start, end)}


def test_runs_merges_consecutive_offsets_and_ignores_order_and_repeats() -> None:
    assert runs([5, 1, 2, 3, 3, 9, 8]) == ((1, 4), (5, 6), (8, 10))
    assert runs([]) == ()


def test_normalise_merges_overlapping_and_adjacent_ranges_and_drops_empty_ones() -> None:
    assert normalise([(5, 7), (0, 2), (2, 3), (6, 9), (4, 4)]) == ((0, 3), (5, 9))


@given(offset_sets, offset_sets)
def test_range_operations_agree_with_set_operations(a: set[int], b: set[int]) -> None:
    ra, rb = runs(a), runs(b)
    assert as_set(subtract(ra, rb)) == a - b
    assert as_set(intersect(ra, rb)) == a & b
    assert as_set(union(ra, rb)) == a | b
    assert size(ra) == len(a)
    # Results stay canonical: what runs() would make of the same offsets.
    assert subtract(ra, rb) == runs(a - b)
    assert intersect(ra, rb) == runs(a & b)


@given(offset_sets, st.integers(0, 70), st.integers(0, 70))
def test_clip_keeps_the_offsets_inside_the_bounds(a: set[int], low: int, high: int) -> None:
    assert as_set(clip(runs(a), low, high)) == {o for o in a if low <= o < high}


def test_run_builder_takes_ascending_offsets_and_tolerates_a_redelivery() -> None:
    builder = RunBuilder()
    for offset in (3, 4, 4, 5, 9):
        builder.add(offset)
    assert builder.ranges() == ((3, 6), (9, 10))
    with pytest.raises(ValueError, match="not ascending"):
        builder.add(1)


def test_raw_offsets_count_rows_and_duplicates() -> None:
    raw = RawOffsets.from_counts([(0, 1), (1, 2), (2, 3), (4, 1)])
    assert raw.present == ((0, 3), (4, 5))
    assert raw.duplicated == ((1, 3),)
    assert raw.rows == 7 and raw.extra_rows == 3


# --- the verdict ----------------------------------------------------------------------------


def facts(**overrides: Any) -> PartitionFacts:
    """Partition 0 of "t": offsets 0..99 in Kafka save a hole at 50 (a
    transaction marker), all committed; 10 and 20 dead-lettered, the rest in raw."""
    kafka = runs(o for o in range(100) if o != 50)
    dead = runs([10, 20])
    values: dict[str, Any] = {
        "topic": "t",
        "partition": 0,
        "low_watermark": 0,
        "high_watermark": 100,
        "committed": 100,
        "txn_version": None,
        "kafka": kafka,
        "dead_lettered": dead,
        "raw": RawOffsets.from_counts((o, 1) for o in as_set(subtract(kafka, dead))),
    }
    values.update(overrides)
    return PartitionFacts(**values)


def raw_of(offsets: list[int] | set[int], twice: tuple[int, ...] = ()) -> RawOffsets:
    return RawOffsets.from_counts((o, 2 if o in twice else 1) for o in sorted(offsets))


def test_every_record_in_raw_or_dead_lettered_is_ok_and_holes_are_not_missing() -> None:
    verdict = judge(facts())
    assert verdict.ok
    assert verdict.missing == verdict.duplicated == verdict.unexpected == ()
    assert verdict.kafka_records == 99 and verdict.dead_lettered == 2


def test_a_record_in_neither_raw_nor_the_dead_letters_is_missing() -> None:
    present = [o for o in range(100) if o not in (10, 20, 50, 60, 61, 62)]
    verdict = judge(facts(raw=raw_of(present)))
    assert not verdict.ok
    assert verdict.missing == ((60, 63),)


def test_an_offset_with_two_rows_is_duplicated() -> None:
    present = [o for o in range(100) if o not in (10, 20, 50)]
    verdict = judge(facts(raw=raw_of(present, twice=(30, 31, 40))))
    assert not verdict.ok and verdict.missing == ()
    assert verdict.duplicated == ((30, 32), (40, 41)) and verdict.extra_rows == 3


def test_rows_at_a_hole_or_past_the_commit_are_unexpected_but_not_a_failure() -> None:
    # Given raw rows at the hole (compacted away since) and past the committed offset
    present = [o for o in range(105) if o not in (10, 20)]
    verdict = judge(facts(raw=raw_of(present), high_watermark=105))
    assert verdict.ok
    assert verdict.unexpected == ((50, 51), (100, 105))


def test_offsets_of_unfinished_jobs_are_in_progress_not_missing() -> None:
    present = [o for o in range(80) if o not in (10, 20, 50)]
    verdict = judge(facts(raw=raw_of(present), unfinished=((70, 100),)))
    assert verdict.ok
    assert verdict.in_progress == ((80, 100),)


def test_records_of_a_failed_job_missing_from_the_dead_letters_are_named() -> None:
    # Given a FAILED job [0, 30) whose dead letters were produced for 10 and 20 only
    present = [o for o in range(30, 100) if o != 50]
    verdict = judge(facts(raw=raw_of(present), failed=((0, 30),)))
    assert not verdict.ok
    assert verdict.missing == verdict.failed_not_dead_lettered == ((0, 10), (11, 20), (21, 30))


def test_offsets_below_the_low_watermark_are_not_judged() -> None:
    # Given retention deleted offsets below 40, after they were written to raw
    verdict = judge(facts(low_watermark=40, kafka=runs(o for o in range(40, 100) if o != 50)))
    assert verdict.ok
    assert verdict.raw_below_low_watermark == 38  # 0..39 save the dead-lettered 10 and 20
    assert verdict.unexpected == () and verdict.kafka_records == 59


def test_a_delta_table_ahead_of_the_kafka_commit_is_judged_up_to_its_txn_version() -> None:
    # Given the table committed up to 100 but Kafka's commit still at 60
    verdict = judge(facts(committed=60, txn_version=100))
    assert verdict.ok and verdict.unexpected == ()
    # And a record below the txn version that is not in the table is missing
    present = [o for o in range(100) if o not in (10, 20, 50, 90)]
    assert judge(facts(committed=60, txn_version=100, raw=raw_of(present))).missing == ((90, 91),)


def test_a_partition_never_committed_expects_nothing() -> None:
    verdict = judge(facts(committed=None, raw=RawOffsets(), dead_lettered=()))
    assert verdict.ok and verdict.kafka_records == 0


def test_a_record_both_in_raw_and_dead_lettered_is_reported() -> None:
    present = [o for o in range(100) if o not in (20, 50)]
    verdict = judge(facts(raw=raw_of(present)))
    assert verdict.ok and verdict.in_raw_and_dead_lettered == ((10, 11),)


# --- the report -----------------------------------------------------------------------------


def report(*partitions: PartitionFacts, store: StoreFacts | None = None) -> Any:
    return build_report(
        output_format="delta",
        output="/data/raw",
        group="g",
        dead_letter_topics={"t": "t.dlq"},
        table_version=7,
        facts=partitions,
        store=store or StoreFacts(by_status={"PENDING": 0, "RUNNING": 0, "DONE": 4, "FAILED": 0}),
    )


def test_the_json_document_says_ok_with_counts_per_partition_and_in_total() -> None:
    doc = report_doc(report(facts(txn_version=100), facts(partition=1, txn_version=100)))
    json.dumps(doc)  # serialisable as it is
    assert doc["ok"] is True and doc["format"] == "delta" and doc["table_version"] == 7
    assert doc["totals"] == {
        "partitions": 2,
        "partitions_with_problems": 0,
        "kafka_records_checked": 198,
        "raw_rows": 194,
        "dead_lettered": 4,
        "missing": 0,
        "duplicated": 0,
        "extra_rows": 0,
        "unexpected": 0,
        "in_progress": 0,
    }
    first = doc["partitions"][0]
    assert first["kafka"] == {
        "low_watermark": 0,
        "high_watermark": 100,
        "committed": 100,
        "records_checked": 99,
    }
    assert first["table_txn_version"] == 100 and first["checked_end"] == 100
    assert first["raw"] == {"rows": 97, "offsets": 97, "below_low_watermark": 0}
    assert first["missing"] == {"count": 0, "ranges": []}
    assert doc["jobs"]["by_status"]["DONE"] == 4


def test_problems_make_exit_code_1_and_are_named_in_json_and_in_the_summary() -> None:
    present = [o for o in range(100) if o not in (10, 20, 50, 60)]
    bad = facts(partition=1, raw=raw_of(present, twice=(30,)))
    result = report(facts(), bad)
    assert not result.ok and result.exit_code == 1
    doc = report_doc(result)
    assert doc["partitions"][1]["missing"] == {"count": 1, "ranges": [[60, 61]]}
    assert doc["partitions"][1]["duplicated"] == {"count": 1, "ranges": [[30, 31]], "extra_rows": 1}
    lines = summary_lines(result)
    assert len(lines) == 4  # two partitions, the jobs, the verdict
    assert lines[0].startswith("t[0]") and lines[0].endswith("ok")
    assert "MISSING 1: 60" in lines[1] and "DUPLICATED 1 (+1 rows): 30" in lines[1]
    assert lines[-1] == "PROBLEMS: 1 missing, 1 duplicated (+1 rows) in 1 of 2 partition(s)"


def test_the_summary_ends_ok_and_lists_failed_jobs_and_notes() -> None:
    store = StoreFacts(
        by_status={"PENDING": 1, "RUNNING": 0, "DONE": 3, "FAILED": 1},
        failed=(FailedJob(9, "t", 0, 0, 30, 30, "boom"),),
    )
    present = [o for o in range(80) if o not in (10, 20, 50)]
    result = report(facts(raw=raw_of(present), unfinished=((80, 100),)), store=store)
    lines = summary_lines(result)
    assert result.ok and lines[-1].startswith("OK: 1 partition(s), 99 record(s) checked")
    assert "FAILED job 9 t[0] [0, 30): 30 record(s), expected in t.dlq" in lines
    assert any(
        line.startswith("note: 20 offset(s) are in PENDING or RUNNING jobs") for line in lines
    )
    assert report_doc(result)["jobs"]["failed"] == [
        {"id": 9, "topic": "t", "partition": 0, "start": 0, "end": 30, "records": 30,
         "last_error": "boom"}
    ]  # fmt: skip


def test_a_partition_whose_kafka_log_ends_below_the_checked_end_is_noted() -> None:
    # Given a commit at 100 on a partition Kafka now ends at 40 (recreated, truncated)
    result = report(facts(high_watermark=40, kafka=runs(range(40))))
    # Then the rows past 40 are unexpected, and a note says why
    assert result.partitions[0].verdict.unexpected == ((40, 50), (51, 100))
    assert any("t[0] ends at 40" in note for note in result.notes)


def test_dead_letter_headers_name_their_source() -> None:
    headers = [("error", b"x"), ("source_topic", b"t"), ("source_partition", b"1"),
               ("source_offset", b"42")]  # fmt: skip
    assert dead_letter_source(headers) == ("t", 1, 42)
    assert dead_letter_source(None) is None
    assert dead_letter_source([("source_topic", b"t"), ("source_partition", b"x")]) is None


# --- reading raw (real files, no Kafka) -----------------------------------------------------


def raw_rows(topic: str, pairs: list[tuple[int, int]]) -> pa.Table:
    return pa.table(
        {
            "device_id": pa.array([f"d{o}" for _, o in pairs], pa.string()),
            "_topic": pa.array([topic] * len(pairs), pa.string()),
            "_partition": pa.array([p for p, _ in pairs], pa.int32()),
            "_offset": pa.array([o for _, o in pairs], pa.int64()),
        }
    )


def test_parquet_raw_is_read_from_published_files_only(tmp_path: Path) -> None:
    # Given two published files, a file being written and one of another topic
    day = tmp_path / "raw" / "date=2026-01-01"
    day.mkdir(parents=True)
    pq.write_table(raw_rows("t", [(0, 0), (0, 1), (1, 5)]), day / "t-0-0-2.parquet")
    pq.write_table(raw_rows("t", [(0, 1)]), day / "t-0-1-2.parquet")
    pq.write_table(raw_rows("t", [(0, 9)]), day / ".tmp-t-0-9-10.parquet")
    pq.write_table(raw_rows("other", [(0, 3)]), day / "other-0-3-4.parquet")
    assert [p.name for p in parquet_files(tmp_path / "raw")] == [
        "other-0-3-4.parquet",
        "t-0-0-2.parquet",
        "t-0-1-2.parquet",
    ]
    # When raw is read for topic t
    raw = read_parquet(tmp_path / "raw", ["t"])
    # Then the .tmp- file is ignored, the other topic too, and 1 is there twice
    assert raw.offsets[("t", 0)] == RawOffsets(((0, 2),), ((1, 2),), 3, 1)
    assert raw.offsets[("t", 1)] == RawOffsets(((5, 6),), (), 1, 0)
    assert raw.txn_versions == {} and raw.note is None


def test_parquet_raw_without_files_is_empty_and_says_so(tmp_path: Path) -> None:
    raw = read_parquet(tmp_path / "raw", ["t"])
    assert raw.offsets == {} and raw.note is not None and "no Parquet files" in raw.note


def test_delta_raw_and_txn_versions_come_from_one_snapshot(tmp_path: Path) -> None:
    from deltalake.transaction import CommitProperties, Transaction

    root = tmp_path / "raw"
    txns = [Transaction(app_id("g", "t", 0), 3), Transaction(app_id("g", "t", 1), 6)]
    write_deltalake(
        root,
        raw_rows("t", [(0, 0), (0, 1), (0, 2), (1, 5)]),
        commit_properties=CommitProperties(app_transactions=txns),
    )
    write_deltalake(root, raw_rows("t", [(0, 2)]), mode="append")  # a duplicate
    raw = read_delta(root, "g", {"t": [0, 1, 2]})
    assert raw.table_version == 1
    assert raw.txn_versions == {("t", 0): 3, ("t", 1): 6, ("t", 2): None}
    assert raw.offsets[("t", 0)] == RawOffsets(((0, 3),), ((2, 3),), 4, 1)
    assert read_delta(tmp_path / "none", "g", {"t": [0]}).note is not None


def test_an_unreadable_delta_table_is_a_verify_error(tmp_path: Path) -> None:
    root = tmp_path / "raw"
    write_deltalake(root, raw_rows("t", [(0, 0)]))
    for data_file in root.glob("*.parquet"):
        data_file.write_bytes(b"not parquet")
    with pytest.raises(VerifyError, match="cannot read the Delta table"):
        read_delta(root, "g", {"t": [0]})


# --- reading the job store (a real SQLite store) --------------------------------------------


def test_store_facts_are_this_groups_unfinished_and_failed_jobs(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/jobs.db"
    store = open_job_store(url)
    now = time.time()
    try:
        for group, topic, start, end in [
            ("g", "t", 0, 10),
            ("g", "t", 10, 20),
            ("g", "t", 20, 30),
            ("other", "t", 0, 5),
            ("g", "u", 0, 5),
        ]:
            batch = BatchSubmission(group, topic, 0, start, end, end - start, start == 0)
            store.submit_batch(batch, now)
        first = store.claim_next("w", now)
        assert first is not None and first.record.start_offset == 0
        assert store.fail_attempt(first.record.id, first.token, "bad\nstack", None, now) == (
            JobStatus.FAILED
        )
        second = store.claim_next("w", now)
        assert second is not None and second.record.start_offset == 10
        assert store.complete(second.record.id, second.token, [], now)
    finally:
        store.close()
    config = build_config({"kafka": {"group_id": "g", "topics": ["t"]}, "jobs": {"store": url}})
    found = read_store(config, ["t"])
    assert found.by_status == {"PENDING": 3, "RUNNING": 0, "DONE": 1, "FAILED": 1}
    assert found.unfinished == {("t", 0): ((20, 30),)}
    assert found.failed == (FailedJob(first.record.id, "t", 0, 0, 10, 10, "bad"),)
    assert found.next_offsets == {("t", 0): 30}


# --- Kafka client settings ------------------------------------------------------------------


def test_the_reader_uses_the_configs_security_settings_and_never_commits() -> None:
    config = build_config(
        {
            "kafka": {
                "bootstrap_servers": "kafka:9092",
                "group_id": "g",
                "properties": {
                    "security.protocol": "SASL_SSL",
                    "sasl.password": "s3cret",
                    "group.instance.id": "daemon-1",
                },
            }
        }
    )
    props = reader_properties(config)
    assert props["bootstrap.servers"] == "kafka:9092" and props["group.id"] == "g"
    assert props["security.protocol"] == "SASL_SSL" and props["sasl.password"] == "s3cret"
    assert props["enable.auto.commit"] == "false"
    assert "group.instance.id" not in props  # the daemon's static membership, not ours
    assert isinstance(props["logger"], logging.Logger) and not props["logger"].propagate


# --- the command ----------------------------------------------------------------------------


def invoke(*args: str) -> Result:
    return CliRunner().invoke(main, ["verify", *args], prog_name="actorsys")


def assert_exit_2_one_line(result: Result, prefix: str) -> str:
    assert result.exit_code == 2, result.output
    assert result.stdout == ""
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith(prefix), result.stderr
    assert "Traceback" not in result.stderr
    return lines[0]


def write_config(tmp_path: Path, kafka: str = '"127.0.0.1:9"', topics: str = '["t"]') -> str:
    path = tmp_path / "c.toml"
    path.write_text(f"[kafka]\nbootstrap_servers = {kafka}\ntopics = {topics}\n")
    return str(path)


def test_verify_needs_a_config() -> None:
    assert_exit_2_one_line(invoke(), "Error: actorsys verify: Missing option")


def test_a_missing_config_file_is_a_configuration_error(tmp_path: Path) -> None:
    line = assert_exit_2_one_line(
        invoke("--config", str(tmp_path / "none.toml")), "actorsys: configuration error:"
    )
    assert "does not exist" in line


def test_the_embedded_broker_cannot_be_verified(tmp_path: Path) -> None:
    line = assert_exit_2_one_line(
        invoke("-c", write_config(tmp_path, kafka='"embedded"')), "actorsys: configuration error:"
    )
    assert "embedded" in line


def test_a_topic_outside_the_config_is_a_configuration_error(tmp_path: Path) -> None:
    line = assert_exit_2_one_line(
        invoke("-c", write_config(tmp_path), "--topic", "nope"), "actorsys: configuration error:"
    )
    assert "--topic nope is not one of the config's topics (t)" in line


def test_an_unreachable_source_exits_2_with_one_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def unreachable(*_args: Any) -> Any:
        raise VerifyError("cannot list Kafka topics: timed out")

    monkeypatch.setattr(actorsys.verify, "verify", unreachable)
    line = assert_exit_2_one_line(invoke("-c", write_config(tmp_path)), "actorsys: cannot verify:")
    assert "timed out" in line


@pytest.mark.parametrize("as_json", [False, True])
def test_the_exit_code_follows_the_verdict(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, as_json: bool
) -> None:
    present = [o for o in range(100) if o not in (10, 20, 50, 60)]
    outcomes = iter([report(facts()), report(facts(raw=raw_of(present)))])
    monkeypatch.setattr(actorsys.verify, "verify", lambda *_args: next(outcomes))
    flags = ["--json"] if as_json else []
    good, bad = (invoke("-c", write_config(tmp_path), *flags) for _ in range(2))
    assert (good.exit_code, bad.exit_code) == (0, 1), (good.output, bad.output)
    if as_json:
        assert json.loads(good.stdout)["ok"] is True
        assert json.loads(bad.stdout)["partitions"][0]["missing"]["ranges"] == [[60, 61]]
    else:
        assert good.stdout.splitlines()[-1].startswith("OK:")
        assert bad.stdout.splitlines()[-1].startswith("PROBLEMS:")


# --- scanning a partition (a fake consumer) -------------------------------------------------


class FakeError:
    def __init__(self, code: int, retriable: bool = False) -> None:
        self._code, self._retriable = code, retriable

    def code(self) -> int:
        return self._code

    def fatal(self) -> bool:
        return False

    def retriable(self) -> bool:
        return self._retriable

    def str(self) -> str:
        return f"error {self._code}"


class FakeMessage:
    def __init__(self, offset: int, error: FakeError | None = None) -> None:
        self._offset, self._error = offset, error

    def offset(self) -> int:
        return self._offset

    def error(self) -> FakeError | None:
        return self._error


class FakeConsumer:
    """Delivers the given polls in turn, then nothing; ``high`` is the high
    watermark its fetches reported. Records assignments."""

    def __init__(self, polls: list[list[FakeMessage]], high: int = 10) -> None:
        self._polls = list(polls)
        self._high = high
        self.assigned: list[Any] = []

    def assign(self, tps: list[Any]) -> None:
        self.assigned.append([(tp.topic, tp.partition, tp.offset) for tp in tps])

    def unassign(self) -> None:
        self.assigned.append(None)

    def consume(self, num_messages: int, timeout: float) -> list[FakeMessage]:
        return self._polls.pop(0) if self._polls else []

    def get_watermark_offsets(self, tp: Any, timeout: float = 0, cached: bool = False) -> Any:
        assert cached, "a scan relies on the fetched high watermark only"
        return (0, self._high)


def scanned(consumer: FakeConsumer, start: int, end: int, stall_s: float = 5) -> Any:
    return record_offsets(consumer, "t", 0, start, end, stall_s)  # type: ignore[arg-type]  # a fake consumer


def test_a_scan_stops_at_the_first_record_past_its_end() -> None:
    consumer = FakeConsumer([[FakeMessage(2), FakeMessage(3)], [FakeMessage(5), FakeMessage(6)]])
    assert scanned(consumer, 2, 6) == (((2, 4), (5, 6)), 10)
    assert consumer.assigned == [[("t", 0, 2)], None]


def test_a_scan_stops_where_the_fetch_reports_the_end_of_the_partition() -> None:
    # Given a transaction marker at 4: no record 4 ever comes, the partition ends at 5
    eof = FakeMessage(5, FakeError(KafkaError._PARTITION_EOF))
    consumer = FakeConsumer([[FakeMessage(2), FakeMessage(3)], [eof]], high=5)
    # When offsets [2, 5) are read, then the scan ends at the end of the partition
    assert scanned(consumer, 2, 5) == (((2, 4),), 5)


def test_a_scan_skips_retriable_errors_and_fails_on_others() -> None:
    transient = FakeMessage(0, FakeError(KafkaError._TRANSPORT, retriable=True))
    consumer = FakeConsumer([[transient, FakeMessage(0), FakeMessage(1)]])
    assert scanned(consumer, 0, 1) == (((0, 1),), 10)
    broken = FakeConsumer([[FakeMessage(0, FakeError(KafkaError.UNKNOWN_TOPIC_OR_PART))]])
    with pytest.raises(VerifyError, match=r"reading t\[0\]"):
        scanned(broken, 0, 1)
    assert broken.assigned[-1] is None  # unassigned all the same


def test_a_scan_that_gets_nothing_fails_after_the_stall_timeout() -> None:
    with pytest.raises(VerifyError, match=r"nothing arrived for 0\.3 s"):
        scanned(FakeConsumer([]), 0, 5, stall_s=0.3)


def test_an_empty_interval_is_not_read() -> None:
    consumer = FakeConsumer([[FakeMessage(0)]])
    assert scanned(consumer, 5, 5) == ((), None)
    assert consumer.assigned == []


def test_a_bad_kafka_property_is_one_line_without_the_secret(tmp_path: Path) -> None:
    # Given a misspelled property next to a password
    path = tmp_path / "c.toml"
    path.write_text(
        '[kafka]\nbootstrap_servers = "127.0.0.1:9"\n'
        '[kafka.properties]\n"sasl.password" = "hunter2"\n"fetch.max.bytez" = "1"\n'
    )
    line = assert_exit_2_one_line(invoke("-c", str(path)), "actorsys: configuration error:")
    assert "fetch.max.bytez" in line and "hunter2" not in line
