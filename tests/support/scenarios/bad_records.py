"""Records the handler must reject: every kind (invalid UTF-8, JSON arrays,
NaN/Infinity/1e999, timestamps in 1900 and 3000, empty values, tombstones, a
blob of 900 kB or 1 MiB that is not JSON) among valid readings, one of them
1 MiB. Each bad one must land in the dead-letter topic exactly once with
the right ``reason``; every valid one in raw exactly once."""

from __future__ import annotations

import time
from collections import Counter
from pathlib import Path
from typing import Any

from confluent_kafka import Producer

from actorsys.embedded_broker import EmbeddedBroker
from actorsys.kafka_clients import create_topic_if_missing
from actorsys.simulator import IotRecordFactory, ProduceReport
from tests.support.checks import dead_letters
from tests.support.rig import Rig
from tests.support.scenario import ScenarioResult, scenario

MIB = 1024 * 1024


class DeadLettersWrong(AssertionError):
    """A bad record is missing from the dead-letter topic, has the wrong
    reason, or a valid record is there too."""


YEAR_1900_MS = -2_208_988_800_000  # 1900-01-01T00:00:00Z
YEAR_3000_MS = 32_503_680_000_000  # 3000-01-01T00:00:00Z
# librdkafka's default message.max.bytes (1,000,000) refuses anything bigger
# at produce(), before the broker sees it.
DEFAULT_MESSAGE_MAX_BYTES = 1_000_000


def _reading(device: str, ts: int | str, metrics: str = "") -> bytes:
    """A reading built as text, so it can hold literals ``json`` would refuse."""
    body = f'"device_id":"{device}","ts":{ts}'
    return ("{" + body + (f",{metrics}" if metrics else "") + "}").encode()


def _huge_valid(now_ms: int, size: int) -> bytes:
    """A valid reading of ``size`` bytes: extra fields are ignored by the handler."""
    head = _reading("dev-huge", now_ms, '"temperature":21.5,"note":"')
    return head[:-1] + b"x" * (size - len(head) - 1) + b'"}'


def _huge_invalid(size: int) -> bytes:
    """``size`` bytes of JSON cut off inside a string: not JSON."""
    head = b'{"device_id":"dev-huge","ts":1,"note":"'
    return head + b"y" * (size - len(head))


def _bad_values(now_ms: int, invalid_blob_size: int) -> list[tuple[str, bytes | None, str]]:
    """(what, value, the dead-letter reason it must get)."""
    return [
        ("binary noise", b"\x80\xff\xfe\x00 not text", "invalid_utf8"),
        ("invalid UTF-8 inside JSON", b'{"device_id":"dev-\xff\xfe","ts":1}', "invalid_utf8"),
        ("a JSON array", b'[{"device_id":"dev-0001","ts":%d}]' % now_ms, "not_object"),
        ("an empty JSON array", b"[]", "not_object"),
        # NaN and Infinity are not JSON (RFC 8259): not_json, not not_finite.
        ("NaN", _reading("dev-0001", now_ms, '"temperature":NaN'), "not_json"),
        ("Infinity", _reading("dev-0001", now_ms, '"humidity":Infinity'), "not_json"),
        ("-Infinity", _reading("dev-0001", now_ms, '"battery":-Infinity'), "not_json"),
        ("1e999", _reading("dev-0001", now_ms, '"temperature":1e999'), "not_finite"),
        ("ts in 1900", _reading("dev-0001", YEAR_1900_MS), "ts_out_of_range"),
        ("ts in 3000", _reading("dev-0001", YEAR_3000_MS), "ts_out_of_range"),
        (f"{invalid_blob_size:,} bytes not JSON", _huge_invalid(invalid_blob_size), "not_json"),
        ("an empty value", b"", "empty"),
        ("a null value (tombstone)", None, "tombstone"),
    ]


