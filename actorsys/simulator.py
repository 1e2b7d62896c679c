"""The simulated IoT feed: sensor readings, some of them deliberately broken.

Two parts:

- :class:`IotRecordFactory` is pure: it makes ``(key, value, kind)`` tuples
  from a seeded random generator and touches no network.
- :func:`produce` writes a factory's records to Kafka at a given rate and
  returns a :class:`ProduceReport` learned from the delivery reports — the
  exact ``(partition, offset)`` of every record and of every malformed one, so
  tests can check the pipeline's output record by record.

Record format (value, UTF-8 JSON; key = the device id)::

    {"device_id": "dev-0042", "ts": 1732000000000, "temperature": 21.37,
     "humidity": 48.2, "battery": 87.5}

or, with ``value_format="msgpack"``, a MessagePack map of the same fields and
values (``ts`` an integer, the rest floats).

``ts`` is event time, which need not be wall time: ``time_scale`` makes it run
K times faster (so a test closes event-time hours in minutes) and
``late_ratio``/``late_max_s`` move some records back in event time, to
exercise the pipeline's handling of late data.
"""

from __future__ import annotations

import json
import logging
import math
import random
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum

import msgpack
from confluent_kafka import KafkaError, Message, Producer

from actorsys.errors import ActorsysError
from actorsys.handlers.validation import VALUE_FORMATS
from actorsys.kafka_clients import create_topic_if_missing
from actorsys.stop_signals import StopFlag

log = logging.getLogger(__name__)

# librdkafka's log lines ("Connect to ... failed") go through Python logging,
# not straight to stderr, so the CLI shows one clean error line. The
# NullHandler only silences Python's last-resort printer; an application that
# configures logging still sees them.
_kafka_log = logging.getLogger("actorsys.simulator.kafka")
_kafka_log.addHandler(logging.NullHandler())


class Kind(StrEnum):
    """What a simulated record is; every kind but ``VALID`` names a defect."""

    VALID = "valid"
    # Undecodable in the factory's value format: binary noise, a truncated
    # record, free text, an empty value. Named after JSON, the first format,
    # it covers undecodable MessagePack as well.
    NOT_JSON = "not_json"
    MISSING_FIELD = "missing_field"  # an object (map) lacking one or more required fields
    WRONG_TYPE = "wrong_type"  # a field of the wrong type, or not an object (map) at all
    TOMBSTONE = "tombstone"  # a key with a null value (Kafka's deletion marker)


MALFORMED_KINDS: tuple[Kind, ...] = (
    Kind.NOT_JSON,
    Kind.MISSING_FIELD,
    Kind.WRONG_TYPE,
    Kind.TOMBSTONE,
)
FIELDS: tuple[str, ...] = ("device_id", "ts", "temperature", "humidity", "battery")

# One simulated record: (key, value, kind). A plain tuple rather than a class
# because the producer makes hundreds of thousands of them per second.
SimRecord = tuple[bytes, bytes | None, Kind]

# The valid payload, formatted directly to bytes: about ten times faster than
# building a dict and serialising it, and what makes >100k records/s possible.
_VALID_TEMPLATE = b'{"device_id":"%s","ts":%d,"temperature":%.2f,"humidity":%.1f,"battery":%.1f}'


def _json_bytes(obj: object) -> bytes:
    return json.dumps(obj).encode()


# Sentinels of an empty event-time range: any real ts is between them.
_NO_TS_MIN = 2**63
_NO_TS_MAX = -(2**63)


def _check_event_time(time_scale: float, late_ratio: float, late_max_s: float) -> None:
    """Refuse event-time settings that cannot mean what was asked for.

    ``late_ratio > 0`` with a ``late_max_s`` under a millisecond is refused
    rather than ignored: it would ask for late records and silently make none.
    """
    if not (time_scale > 0 and math.isfinite(time_scale)):
        raise ValueError(f"time_scale must be a finite number > 0, got {time_scale}")
    if not 0.0 <= late_ratio <= 1.0:
        raise ValueError(f"late_ratio must be between 0 and 1, got {late_ratio}")
    if not (late_max_s >= 0 and math.isfinite(late_max_s)):
        raise ValueError(f"late_max_s must be a finite number >= 0, got {late_max_s}")
    if late_ratio > 0 and late_max_s < 0.001:
        raise ValueError(f"late_ratio {late_ratio} needs late_max_s of at least 0.001 (1 ms)")


