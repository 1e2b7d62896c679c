"""Pure validation of IoT telemetry records: bytes in, a row or a reason out.

A record value is, as :attr:`ValidationRules.value_format` says, either a
UTF-8 JSON object (``"json"``, the default) or a MessagePack map
(``"msgpack"``) with the same fields:

* ``device_id``: a non-empty string (MessagePack ``bin`` is not a string);
* ``ts``: epoch milliseconds as an integer, or an ISO-8601 string (an offset
  is converted to UTC; a naive time is taken as UTC), or — in MessagePack —
  a Timestamp extension (type -1; sub-millisecond digits are truncated),
  inside ``[ts_min_ms, ts_max_ms)``;
* one optional number per configured metric (``null``/``nil`` means absent).

Anything else in the object is ignored. A record that breaks a rule gets one
short reason word, used as the dead-letter ``reason`` header and a metric
label:

``tombstone``, ``empty``, ``too_large``, ``invalid_utf8`` (JSON),
``not_json`` (JSON), ``not_msgpack`` (MessagePack: undecodable, truncated,
followed by extra bytes, or a string that is not UTF-8), ``not_object``
(not a JSON object / MessagePack map), ``missing_field`` (absent, ``null`` or
``""`` device_id; absent or ``null`` ts), ``wrong_type``, ``not_finite``
(a NaN or infinite metric: MessagePack floats can carry them),
``ts_out_of_range``.

This module is the hot path of the default handler, so it favours exact
``type(x) is int`` checks (which also keep ``bool`` out, since ``bool`` is a
subclass of ``int``) and plain lists over per-record objects, and it picks
the decoder once per :class:`ValidationRules`, not once per record.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import partial
from math import isfinite
from typing import Any

import msgpack
import orjson

from actorsys.records import Record

# 2000-01-01T00:00:00Z and 2100-01-01T00:00:00Z in epoch milliseconds.
DEFAULT_TS_MIN_MS = 946_684_800_000
DEFAULT_TS_MAX_MS = 4_102_444_800_000

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_ONE_MS = timedelta(milliseconds=1)

# The encodings of record values this module decodes (and the simulator writes).
VALUE_FORMATS: tuple[str, ...] = ("json", "msgpack")

# timestamp=0 keeps a Timestamp extension a msgpack.Timestamp (seconds and
# nanoseconds as ints): converted exactly, and a moment beyond datetime's
# years 1-9999 is a ts_out_of_range rather than an error inside the decoder.
_unpack_msgpack = partial(msgpack.unpackb, raw=False, strict_map_key=False, timestamp=0)

Row = list[Any]
"""``[device_id, ts_ms, metric_1, ..., metric_n]``; metrics are float or None.

