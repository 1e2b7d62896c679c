"""`actorsys verify`: check the ``raw`` output against Kafka and the job store.

The guarantees (README, "Guarantees") say every record below the committed
offset is in ``raw`` exactly once or in the dead-letter topic. This module
checks that after the fact, per topic partition, from four independent
sources:

- **Kafka**: the consumer group's committed offset, and which offsets hold a
  record between the partition's low watermark and the offset checked up to.
  Kafka offsets have holes (compaction, transaction markers), so they are
  read, not assumed; offsets below the low watermark were deleted by
  retention and are not judged.
- **The dead-letter topic**: the ``source_topic``, ``source_partition`` and
  ``source_offset`` headers of every dead letter (duplicates are allowed: a
  crash may produce a dead letter twice).
- **raw**: the ``(_partition, _offset)`` of every row (a Delta table read at
  one snapshot, or the plain Parquet files).
- **The job store**: jobs by status; PENDING and RUNNING jobs' offsets are
  work in progress, not missing; FAILED jobs' records belong in the
  dead-letter topic.

Which offsets must be accounted for: those below the committed offset, and
for Delta output below the table's txn version too. Each Delta commit records
per partition the end offset it covers (``txn``), and the table may be ahead
of Kafka's commit (committed to the table, not yet to Kafka: the daemon
re-reads those records after a crash and recognises them). So offsets are
checked up to ``max(committed, txn_version)``: the table says it holds
everything below its txn version.

The verdict per partition:

- ``missing``: offsets in Kafka below that bound, neither in raw, nor
  dead-lettered, nor in an unfinished job. A problem.
- ``duplicated``: offsets present in raw more than once. A problem.
- ``unexpected``: raw rows at offsets Kafka does not hold (any more) or at or
  past the bound. Reported, not a failure: compaction removes records already
  written, and plain Parquet files may be ahead of a Kafka commit that was
  still to come when the daemon stopped.

Everything judged here is plain data (offset :data:`Ranges`, dataclasses),
so the comparison is unit-tested without Kafka; the readers at the end of the
module are small and do I/O only. The readers run in the order that keeps
the check sound while a daemon is running: Kafka's committed offsets first
(everything below them was stored as a job by then), then the job store,
then raw, then the dead letters (a job's rows and dead letters exist before
the store says it is DONE), and the Kafka records last (they do not move).

Memory: offsets are kept as ranges, so a contiguous partition costs a few
numbers; reading raw holds two integer columns of one topic at a time.
"""

from __future__ import annotations

import logging
import time
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final, cast

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as pads
from confluent_kafka import Consumer, KafkaError, KafkaException, Message, TopicPartition

from actorsys.config import EMBEDDED, AppConfig
from actorsys.errors import ActorsysError, ConfigError
from actorsys.jobs.model import JobRecord, JobStatus
from actorsys.jobs.open import open_job_store
from actorsys.jobs.store import JobStore
from actorsys.kafka_clients import consumer_properties, validate_client_properties
from actorsys.offsets import PartitionKey

RAW_TABLE: Final = "raw"
FORMAT_DELTA: Final = "delta"
FORMAT_PARQUET: Final = "parquet"

# An offset no partition reaches: the open end of "everything from here on".
OFFSET_MAX: Final = 2**63 - 1

Range = tuple[int, int]
"""Offsets ``[start, end)``."""
Ranges = tuple[Range, ...]
"""Sorted, disjoint, non-adjacent ranges: a compact set of offsets."""


class VerifyError(ActorsysError):
    """The check could not be made: Kafka, the job store or the output could
    not be read. One line, no secret."""


# --- offset ranges --------------------------------------------------------------------------


def normalise(ranges: Iterable[Range]) -> Ranges:
    """``ranges`` sorted, with overlapping and adjacent ones merged and empty ones dropped."""
    merged: list[list[int]] = []
    for start, end in sorted(r for r in ranges if r[0] < r[1]):
        if merged and start <= merged[-1][1]:
            merged[-1][1] = max(merged[-1][1], end)
        else:
            merged.append([start, end])
    return tuple((start, end) for start, end in merged)


class RunBuilder:
    """Collects offsets given in ascending order (as Kafka delivers them) into
    ranges, without holding the offsets themselves."""

    def __init__(self) -> None:
        self._done: list[Range] = []
        self._start: int | None = None
        self._end = 0

    def add(self, offset: int) -> None:
        if self._start is not None and offset < self._end:
            if offset >= self._start:
                return  # already in the current run (a redelivery)
            raise ValueError(f"offset {offset} given after {self._end - 1}: not ascending")
        if self._start is not None and offset == self._end:
            self._end += 1
            return
        if self._start is not None:
            self._done.append((self._start, self._end))
        self._start, self._end = offset, offset + 1

    def ranges(self) -> Ranges:
        if self._start is None:
            return tuple(self._done)
        return (*self._done, (self._start, self._end))