class IotRecordFactory:
    """Makes plausible sensor readings from ``devices`` devices.

    Each device has its own climate (a baseline temperature and humidity that
    wander slowly) and a battery that drains and is recharged. With probability
    ``malformed_ratio`` a record is malformed instead, of a kind drawn evenly
    from :data:`MALFORMED_KINDS`. A fixed ``seed`` makes the sequence of keys,
    kinds and values repeatable (timestamps come from ``clock``).

    Event time (``ts``, integer epoch ms) starts at ``epoch_ms`` (default: the
    wall time) with the first record and runs ``time_scale`` times as fast as
    ``clock``, so ``time_scale=60`` turns one wall second into a minute of event
    time. With probability ``late_ratio`` a valid record is late: its ``ts`` is
    moved back by up to ``late_max_s`` seconds of event time (at least 1 ms, so
    every record counted late really is older than its reading). Malformed
    records are never made late: they go to the dead letters whatever their ts.

    ``value_format`` is ``"json"`` (the default) or ``"msgpack"``: a
    MessagePack map with the same fields and values as the JSON object, and
    malformed records that are malformed for a MessagePack decoder. A seed
    repeats its sequence within one format; the JSON sequence is the one the
    factory always made.
    """

    def __init__(
        self,
        devices: int,
        malformed_ratio: float = 0.0,
        seed: int | None = None,
        clock: Callable[[], float] = time.time,
        *,
        time_scale: float = 1.0,
        late_ratio: float = 0.0,
        late_max_s: float = 0.0,
        epoch_ms: int | None = None,
        value_format: str = "json",
    ) -> None:
        if devices < 1:
            raise ValueError(f"devices must be at least 1, got {devices}")
        if not 0.0 <= malformed_ratio <= 1.0:
            raise ValueError(f"malformed_ratio must be between 0 and 1, got {malformed_ratio}")
        if value_format not in VALUE_FORMATS:
            raise ValueError(
                f"value_format must be one of {list(VALUE_FORMATS)}, got {value_format!r}"
            )
        _check_event_time(time_scale, late_ratio, late_max_s)
        self.devices = devices
        self.value_format = value_format
        # Checked once per valid record: the JSON template stays the fast path.
        self._msgpack = value_format == "msgpack"
        # One Packer per factory (a factory serves one thread): msgpack.packb
        # would build a new one for every record.
        self._encode: Callable[[object], bytes] = (
            msgpack.Packer().pack if self._msgpack else _json_bytes
        )
        self.malformed_ratio = malformed_ratio
        self.time_scale = time_scale
        self.late_ratio = late_ratio
        self.late_max_s = late_max_s
        self._rng = random.Random(seed)
        self._wall_clock = clock
        # The first reading anchors event time (_first_tick swaps in the plain
        # clock), so a factory made before a slow topic creation does not
        # start hours into its event time at a large time_scale.
        self._clock: Callable[[], float] = self._first_tick
        self._epoch_asked = epoch_ms
        self._epoch_ms = 0.0  # set by _first_tick
        self._started = 0.0
        self._ms_per_s = 1000.0 * time_scale
        self._late_max_ms = int(late_max_s * 1000)
        self._late = 0
        self._ts_min = _NO_TS_MIN
        self._ts_max = _NO_TS_MAX
        rng = self._rng
        self._ids = [f"dev-{i:04d}" for i in range(devices)]
        self._keys = [device_id.encode() for device_id in self._ids]
        self._temperature = [rng.uniform(12.0, 30.0) for _ in range(devices)]
        self._humidity = [rng.uniform(30.0, 70.0) for _ in range(devices)]
        self._battery = [rng.uniform(40.0, 100.0) for _ in range(devices)]

    @property
    def late(self) -> int:
        """How many valid records so far were made late."""
        return self._late

    @property
    def event_ms_range(self) -> tuple[int, int] | None:
        """The oldest and newest ``ts`` of the valid records so far (None before any).

        Only valid records count: they are the ones that reach the output, so
        this says which event-time hours (or days) a run filled.
        """
        if self._ts_max < self._ts_min:
            return None
        return self._ts_min, self._ts_max

    def record(self) -> SimRecord:
        """The next record."""
        device = self._rng.randrange(self.devices)
        if self.malformed_ratio and self._rng.random() < self.malformed_ratio:
            return self._malformed(device)
        return self._valid(device)

    def batch(self, n: int) -> list[SimRecord]:
        """The next ``n`` records (the fast path the producer uses)."""
        record = self.record
        return [record() for _ in range(n)]

    def __iter__(self) -> Iterator[SimRecord]:
        while True:
            yield self.record()

    # -- event time ----------------------------------------------------------

    def _first_tick(self) -> float:
        """Read the clock for the first time: event time starts here, at ``epoch_ms``."""
        now = self._wall_clock()
        self._started = now
        self._epoch_ms = now * 1000.0 if self._epoch_asked is None else float(self._epoch_asked)
        self._clock = self._wall_clock
        return now

    # -- valid -------------------------------------------------------------

    def _reading(self, device: int) -> tuple[int, float, float, float]:
        """Advance ``device``'s state and return (ts, temperature, humidity, battery)."""
        r = self._rng.random
        # A slow random walk keeps each device's series smooth and plausible,
        # with a little sensor noise on top.
        temperature = min(40.0, max(-10.0, self._temperature[device] + (r() - 0.5) * 0.2))
        humidity = min(95.0, max(5.0, self._humidity[device] + (r() - 0.5) * 0.4))
        battery = self._battery[device] - r() * 0.02
        if battery < 5.0:
            battery = 100.0  # someone changed the batteries
        self._temperature[device] = temperature
        self._humidity[device] = humidity
        self._battery[device] = battery
        # Elapsed wall time first, then scaled: keeps ms precision at any scale.
        elapsed_s = self._clock() - self._started
        ts = int(self._epoch_ms + elapsed_s * self._ms_per_s)
        return ts, temperature + (r() - 0.5) * 0.1, humidity, battery

    def _valid(self, device: int) -> SimRecord:
        ts, temperature, humidity, battery = self._reading(device)
        # The late draw only when asked for, so a seed's sequence without late
        # records is the same as before the option existed.
        if self.late_ratio and self._rng.random() < self.late_ratio:
            # 1 .. late_max_ms milliseconds back.
            ts -= self._late_max_ms - int(self._rng.random() * self._late_max_ms)
            self._late += 1
        if ts < self._ts_min:
            self._ts_min = ts
        if ts > self._ts_max:
            self._ts_max = ts
        key = self._keys[device]
        if self._msgpack:
            # Rounded as the template's %.2f and %.1f round, so both formats
            # carry the same values.
            value = self._encode(
                {
                    "device_id": self._ids[device],
                    "ts": ts,
                    "temperature": round(temperature, 2),
                    "humidity": round(humidity, 1),
                    "battery": round(battery, 1),
                }
            )
        else:
            value = _VALID_TEMPLATE % (key, ts, temperature, humidity, battery)
        return key, value, Kind.VALID

    # -- malformed -----------------------------------------------------------

    def _malformed(self, device: int) -> SimRecord:
        kind = self._rng.choice(MALFORMED_KINDS)
        key = self._keys[device]
        if kind is Kind.TOMBSTONE:
            return key, None, kind
        ts, temperature, humidity, battery = self._reading(device)
        fields: dict[str, object] = {
            "device_id": self._ids[device],
            "ts": ts,
            "temperature": round(temperature, 2),
            "humidity": round(humidity, 1),
            "battery": round(battery, 1),
        }
        if kind is Kind.NOT_JSON:
            value = self._undecodable(fields)
        elif kind is Kind.MISSING_FIELD:
            value = self._missing_field(fields)
        else:
            value = self._wrong_type(fields)
        return key, value, kind

    def _undecodable(self, fields: dict[str, object]) -> bytes:
        rng = self._rng
        variant = rng.randrange(4)
        if variant == 0:  # cut off mid-record, as a crashing writer would leave it
            # A map's header counts its entries, so no strict prefix of a
            # packed map decodes either.
            whole = self._encode(fields)
            return whole[: rng.randrange(1, len(whole) - 1)]
        if variant == 1:
            # Binary noise. JSON: the 0x80 lead byte is invalid UTF-8 and,
            # with a non-zero second byte, JSON decoders cannot take it for a
            # UTF-16/32 BOM either. MessagePack: 0xc1 is the one byte that
            # starts no type. Neither ever decodes, whatever the random tail.
            lead = b"\xc1" if self._msgpack else b"\x80\xff"
            return lead + rng.randbytes(rng.randrange(4, 40))
        if variant == 2:
            # A legacy line format. To MessagePack its "d" is the integer 100
            # followed by extra bytes, which a decoder refuses as well.
            return f"{fields['device_id']} temp={fields['temperature']}".encode()
        return b""

    def _missing_field(self, fields: dict[str, object]) -> bytes:
        # A record without its metrics is valid ("numeric or absent"): a
        # malformed one lacks device_id or ts, and maybe more.
        del fields[self._rng.choice(("device_id", "ts"))]
        for name in self._rng.sample(FIELDS, self._rng.randrange(0, len(FIELDS))):
            fields.pop(name, None)
        return self._encode(fields)

    def _wrong_type(self, fields: dict[str, object]) -> bytes:
        variant = self._rng.randrange(6)
        if variant == 5:  # decodable, but an array where an object (map) belongs
            return self._encode(list(fields.values()))
        if variant == 0:
            fields["ts"] = [fields["ts"]]
        elif variant == 1:  # an ISO-8601 string would be valid; this is not a time
            fields["ts"] = "yesterday"
        elif variant == 2:
            fields["temperature"] = f"{fields['temperature']}C"
        elif variant == 3:
            fields["humidity"] = True
        elif self._msgpack:
            # MessagePack's own mistake: the id as bin (bytes), not str.
            fields["device_id"] = str(fields["device_id"]).encode()
        else:
            fields["device_id"] = int(str(fields["device_id"]).removeprefix("dev-"))
        return self._encode(fields)


