"""Invariant 2 through the real actors: the JobManager applies every case of
the offset chain, and a Consumer retransmits until ACKed when ACKs are lost.

Each test runs a real multi-process Thespian actor system and a real SQLite
job store; a Recorder actor stands in for the neighbour not under test.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from actorsys.actors.consumer import Consumer
from actorsys.actors.job_manager import JobManager
from actorsys.config import AppConfig, build_config
from actorsys.jobs.model import JobStatus
from actorsys.jobs.open import open_job_store
from actorsys.messages import (
    BatchAck,
    BatchNotification,
    ComponentReady,
    ConsumerStart,
    JobManagerStart,
    NewOffsets,
    OffsetsHandout,
    PartitionAssigned,
    PartitionProgress,
)
from actorsys.offsets import OffsetInterval
from tests.support.actor_system import actor_system
from tests.support.actors import DumpReceived, Recorder
from tests.support.waiting import wait_for

pytestmark = pytest.mark.integration

GROUP, TOPIC, PARTITION = "g", "iot", 0
# Long enough for the JobManager to answer on a loaded 2-core machine; an ACK that
# does not come within it is taken as withheld.
ACK_WAIT_S = 3.0


def _config(tmp_path: Path, **batching: Any) -> AppConfig:
    return build_config(
        {
            "kafka": {"group_id": GROUP, "topics": [TOPIC]},
            "jobs": {"store": f"sqlite:///{tmp_path}/jobs.db"},
            "batching": {"max_records": 10, "linger_ms": 100, **batching},
            "output": {"dir": str(tmp_path / "out")},
        }
    )


def _interval(start: int, end: int) -> OffsetInterval:
    return OffsetInterval(TOPIC, PARTITION, start, end)


def _batch(start: int, end: int, starts_assignment: bool | None = None) -> BatchNotification:
    """By default the batch at offset 0 starts its assignment (a chain begins only so)."""
    first = start == 0 if starts_assignment is None else starts_assignment
    return BatchNotification(GROUP, _interval(start, end), end - start, first)


def _ack(start: int, end: int) -> BatchAck:
    return BatchAck(_interval(start, end))


def _send(asys: Any, manager: Any, batch: BatchNotification) -> BatchAck | None:
    """Send a batch as the Consumer would; the ACK, or None if none came within
    ACK_WAIT_S. Status snapshots the JobManager pushes to its starter are skipped."""
    asys.tell(manager, batch)
    return _listen_ack(asys)


def _listen_ack(asys: Any) -> BatchAck | None:
    """The next BatchAck addressed to the test, or None within ACK_WAIT_S."""
    deadline = time.monotonic() + ACK_WAIT_S
    while (left := deadline - time.monotonic()) > 0:
        reply = asys.listen(left)
        if isinstance(reply, BatchAck):
            return reply
    return None


def _dump(asys: Any, recorder: Any) -> list[Any]:
    """What a Recorder received (skipping status pushes addressed to the test)."""
    asys.tell(recorder, DumpReceived())
    deadline = time.monotonic() + ACK_WAIT_S
    while (left := deadline - time.monotonic()) > 0:
        reply = asys.listen(left)
        if isinstance(reply, list):
            return reply
    return []


@pytest.fixture
def job_manager(tmp_path: Path) -> Iterator[tuple[Any, Any]]:
    with actor_system() as asys:
        pool = asys.createActor(Recorder)
        manager = asys.createActor(JobManager)
        reply = asys.ask(manager, JobManagerStart(_config(tmp_path), "127.0.0.1:9", pool), 30)
        assert reply == ComponentReady("job_manager")
        yield asys, manager


def _jobs(tmp_path: Path) -> list[tuple[int, int, list[int]]]:
    """Every stored job's interval and the offsets it covers, oldest first."""
    store = open_job_store(f"sqlite:///{tmp_path}/jobs.db")
    try:
        jobs = sorted(store.list_jobs(limit=1000), key=lambda j: j.id)
        return [
            (job.start_offset, job.end_offset, list(range(job.start_offset, job.end_offset)))
            for job in jobs
        ]
    finally:
        store.close()


def test_in_order_batches_are_stored_and_acked(job_manager, tmp_path: Path) -> None:
    asys, manager = job_manager
    # Given the first batch ever, then the next one in order
    # When each is sent, Then each is ACKed and stored as one job
    assert _send(asys, manager, _batch(0, 10)) == _ack(0, 10)
    assert _send(asys, manager, _batch(10, 20)) == _ack(10, 20)
    assert _jobs(tmp_path) == [(0, 10, list(range(10))), (10, 20, list(range(10, 20)))]


