"""The batch payload: Kafka records as one msgpack byte string.

Records never travel one per actor message. A batch payload is a msgpack
*stream*: each record is one array ``[offset, timestamp_ms, key, value]``
(timestamp, key and value may be nil). Because it is a stream rather than
one array, chunks polled separately are joined by plain byte concatenation,
so the Consumer actor never re-encodes what the KafkaConsumerActor packed.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass

import msgpack


@dataclass(frozen=True, slots=True)
class Record:
    """One Kafka record as the handler sees it."""

    offset: int
    timestamp_ms: int | None
    key: bytes | None
    value: bytes | None


def encode_records(records: Iterable[Record]) -> bytes:
    """Pack records into a payload stream."""
    packer = msgpack.Packer(use_bin_type=True)
    return b"".join(
        encode_record(r.offset, r.timestamp_ms, r.key, r.value, packer) for r in records
    )


def encode_record(
    offset: int,
    timestamp_ms: int | None,
    key: bytes | None,
    value: bytes | None,
    packer: msgpack.Packer,
) -> bytes:
    """Pack one record; the hot path of the KafkaConsumerActor."""
    return packer.pack((offset, timestamp_ms, key, value))


def decode_records(payload: bytes) -> Iterator[Record]:
    """Unpack a payload stream, in offset order."""
    unpacker = msgpack.Unpacker(raw=False, use_list=False, max_buffer_size=0)
    unpacker.feed(payload)
    for offset, timestamp_ms, key, value in unpacker:
        yield Record(offset, timestamp_ms, key, value)


def records_from(payload: bytes, first_offset: int) -> tuple[bytes, int]:
    """Keep only records at or past ``first_offset``.

    Returns the trimmed payload and its record count. Used when a batch
    overlaps what the job store already holds (offset chain, invariant 2).
    """
    kept = [r for r in decode_records(payload) if r.offset >= first_offset]
    return encode_records(kept), len(kept)