def runs(offsets: Iterable[int]) -> Ranges:
    """The ranges of a set of offsets, in any order, duplicates allowed."""
    builder = RunBuilder()
    for offset in sorted(set(offsets)):
        builder.add(offset)
    return builder.ranges()


def size(ranges: Ranges) -> int:
    """How many offsets ``ranges`` holds."""
    return sum(end - start for start, end in ranges)


def union(*many: Ranges) -> Ranges:
    return normalise(r for ranges in many for r in ranges)


def intersect(a: Ranges, b: Ranges) -> Ranges:
    found: list[Range] = []
    i = j = 0
    while i < len(a) and j < len(b):
        start, end = max(a[i][0], b[j][0]), min(a[i][1], b[j][1])
        if start < end:
            found.append((start, end))
        if a[i][1] < b[j][1]:
            i += 1
        else:
            j += 1
    return tuple(found)


def subtract(a: Ranges, b: Ranges) -> Ranges:
    """The offsets of ``a`` not in ``b``."""
    found: list[Range] = []
    j = 0
    for start, end in a:
        current = start
        while j < len(b) and b[j][1] <= current:
            j += 1
        k = j
        while k < len(b) and b[k][0] < end:
            if b[k][0] > current:
                found.append((current, b[k][0]))
            current = max(current, b[k][1])
            k += 1
        if current < end:
            found.append((current, end))
    return tuple(found)


def clip(ranges: Ranges, low: int, high: int) -> Ranges:
    """The offsets of ``ranges`` in ``[low, high)``."""
    return intersect(ranges, ((low, high),)) if low < high else ()


# --- the facts and the verdict --------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class RawOffsets:
    """What raw holds for one partition."""

    present: Ranges = ()  # offsets with at least one row
    duplicated: Ranges = ()  # offsets with more than one row
    rows: int = 0
    extra_rows: int = 0  # rows beyond the first of each offset

    @classmethod
    def from_counts(cls, counts: Iterable[tuple[int, int]]) -> RawOffsets:
        """From ``(offset, rows)`` pairs, ascending by offset, one pair per offset."""
        present, duplicated = RunBuilder(), RunBuilder()
        rows = extra = 0
        for offset, copies in counts:
            present.add(offset)
            rows += copies
            if copies > 1:
                duplicated.add(offset)
                extra += copies - 1
        return cls(present.ranges(), duplicated.ranges(), rows, extra)


@dataclass(frozen=True, slots=True)
class FailedJob:
    """A FAILED job of the group: its records are expected in the dead-letter topic."""

    id: int
    topic: str
    partition: int
    start: int
    end: int
    records: int
    last_error: str


@dataclass(frozen=True, slots=True)
class PartitionFacts:
    """Everything read about one partition, before any judgement."""

    topic: str
    partition: int
    low_watermark: int
    high_watermark: int
    committed: int | None  # the group's committed offset; None: never committed
    txn_version: int | None  # Delta: the table's txn version; None: none (or Parquet)
    kafka: Ranges  # offsets holding a record, read in [low_watermark, checked_end)
    dead_lettered: Ranges
    raw: RawOffsets
    unfinished: Ranges = ()  # offsets of PENDING and RUNNING jobs
    failed: Ranges = ()  # offsets of FAILED jobs
    store_next_offset: int | None = None  # the job store's next expected offset
    in_kafka_metadata: bool = True  # False: raw has rows of a partition Kafka does not have

    @property
    def checked_end(self) -> int:
        """Offsets below this must each be in raw or dead-lettered: the committed
        offset, or the table's txn version when the table is ahead of Kafka."""
        return max(self.committed or 0, self.txn_version or 0)


@dataclass(frozen=True, slots=True)
class Verdict:
    """The judgement of one partition; see the module docstring."""

    missing: Ranges
    duplicated: Ranges
    extra_rows: int
    unexpected: Ranges
    in_progress: Ranges  # not found yet, but in an unfinished job
    failed_not_dead_lettered: Ranges  # part of ``missing``: FAILED jobs' lost records
    in_raw_and_dead_lettered: Ranges
    raw_below_low_watermark: int  # offsets with rows that Kafka deleted: not judged
    kafka_records: int  # records in Kafka that were checked
    dead_lettered: int  # of those, how many were dead-lettered

    @property
    def ok(self) -> bool:
        """No record lost and none written twice."""
        return not self.missing and not self.duplicated