def _produce_mixed(
    bootstrap: str, topic: str, bad: list[tuple[str, bytes | None, str]], valid: list[bytes]
) -> tuple[ProduceReport, dict[tuple[int, int], str]]:
    """Produce ``valid`` with the ``bad`` ones spread among them, on 2 partitions;
    return the report and the reason expected at each bad position."""
    create_topic_if_missing(bootstrap, topic, 2)
    producer = Producer(
        {
            "bootstrap.servers": bootstrap,
            "acks": "all",
            "linger.ms": 5,
            # Above librdkafka's 1,000,000-byte default, for the 1 MiB records.
            "message.max.bytes": 8 * MIB,
        }
    )
    records: list[tuple[bytes | None, str | None]] = [(v, None) for v in valid]
    step = max(1, len(valid) // (len(bad) + 1))
    for i, (_what, value, bad_reason) in enumerate(bad):
        records.insert((i + 1) * step + i, (value, bad_reason))
    expected: dict[tuple[int, int], str] = {}
    errors: list[str] = []
    end_offsets: dict[int, int] = {}
    started = time.monotonic()

    def delivered(reason: str | None) -> Any:
        def on_delivery(err: Any, msg: Any) -> None:
            if err is not None:
                errors.append(str(err))
                return
            position = (msg.partition(), msg.offset())
            end_offsets[position[0]] = max(end_offsets.get(position[0], 0), position[1] + 1)
            if reason is not None:
                expected[position] = reason

        return on_delivery

    for i, (value, reason) in enumerate(records):
        key = f"dev-{i % 10:04d}".encode()
        producer.produce(topic, value, key, partition=i % 2, on_delivery=delivered(reason))
        producer.poll(0)
    assert producer.flush(60) == 0, "records still undelivered after 60 s"
    assert not errors, f"delivery failed: {errors[:3]}"
    by_reason: dict[str, int] = {}
    for reason in expected.values():
        by_reason[reason] = by_reason.get(reason, 0) + 1
    report = ProduceReport(
        topic=topic,
        produced=len(records),
        valid=len(valid),
        malformed=len(bad),
        end_offsets=dict(sorted(end_offsets.items())),
        malformed_positions=frozenset(expected),
        elapsed_s=time.monotonic() - started,
        malformed_by_kind=by_reason,
    )
    return report, expected


def _bad_records(
    workdir: Path, broker: EmbeddedBroker, name: str, invalid_blob_size: int
) -> ScenarioResult:
    with Rig(workdir, broker.bootstrap_servers, name, partitions=2) as rig:
        # Given valid readings, a 1 MiB valid one among them, and every kind of bad record
        now_ms = int(time.time() * 1000)
        factory = IotRecordFactory(devices=20, seed=71)
        valid = [value for _key, value, _kind in factory.batch(3000) if value is not None]
        valid.insert(len(valid) // 2, _huge_valid(now_ms, MIB))
        bad = _bad_values(now_ms, invalid_blob_size)
        report, expected = _produce_mixed(rig.bootstrap, rig.topic, bad, valid)
        # When the daemon reads them (failures retried quickly, so a job that
        # cannot dead-letter its records is FAILED within seconds), with
        # message.max.bytes raised for every Kafka client [kafka.properties] reaches
        started = time.monotonic()
        daemon = rig.start(
            "daemon",
            kafka={"properties": {"message.max.bytes": str(8 * MIB)}},
            jobs={"max_attempts": 2, "retry_backoff_initial_s": 0.2},
        )
        rig.wait_complete(daemon, report)
        complete_s = time.monotonic() - started
        shutdown_s = rig.stop(daemon)
        letters = dead_letters(rig.bootstrap, rig.dlq, len(bad))
        got = {
            (int(h["source_partition"]), int(h["source_offset"])): h.get("reason", "")
            for h in letters
            if h.get("source_topic") == rig.topic
        }
        wrong = {
            pos: (got.get(pos), want) for pos, want in expected.items() if got.get(pos) != want
        }
        result = ScenarioResult(
            name,
            f"{len(bad)} bad records among {len(valid)} valid ones "
            f"(1 MiB valid; a {invalid_blob_size:,}-byte invalid blob)",
            {
                "records_in": report.produced,
                "valid": report.valid,
                "bad": report.malformed,
                "dead_letters": len(letters),
                "reasons": ",".join(
                    f"{r}:{n}" for r, n in sorted(report.malformed_by_kind.items())
                ),
                "jobs_by_status": rig.jobs_by_status(),
                "start_to_all_done_s": round(complete_s, 1),
                "shutdown_s": round(shutdown_s, 1),
            },
        )
        # Then every bad record is dead-lettered with the right reason, and nothing else is
        missing = sorted(set(expected) - set(got))
        extra = Counter(reason for pos, reason in got.items() if pos not in expected)
        if missing or extra:
            raise DeadLettersWrong(
                f"dead letters: missing {missing} ({[expected[p] for p in missing]}); "
                f"{sum(extra.values())} valid record(s) dead-lettered too, by reason "
                f"{dict(extra)}: {result.summary()}"
            )
        if wrong:
            raise DeadLettersWrong(f"wrong dead-letter reasons (got, want): {wrong}")
        # And the exactly-once output check holds (valid ones in raw exactly once)
        rig.check(report)
        return result


@scenario("bad_records")
def bad_records(workdir: Path, broker: EmbeddedBroker) -> ScenarioResult:
    """Invalid UTF-8, JSON arrays, NaN/Infinity/1e999, ``ts`` in 1900 and 3000,
    an empty value, a tombstone and a 900 kB blob that is not JSON, among valid
    readings and one valid reading of 1 MiB (valid: extra fields are ignored)."""
    return _bad_records(workdir, broker, "bad_records", 900_000)


@scenario("bad_records_oversized")
def bad_records_oversized(workdir: Path, broker: EmbeddedBroker) -> ScenarioResult:
    """As ``bad_records``, but the invalid blob is 1 MiB: more than the
    dead-letter producer's ``message.max.bytes`` (librdkafka's default,
    1,000,000), which ``[kafka.properties]`` does not reach."""
    return _bad_records(workdir, broker, "bad_records_oversized", MIB)