A list rather than a dataclass: one row is built per record on the hot path,
and :func:`validate_batch` lays rows end to end and slices out the columns.
"""


Decoder = Callable[[bytes | None, int | None], dict[str, Any]]
"""``(value, max_record_bytes) -> object``, raising :class:`InvalidRecord`."""


@dataclass(frozen=True, slots=True)
class ValidationRules:
    """What a valid record must look like.

    ``value_format`` is ``"json"`` or ``"msgpack"``; ``decode`` is its
    decoder, chosen here once so that no record pays for the choice.
    """

    metrics: tuple[str, ...]
    ts_min_ms: int = DEFAULT_TS_MIN_MS
    ts_max_ms: int = DEFAULT_TS_MAX_MS
    max_record_bytes: int | None = None
    value_format: str = "json"
    decode: Decoder = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        # A frozen dataclass sets its derived fields through object.__setattr__.
        object.__setattr__(self, "decode", _decoder_for(self.value_format))


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
    # Read as an attribute first: called in place, a function held in a slot
    # takes the interpreter's slow method lookup on every record.
    decode = rules.decode
    return validate_object(decode(value, rules.max_record_bytes), rules)


def decode_value(
    value: bytes | None, max_record_bytes: int | None = None, value_format: str = "json"
) -> dict[str, Any]:
    """Turn a record value into an object (a JSON object or a MessagePack map),
    or raise :class:`InvalidRecord`; an unknown ``value_format`` is a ValueError."""
    return _decoder_for(value_format)(value, max_record_bytes)


def decode_json(value: bytes | None, max_record_bytes: int | None = None) -> dict[str, Any]:
    """Turn a record value into a JSON object, or raise :class:`InvalidRecord`."""
    # These two checks stand in each decoder rather than in a shared helper:
    # one more call per record is a measurable share of the hot path.
    if not value:
        raise _absent(value)
    if max_record_bytes is not None and len(value) > max_record_bytes:
        raise _too_large(value, max_record_bytes)
    try:
        obj = orjson.loads(value)
    except orjson.JSONDecodeError as exc:
        raise _classify_decode_error(value, exc) from None
    if type(obj) is not dict:
        raise InvalidRecord("not_object", f"JSON value is {_type_name(obj)}, expected an object")
    return obj


def decode_msgpack(value: bytes | None, max_record_bytes: int | None = None) -> dict[str, Any]:
    """Turn a record value into a MessagePack map, or raise :class:`InvalidRecord`."""
    if not value:
        raise _absent(value)
    if max_record_bytes is not None and len(value) > max_record_bytes:
        raise _too_large(value, max_record_bytes)
    try:
        obj = _unpack_msgpack(value)
    except msgpack.ExtraData as exc:
        raise InvalidRecord(
            "not_msgpack", f"value is not one MessagePack object: {len(exc.extra)} bytes follow it"
        ) from None
    except UnicodeDecodeError as exc:
        raise InvalidRecord("not_msgpack", f"a MessagePack string is not UTF-8: {exc}") from None
    except (ValueError, TypeError) as exc:
        # ValueError: truncated, the never-used byte 0xc1, nested too deep, a
        # bad Timestamp; TypeError: a map key that is itself a map or array.
        # Some carry no message, so their class names the fault.
        raise InvalidRecord(
            "not_msgpack", f"value is not MessagePack: {str(exc) or type(exc).__name__}"
        ) from None
    if type(obj) is not dict:
        raise InvalidRecord("not_object", f"MessagePack value is {_type_name(obj)}, expected a map")
    return obj


_DECODERS: dict[str, Decoder] = {"json": decode_json, "msgpack": decode_msgpack}
_TS_EXPECTED = {
    "json": "integer epoch milliseconds or an ISO-8601 string",
    "msgpack": "integer epoch milliseconds, an ISO-8601 string or a Timestamp extension",
}


def _decoder_for(value_format: str) -> Decoder:
    decoder = _DECODERS.get(value_format)
    if decoder is None:
        raise ValueError(f"value_format must be one of {list(VALUE_FORMATS)}, got {value_format!r}")
    return decoder


def validate_object(obj: dict[str, Any], rules: ValidationRules) -> Row:
    """Check one decoded object (JSON object or MessagePack map) against ``rules``;
    return its row."""
    device_id = obj.get("device_id")
    if type(device_id) is not str or not device_id:
        # A str here is the empty one; no == "" so that bytes are never compared to str.
        if device_id is None or type(device_id) is str:
            raise InvalidRecord("missing_field", "device_id is missing, null or empty")
        raise InvalidRecord(
            "wrong_type", f"device_id is {_type_name(device_id)}, expected a string"
        )

    ts = obj.get("ts")
    if ts is None:
        raise InvalidRecord("missing_field", "ts is missing or null")
    if type(ts) is int:
        ts_ms = ts
    elif type(ts) is str:
        ts_ms = iso_to_epoch_ms(ts)
    elif type(ts) is msgpack.Timestamp:
        # Integer arithmetic: exact at any magnitude (nanoseconds is in [0, 1e9)).
        ts_ms = ts.seconds * 1000 + ts.nanoseconds // 1_000_000
    else:
        expected = _TS_EXPECTED[rules.value_format]
        raise InvalidRecord("wrong_type", f"ts is {_type_name(ts)}, expected {expected}")
    if not rules.ts_min_ms <= ts_ms < rules.ts_max_ms:
        raise InvalidRecord(
            "ts_out_of_range",
            f"ts {ts_ms} ms is outside [{rules.ts_min_ms}, {rules.ts_max_ms})",
        )

    row: Row = [device_id, ts_ms]
    for name in rules.metrics:
        metric = obj.get(name)
        if type(metric) is float:
            # orjson refuses NaN, Infinity and overflowing literals itself, but
            # MessagePack floats carry them as they are.
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
                "wrong_type", f"metric {name!r} is {_type_name(metric)}, expected a number"
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


def _absent(value: bytes | None) -> InvalidRecord:
    """The reason for a value that is not there: a tombstone or no bytes."""
    if value is None:
        return InvalidRecord("tombstone", "record value is null (tombstone)")
    return InvalidRecord("empty", "record value is empty")


def _too_large(value: bytes, max_record_bytes: int) -> InvalidRecord:
    return InvalidRecord(
        "too_large", f"record value is {len(value)} bytes, limit is {max_record_bytes}"
    )


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


def _type_name(value: object) -> str:
    """Name a decoded value's type, in JSON's words where it has one, for error details."""
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
    if type(value) is dict:
        return "an object"
    if type(value) is bytes:
        return "binary data (MessagePack bin)"
    if type(value) is msgpack.Timestamp:
        return "a MessagePack Timestamp"
    return f"a MessagePack extension ({type(value).__name__})"