# ---------------------------------------------------------------------------
# Producing to Kafka


class DeliveryError(ActorsysError):
    """Kafka did not accept every produced record (nothing is silently lost)."""


@dataclass(frozen=True)
class ProduceReport:
    """What :func:`produce` delivered, taken from Kafka's delivery reports.

    ``end_offsets`` maps each partition written to its last delivered offset
    + 1; ``malformed_positions`` holds the ``(partition, offset)`` of every
    malformed record. ``late`` counts the valid records whose ts was moved back
    and ``event_ms_range`` is the oldest and newest ts of the valid records
    (None if there were none), so a test knows which event-time hours it
    filled. The dict fields are not to be mutated.
    """

    topic: str
    produced: int
    valid: int
    malformed: int
    end_offsets: dict[int, int]
    malformed_positions: frozenset[tuple[int, int]]
    elapsed_s: float
    malformed_by_kind: dict[str, int]
    # Defaults: reports built by hand (tests that produce records themselves)
    # predate these fields.
    late: int = 0
    event_ms_range: tuple[int, int] | None = None

    @property
    def records_per_s(self) -> float:
        return self.produced / self.elapsed_s if self.elapsed_s > 0 else 0.0

    def summary(self, event_time: bool = False) -> str:
        """One line for humans.

        The late count is added only when there are late records, and the
        event-time range only with ``event_time``, so the default line stays
        the one scripts already parse.
        """
        line = (
            f"produced {self.produced} records to {self.topic} "
            f"({self.valid} valid, {self.malformed} malformed) "
            f"in {self.elapsed_s:.2f} s: {self.records_per_s:,.0f} records/s"
        )
        if self.late:
            line += f"; {self.late} late"
        if event_time and self.event_ms_range is not None:
            first, last = (_iso_ms(ms) for ms in self.event_ms_range)
            line += f"; event time {first} to {last}"
        return line