def judge(facts: PartitionFacts) -> Verdict:
    """Compare raw and the dead letters with what Kafka holds below the checked end."""
    low, end = facts.low_watermark, facts.checked_end
    kafka = clip(facts.kafka, low, end)
    raw = facts.raw.present
    accounted = union(raw, facts.dead_lettered)
    not_found = subtract(kafka, accounted)
    missing = subtract(not_found, facts.unfinished)
    return Verdict(
        missing=missing,
        duplicated=facts.raw.duplicated,
        extra_rows=facts.raw.extra_rows,
        unexpected=subtract(clip(raw, low, OFFSET_MAX), kafka),
        in_progress=intersect(not_found, facts.unfinished),
        failed_not_dead_lettered=intersect(missing, facts.failed),
        in_raw_and_dead_lettered=intersect(raw, facts.dead_lettered),
        raw_below_low_watermark=size(clip(raw, 0, low)),
        kafka_records=size(kafka),
        dead_lettered=size(intersect(kafka, facts.dead_lettered)),
    )


@dataclass(frozen=True, slots=True)
class PartitionReport:
    facts: PartitionFacts
    verdict: Verdict

    @property
    def name(self) -> str:
        return f"{self.facts.topic}[{self.facts.partition}]"


@dataclass(frozen=True, slots=True)
class StoreFacts:
    """What the job store says about the group."""

    by_status: Mapping[str, int]  # the whole store, as `actorsys jobs list` counts
    unfinished: Mapping[PartitionKey, Ranges] = field(default_factory=dict)
    failed: tuple[FailedJob, ...] = ()
    next_offsets: Mapping[PartitionKey, int] = field(default_factory=dict)

    def failed_ranges(self, key: PartitionKey) -> Ranges:
        return normalise((j.start, j.end) for j in self.failed if (j.topic, j.partition) == key)


@dataclass(frozen=True, slots=True)
class VerifyReport:
    format: str
    output: str  # where raw is: the table directory or the Parquet root
    group: str
    dead_letter_topics: Mapping[str, str]  # topic -> its dead-letter topic
    table_version: int | None  # Delta: the snapshot read
    partitions: tuple[PartitionReport, ...]
    store: StoreFacts
    notes: tuple[str, ...] = ()

    @property
    def ok(self) -> bool:
        return all(p.verdict.ok for p in self.partitions)

    @property
    def exit_code(self) -> int:
        """0 when nothing is missing or duplicated, 1 otherwise."""
        return 0 if self.ok else 1


def build_report(
    *,
    output_format: str,
    output: str,
    group: str,
    dead_letter_topics: Mapping[str, str],
    table_version: int | None,
    facts: Iterable[PartitionFacts],
    store: StoreFacts,
    notes: Iterable[str] = (),
) -> VerifyReport:
    """Judge every partition and add the notes an operator needs to read the verdict."""
    reports = tuple(
        PartitionReport(f, judge(f)) for f in sorted(facts, key=lambda f: (f.topic, f.partition))
    )
    return VerifyReport(
        format=output_format,
        output=output,
        group=group,
        dead_letter_topics=dict(dead_letter_topics),
        table_version=table_version,
        partitions=reports,
        store=store,
        notes=(*notes, *verdict_notes(reports)),
    )


def verdict_notes(reports: Sequence[PartitionReport]) -> list[str]:
    """What is not a failure but needs saying, so nobody misreads the counts."""
    notes = []
    in_progress = sum(size(p.verdict.in_progress) for p in reports)
    if in_progress:
        notes.append(
            f"{in_progress} offset(s) are in PENDING or RUNNING jobs, not judged: a daemon "
            "is at work; verify again once it is idle"
        )
    unexpected = sum(size(p.verdict.unexpected) for p in reports)
    if unexpected:
        notes.append(
            f"{unexpected} offset(s) in raw are not records in Kafka below the checked end: "
            "compacted since, or written before Kafka's commit caught up (not a failure)"
        )
    short = [
        f"{p.name} ends at {p.facts.high_watermark}"
        for p in reports
        if p.facts.in_kafka_metadata and p.facts.high_watermark < p.facts.checked_end
    ]
    if short:
        notes.append(
            "Kafka ends below the checked end (topic recreated or truncated?): " + ", ".join(short)
        )
    not_in_kafka = [p.name for p in reports if not p.facts.in_kafka_metadata]
    if not_in_kafka:
        notes.append(f"raw has rows of partitions Kafka does not have: {', '.join(not_in_kafka)}")
    return notes


# --- rendering ------------------------------------------------------------------------------


def _ranges_doc(ranges: Ranges) -> dict[str, Any]:
    return {"count": size(ranges), "ranges": [[start, end] for start, end in ranges]}


