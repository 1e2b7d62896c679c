"""Record validation of the IoT handler: every rule and every reason word."""

from __future__ import annotations

from datetime import UTC, datetime

import msgpack
import orjson
import pytest

from actorsys.handlers.validation import (
    DEFAULT_TS_MAX_MS,
    DEFAULT_TS_MIN_MS,
    InvalidRecord,
    ValidationRules,
    decode_value,
    iso_to_epoch_ms,
    parse_value,
    validate_batch,
    validate_object,
)
from actorsys.records import Record

RULES = ValidationRules(metrics=("temperature", "humidity", "battery"))
TS = 1_767_225_600_000  # 2026-01-01T00:00:00Z


def _json(**fields: object) -> bytes:
    return orjson.dumps(fields)


def _reason(value: bytes | None, rules: ValidationRules = RULES) -> str:
    with pytest.raises(InvalidRecord) as caught:
        parse_value(value, rules)
    assert caught.value.detail, "every rejection carries a human-readable detail"
    return caught.value.reason


def test_valid_record_becomes_a_row_of_device_ts_and_float_metrics() -> None:
    # Given a record with an int, a float and an absent metric
    value = _json(device_id="d-1", ts=TS, temperature=21, humidity=40.5)

    # When it is parsed
    row = parse_value(value, RULES)

    # Then ints become floats and the absent metric is None
    assert row == ["d-1", TS, 21.0, 40.5, None]
    assert type(row[2]) is float


def test_json_null_metric_is_absent_and_extra_fields_are_ignored() -> None:
    # Given a null metric and fields the handler does not know
    value = _json(device_id="d", ts=TS, battery=None, firmware="1.2", nested={"a": [1]})

    # When / Then it is valid, with every metric absent
    assert parse_value(value, RULES) == ["d", TS, None, None, None]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2026-01-01T00:00:00Z", datetime(2026, 1, 1, tzinfo=UTC)),
        ("2026-01-01T02:00:00+02:00", datetime(2026, 1, 1, tzinfo=UTC)),
        ("2025-12-31T19:30:00.250-05:00", datetime(2026, 1, 1, 0, 30, 0, 250_000, tzinfo=UTC)),
        ("2026-01-01T00:00:00", datetime(2026, 1, 1, tzinfo=UTC)),  # naive = UTC
        ("2026-01-01T00:00:00.123456+00:00", datetime(2026, 1, 1, 0, 0, 0, 123_000, tzinfo=UTC)),
    ],
)
def test_iso_ts_is_converted_to_utc_epoch_ms(text: str, expected: datetime) -> None:
    # Given an ISO-8601 ts with or without an offset
    value = _json(device_id="d", ts=text)

    # When it is parsed
    row = parse_value(value, RULES)

    # Then ts is UTC epoch milliseconds (sub-millisecond digits truncated)
    assert row[1] == int(expected.timestamp() * 1000)
    assert row[1] == iso_to_epoch_ms(text)


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        (None, "tombstone"),
        (b"", "empty"),
        (b'{"device_id": "\xff", "ts": 1}', "invalid_utf8"),
        (b'{"device_id": "\xed\xa0\x80", "ts": 1}', "invalid_utf8"),  # a lone surrogate
        (b"not json", "not_json"),
        (b"   ", "not_json"),
        (b'{"device_id": "d", "ts": NaN}', "not_json"),
        (b'{"device_id": "d"', "not_json"),
        (b"[1, 2]", "not_object"),
        (b'"a string"', "not_object"),
        (b"42", "not_object"),
        (b"null", "not_object"),
        (_json(ts=TS), "missing_field"),
        (_json(device_id=None, ts=TS), "missing_field"),
        (_json(device_id="", ts=TS), "missing_field"),
        (_json(device_id="d"), "missing_field"),
        (_json(device_id="d", ts=None), "missing_field"),
        (_json(device_id=7, ts=TS), "wrong_type"),
        (_json(device_id=True, ts=TS), "wrong_type"),
        (_json(device_id=["d"], ts=TS), "wrong_type"),
        (_json(device_id="d", ts=float(TS)), "wrong_type"),
        (_json(device_id="d", ts=True), "wrong_type"),
        (_json(device_id="d", ts="yesterday"), "wrong_type"),
        (_json(device_id="d", ts={"ms": TS}), "wrong_type"),
        (_json(device_id="d", ts=TS, temperature="21"), "wrong_type"),
        (_json(device_id="d", ts=TS, humidity=False), "wrong_type"),
        (_json(device_id="d", ts=TS, battery=[1]), "wrong_type"),
        (b'{"device_id": "d", "ts": 1767225600000, "temperature": 1e999}', "not_finite"),
        (b'{"device_id": "d", "ts": 1767225600000, "battery": -1e999}', "not_finite"),
        (_json(device_id="d", ts=0), "ts_out_of_range"),
        (_json(device_id="d", ts=DEFAULT_TS_MIN_MS - 1), "ts_out_of_range"),
        (_json(device_id="d", ts=DEFAULT_TS_MAX_MS), "ts_out_of_range"),
        (_json(device_id="d", ts="1999-12-31T23:59:59.999Z"), "ts_out_of_range"),
        (_json(device_id="d", ts="2100-01-01T00:00:00Z"), "ts_out_of_range"),
        (_json(device_id="d", ts=2**63 + 5), "ts_out_of_range"),  # beyond int64
        (b'{"device_id": "d", "ts": 18446744073709551616}', "wrong_type"),  # orjson: a float
    ],
)
def test_each_bad_record_gets_its_reason(value: bytes | None, reason: str) -> None:
    # Given a bad record value / When it is parsed / Then the reason word is exact
    assert _reason(value) == reason


