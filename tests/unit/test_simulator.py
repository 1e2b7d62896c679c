"""The pure record factory of the IoT simulator, and ``actorsys simulate``'s options.

No broker involved: the CLI tests replace produce() with a recorder.
"""

from __future__ import annotations

import json
import math
from collections import Counter
from collections.abc import Callable
from typing import Any

import msgpack
import pytest
from click.testing import CliRunner, Result

import actorsys.cli.simulate
from actorsys.cli import main
from actorsys.handlers.validation import ValidationRules, validate_batch
from actorsys.records import Record
from actorsys.simulator import FIELDS, MALFORMED_KINDS, IotRecordFactory, Kind, ProduceReport

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


# --- value formats: JSON and MessagePack -----------------------------------------------------

# The validator's reason words each malformed kind may get, per format: every
# variant of a kind is rejected, and for the reason its kind names.
REASONS_BY_KIND = {
    "json": {
        Kind.NOT_JSON: {"not_json", "invalid_utf8", "empty"},
        Kind.MISSING_FIELD: {"missing_field"},
        Kind.WRONG_TYPE: {"wrong_type", "not_object"},
        Kind.TOMBSTONE: {"tombstone"},
    },
    "msgpack": {
        Kind.NOT_JSON: {"not_msgpack", "empty"},
        Kind.MISSING_FIELD: {"missing_field"},
        Kind.WRONG_TYPE: {"wrong_type", "not_object"},
        Kind.TOMBSTONE: {"tombstone"},
    },
}


def test_msgpack_valid_records_carry_the_same_fields_and_values_as_json() -> None:
    # Given two factories with the same seed, one per value format
    as_json = make(devices=20, seed=5).batch(3_000)
    as_msgpack = IotRecordFactory(20, 0.0, 5, clock=fixed_clock, value_format="msgpack").batch(
        3_000
    )

    # Then record by record the keys match and the map is the JSON object,
    # field order included
    for (json_key, json_value, _), (key, value, kind) in zip(as_json, as_msgpack, strict=True):
        assert kind is Kind.VALID and key == json_key
        assert value is not None and json_value is not None
        reading = msgpack.unpackb(value)
        assert list(reading.items()) == list(json.loads(json_value).items())


@pytest.mark.parametrize("value_format", ["json", "msgpack"])
def test_every_record_validates_as_its_kind_says(value_format: str) -> None:
    # Given a factory of the format, a third of its records malformed
    factory = IotRecordFactory(30, 1 / 3, 11, clock=fixed_clock, value_format=value_format)
    made = factory.batch(6_000)
    records = [Record(offset, None, key, value) for offset, (key, value, _) in enumerate(made)]

    # When the handler's validation reads them in that format
    rules = ValidationRules(metrics=FIELDS[2:], value_format=value_format)
    batch = validate_batch(records, rules)

    # Then exactly the VALID ones are rows, with their values
    kinds = [kind for _, _, kind in made]
    assert batch.offsets == [i for i, kind in enumerate(kinds) if kind is Kind.VALID]
    assert batch.ts_ms == [int(FIXED_NOW_S * 1000)] * batch.valid_records
    assert set(batch.device_ids) <= {key.decode() for key, _, _ in made}
    # And every malformed one is rejected for a reason of its kind, all of them occurring
    reasons: dict[Kind, set[str]] = {}
    for rejection in batch.rejections:
        reasons.setdefault(kinds[rejection.record.offset], set()).add(rejection.reason)
    assert reasons == REASONS_BY_KIND[value_format]
    # And the counts add up to the factory's kinds
    counts = Counter(kinds)
    assert batch.valid_records == counts[Kind.VALID]
    assert len(batch.rejections) == sum(counts[kind] for kind in MALFORMED_KINDS)


