"""Pure validation of IoT telemetry records: bytes in, a row or a reason out.

A valid record value is a UTF-8 JSON object with

* ``device_id``: a non-empty string;
* ``ts``: epoch milliseconds as a JSON integer, or an ISO-8601 string (an
  offset is converted to UTC; a naive time is taken as UTC), inside
  ``[ts_min_ms, ts_max_ms)``;
* one optional number per configured metric (JSON ``null`` means absent).

Anything else in the object is ignored. A record that breaks a rule gets one
short reason word, used as the dead-letter ``reason`` header and a metric
label:

``tombstone``, ``empty``, ``too_large``, ``invalid_utf8``, ``not_json``,
``not_object``, ``missing_field`` (absent, ``null`` or ``""`` device_id;
absent or ``null`` ts), ``wrong_type``, ``not_finite``, ``ts_out_of_range``.

This module is the hot path of the default handler, so it favours exact
``type(x) is int`` checks (which also keep ``bool`` out, since ``bool`` is a
subclass of ``int``) and plain lists over per-record objects.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from math import isfinite
from typing import Any

import orjson

from actorsys.records import Record

# 2000-01-01T00:00:00Z and 2100-01-01T00:00:00Z in epoch milliseconds.
DEFAULT_TS_MIN_MS = 946_684_800_000
DEFAULT_TS_MAX_MS = 4_102_444_800_000

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_ONE_MS = timedelta(milliseconds=1)

Row = list[Any]
"""``[device_id, ts_ms, metric_1, ..., metric_n]``; metrics are float or None.

A list rather than a dataclass: one row is built per record on the hot path,
and :func:`validate_batch` lays rows end to end and slices out the columns.
"""


@dataclass(frozen=True, slots=True)
class ValidationRules:
    """What a valid record must look like."""

    metrics: tuple[str, ...]
    ts_min_ms: int = DEFAULT_TS_MIN_MS
    ts_max_ms: int = DEFAULT_TS_MAX_MS
    max_record_bytes: int | None = None


@dataclass(frozen=True, slots=True)
class Rejection:
    """A record that failed validation, and why."""

    record: Record
    reason: str
    detail: str


@dataclass(frozen=True, slots=True)
class ValidatedBatch:
    """The valid records of one job as columns, in offset order, and the rest."""

    device_ids: list[str]
    ts_ms: list[int]
    metrics: dict[str, list[float | None]]
    offsets: list[int]
    rejections: list[Rejection]

    @property
    def valid_records(self) -> int:
        return len(self.offsets)


class InvalidRecord(Exception):
    """Raised by :func:`parse_value` for a record that breaks a rule."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


def validate_batch(records: Sequence[Record], rules: ValidationRules) -> ValidatedBatch:
    """Split ``records`` into columns of valid values and rejections."""
    # Rows go end to end into one flat list and the columns are sliced out at
    # the end: keeping 100k row lists alive (or transposing them with
    # zip(*rows)) costs more than the validation itself, mostly in the GC.
    flat: list[Any] = []
    extend = flat.extend
    offsets: list[int] = []
    rejections: list[Rejection] = []
    for record in records:
        try:
            extend(parse_value(record.value, rules))
        except InvalidRecord as invalid:
            rejections.append(Rejection(record, invalid.reason, invalid.detail))
        else:
            offsets.append(record.offset)
    width = 2 + len(rules.metrics)
    return ValidatedBatch(
        device_ids=flat[0::width],
        ts_ms=flat[1::width],
        metrics={name: flat[2 + i :: width] for i, name in enumerate(rules.metrics)},
        offsets=offsets,
        rejections=rejections,
    )


def parse_value(value: bytes | None, rules: ValidationRules) -> Row:
    """Decode and validate one record value; raise :class:`InvalidRecord`."""
    return validate_object(decode_value(value, rules.max_record_bytes), rules)