def test_duplicate_is_acked_again_and_stored_once(job_manager, tmp_path: Path) -> None:
    asys, manager = job_manager
    assert _send(asys, manager, _batch(0, 10)) == _ack(0, 10)
    # When the same batch comes again (a retransmit), and one wholly below next_offset
    assert _send(asys, manager, _batch(0, 10)) == _ack(0, 10)
    assert _send(asys, manager, _batch(3, 7, starts_assignment=True)) == _ack(3, 7)
    # Then both are ACKed and nothing more is stored
    assert _jobs(tmp_path) == [(0, 10, list(range(10)))]


def test_overlap_stores_only_the_new_part(job_manager, tmp_path: Path) -> None:
    asys, manager = job_manager
    assert _send(asys, manager, _batch(0, 10)) == _ack(0, 10)
    # When a batch overlaps what is stored (a second consumer after a rebalance)
    ack = _send(asys, manager, _batch(5, 15, starts_assignment=True))
    # Then it is ACKed as sent, and only [10, 15) is stored
    assert ack == _ack(5, 15)
    assert _jobs(tmp_path) == [(0, 10, list(range(10))), (10, 15, list(range(10, 15)))]


def test_out_of_order_batch_waits_for_the_earlier_one(job_manager, tmp_path: Path) -> None:
    asys, manager = job_manager
    assert _send(asys, manager, _batch(0, 10)) == _ack(0, 10)
    # When [20, 30) overtakes [10, 20)
    # Then it is not ACKed and not stored
    assert _send(asys, manager, _batch(20, 30)) is None
    assert [j[:2] for j in _jobs(tmp_path)] == [(0, 10)]
    # And once [10, 20) arrives, the parked [20, 30) is stored and ACKed with it,
    # without waiting for a retransmission (the two ACKs may arrive in either
    # order: Thespian does not keep order between two actors under load)
    acks = [_send(asys, manager, _batch(10, 20)), _listen_ack(asys)]
    assert sorted(a.interval.start for a in acks if a) == [10, 20]
    assert [j[:2] for j in _jobs(tmp_path)] == [(0, 10), (10, 20), (20, 30)]
    # And a late retransmission of it is only a duplicate
    assert _send(asys, manager, _batch(20, 30)) == _ack(20, 30)
    assert len(_jobs(tmp_path)) == 3


def test_first_batch_after_assignment_may_start_past_next_offset(
    job_manager, tmp_path: Path
) -> None:
    asys, manager = job_manager
    assert _send(asys, manager, _batch(0, 10)) == _ack(0, 10)
    # When the first batch after an assignment starts beyond next_offset (records
    # [10, 40) were deleted by retention before anyone read them)
    ack = _send(asys, manager, _batch(40, 50, starts_assignment=True))
    # Then it is accepted (the gap is counted and logged, not waited for)
    assert ack == _ack(40, 50)
    assert [j[:2] for j in _jobs(tmp_path)] == [(0, 10), (40, 50)]


def test_consumer_retransmits_until_acked_when_acks_are_lost(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given a Consumer that loses 60 % of ACKs (the chaos hook), talking to a real
    # JobManager; actor processes inherit the environment of the actor system
    monkeypatch.setenv("ACTORSYS_CHAOS_DROP_ACK", "0.6")
    monkeypatch.setenv("ACTORSYS_CHAOS_SEED", "3")
    config = _config(tmp_path, ack_timeout_ms=200, max_ack_timeout_ms=400)
    with actor_system() as asys:
        pool = asys.createActor(Recorder)
        kafka_consumer = asys.createActor(Recorder)
        manager = asys.createActor(JobManager)
        assert asys.ask(manager, JobManagerStart(config, "127.0.0.1:9", pool), 30) == (
            ComponentReady("job_manager")
        )
        consumer = asys.createActor(Consumer)
        asys.tell(consumer, ConsumerStart(config, manager, kafka_consumer))
        asys.tell(consumer, PartitionAssigned(TOPIC, PARTITION, 1))
        # When 100 records arrive in chunks of 10 (each cuts one batch)
        for start in range(0, 100, 10):
            interval = NewOffsets(_interval(start, start + 10), start == 0, 1)
            asys.tell(consumer, OffsetsHandout(start, (interval,)))

        # Then the Consumer keeps retransmitting until every batch is ACKed: its
        # committable offset reaches 100 with nothing left unACKed
        def final_progress() -> PartitionProgress | None:
            got = [m for m in _dump(asys, kafka_consumer) if isinstance(m, PartitionProgress)]
            done = [p for p in got if p.committable == 100 and p.unacked_batches == 0]
            return done[-1] if done else None

        progress = wait_for(final_progress, 60, "every batch ACKed despite lost ACKs")
        assert progress.released_records == 100
    # And every record is in exactly one job, in order
    jobs = _jobs(tmp_path)
    assert [o for _s, _e, offsets in jobs for o in offsets] == list(range(100))
    store = open_job_store(f"sqlite:///{tmp_path}/jobs.db")
    try:
        assert store.count_by_status()[JobStatus.PENDING] == len(jobs) == 10
    finally:
        store.close()
