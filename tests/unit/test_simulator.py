"""The pure record factory of the IoT simulator (no broker involved)."""

from __future__ import annotations

import json
import math
from collections import Counter
from collections.abc import Callable

import pytest

from actorsys.simulator import FIELDS, MALFORMED_KINDS, IotRecordFactory, Kind

FIXED_NOW_S = 1_732_000_000.0


def fixed_clock() -> float:
    return FIXED_NOW_S


def make(devices: int = 50, ratio: float = 0.0, seed: int = 7) -> IotRecordFactory:
    return IotRecordFactory(devices, ratio, seed, clock=fixed_clock)


def test_malformed_ratio_is_respected_statistically() -> None:
    # Given a factory that should make 10 % malformed records
    n, ratio = 20_000, 0.10
    factory = make(ratio=ratio)

    # When it makes 20,000 records
    kinds = Counter(kind for _, _, kind in factory.batch(n))

    # Then the malformed share is within 4 standard deviations of 10 %
    malformed = n - kinds[Kind.VALID]
    sigma = math.sqrt(n * ratio * (1 - ratio))
    assert abs(malformed - n * ratio) < 4 * sigma


@pytest.mark.parametrize(("ratio", "expect_valid"), [(0.0, True), (1.0, False)])
def test_ratio_bounds_make_all_valid_or_all_malformed(ratio: float, expect_valid: bool) -> None:
    # Given a ratio at either bound
    factory = make(ratio=ratio)

    # When it makes records
    kinds = {kind for _, _, kind in factory.batch(2_000)}

    # Then they are all valid (0) or all malformed (1)
    assert (kinds == {Kind.VALID}) is expect_valid
    assert (Kind.VALID not in kinds) is not expect_valid


def test_every_malformed_kind_occurs_about_evenly() -> None:
    # Given a factory that makes only malformed records
    factory = make(ratio=1.0)

    # When it makes 4,000 of them
    kinds = Counter(kind for _, _, kind in factory.batch(4_000))

    # Then every malformed kind occurs, each roughly a quarter of the time
    assert set(kinds) == set(MALFORMED_KINDS)
    for kind in MALFORMED_KINDS:
        assert 800 < kinds[kind] < 1_200, kinds


def test_valid_records_have_the_reading_shape(
    is_valid_reading: Callable[[bytes | None], bool],
) -> None:
    # Given a factory with 50 devices and no malformed records
    factory = make(devices=50)

    # When it makes records
    records = factory.batch(5_000)

    # Then each is a JSON reading keyed by its device id, with plausible values
    seen_devices = set()
    for key, value, kind in records:
        assert kind is Kind.VALID
        assert value is not None and is_valid_reading(value)
        reading = json.loads(value)
        assert list(reading) == list(FIELDS)
        assert reading["device_id"] == key.decode()
        assert key.decode().startswith("dev-") and 0 <= int(key[4:]) < 50
        assert reading["ts"] == int(FIXED_NOW_S * 1000)
        assert -10.5 <= reading["temperature"] <= 40.5
        assert 5.0 <= reading["humidity"] <= 95.0
        assert 5.0 <= reading["battery"] <= 100.0
        seen_devices.add(key)
    assert len(seen_devices) == 50


def test_each_malformed_kind_has_its_defect(
    is_valid_reading: Callable[[bytes | None], bool],
) -> None:
    # Given a factory that makes only malformed records
    factory = make(ratio=1.0)

    # When it makes 2,000 of them
    records = factory.batch(2_000)

    # Then none passes the reading contract, and each fails for the reason its kind names
    for key, value, kind in records:
        assert key.startswith(b"dev-")
        assert not is_valid_reading(value), (kind, value)
        if kind is Kind.TOMBSTONE:
            assert value is None
            continue
        assert value is not None
        if kind is Kind.NOT_JSON:
            with pytest.raises(ValueError):
                json.loads(value)
            continue
        decoded = json.loads(value)
        if kind is Kind.MISSING_FIELD:
            assert isinstance(decoded, dict)
            assert set(decoded) < set(FIELDS)
        else:
            assert kind is Kind.WRONG_TYPE
            # Either not an object at all, or every field there but one of the wrong type.
            assert not isinstance(decoded, dict) or set(decoded) == set(FIELDS)


def test_same_seed_same_records() -> None:
    # Given two factories with the same seed and clock
    first, second = make(ratio=0.2, seed=42), make(ratio=0.2, seed=42)

    # When each makes 1,000 records
    # Then the sequences are identical
    assert first.batch(1_000) == second.batch(1_000)


@pytest.mark.parametrize(
    ("devices", "ratio"),
    [(0, 0.1), (-3, 0.1), (10, -0.01), (10, 1.01), (10, math.nan)],
)
def test_bad_arguments_are_rejected(devices: int, ratio: float) -> None:
    # Given a device count below 1 or a ratio outside [0, 1]
    # When a factory is made
    # Then it is refused with a ValueError
    with pytest.raises(ValueError):
        IotRecordFactory(devices, ratio, seed=1)