def _iso_ms(ms: int) -> str:
    """Epoch milliseconds as UTC ISO-8601, e.g. ``2024-11-19T07:06:40.000Z``."""
    moment = datetime.fromtimestamp(ms / 1000, tz=UTC)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


ProgressCallback = Callable[[int], None]

# Throughput settings. Python's per-record cost dominates, so the producer is
# tuned to keep librdkafka out of the way: large batches that fill during a
# short linger, and a local queue deep enough to absorb a burst at rate 0.
DEFAULT_PRODUCER_CONFIG: dict[str, object] = {
    "linger.ms": 20,
    "batch.size": 1_000_000,
    "batch.num.messages": 100_000,
    "queue.buffering.max.messages": 1_000_000,
    "queue.buffering.max.kbytes": 512 * 1024,
    # Fail a record that cannot be delivered in 30 s instead of librdkafka's
    # 5 minutes, so a dead broker surfaces as an error quickly.
    "message.timeout.ms": 30_000,
}

# Records made and handed to librdkafka per loop turn at rate 0: large enough
# to amortise the loop, small enough to notice `stop` within milliseconds.
_CHUNK = 5_000
# The rate limiter's time slice: records due in a slice are produced together.
_SLICE_S = 0.01
# How far behind schedule the limiter may fall before it forgives the debt
# (after a stall it resumes the rate instead of bursting to catch up).
_MAX_DEBT_S = 1.0
# Interval of the stderr status line when progress=True.
_STATUS_EVERY_S = 5.0