def test_msgpack_malformed_values_are_encoded_as_msgpack_or_undecodable() -> None:
    # Given a factory of MessagePack records, all malformed
    records = IotRecordFactory(10, 1.0, 3, clock=fixed_clock, value_format="msgpack").batch(2_000)

    # Then missing-field and wrong-type records are MessagePack (never JSON),
    # and no undecodable one decodes, whatever its random bytes
    for _, value, kind in records:
        if kind is Kind.TOMBSTONE:
            assert value is None
        elif kind is Kind.NOT_JSON:
            assert value is not None
            with pytest.raises(ValueError):
                msgpack.unpackb(value)
        else:
            assert value is not None
            decoded = msgpack.unpackb(value)
            if kind is Kind.MISSING_FIELD:
                assert isinstance(decoded, dict) and set(decoded) < set(FIELDS)
            else:
                assert not isinstance(decoded, dict) or set(decoded) == set(FIELDS)


def test_same_seed_same_msgpack_records_and_json_stays_the_default() -> None:
    # Given factories with the same seed
    def factory(value_format: str) -> IotRecordFactory:
        return IotRecordFactory(50, 0.2, 42, clock=fixed_clock, value_format=value_format)

    # Then a seed repeats its MessagePack sequence, and "json" is the default sequence
    assert factory("msgpack").batch(1_000) == factory("msgpack").batch(1_000)
    assert factory("json").batch(1_000) == make(ratio=0.2, seed=42).batch(1_000)


def test_an_unknown_value_format_is_refused() -> None:
    with pytest.raises(ValueError, match="value_format must be one of"):
        IotRecordFactory(10, value_format="avro")


# --- event time: time scale and late records ------------------------------------------------

EPOCH_MS = 1_700_000_000_000  # 2023-11-14T22:13:20Z


class FakeClock:
    """A wall clock the test moves by hand; it also remembers every reading.

    With ``step_s`` it also ticks that much after every reading, computed as
    ``base + ticks * step_s`` rather than summed, so 60,000 ticks do not pile
    up float rounding. Each valid record reads the clock once, so
    ``readings[i]`` is the wall time record ``i`` was made at (when no record
    is malformed).
    """

    def __init__(self, now: float = FIXED_NOW_S, step_s: float = 0.0) -> None:
        self.base = now
        self.step_s = step_s
        self.ticks = 0
        self.readings: list[float] = []

    def advance(self, seconds: float) -> None:
        self.base += seconds

    def __call__(self) -> float:
        now = self.base + self.ticks * self.step_s
        self.ticks += 1
        self.readings.append(now)
        return now


def ts_of(value: bytes | None) -> int:
    assert value is not None
    ts = json.loads(value)["ts"]
    assert isinstance(ts, int)
    return ts


def test_time_scale_60_makes_a_wall_second_a_minute_of_event_time() -> None:
    # Given a factory whose event time runs 60 times wall time from EPOCH_MS
    clock = FakeClock()
    factory = IotRecordFactory(5, seed=1, clock=clock, time_scale=60, epoch_ms=EPOCH_MS)

    # When it makes a record, then another after 1 wall second, another after 0.5 more
    first = factory.record()
    clock.advance(1.0)
    second = factory.record()
    clock.advance(0.5)
    third = factory.record()

    # Then event time starts at EPOCH_MS and moved 60 s, then 30 s more
    assert [ts_of(v) for _, v, _ in (first, second, third)] == [
        EPOCH_MS,
        EPOCH_MS + 60_000,
        EPOCH_MS + 90_000,
    ]
    assert factory.event_ms_range == (EPOCH_MS, EPOCH_MS + 90_000)


def test_an_hour_of_event_time_takes_a_wall_minute_at_scale_60() -> None:
    # Given event time at 60x, and a clock that advances 1 ms of wall time per record
    clock = FakeClock(step_s=0.001)
    factory = IotRecordFactory(10, seed=2, clock=clock, time_scale=60, epoch_ms=EPOCH_MS)

    # When it makes one wall minute's worth of records (60,000 at 1 ms each)
    records = factory.batch(60_000)

    # Then they span the first event-time hour, and the next record opens the second
    low, high = factory.event_ms_range or (0, 0)
    assert low == EPOCH_MS
    assert EPOCH_MS + 3_600_000 - 60 <= high < EPOCH_MS + 3_600_000
    assert ts_of(factory.record()[1]) >= EPOCH_MS + 3_600_000 - 1  # float rounding: 1 ms
    assert len(records) == 60_000