def partition_doc(report: PartitionReport) -> dict[str, Any]:
    f, v = report.facts, report.verdict
    return {
        "topic": f.topic,
        "partition": f.partition,
        "ok": v.ok,
        "kafka": {
            "low_watermark": f.low_watermark,
            "high_watermark": f.high_watermark,
            "committed": f.committed,
            "records_checked": v.kafka_records,
        },
        "table_txn_version": f.txn_version,
        "store_next_offset": f.store_next_offset,
        "checked_end": f.checked_end,
        "raw": {
            "rows": f.raw.rows,
            "offsets": size(f.raw.present),
            "below_low_watermark": v.raw_below_low_watermark,
        },
        "dead_lettered": v.dead_lettered,
        "missing": _ranges_doc(v.missing),
        "duplicated": {**_ranges_doc(v.duplicated), "extra_rows": v.extra_rows},
        "unexpected": _ranges_doc(v.unexpected),
        "in_progress": _ranges_doc(v.in_progress),
        "failed_not_dead_lettered": _ranges_doc(v.failed_not_dead_lettered),
        "in_raw_and_dead_lettered": _ranges_doc(v.in_raw_and_dead_lettered),
    }


def _totals(report: VerifyReport) -> dict[str, int]:
    verdicts = [p.verdict for p in report.partitions]
    return {
        "partitions": len(verdicts),
        "partitions_with_problems": sum(not v.ok for v in verdicts),
        "kafka_records_checked": sum(v.kafka_records for v in verdicts),
        "raw_rows": sum(p.facts.raw.rows for p in report.partitions),
        "dead_lettered": sum(v.dead_lettered for v in verdicts),
        "missing": sum(size(v.missing) for v in verdicts),
        "duplicated": sum(size(v.duplicated) for v in verdicts),
        "extra_rows": sum(v.extra_rows for v in verdicts),
        "unexpected": sum(size(v.unexpected) for v in verdicts),
        "in_progress": sum(size(v.in_progress) for v in verdicts),
    }


def report_doc(report: VerifyReport) -> dict[str, Any]:
    """The ``--json`` document (ranges are ``[start, end)``, end exclusive)."""
    return {
        "ok": report.ok,
        "format": report.format,
        "output": report.output,
        "table_version": report.table_version,
        "group": report.group,
        "dead_letter_topics": dict(report.dead_letter_topics),
        "totals": _totals(report),
        "jobs": {
            "by_status": dict(report.store.by_status),
            "failed": [
                {
                    "id": j.id,
                    "topic": j.topic,
                    "partition": j.partition,
                    "start": j.start,
                    "end": j.end,
                    "records": j.records,
                    "last_error": j.last_error,
                }
                for j in report.store.failed
            ],
        },
        "notes": list(report.notes),
        "partitions": [partition_doc(p) for p in report.partitions],
    }


def _ranges_text(ranges: Ranges, shown: int = 3) -> str:
    parts = [str(s) if e == s + 1 else f"[{s}, {e})" for s, e in ranges[:shown]]
    if len(ranges) > shown:
        parts.append(f"+{len(ranges) - shown} more")
    return " ".join(parts)


def partition_line(report: PartitionReport, output_format: str) -> str:
    f, v = report.facts, report.verdict
    head = f"{report.name}  committed {'-' if f.committed is None else f.committed}"
    if output_format == FORMAT_DELTA:
        head += f"  table {'-' if f.txn_version is None else f.txn_version}"
    parts = [
        head,
        f"kafka {v.kafka_records} record(s) in [{f.low_watermark}, {f.checked_end})",
        f"raw {f.raw.rows}",
        f"dead letters {v.dead_lettered}",
    ]
    if v.missing:
        parts.append(f"MISSING {size(v.missing)}: {_ranges_text(v.missing)}")
    if v.duplicated:
        parts.append(
            f"DUPLICATED {size(v.duplicated)} (+{v.extra_rows} rows): {_ranges_text(v.duplicated)}"
        )
    if v.unexpected:
        parts.append(f"unexpected {size(v.unexpected)}: {_ranges_text(v.unexpected)}")
    if v.in_progress:
        parts.append(f"in progress {size(v.in_progress)}")
    if v.raw_below_low_watermark:
        parts.append(f"{v.raw_below_low_watermark} below the low watermark (not judged)")
    parts.append("ok" if v.ok else "PROBLEMS")
    return "  ".join(parts)