class _Deliveries:
    """Collects delivery reports; librdkafka calls these from poll()/flush()."""

    def __init__(self) -> None:
        self.end_offsets: dict[int, int] = {}
        self.malformed: set[tuple[int, int]] = set()
        self.errors: list[KafkaError] = []
        self.delivered = 0

    def on_valid(self, err: KafkaError | None, msg: Message) -> None:
        if err is not None:
            self.errors.append(err)
            return
        self.delivered += 1
        partition, offset = msg.partition(), msg.offset()
        # A delivered message has both (librdkafka sets them on success).
        assert partition is not None and offset is not None
        end = offset + 1
        # max(), not assignment: reports of one partition may come back out of
        # order when librdkafka retries a batch.
        if end > self.end_offsets.get(partition, 0):
            self.end_offsets[partition] = end

    def on_malformed(self, err: KafkaError | None, msg: Message) -> None:
        self.on_valid(err, msg)
        partition, offset = msg.partition(), msg.offset()
        if err is None and partition is not None and offset is not None:
            self.malformed.add((partition, offset))


class _Status:
    """A status line on stderr every few seconds (progress=True)."""

    def __init__(self, count: int) -> None:
        self._count = count
        self._start = time.monotonic()
        self._next = self._start + _STATUS_EVERY_S

    def __call__(self, produced: int) -> None:
        now = time.monotonic()
        if now < self._next:
            return
        self._next = now + _STATUS_EVERY_S
        of = f"/{self._count}" if self._count else ""
        rate = produced / (now - self._start)
        print(f"produced {produced}{of} records ({rate:,.0f}/s)", file=sys.stderr, flush=True)