@pytest.mark.parametrize("bad", [float("inf"), float("-inf"), float("nan")])
def test_non_finite_metric_is_rejected_even_if_the_parser_lets_it_in(bad: float) -> None:
    # Given a decoded object whose metric is not finite (orjson never yields
    # one; another parser might)
    obj = {"device_id": "d", "ts": TS, "humidity": bad}

    # When / Then it is rejected as not_finite
    with pytest.raises(InvalidRecord) as caught:
        validate_object(obj, RULES)
    assert caught.value.reason == "not_finite"


def test_ts_range_bounds_are_inclusive_exclusive_and_configurable() -> None:
    # Given rules that accept [1000, 2000)
    rules = ValidationRules(metrics=(), ts_min_ms=1000, ts_max_ms=2000)

    # When / Then the lower bound is in and the upper bound is out
    assert parse_value(_json(device_id="d", ts=1000), rules) == ["d", 1000]
    assert parse_value(_json(device_id="d", ts=1999), rules) == ["d", 1999]
    assert _reason(_json(device_id="d", ts=2000), rules) == "ts_out_of_range"
    assert _reason(_json(device_id="d", ts=999), rules) == "ts_out_of_range"


def test_a_one_megabyte_record_is_valid_without_a_limit() -> None:
    # Given a valid record padded to over 1 MB by an ignored field
    value = _json(device_id="d", ts=TS, temperature=1.5, padding="x" * 1_048_576)
    assert len(value) > 1_048_576

    # When / Then it is valid by default, and too_large once a limit is set
    assert parse_value(value, RULES) == ["d", TS, 1.5, None, None]
    limited = ValidationRules(metrics=RULES.metrics, max_record_bytes=1_000_000)
    assert _reason(value, limited) == "too_large"


def test_validate_batch_returns_columns_in_offset_order_and_keeps_rejections() -> None:
    # Given valid and invalid records interleaved
    records = [
        Record(10, None, b"k0", _json(device_id="a", ts=TS, temperature=1)),
        Record(11, None, b"k1", b"garbage"),
        Record(13, None, None, _json(device_id="b", ts=TS + 1, battery=3.5)),
        Record(14, None, b"k4", None),
    ]

    # When the batch is validated
    batch = validate_batch(records, RULES)

    # Then valid values come out as columns and bad records keep their record
    assert batch.device_ids == ["a", "b"]
    assert batch.ts_ms == [TS, TS + 1]
    assert batch.metrics == {
        "temperature": [1.0, None],
        "humidity": [None, None],
        "battery": [None, 3.5],
    }
    assert batch.offsets == [10, 13]
    assert batch.valid_records == 2
    assert [(r.record, r.reason) for r in batch.rejections] == [
        (records[1], "not_json"),
        (records[3], "tombstone"),
    ]