def summary_lines(report: VerifyReport) -> list[str]:
    """The human summary: one line per partition, the job store, notes, OK/PROBLEMS."""
    lines = [partition_line(p, report.format) for p in report.partitions]
    by_status = "  ".join(f"{s}={n}" for s, n in report.store.by_status.items())
    lines.append(f"jobs: {by_status or '-'}")
    for job in report.store.failed:
        dlq = report.dead_letter_topics.get(job.topic, "the dead-letter topic")
        lines.append(
            f"FAILED job {job.id} {job.topic}[{job.partition}] [{job.start}, {job.end}): "
            f"{job.records} record(s), expected in {dlq}"
        )
    lines += [f"note: {note}" for note in report.notes]
    t = _totals(report)
    if report.ok:
        lines.append(
            f"OK: {t['partitions']} partition(s), {t['kafka_records_checked']} record(s) checked: "
            f"{t['raw_rows']} row(s) in raw, {t['dead_lettered']} dead-lettered"
        )
    else:
        lines.append(
            f"PROBLEMS: {t['missing']} missing, {t['duplicated']} duplicated "
            f"(+{t['extra_rows']} rows) in {t['partitions_with_problems']} of "
            f"{t['partitions']} partition(s)"
        )
    return lines


# --- reading Kafka --------------------------------------------------------------------------


def _silent_logger() -> logging.Logger:
    """librdkafka's own log lines (a broker reconnecting) would interleave with
    the summary; its errors come back as exceptions and events anyway."""
    logger = logging.Logger("actorsys.verify.kafka")
    logger.addHandler(logging.NullHandler())
    logger.propagate = False
    return logger


def reader_properties(config: AppConfig) -> dict[str, Any]:
    """The daemon's consumer settings (its security and isolation level, so the
    same records are seen), as a reader that never joins the group nor commits:
    it only ``assign()``s, and asks for the group's offsets with ``committed()``."""
    props: dict[str, Any] = dict(consumer_properties(config, config.kafka.bootstrap_servers))
    props.pop("group.instance.id", None)  # static membership belongs to the daemon
    props.update(
        {
            "enable.partition.eof": "true",  # the end of a partition, to stop there
            "auto.offset.reset": "earliest",  # retention moved the start: read from the new one
            "logger": _silent_logger(),
        }
    )
    return props


def open_reader(config: AppConfig) -> Consumer:
    """The one Kafka client verify uses. Its properties are checked by librdkafka
    first, as at daemon start-up, so a mistake is one line with secrets blanked."""
    if config.kafka.bootstrap_servers == EMBEDDED:
        raise ConfigError(
            '[kafka] bootstrap_servers = "embedded": the daemon\'s in-memory broker has no '
            "address verify can reach (and is gone once the daemon stops); give a config "
            "that names the broker's host:port"
        )
    validate_client_properties(config)
    try:
        return Consumer(reader_properties(config))
    except (KafkaException, ValueError, TypeError) as exc:
        raise ConfigError(f"kafka properties (verify's reader): {_kafka_message(exc)}") from None


def _kafka_message(exc: Exception) -> str:
    first = exc.args[0] if exc.args else exc
    message = first.str() if isinstance(first, KafkaError) else str(first)
    return " ".join(message.split())


def topic_partitions(
    consumer: Consumer, topics: Sequence[str], timeout_s: float
) -> dict[str, list[int]]:
    """``{topic: [partition, ...]}`` for the topics that exist. All topics are
    listed, never one by name: a by-name request can auto-create the topic."""
    try:
        metadata = consumer.list_topics(timeout=timeout_s)
    except KafkaException as exc:
        raise VerifyError(f"cannot list Kafka topics: {_kafka_message(exc)}") from None
    found: dict[str, list[int]] = {}
    for topic in topics:
        meta = metadata.topics.get(topic)
        if meta is not None and meta.error is None:
            found[topic] = sorted(meta.partitions)
    return found


def committed_offsets(
    consumer: Consumer, keys: Sequence[PartitionKey], timeout_s: float
) -> dict[PartitionKey, int | None]:
    """The group's committed offsets (None: nothing committed), asked of the
    group coordinator without joining the group."""
    if not keys:
        return {}
    try:
        tps = consumer.committed([TopicPartition(t, p) for t, p in keys], timeout=timeout_s)
    except KafkaException as exc:
        raise VerifyError(f"cannot read committed offsets: {_kafka_message(exc)}") from None
    found: dict[PartitionKey, int | None] = {}
    for tp in tps:
        if tp.error is not None:
            raise VerifyError(f"committed offset of {tp.topic}[{tp.partition}]: {tp.error.str()}")
        found[(tp.topic, tp.partition)] = tp.offset if tp.offset >= 0 else None
    return found


def watermarks(consumer: Consumer, topic: str, partition: int, timeout_s: float) -> Range:
    """``(low, high)`` as ListOffsets answers. Only ``low`` is relied on: some
    brokers (the embedded Tansu) answer ``high`` with a stale offset, so scans
    run until the fetch itself reports the end of the partition."""
    try:
        low, high = consumer.get_watermark_offsets(
            TopicPartition(topic, partition), timeout=timeout_s, cached=False
        )
    except KafkaException as exc:
        raise VerifyError(
            f"cannot read the watermarks of {topic}[{partition}]: {_kafka_message(exc)}"
        ) from None
    return int(low), int(high)