def test_event_time_starts_at_the_first_record_not_at_construction() -> None:
    # Given a factory made long (a slow topic creation) before its first record
    clock = FakeClock()
    factory = IotRecordFactory(3, seed=3, clock=clock, time_scale=3600, epoch_ms=EPOCH_MS)
    clock.advance(5.0)

    # When it makes its first record
    _, value, _ = factory.record()

    # Then that record is at epoch_ms, not 5 event-time hours later
    assert ts_of(value) == EPOCH_MS


def test_default_epoch_is_the_wall_time_of_the_first_record() -> None:
    # Given the default epoch and time scale
    clock = FakeClock(now=FIXED_NOW_S + 12.345)
    factory = IotRecordFactory(3, seed=4, clock=clock)

    # When it makes records one wall second apart
    first = ts_of(factory.record()[1])
    clock.advance(1.0)
    second = ts_of(factory.record()[1])

    # Then ts is plain wall time, as before event time could be scaled
    assert first == int((FIXED_NOW_S + 12.345) * 1000)
    assert second - first == 1_000


def test_without_late_records_ts_never_goes_back_per_device() -> None:
    # Given event time at 3600x, no late records, and a clock that advances
    factory = IotRecordFactory(
        20, seed=5, clock=FakeClock(step_s=0.0003), time_scale=3600, epoch_ms=EPOCH_MS
    )

    # When it makes 20,000 records
    records = factory.batch(20_000)

    # Then each device's ts are non-decreasing and none is counted late
    last: dict[bytes, int] = {}
    for key, value, _ in records:
        ts = ts_of(value)
        assert ts >= last.get(key, ts)
        last[key] = ts
    assert factory.late == 0


def test_late_ratio_makes_about_that_share_late_within_late_max_s() -> None:
    # Given half of the records late by up to 30 s of event time, at 60x wall time
    n, ratio, late_max_ms = 20_000, 0.5, 30_000
    clock = FakeClock(step_s=0.0005)
    factory = IotRecordFactory(
        50,
        seed=6,
        clock=clock,
        time_scale=60,
        epoch_ms=EPOCH_MS,
        late_ratio=ratio,
        late_max_s=late_max_ms / 1000,
    )

    # When it makes 20,000 records
    records = factory.batch(n)

    # Then each ts is its on-time ts (from the wall clock), or up to 30 s before it
    started = clock.readings[0]
    late = 0
    for (_, value, _), wall in zip(records, clock.readings, strict=True):
        on_time = int(EPOCH_MS + (wall - started) * 60_000)
        ts = ts_of(value)
        assert on_time - late_max_ms <= ts <= on_time
        late += ts < on_time
    # And about half are late (4 sigma), exactly as many as the factory counted
    assert abs(late - n * ratio) < 4 * math.sqrt(n * ratio * (1 - ratio))
    assert factory.late == late
    # And the reported range covers the late ones too
    all_ts = [ts_of(v) for _, v, _ in records]
    assert factory.event_ms_range == (min(all_ts), max(all_ts))
    assert min(all_ts) < EPOCH_MS  # a late record went back before the first one


def test_late_records_spread_over_the_whole_late_window() -> None:
    # Given event time standing still (a fixed clock) and every record late by up to 10 s
    factory = IotRecordFactory(
        5, seed=8, clock=fixed_clock, epoch_ms=EPOCH_MS, late_ratio=1.0, late_max_s=10
    )

    # When it makes 5,000 records
    lags = [EPOCH_MS - ts_of(v) for _, v, _ in factory.batch(5_000)]

    # Then each is 1 ms to 10 s late, and the lags fill that window
    assert 1 <= min(lags) < 100
    assert 9_900 < max(lags) <= 10_000
    assert 4_500 < sum(lags) / len(lags) < 5_500  # uniform: mean about 5 s


def test_same_seed_same_late_records() -> None:
    # Given two factories with the same seed, clock and event-time settings
    def late_factory() -> IotRecordFactory:
        return IotRecordFactory(
            30,
            0.1,
            seed=9,
            clock=FakeClock(step_s=0.001),
            time_scale=120,
            late_ratio=0.3,
            late_max_s=60,
            epoch_ms=EPOCH_MS,
        )

    first, second = late_factory(), late_factory()

    # When each makes 5,000 records
    # Then the sequences, late counts and ranges are identical
    assert first.batch(5_000) == second.batch(5_000)
    assert first.late == second.late > 0
    assert first.event_ms_range == second.event_ms_range


