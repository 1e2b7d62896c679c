"""OffsetInterval: the half-open ``[start, end)`` of one partition's offsets,
checked where it is made."""

from __future__ import annotations

import dataclasses
import pickle

import pytest

from actorsys.offsets import OffsetInterval, PartitionKey


def test_an_interval_knows_its_partition_and_size() -> None:
    # Given offsets [100, 200) of iot[3]
    interval = OffsetInterval("iot", 3, 100, 200)
    # Then its key is (topic, partition) and it holds end - start offsets
    key: PartitionKey = interval.key
    assert key == ("iot", 3)
    assert interval.size == 100


def test_an_interval_reads_as_a_half_open_range() -> None:
    assert str(OffsetInterval("iot", 3, 100, 200)) == "iot[3][100, 200)"


@pytest.mark.parametrize("start", [0, 7])
def test_an_empty_interval_is_allowed(start: int) -> None:
    # Given start == end (nothing new in the partition)
    interval = OffsetInterval("t", 0, start, start)
    # Then it is valid and holds no offset
    assert interval.size == 0


@pytest.mark.parametrize(
    ("start", "end", "why"),
    [(-1, 10, "start must not be negative"), (10, 9, "end must not be below start")],
)
def test_an_invalid_interval_is_refused(start: int, end: int, why: str) -> None:
    # When an interval starts below 0 or ends before it starts
    # Then it is refused where it is made
    with pytest.raises(ValueError, match=why):
        OffsetInterval("t", 0, start, end)


def test_an_interval_is_a_hashable_value() -> None:
    # Given two intervals with the same fields
    a, b = OffsetInterval("t", 1, 0, 10), OffsetInterval("t", 1, 0, 10)
    # Then they are equal, hash alike (a dictionary key), and cannot change
    assert a == b and hash(a) == hash(b) and len({a, b}) == 1
    assert a != OffsetInterval("t", 1, 0, 11)
    with pytest.raises(dataclasses.FrozenInstanceError):
        a.end = 20  # type: ignore[misc]  # frozen: the assignment is what is tested


def test_an_interval_round_trips_through_pickle() -> None:
    # Thespian pickles the messages that carry one between processes
    interval = OffsetInterval("t", 2, 5, 9)
    assert pickle.loads(pickle.dumps(interval)) == interval