def scan(
    consumer: Consumer,
    topic: str,
    partition: int,
    start: int,
    end: int,
    visit: Callable[[Message], None],
    stall_s: float,
) -> int | None:
    """Give ``visit`` every record of the partition in ``[start, end)``, in order;
    return the high watermark the fetches reported (None when nothing was read).

    Stops at the first record at or past ``end`` or where the fetch reports
    the end of the partition (transaction markers and compaction leave offsets
    without a record, so ``end - 1`` may never come). Fails when nothing
    arrives for ``stall_s``.
    """
    if start >= end:
        return None
    consumer.assign([TopicPartition(topic, partition, start)])
    try:
        _deliver(consumer, f"{topic}[{partition}]", end, visit, stall_s)
        return _fetched_high(consumer, topic, partition)
    finally:
        consumer.unassign()


def _deliver(
    consumer: Consumer, name: str, end: int, visit: Callable[[Message], None], stall_s: float
) -> None:
    last_progress = time.monotonic()
    while True:
        messages = consumer.consume(num_messages=1000, timeout=0.2)
        if not messages and time.monotonic() - last_progress > stall_s:
            raise VerifyError(f"reading {name} up to {end}: nothing arrived for {stall_s:g} s")
        for message in messages:
            last_progress = time.monotonic()
            error = message.error()
            if error is not None:
                if error.code() == KafkaError._PARTITION_EOF:
                    return
                if error.fatal() or not error.retriable():
                    raise VerifyError(f"reading {name}: {error.str()}")
                continue
            offset = message.offset()
            if offset is None or offset >= end:
                return
            visit(message)


def _fetched_high(consumer: Consumer, topic: str, partition: int) -> int | None:
    """The high watermark of the last fetch response (no request is made)."""
    try:
        _, high = consumer.get_watermark_offsets(TopicPartition(topic, partition), cached=True)
    except KafkaException:
        return None
    return int(high) if high is not None and high >= 0 else None


def record_offsets(
    consumer: Consumer, topic: str, partition: int, start: int, end: int, stall_s: float
) -> tuple[Ranges, int | None]:
    """The offsets in ``[start, end)`` that hold a record, and the high
    watermark the fetches reported."""
    builder = RunBuilder()

    def visit(message: Message) -> None:
        offset = message.offset()
        assert offset is not None, "scan() visits only records with an offset"
        builder.add(offset)

    high = scan(consumer, topic, partition, start, end, visit, stall_s)
    return builder.ranges(), high


def dead_letter_source(
    headers: Iterable[tuple[str, bytes | None]] | None,
) -> tuple[str, int, int] | None:
    """``(source_topic, source_partition, source_offset)`` from a dead letter's
    headers, or None when they are absent or unreadable."""
    values = {name: value for name, value in (headers or []) if value is not None}
    try:
        return (
            values["source_topic"].decode(),
            int(values["source_partition"]),
            int(values["source_offset"]),
        )
    except (KeyError, ValueError, UnicodeDecodeError):
        return None


def dead_lettered_offsets(
    consumer: Consumer, dlq_topic: str, partitions: Sequence[int], timeout_s: float
) -> tuple[dict[PartitionKey, Ranges], int]:
    """Per source partition, the offsets the dead-letter topic holds a letter
    for; and how many letters had no readable ``source_*`` headers."""
    sources: dict[PartitionKey, list[int]] = defaultdict(list)
    unreadable = 0

    def visit(message: Message) -> None:
        nonlocal unreadable
        # Typed for produced messages too (a dict, str values); a consumed
        # message's headers are (name, bytes | None) pairs, or None.
        headers = cast("list[tuple[str, bytes | None]] | None", message.headers())
        source = dead_letter_source(headers)
        if source is None:
            unreadable += 1
        else:
            sources[(source[0], source[1])].append(source[2])

    for partition in partitions:
        low, _ = watermarks(consumer, dlq_topic, partition, timeout_s)
        scan(consumer, dlq_topic, partition, low, OFFSET_MAX, visit, timeout_s)
    return {key: runs(offsets) for key, offsets in sources.items()}, unreadable


# --- reading raw ----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class RawFacts:
    """raw's rows per partition and, for Delta, the txn versions of the same snapshot."""

    location: Path
    offsets: Mapping[PartitionKey, RawOffsets]
    txn_versions: Mapping[PartitionKey, int | None] = field(default_factory=dict)
    table_version: int | None = None
    note: str | None = None