def decode_value(value: bytes | None, max_record_bytes: int | None = None) -> dict[str, Any]:
    """Turn a record value into a JSON object, or raise :class:`InvalidRecord`."""
    if value is None:
        raise InvalidRecord("tombstone", "record value is null (tombstone)")
    if not value:
        raise InvalidRecord("empty", "record value is empty")
    if max_record_bytes is not None and len(value) > max_record_bytes:
        raise InvalidRecord(
            "too_large", f"record value is {len(value)} bytes, limit is {max_record_bytes}"
        )
    try:
        obj = orjson.loads(value)
    except orjson.JSONDecodeError as exc:
        raise _classify_decode_error(value, exc) from None
    if type(obj) is not dict:
        raise InvalidRecord("not_object", f"JSON value is {_json_type(obj)}, expected an object")
    return obj


def validate_object(obj: dict[str, Any], rules: ValidationRules) -> Row:
    """Check one decoded JSON object against ``rules``; return its row."""
    device_id = obj.get("device_id")
    if type(device_id) is not str or not device_id:
        if device_id is None or device_id == "":
            raise InvalidRecord("missing_field", "device_id is missing, null or empty")
        raise InvalidRecord(
            "wrong_type", f"device_id is {_json_type(device_id)}, expected a string"
        )

    ts = obj.get("ts")
    if ts is None:
        raise InvalidRecord("missing_field", "ts is missing or null")
    if type(ts) is int:
        ts_ms = ts
    elif type(ts) is str:
        ts_ms = iso_to_epoch_ms(ts)
    else:
        raise InvalidRecord(
            "wrong_type",
            f"ts is {_json_type(ts)}, expected integer epoch milliseconds or an ISO-8601 string",
        )
    if not rules.ts_min_ms <= ts_ms < rules.ts_max_ms:
        raise InvalidRecord(
            "ts_out_of_range",
            f"ts {ts_ms} ms is outside [{rules.ts_min_ms}, {rules.ts_max_ms})",
        )

    row: Row = [device_id, ts_ms]
    for name in rules.metrics:
        metric = obj.get(name)
        if type(metric) is float:
            # orjson refuses NaN, Infinity and overflowing literals itself; this
            # guards against a parser (or a future orjson) that lets them in.
            if not isfinite(metric):
                raise InvalidRecord("not_finite", f"metric {name!r} is {metric}")
            row.append(metric)
        elif metric is None:
            row.append(None)
        elif type(metric) is int:
            # Converted here because pyarrow refuses ints above 2**53 for a
            # float64 column rather than rounding them.
            row.append(float(metric))
        else:
            raise InvalidRecord(
                "wrong_type", f"metric {name!r} is {_json_type(metric)}, expected a number"
            )
    return row


def iso_to_epoch_ms(text: str) -> int:
    """Parse an ISO-8601 timestamp to UTC epoch milliseconds (naive = UTC)."""
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise InvalidRecord(
            "wrong_type", f"ts string {text[:64]!r} is not an ISO-8601 timestamp"
        ) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    # Integer timedelta division: exact, unlike float timestamp() arithmetic.
    return (moment - _EPOCH) // _ONE_MS


def _classify_decode_error(value: bytes, exc: orjson.JSONDecodeError) -> InvalidRecord:
    """Give an orjson failure the most precise reason word."""
    message = str(exc)
    try:
        value.decode("utf-8")
    except UnicodeDecodeError as bad:
        return InvalidRecord("invalid_utf8", f"value is not valid UTF-8: {bad}")
    # orjson reports a literal such as 1e999 as a decode error; for the user it
    # is a number that is not finite, which is the reason they should see.
    if "number is infinity" in message:
        return InvalidRecord("not_finite", f"a number is not finite as a double: {message}")
    return InvalidRecord("not_json", f"value is not JSON: {message}")


def _json_type(value: object) -> str:
    """Name a decoded value's JSON type for error details."""
    if value is None:
        return "null"
    if type(value) is bool:
        return "a boolean"
    if type(value) is int:
        return "an integer"
    if type(value) is float:
        return "a float"
    if type(value) is str:
        return "a string"
    if type(value) is list:
        return "an array"
    return "an object"