# --- MessagePack values ----------------------------------------------------------------------

MSGPACK_RULES = ValidationRules(metrics=RULES.metrics, value_format="msgpack")


def _packed(**fields: object) -> bytes:
    packed: bytes = msgpack.packb(fields)
    return packed


# MessagePack's 32-bit float form carries infinities too (decoded to a Python float).
FLOAT32_INFINITY: bytes = msgpack.packb(
    {"device_id": "d", "ts": TS, "humidity": float("inf")}, use_single_float=True
)


def test_msgpack_map_becomes_the_same_row_as_the_json_object() -> None:
    # Given the same reading as a JSON object and as a MessagePack map
    fields = {"device_id": "d-1", "ts": TS, "temperature": 21, "humidity": 40.5, "battery": None}

    # When each is parsed by the rules of its format
    row = parse_value(_packed(**fields), MSGPACK_RULES)

    # Then the rows are equal: ints become floats, nil is absent
    assert row == parse_value(_json(**fields), RULES) == ["d-1", TS, 21.0, 40.5, None]
    assert type(row[2]) is float


def test_msgpack_ts_may_be_an_iso_string_and_other_keys_are_ignored() -> None:
    # Given an ISO ts, extra fields, and keys msgpack allows but JSON has not (ints, bin)
    value = msgpack.packb(
        {"device_id": "d", "ts": "2026-01-01T01:00:00+01:00", 7: "x", b"raw": [1], "f": {}}
    )

    # When / Then it is valid: a non-string key is just another ignored field
    assert parse_value(value, MSGPACK_RULES) == ["d", TS, None, None, None]