def offsets_by_partition(dataset: pads.Dataset, topic: str) -> dict[int, RawOffsets]:
    """Rows per ``(_partition, _offset)`` of ``topic`` in ``dataset``."""
    table = dataset.to_table(columns=["_partition", "_offset"], filter=pc.field("_topic") == topic)
    counts = (
        table.group_by(["_partition", "_offset"])
        .aggregate([([], "count_all")])
        .sort_by([("_partition", "ascending"), ("_offset", "ascending")])
    )
    found: dict[int, list[tuple[int, int]]] = defaultdict(list)
    for partition, offset, copies in zip(
        counts.column("_partition").to_pylist(),
        counts.column("_offset").to_pylist(),
        counts.column("count_all").to_pylist(),
        strict=True,
    ):
        found[int(partition)].append((int(offset), int(copies)))
    return {partition: RawOffsets.from_counts(pairs) for partition, pairs in found.items()}


def _by_topic(dataset: pads.Dataset, topics: Sequence[str]) -> dict[PartitionKey, RawOffsets]:
    return {
        (topic, partition): offsets
        for topic in topics
        for partition, offsets in offsets_by_partition(dataset, topic).items()
    }


def read_delta(root: Path, group: str, partitions: Mapping[str, Sequence[int]]) -> RawFacts:
    """One snapshot of the table: its rows and, for every partition Kafka has or
    the table has rows of, the txn version recorded for the group."""
    from deltalake import DeltaTable
    from deltalake.exceptions import DeltaError

    from actorsys.tables.delta import app_id

    if not DeltaTable.is_deltatable(str(root)):
        return RawFacts(root, {}, note=f"no Delta table at {root}: raw is empty")
    try:
        table = DeltaTable(str(root))
        offsets = _by_topic(table.to_pyarrow_dataset(), list(partitions))
        keys = {(t, p) for t, ps in partitions.items() for p in ps} | set(offsets)
        txns = {key: table.transaction_version(app_id(group, *key)) for key in sorted(keys)}
        return RawFacts(root, offsets, txns, table.version())
    except (DeltaError, OSError, pa.ArrowException) as exc:
        raise VerifyError(f"cannot read the Delta table at {root}: {exc}") from None


def parquet_files(root: Path) -> list[Path]:
    """The published raw files: ``*.parquet`` under ``root``, without files
    being written (``.tmp-…``) or anything hidden (``.``/``_``-prefixed)."""
    if not root.is_dir():
        return []
    return sorted(
        path
        for path in root.rglob("*.parquet")
        if not any(part.startswith((".", "_")) for part in path.relative_to(root).parts)
    )


def read_parquet(root: Path, topics: Sequence[str]) -> RawFacts:
    files = parquet_files(root)
    if not files:
        return RawFacts(root, {}, note=f"no Parquet files under {root}: raw is empty")
    try:
        dataset = pads.dataset([str(path) for path in files], format="parquet")
        return RawFacts(root, _by_topic(dataset, topics))
    except (OSError, pa.ArrowException) as exc:
        raise VerifyError(f"cannot read the Parquet files under {root}: {exc}") from None


# --- reading the job store ------------------------------------------------------------------


def _every_job(store: JobStore, status: JobStatus) -> list[JobRecord]:
    """Every job in ``status``: ``list_jobs`` caps its answer, so ask again
    with a larger cap until the answer is shorter than it."""
    limit = 1000
    while True:
        jobs = store.list_jobs(status, limit)
        if len(jobs) < limit:
            return jobs
        limit *= 4


def _first_line(text: str | None) -> str:
    return text.splitlines()[0] if text else ""


def read_store(config: AppConfig, topics: Sequence[str]) -> StoreFacts:
    """Counts by status (the whole store) and, for this group and these topics,
    the offsets of unfinished jobs, the FAILED jobs and the next expected offsets."""
    group, wanted = config.kafka.group_id, set(topics)
    store = open_job_store(config.jobs.store, create=False)
    try:
        counts = {status.value: n for status, n in store.count_by_status().items()}
        ours = [
            job
            for status in (JobStatus.PENDING, JobStatus.RUNNING, JobStatus.FAILED)
            for job in _every_job(store, status)
            if job.consumer_group == group and job.topic in wanted
        ]
        next_offsets = {
            key: offset for key, offset in store.next_offsets(group).items() if key[0] in wanted
        }
    finally:
        store.close()
    unfinished: dict[PartitionKey, list[Range]] = defaultdict(list)
    failed = []
    for job in ours:
        if job.status is JobStatus.FAILED:
            failed.append(
                FailedJob(
                    job.id,
                    job.topic,
                    job.partition,
                    job.start_offset,
                    job.end_offset,
                    job.record_count,
                    _first_line(job.last_error),
                )
            )
        else:
            unfinished[(job.topic, job.partition)].append((job.start_offset, job.end_offset))
    return StoreFacts(
        by_status=counts,
        unfinished={key: normalise(ranges) for key, ranges in unfinished.items()},
        failed=tuple(sorted(failed, key=lambda j: (j.topic, j.partition, j.start))),
        next_offsets=next_offsets,
    )