def produce(
    bootstrap_servers: str,
    topic: str,
    *,
    devices: int,
    rate: float,
    count: int,
    malformed_ratio: float,
    partitions: int,
    seed: int | None = None,
    progress: bool | ProgressCallback = False,
    stop: StopFlag | None = None,
    producer_config: dict[str, object] | None = None,
    timeout_s: float = 10.0,
    time_scale: float = 1.0,
    late_ratio: float = 0.0,
    late_max_s: float = 0.0,
    epoch_ms: int | None = None,
    value_format: str = "json",
) -> ProduceReport:
    """Produce simulated IoT records to ``topic`` and report what was delivered.

    Creates the topic with ``partitions`` partitions if missing. Produces
    ``rate`` records per second (0: as fast as possible) until ``count``
    records (0: until ``stop`` is set), then waits for every delivery report.
    ``progress`` is ``True`` for a status line on stderr every few seconds, or
    a callable given the running total several times a second.
    ``producer_config`` overrides the librdkafka settings. ``time_scale``,
    ``late_ratio``, ``late_max_s`` and ``epoch_ms`` shape event time as in
    :class:`IotRecordFactory`; event time starts with the first record.
    ``value_format`` (``"json"`` or ``"msgpack"``) encodes the values, as there.

    Raises :class:`ValueError` for a bad setting before touching the broker,
    :class:`BrokerError` if the broker is unreachable within ``timeout_s`` and
    :class:`DeliveryError` if any record was not delivered.
    """
    if rate < 0:
        raise ValueError(f"rate must be >= 0, got {rate}")
    if count < 0:
        raise ValueError(f"count must be >= 0, got {count}")
    factory = IotRecordFactory(
        devices,
        malformed_ratio,
        seed,
        time_scale=time_scale,
        late_ratio=late_ratio,
        late_max_s=late_max_s,
        epoch_ms=epoch_ms,
        value_format=value_format,
    )
    create_topic_if_missing(bootstrap_servers, topic, partitions, timeout_s)

    deliveries = _Deliveries()
    config: dict[str, object] = {
        "bootstrap.servers": bootstrap_servers,
        "logger": _kafka_log,
        **DEFAULT_PRODUCER_CONFIG,
        **(producer_config or {}),
        # The default callback handles valid records; malformed ones pass their
        # own, so only they pay for recording a position.
        "on_delivery": deliveries.on_valid,
    }
    producer = Producer(config)
    report_progress: ProgressCallback | None
    if progress is True:
        report_progress = _Status(count)
    elif callable(progress):
        report_progress = progress
    else:
        report_progress = None

    produced = 0
    malformed_by_kind: dict[str, int] = {}
    start = time.monotonic()
    schedule_start = start  # moved forward when the limiter forgives a debt
    scheduled_before = 0  # records accounted for by the schedule before schedule_start
    try:
        while count == 0 or produced < count:
            if stop is not None and stop.is_set():
                break
            if deliveries.errors:
                break  # fail fast: the broker is refusing records
            if rate > 0:
                now = time.monotonic()
                due = scheduled_before + int((now - schedule_start) * rate) - produced
                if due > rate * _MAX_DEBT_S:
                    scheduled_before, schedule_start, due = produced, now, 0
                if due <= 0:
                    # Sleep inside poll() so delivery reports are served meanwhile.
                    wait_s = (produced + 1 - scheduled_before) / rate - (now - schedule_start)
                    producer.poll(min(_SLICE_S, max(0.0, wait_s)))
                    continue
                n = due
            else:
                n = _CHUNK
            if count:
                n = min(n, count - produced)
            batch = factory.batch(n)
            _send(producer, topic, batch, deliveries, malformed_by_kind)
            produced += n
            producer.poll(0)
            if report_progress is not None:
                report_progress(produced)
        # Flush in short steps so signal handlers (Ctrl-C) still run; librdkafka
        # fails undeliverable records after message.timeout.ms, so this ends.
        while producer.flush(0.5) > 0:
            pass
    except BaseException:
        # Interrupted: give in-flight records a moment, then let the error out.
        producer.flush(2.0)
        raise
    elapsed = time.monotonic() - start
    if report_progress is not None:
        report_progress(produced)

    if deliveries.errors:
        first = deliveries.errors[0]
        raise DeliveryError(
            f"{len(deliveries.errors)} of {produced} records were not delivered to "
            f"{topic!r}: {first.str()}"
        )
    if deliveries.delivered != produced:  # pragma: no cover - librdkafka contract
        raise DeliveryError(
            f"{produced} records produced but {deliveries.delivered} delivery reports received"
        )
    malformed = sum(malformed_by_kind.values())
    return ProduceReport(
        topic=topic,
        produced=produced,
        valid=produced - malformed,
        malformed=malformed,
        end_offsets=dict(sorted(deliveries.end_offsets.items())),
        malformed_positions=frozenset(deliveries.malformed),
        elapsed_s=elapsed,
        malformed_by_kind=malformed_by_kind,
        late=factory.late,
        event_ms_range=factory.event_ms_range,
    )


def _send(
    producer: Producer,
    topic: str,
    batch: list[SimRecord],
    deliveries: _Deliveries,
    malformed_by_kind: dict[str, int],
) -> None:
    """Hand ``batch`` to librdkafka, waiting whenever its local queue is full."""
    send = producer.produce
    on_malformed = deliveries.on_malformed
    for key, value, kind in batch:
        while True:
            try:
                if kind is Kind.VALID:
                    send(topic, value, key)
                else:
                    send(topic, value, key, on_delivery=on_malformed)
                    malformed_by_kind[kind.value] = malformed_by_kind.get(kind.value, 0) + 1
                break
            except BufferError:
                # Queue full: serve delivery reports until librdkafka has room.
                producer.poll(0.05)