@pytest.mark.parametrize(
    ("seconds", "nanoseconds", "ts_ms"),
    [
        (TS // 1000, 0, TS),
        (TS // 1000, 999_999_999, TS + 999),  # sub-millisecond digits truncated
        (TS // 1000 + 1, 1_000_000, TS + 1_001),
        (2**34 - 1, 5_000_000, (2**34 - 1) * 1000 + 5),  # the 64-bit form's largest seconds
    ],
)
def test_msgpack_timestamp_extension_is_exact_epoch_ms(
    seconds: int, nanoseconds: int, ts_ms: int
) -> None:
    # Given a ts as a MessagePack Timestamp extension (type -1)
    rules = ValidationRules(metrics=(), ts_max_ms=2**62, value_format="msgpack")
    value = _packed(device_id="d", ts=msgpack.Timestamp(seconds, nanoseconds))

    # When it is parsed
    row = parse_value(value, rules)

    # Then ts is its epoch milliseconds, computed exactly (no float on the way)
    assert row == ["d", ts_ms]


def test_msgpack_timestamp_outside_the_range_is_out_of_range_even_beyond_datetime() -> None:
    # Given Timestamps before 2000 and beyond datetime's year 9999
    early = _packed(device_id="d", ts=msgpack.Timestamp(0, 0))
    far = _packed(device_id="d", ts=msgpack.Timestamp(2**40, 0))

    # When / Then both are ts_out_of_range, not a decoding failure
    assert _reason(early, MSGPACK_RULES) == "ts_out_of_range"
    assert _reason(far, MSGPACK_RULES) == "ts_out_of_range"


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        (None, "tombstone"),
        (b"", "empty"),
        (b"\xc1", "not_msgpack"),  # the one byte that starts no MessagePack type
        (_packed(device_id="d", ts=TS)[:-3], "not_msgpack"),  # truncated
        (_packed(device_id="d", ts=TS) + b"\x00", "not_msgpack"),  # extra data after it
        (b"\x82\xa9device_id\xa2\xff\xfe\xa2ts\x01", "not_msgpack"),  # a str that is not UTF-8
        (b"\x81\xa9device_id\xa3\xed\xa0\x80", "not_msgpack"),  # a lone surrogate
        (b"\x81\x91\x01\x01", "not_msgpack"),  # a map whose key is an array
        (b"\x91" * 10_000, "not_msgpack"),  # nested too deep
        (b'{"device_id": "d", "ts": 1767225600000}', "not_msgpack"),  # JSON is not MessagePack
        (msgpack.packb([1, 2]), "not_object"),
        (msgpack.packb("a string"), "not_object"),
        (msgpack.packb(None), "not_object"),
        (_packed(ts=TS), "missing_field"),
        (_packed(device_id=None, ts=TS), "missing_field"),
        (_packed(device_id="", ts=TS), "missing_field"),
        (_packed(device_id="d"), "missing_field"),
        (_packed(device_id="d", ts=None), "missing_field"),
        (_packed(device_id=b"d", ts=TS), "wrong_type"),  # bin where a str belongs
        (_packed(device_id=b"", ts=TS), "wrong_type"),
        (_packed(device_id=7, ts=TS), "wrong_type"),
        (_packed(device_id="d", ts=b"1767225600000"), "wrong_type"),
        (_packed(device_id="d", ts=float(TS)), "wrong_type"),
        (_packed(device_id="d", ts=msgpack.ExtType(5, b"x")), "wrong_type"),
        (_packed(device_id="d", ts=TS, temperature=b"21"), "wrong_type"),
        (_packed(device_id="d", ts=TS, humidity=True), "wrong_type"),
        (_packed(device_id="d", ts=TS, temperature=float("nan")), "not_finite"),
        (_packed(device_id="d", ts=TS, battery=float("-inf")), "not_finite"),
        (FLOAT32_INFINITY, "not_finite"),
        (_packed(device_id="d", ts=DEFAULT_TS_MAX_MS), "ts_out_of_range"),
        (_packed(device_id="d", ts=2**64 - 1), "ts_out_of_range"),  # uint64, beyond int64
    ],
)
def test_each_bad_msgpack_record_gets_its_reason(value: bytes | None, reason: str) -> None:
    # Given a bad MessagePack value / When it is parsed / Then the reason word is exact
    assert _reason(value, MSGPACK_RULES) == reason


def test_msgpack_size_limit_applies_before_decoding() -> None:
    # Given a valid map over the limit
    value = _packed(device_id="d", ts=TS, padding=b"x" * 2_000)
    limited = ValidationRules(metrics=(), max_record_bytes=1_000, value_format="msgpack")

    # When / Then it is too_large
    assert _reason(value, limited) == "too_large"


def test_validate_batch_decodes_msgpack_when_the_rules_say_so() -> None:
    # Given MessagePack records, a JSON one among them
    records = [
        Record(0, None, b"k", _packed(device_id="a", ts=TS, temperature=1.5)),
        Record(1, None, b"k", _json(device_id="b", ts=TS)),
        Record(2, None, b"k", _packed(device_id="c", ts=msgpack.Timestamp(TS // 1000, 0))),
    ]

    # When the batch is validated with MessagePack rules
    batch = validate_batch(records, MSGPACK_RULES)

    # Then the maps are rows and the JSON record is not MessagePack
    assert batch.device_ids == ["a", "c"]
    assert batch.ts_ms == [TS, TS]
    assert batch.metrics["temperature"] == [1.5, None]
    assert [(r.record.offset, r.reason) for r in batch.rejections] == [(1, "not_msgpack")]


def test_decode_value_takes_the_format_and_refuses_an_unknown_one() -> None:
    # Given the same object in both formats
    fields = {"device_id": "d", "ts": TS}

    # When / Then each decodes by its format name, and an unknown name is a ValueError
    assert decode_value(_json(**fields)) == decode_value(_packed(**fields), None, "msgpack")
    with pytest.raises(ValueError, match="value_format must be one of"):
        decode_value(_json(**fields), None, "xml")
    with pytest.raises(ValueError, match="value_format must be one of"):
        ValidationRules(metrics=(), value_format="MsgPack")