# --- the whole check ------------------------------------------------------------------------


def _topics(config: AppConfig, only: Sequence[str]) -> list[str]:
    configured = list(config.kafka.topics)
    unknown = [t for t in only if t not in configured]
    if unknown:
        raise ConfigError(
            f"--topic {unknown[0]} is not one of the config's topics ({', '.join(configured)})"
        )
    return list(dict.fromkeys(only)) or configured


def read_raw(config: AppConfig, partitions: Mapping[str, Sequence[int]]) -> RawFacts:
    root = Path(config.output.dir) / RAW_TABLE
    if config.output.format == FORMAT_DELTA:
        return read_delta(root, config.kafka.group_id, partitions)
    return read_parquet(root, list(partitions))


def _dead_letters(
    consumer: Consumer,
    dlq_topics: Iterable[str],
    partitions: Mapping[str, Sequence[int]],
    timeout_s: float,
    notes: list[str],
) -> dict[PartitionKey, Ranges]:
    """Every dead-lettered source offset, from each distinct dead-letter topic."""
    dead: dict[PartitionKey, Ranges] = {}
    for dlq in dict.fromkeys(dlq_topics):
        if dlq not in partitions:
            notes.append(f"dead-letter topic {dlq} does not exist: no dead letters")
            continue
        found, unreadable = dead_lettered_offsets(consumer, dlq, partitions[dlq], timeout_s)
        for key, ranges in found.items():
            dead[key] = union(dead.get(key, ()), ranges)
        if unreadable:
            notes.append(f"{unreadable} dead letter(s) in {dlq} have no source_* headers")
    return dead


def _partition_facts(
    consumer: Consumer,
    key: PartitionKey,
    committed: Mapping[PartitionKey, int | None],
    raw: RawFacts,
    dead: Mapping[PartitionKey, Ranges],
    store: StoreFacts,
    timeout_s: float,
) -> PartitionFacts:
    """Read the records Kafka holds below the partition's checked end, and put
    them together with what the other sources said about the partition."""
    topic, partition = key
    in_kafka = key in committed
    low, listed_high = watermarks(consumer, topic, partition, timeout_s) if in_kafka else (0, 0)
    txn = raw.txn_versions.get(key)
    end = max(committed.get(key) or 0, txn or 0) if in_kafka else 0
    records, fetched_high = record_offsets(consumer, topic, partition, low, end, timeout_s)
    return PartitionFacts(
        topic=topic,
        partition=partition,
        low_watermark=low,
        high_watermark=max(listed_high, fetched_high or 0),
        committed=committed.get(key),
        txn_version=txn,
        kafka=records,
        dead_lettered=dead.get(key, ()),
        raw=raw.offsets.get(key, RawOffsets()),
        unfinished=store.unfinished.get(key, ()),
        failed=store.failed_ranges(key),
        store_next_offset=store.next_offsets.get(key),
        in_kafka_metadata=in_kafka,
    )


def verify(
    config: AppConfig, only_topics: Sequence[str] = (), timeout_s: float = 30.0
) -> VerifyReport:
    """Read every source in the order the module docstring explains, then judge.

    Raises ConfigError for a configuration that cannot be checked and
    VerifyError (or the job store's JobStoreError) when a source cannot be read.
    """
    topics = _topics(config, only_topics)
    dlq_topics = {topic: config.kafka.dead_letter_topic_for(topic) for topic in topics}
    notes: list[str] = []
    consumer = open_reader(config)
    try:
        partitions = topic_partitions(consumer, [*topics, *dlq_topics.values()], timeout_s)
        absent = [t for t in topics if t not in partitions]
        if absent:
            raise VerifyError(f"topic {absent[0]} does not exist in Kafka")
        source = {topic: partitions[topic] for topic in topics}
        keys = [(topic, p) for topic, ps in source.items() for p in ps]
        # 1. Kafka's commits: everything below them is stored as jobs from now on.
        committed = committed_offsets(consumer, keys, timeout_s)
        # 2. The job store, 3. raw, 4. the dead letters, 5. Kafka's records.
        store = read_store(config, topics)
        raw = read_raw(config, source)
        notes += [raw.note] if raw.note else []
        dead = _dead_letters(consumer, dlq_topics.values(), partitions, timeout_s, notes)
        facts = [
            _partition_facts(consumer, key, committed, raw, dead, store, timeout_s)
            for key in sorted(set(keys) | set(raw.offsets))
        ]
    finally:
        consumer.close()
    return build_report(
        output_format=config.output.format,
        output=str(raw.location),
        group=config.kafka.group_id,
        dead_letter_topics=dlq_topics,
        table_version=raw.table_version,
        facts=facts,
        store=store,
        notes=notes,
    )