def test_default_event_time_keeps_a_seeds_old_sequence() -> None:
    # Given a factory with the event-time options at their defaults, and one without them
    plain = make(ratio=0.2, seed=10)
    explicit = IotRecordFactory(
        50, 0.2, 10, clock=fixed_clock, time_scale=1.0, late_ratio=0.0, late_max_s=0.0
    )

    # When each makes records
    # Then they match: the late draw only happens when late records are asked for
    assert plain.batch(2_000) == explicit.batch(2_000)


def test_event_range_counts_only_valid_records() -> None:
    # Given a factory that makes only malformed records
    factory = make(ratio=1.0)
    assert factory.event_ms_range is None

    # When it makes records
    factory.batch(500)

    # Then there is no event-time range to report (nothing reaches the output)
    assert factory.event_ms_range is None
    assert factory.late == 0


@pytest.mark.parametrize(
    "options",
    [
        {"time_scale": 0.0},
        {"time_scale": -1.0},
        {"time_scale": math.nan},
        {"time_scale": math.inf},
        {"late_ratio": -0.1},
        {"late_ratio": 1.1, "late_max_s": 1.0},
        {"late_ratio": math.nan, "late_max_s": 1.0},
        {"late_max_s": -1.0},
        {"late_max_s": math.inf},
        {"late_ratio": 0.1},  # late records asked for, but no room to move them back
        {"late_ratio": 0.1, "late_max_s": 0.0001},
    ],
    ids=repr,
)
def test_bad_event_time_options_are_rejected(options: dict[str, float]) -> None:
    # Given an impossible time scale, late ratio or late window
    # When a factory is made
    # Then it is refused with a ValueError
    with pytest.raises(ValueError):
        IotRecordFactory(10, seed=1, **options)  # type: ignore[arg-type]  # deliberately bad options


# --- the report's summary ------------------------------------------------------------------


def report(late: int = 0, event_ms_range: tuple[int, int] | None = None) -> ProduceReport:
    return ProduceReport(
        topic="iot",
        produced=100,
        valid=99,
        malformed=1,
        end_offsets={0: 100},
        malformed_positions=frozenset({(0, 7)}),
        elapsed_s=2.0,
        malformed_by_kind={"tombstone": 1},
        late=late,
        event_ms_range=event_ms_range,
    )


def test_summary_stays_the_same_without_late_records() -> None:
    # Given a report without late records
    # Then its summary is the line scripts already parse, event time or not
    line = "produced 100 records to iot (99 valid, 1 malformed) in 2.00 s: 50 records/s"
    assert report().summary() == line
    assert report(event_ms_range=(EPOCH_MS, EPOCH_MS)).summary() == line


def test_summary_adds_late_records_and_event_time() -> None:
    # Given a report with late records over an hour of event time
    done = report(late=12, event_ms_range=(EPOCH_MS, EPOCH_MS + 3_600_000))

    # Then the summary names them, and the event-time range when asked
    assert done.summary().endswith("records/s; 12 late")
    assert done.summary(event_time=True).endswith(
        "; 12 late; event time 2023-11-14T22:13:20.000Z to 2023-11-14T23:13:20.000Z"
    )


# --- actorsys simulate: the event-time options ----------------------------------------------


@pytest.fixture
def produce_calls(monkeypatch: pytest.MonkeyPatch) -> list[dict[str, Any]]:
    """Replaces produce() in the CLI: records its arguments, returns a canned report."""
    calls: list[dict[str, Any]] = []

    def fake_produce(bootstrap_servers: str, topic: str, **options: Any) -> ProduceReport:
        calls.append({"bootstrap_servers": bootstrap_servers, "topic": topic, **options})
        return report(late=3, event_ms_range=(EPOCH_MS, EPOCH_MS + 60_000))

    monkeypatch.setattr(actorsys.cli.simulate, "produce", fake_produce)
    return calls


def simulate(*args: str) -> Result:
    return CliRunner().invoke(main, ["simulate", *args], prog_name="actorsys")


