"""The plain objects under the JobManager: leases, held and parked batches,
transient output faults. Fake clocks (plain numbers), no actors."""

from __future__ import annotations

import errno
import random

from confluent_kafka import KafkaError, KafkaException

from actorsys.backlog import HeldBatches, ParkedBatches
from actorsys.jobs.leases import LeaseBook, Outcome
from actorsys.jobs.output_health import OutputHealth, is_transient
from actorsys.messages import BatchNotification
from actorsys.offsets import OffsetInterval


def _batch(start: int, end: int, partition: int = 0) -> BatchNotification:
    return BatchNotification("g", OffsetInterval("t", partition, start, end), end - start, False)


# --- leases -----------------------------------------------------------------------------------


def test_a_lease_expires_at_its_deadline_once() -> None:
    book = LeaseBook()
    book.grant("w1", "addr", "h", job_id=7, token=1, deadline=10.0)
    assert book.expired(now=9.9) == []
    [gone] = book.expired(now=10.0)
    assert (gone.job_id, gone.token) == (7, 1)
    assert book.expired(now=99.0) == [] and not book.holds("w1")


def test_a_reported_outcome_keeps_the_lease_from_expiring_until_recorded() -> None:
    # Given a worker that finished while the store could not record it
    book = LeaseBook()
    book.grant("w1", "addr", "h", job_id=7, token=1, deadline=10.0)
    book.report("w1", 7, Outcome(done=True))
    # When its deadline passes, Then the attempt is not failed a second time
    assert book.expired(now=50.0) == []
    assert [lease.job_id for lease in book.unrecorded()] == [7]
    # And once recorded the lease ends
    assert book.end("w1", 7) is not None and len(book) == 0


def test_ending_or_reporting_another_job_of_the_worker_changes_nothing() -> None:
    book = LeaseBook()
    book.grant("w1", "addr", "h", job_id=8, token=2, deadline=10.0)
    assert book.report("w1", 7, Outcome(done=True)) is None
    assert book.end("w1", 7) is None
    assert book.holds("w1") and book.running_by_host() == {"h": 1}


# --- held and parked batches --------------------------------------------------------------------


def test_held_batches_are_capped_in_count_and_deduplicated() -> None:
    held = HeldBatches(max_batches=2)
    assert held.hold(_batch(0, 10), "c") and held.hold(_batch(10, 20), "c")
    assert not held.hold(_batch(20, 30), "c")  # past the cap: let go (unACKed, resent later)
    assert held.hold(_batch(0, 10), "c")  # a retransmission replaces, it does not add
    assert (len(held), held.dropped) == (2, 1)
    first = held.pop_oldest()
    assert first is not None and first[0].interval.start == 0 and len(held) == 1


def test_parked_batches_drop_the_furthest_ahead_past_the_cap() -> None:
    parked = ParkedBatches(max_per_partition=2)
    for start in (20, 10, 30):
        parked.park(_batch(start, start + 10), "c")
    # Three > 2: the batch needed last (start 30) went
    assert len(parked) == 2
    assert parked.take_next("g", "t", 0, next_offset=5) is None
    entry = parked.take_next("g", "t", 0, next_offset=10)
    assert entry is not None and entry[0].interval.start == 10 and len(parked) == 1


def test_parked_batches_are_capped_in_count_per_partition() -> None:
    parked = ParkedBatches(max_per_partition=2)
    for start in (10, 20, 30):
        parked.park(_batch(start, start + 10), "c")
    assert len(parked) == 2 and parked.take_next("g", "t", 0, 30) is not None


def test_the_batches_of_a_consumer_that_exited_are_forgotten_and_no_others() -> None:
    held, parked = HeldBatches(max_batches=8), ParkedBatches(max_per_partition=8)
    held.hold(_batch(0, 10), "dead")
    held.hold(_batch(10, 20), "alive")
    parked.park(_batch(30, 40), "dead")
    parked.park(_batch(50, 60), "alive")
    assert (held.forget_sender("dead"), parked.forget_sender("dead")) == (1, 1)
    kept = held.pop_oldest()
    assert kept is not None and kept[1] == "alive" and len(held) == 0
    assert parked.take_next("g", "t", 0, next_offset=30) is None
    entry = parked.take_next("g", "t", 0, next_offset=50)
    assert entry is not None and entry[1] == "alive"


# --- transient output faults --------------------------------------------------------------------


def test_environment_faults_are_transient_and_bad_data_is_not() -> None:
    assert is_transient(OSError(errno.ENOSPC, "No space left on device"))
    assert is_transient(OSError(errno.EIO, "Input/output error"))
    assert is_transient(OSError(errno.EDQUOT, "Disk quota exceeded"))
    # pyarrow reports write failures as OSError with the text but no errno
    assert is_transient(OSError("IOError: No space left on device. Detail: [errno 28]"))
    assert is_transient(KafkaException(KafkaError(KafkaError._TRANSPORT, "down", retriable=True)))
    wrapped = RuntimeError("dead letters not delivered")
    wrapped.__cause__ = KafkaException(KafkaError(KafkaError._ALL_BROKERS_DOWN))
    assert is_transient(wrapped)
    assert not is_transient(ValueError("not json"))
    assert not is_transient(OSError(errno.ENOENT, "No such file or directory"))


def test_output_health_backs_off_and_recovers_on_success() -> None:
    health = OutputHealth(initial_s=1.0, max_s=8.0, rng=random.Random(1))
    assert health.healthy
    delays = [health.transient_failure("disk full", now=float(i)) for i in range(6)]
    assert not health.healthy and health.unhealthy_since == 0.0
    assert all(0.1 <= d <= 8.0 for d in delays)
    assert max(delays[3:]) > max(delays[:1])  # the ceiling grows with the streak
    assert health.succeeded() is True and health.healthy
    assert health.succeeded() is False


# --- event hours of published files -------------------------------------------------------------


def test_the_event_hours_and_newest_event_time_come_from_the_files_written(tmp_path) -> None:
    import pyarrow as pa

    from actorsys.actors.job_manager import _event_hours, _partition_of
    from actorsys.tables.layout import TIMESTAMP_US_UTC, raw_file_schema, write_partitioned_files

    hour = 1_764_615_600_000  # 2025-12-01T19:00Z
    ts = [hour + 1_000, hour + 2_000, hour + 3_600_000 + 5]  # two in 19:00, one in 20:00
    rows = pa.table(
        {
            "device_id": ["a", "b", "a"],
            "ts": pa.array([t * 1000 for t in ts], TIMESTAMP_US_UTC),
            "temperature": [1.0, 2.0, 3.0],
            "_topic": ["t"] * 3,
            "_partition": pa.array([0] * 3, pa.int32()),
            "_offset": pa.array([0, 1, 2], pa.int64()),
        },
        schema=raw_file_schema(("temperature",)),
    )
    files = write_partitioned_files(rows, tmp_path, "part-t-0-0-3-a1")
    hours, newest = _event_hours(tuple(f.to_json() for f in files))
    assert hours == {hour: 2, hour + 3_600_000: 1}
    assert newest == hour + 3_600_000 + 5
    assert _partition_of(hour) == ("2025-12-01", "19")
