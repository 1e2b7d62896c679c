"""The batch payload: a msgpack stream of records, joined by concatenation."""

from __future__ import annotations

import msgpack
from hypothesis import given, settings
from hypothesis import strategies as st

from actorsys.records import Record, decode_records, encode_record, encode_records, records_from

RECORDS = [
    Record(0, 1_700_000_000_000, b"dev-1", b'{"t": 1}'),
    Record(1, None, None, b"no key, no timestamp"),
    Record(2, 1_700_000_000_500, b"dev-2", None),  # a tombstone
    Record(3, None, None, None),
    Record(7, 0, b"", b""),  # offsets may skip (compaction, transaction markers)
]

records_strategy = st.lists(
    st.builds(
        Record,
        offset=st.integers(min_value=0, max_value=2**63 - 1),
        timestamp_ms=st.none() | st.integers(min_value=-(2**63), max_value=2**63 - 1),
        key=st.none() | st.binary(max_size=64),
        value=st.none() | st.binary(max_size=256),
    ),
    max_size=30,
)


def test_round_trip_keeps_every_field_including_none() -> None:
    # Given records with and without key, value and timestamp
    # When they are encoded and decoded
    decoded = list(decode_records(encode_records(RECORDS)))
    # Then they come back equal, keys and values still bytes
    assert decoded == RECORDS
    assert isinstance(decoded[0].key, bytes)
    assert isinstance(decoded[0].value, bytes)


def test_empty_payload_has_no_records() -> None:
    assert encode_records([]) == b""
    assert list(decode_records(b"")) == []


def test_encode_record_is_one_element_of_the_stream() -> None:
    # Given the hot-path encoder with a shared packer
    packer = msgpack.Packer(use_bin_type=True)
    # When records are packed one by one and joined
    joined = b"".join(
        encode_record(r.offset, r.timestamp_ms, r.key, r.value, packer) for r in RECORDS
    )
    # Then it is byte for byte the payload of encode_records
    assert joined == encode_records(RECORDS)


def test_concatenated_payloads_decode_as_one_stream() -> None:
    # Given three chunks encoded separately (as three polls would be)
    chunks = [
        encode_records(RECORDS[:2]),
        encode_records(RECORDS[2:3]),
        encode_records(RECORDS[3:]),
    ]
    # When their bytes are simply concatenated
    # Then the whole decodes to all the records, in order
    assert list(decode_records(b"".join(chunks))) == RECORDS


def test_records_from_keeps_records_at_or_past_the_offset() -> None:
    # Given a payload of offsets 0, 1, 2, 3, 7
    payload = encode_records(RECORDS)
    # When it is trimmed from offset 2
    trimmed, count = records_from(payload, 2)
    # Then offsets 2, 3 and 7 remain, with their count
    assert count == 3
    assert list(decode_records(trimmed)) == RECORDS[2:]


def test_records_from_inside_a_gap_keeps_the_next_record() -> None:
    # Given offsets ... 3, 7 and a trim point at 5 (no record there)
    trimmed, count = records_from(encode_records(RECORDS), 5)
    # Then only offset 7 remains
    assert (count, [r.offset for r in decode_records(trimmed)]) == (1, [7])


def test_records_from_at_or_before_the_first_keeps_everything() -> None:
    payload = encode_records(RECORDS)
    # When trimmed from the first offset (or before it)
    # Then the payload is unchanged
    assert records_from(payload, 0) == (payload, len(RECORDS))


def test_records_from_past_the_last_keeps_nothing() -> None:
    # When trimmed past every offset
    # Then nothing is left
    assert records_from(encode_records(RECORDS), 8) == (b"", 0)


@settings(database=None, deadline=None)
@given(first=records_strategy, second=records_strategy)
def test_any_records_round_trip_through_concatenated_payloads(
    first: list[Record], second: list[Record]
) -> None:
    # Given any two lists of records, encoded separately
    payload = encode_records(first) + encode_records(second)
    # When the joined payload is decoded
    # Then every record comes back, in order
    assert list(decode_records(payload)) == first + second


@settings(database=None, deadline=None)
@given(
    offsets=st.lists(st.integers(0, 1000), unique=True, max_size=40).map(sorted),
    first_offset=st.integers(-5, 1005),
)
def test_records_from_is_a_filter_on_offsets(offsets: list[int], first_offset: int) -> None:
    # Given records at increasing offsets
    records = [Record(o, o * 10, str(o).encode(), None) for o in offsets]
    # When trimmed at any offset
    trimmed, count = records_from(encode_records(records), first_offset)
    # Then exactly the records at or past it remain
    kept = [r for r in records if r.offset >= first_offset]
    assert list(decode_records(trimmed)) == kept
    assert count == len(kept)