def test_simulate_passes_the_event_time_options_to_produce(
    produce_calls: list[dict[str, Any]],
) -> None:
    # When simulate runs with a time scale and late records
    result = simulate(
        "--count", "100", "--time-scale", "3600", "--late-ratio", "0.25", "--late-max-s", "90"
    )

    # Then produce() gets them, and the summary shows the late records and event time
    assert result.exit_code == 0, result.output
    (call,) = produce_calls
    assert (call["time_scale"], call["late_ratio"], call["late_max_s"]) == (3600.0, 0.25, 90.0)
    assert result.stdout.strip().endswith(
        "; 3 late; event time 2023-11-14T22:13:20.000Z to 2023-11-14T22:14:20.000Z"
    )


def test_simulate_defaults_keep_event_time_as_wall_time(
    produce_calls: list[dict[str, Any]],
) -> None:
    # When simulate runs without the event-time options
    result = simulate("--count", "100")

    # Then event time is wall time with no late records
    assert result.exit_code == 0, result.output
    (call,) = produce_calls
    assert (call["time_scale"], call["late_ratio"], call["late_max_s"]) == (1.0, 0.0, 0.0)
    assert "event time" not in result.stdout


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["--time-scale", "0"], "Invalid value for '--time-scale'"),
        (["--time-scale", "-2"], "Invalid value for '--time-scale'"),
        (["--time-scale", "nan"], "Invalid value for '--time-scale'"),
        (["--time-scale", "inf"], "Invalid value for '--time-scale'"),
        (["--time-scale", "fast"], "Invalid value for '--time-scale'"),
        (["--late-ratio", "1.5"], "Invalid value for '--late-ratio'"),
        (["--late-ratio", "-0.1"], "Invalid value for '--late-ratio'"),
        (["--late-ratio", "nan"], "Invalid value for '--late-ratio'"),
        (["--late-max-s", "-1"], "Invalid value for '--late-max-s'"),
        (["--late-max-s", "inf"], "Invalid value for '--late-max-s'"),
        (["--late-ratio", "0.1"], "--late-ratio 0.1 needs --late-max-s >= 0.001"),
        (["--late-max-s", "0", "--late-ratio", "0.1"], "--late-ratio 0.1 needs --late-max-s"),
        (["--late-ratio", "0.1", "--late-max-s", "0.0001"], "--late-ratio 0.1 needs"),
        (["--rate", "nan"], "Invalid value for '--rate'"),
        (["--malformed-ratio", "nan"], "Invalid value for '--malformed-ratio'"),
        (["--value-format", "xml"], "Invalid value for '--value-format'"),
    ],
    ids=" ".join,
)
def test_simulate_bad_event_time_options_are_one_line_and_exit_2(
    produce_calls: list[dict[str, Any]], args: list[str], expected: str
) -> None:
    # When simulate runs with a bad value
    result = simulate(*args)

    # Then it exits 2 with one line naming the command and the problem, producing nothing
    assert result.exit_code == 2, result.output
    assert result.stdout == ""
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("Error: actorsys simulate: "), lines[0]
    assert expected in lines[0]
    assert produce_calls == []


def test_simulate_help_documents_the_event_time_options() -> None:
    # When asked for help
    result = simulate("--help")

    # Then the options are there, with what they mean
    assert result.exit_code == 0
    text = " ".join(result.stdout.split())  # undo the wrapping
    for option in ("--time-scale K", "--late-ratio R", "--late-max-s S"):
        assert option in text
    assert "runs K times wall time" in text
    assert "moved back up to S seconds of event time" in text


def test_simulate_passes_the_value_format_to_produce(
    produce_calls: list[dict[str, Any]],
) -> None:
    # When simulate runs without and with --value-format msgpack
    assert simulate("--count", "10").exit_code == 0
    result = simulate("--count", "10", "--value-format", "msgpack")

    # Then produce() gets "json" by default, then "msgpack"
    assert result.exit_code == 0, result.output
    assert [call["value_format"] for call in produce_calls] == ["json", "msgpack"]


def test_simulate_help_documents_the_value_format() -> None:
    text = " ".join(simulate("--help").stdout.split())
    assert "--value-format [json|msgpack]" in text
    assert "a MessagePack map of the same fields" in text
