"""Consumer: one of a bounded pool, each serving many partitions.

Cuts each of its partitions' new offsets into batches (count, linger): the
offset intervals jobs are made of. Sends each to the JobManager as a
``BatchNotification`` (a few hundred bytes: no record travels here), keeps it until
ACKed and retransmits with backoff. After every ACK it tells the
KafkaConsumerActor the partition's committable offset: the end of the
contiguous ACKed prefix, never beyond. The rules are in
:class:`actorsys.consumer_pool.PartitionBatches`; this actor only dispatches.
"""

from __future__ import annotations

import logging
import time
from datetime import timedelta
from typing import Any

from thespian.actors import WakeupMessage

from actorsys import metrics
from actorsys.actors.base import ActorsysActor
from actorsys.batching import Batch
from actorsys.consumer_pool import PartitionBatches
from actorsys.logs import RateLimitedLog
from actorsys.messages import (
    BatchAck,
    BatchHeld,
    BatchNotification,
    ConsumerStart,
    FlushPartitions,
    HandoutTaken,
    JobManagerMoved,
    OffsetsHandout,
    PartitionAssigned,
    PartitionProgress,
    PartitionRevoked,
)
from actorsys.offsets import OffsetInterval, PartitionKey
from actorsys.roles import Role
from actorsys.testhooks import ChaosHooks
from actorsys.timers import BatchTick

log = logging.getLogger("actorsys.consumer")

TICK_S = 0.1
# With no open batch and none unACKed a tick has nothing to do: a quiet Consumer
# ticks this slowly (new offsets start the fast ticks again at once).
IDLE_TICK_S = 1.0


class Consumer(ActorsysActor):
    ROLE = Role.CONSUMER
    PARENT = "its KafkaConsumerActor"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._start: ConsumerStart | None = None
        self._job_manager: Any = None
        self._partitions: PartitionBatches | None = None
        # Messages that overtook the ConsumerStart sent ahead of them.
        self._early: list[tuple[Any, Any]] = []
        self._ack_timers: dict[PartitionKey, metrics.AckTimer] = {}
        self._chaos = ChaosHooks.from_environment()
        self._retransmit_log = RateLimitedLog(log)
        self._tick_chain = 0  # the current chain of ticks (see BatchTick)
        self._ticking_fast = True

    # --- wiring -----------------------------------------------------------------------

    def receiveMsg_ConsumerStart(self, msg: ConsumerStart, sender: Any) -> None:
        batching = msg.config.batching
        self._start = msg
        self._job_manager = msg.job_manager
        self._partitions = PartitionBatches(
            batching.max_records,
            batching.linger_ms / 1000,
            batching.ack_timeout_ms / 1000,
            batching.max_ack_timeout_ms / 1000,
        )
        self._start_ticks(fast=True)
        early, self._early = self._early, []
        for message, early_sender in early:
            self.receiveMessage(message, early_sender)

    def _started(self, msg: Any, sender: Any) -> PartitionBatches | None:
        if self._partitions is None:
            self._early.append((msg, sender))
        return self._partitions

    def receiveMsg_PartitionAssigned(self, msg: PartitionAssigned, sender: Any) -> None:
        if (partitions := self._started(msg, sender)) is None:
            return
        key = (msg.topic, msg.partition)
        now = time.monotonic()
        self._ack_timers[key] = metrics.AckTimer(msg.topic)
        self._send(partitions.assign(key, msg.generation, now), now)
        self._hurry()

    def receiveMsg_PartitionRevoked(self, msg: PartitionRevoked, sender: Any) -> None:
        if (partitions := self._started(msg, sender)) is None:
            return
        key = (msg.topic, msg.partition)
        if partitions.revoke(key, msg.generation):
            self._ack_timers.pop(key, None)

    def receiveMsg_JobManagerMoved(self, msg: JobManagerMoved, sender: Any) -> None:
        self._job_manager = msg.job_manager
        if self._partitions is not None:
            # The new JobManager never saw our unACKed batches' ACKs: resend them now.
            self._resend(self._partitions.retransmits(time.monotonic(), everything=True))
            self._hurry()

    # --- data ---------------------------------------------------------------------------

    def receiveMsg_OffsetsHandout(self, msg: OffsetsHandout, sender: Any) -> None:
        if (partitions := self._started(msg, sender)) is None:
            return
        now = time.monotonic()
        for offsets in msg.intervals:
            self._send(partitions.offsets(offsets, now), now)
        # Confirmed once batched: the KafkaConsumerActor sends the next (HandoutWindow).
        self.send(sender, HandoutTaken(msg.seq))
        self._hurry()

    def receiveMsg_FlushPartitions(self, msg: FlushPartitions, sender: Any) -> None:
        if self._partitions is None:
            return
        self._send(self._partitions.flush(time.monotonic()), time.monotonic())
        for key in self._partitions.assigned():
            self._report_progress(key)

    def receiveMsg_BatchAck(self, msg: BatchAck, sender: Any) -> None:
        if self._partitions is None or self._chaos.drop_ack():
            return
        interval = msg.interval
        key = interval.key
        if self._partitions.ack(key, interval.start, interval.end):
            if (timer := self._ack_timers.get(key)) is not None:
                timer.acked(interval.start, interval.end, time.monotonic())
            self._report_progress(key)

    def receiveMsg_BatchHeld(self, msg: BatchHeld, sender: Any) -> None:
        if self._partitions is not None:
            interval = msg.interval
            self._partitions.held(interval.key, interval.start, interval.end, time.monotonic())

    def receiveMsg_WakeupMessage(self, msg: WakeupMessage, sender: Any) -> None:
        if self._partitions is None:
            return
        if not isinstance(msg.payload, BatchTick) or msg.payload.chain != self._tick_chain:
            return  # a chain another one replaced: it ends here
        if self.exit_if_orphaned():
            return
        now = time.monotonic()
        self._send(self._partitions.due(now), now)
        self._resend(self._partitions.retransmits(now))
        metrics.process_memory(self.ROLE)
        self._ticking_fast = not self._partitions.idle
        self._next_tick()

    def _start_ticks(self, fast: bool) -> None:
        self._tick_chain += 1
        self._ticking_fast = fast
        self._next_tick()

    def _next_tick(self) -> None:
        delay = TICK_S if self._ticking_fast else IDLE_TICK_S
        self.wakeupAfter(timedelta(seconds=delay), payload=BatchTick(self._tick_chain))

    def _hurry(self) -> None:
        """A batch opened or went out while the ticks were slow: fast ticks now,
        so it lingers no longer than ``linger_ms`` (the slow chain ends)."""
        if not self._ticking_fast and self._partitions is not None and not self._partitions.idle:
            self._start_ticks(fast=True)

    # --- helpers ------------------------------------------------------------------------

    def _notification(self, key: PartitionKey, batch: Batch) -> BatchNotification:
        assert self._start is not None
        return BatchNotification(
            consumer_group=self._start.config.kafka.group_id,
            interval=OffsetInterval(key[0], key[1], batch.start, batch.end),
            record_count=batch.record_count,
            starts_assignment=batch.starts_assignment,
        )

    def _send(self, batches: list[tuple[PartitionKey, Batch]], now: float) -> None:
        for key, batch in batches:
            notification = self._notification(key, batch)
            self.send(self._job_manager, notification)
            metrics.batch_sent(key[0], key[1])
            if (timer := self._ack_timers.get(key)) is not None:
                timer.sent(batch.start, batch.end, now)
            if self._chaos.duplicate_batch():
                self.send(self._job_manager, notification)

    def _resend(self, due: list[tuple[PartitionKey, Batch]]) -> None:
        by_partition: dict[PartitionKey, int] = {}
        for key, batch in due:
            self.send(self._job_manager, self._notification(key, batch))
            by_partition[key] = by_partition.get(key, 0) + 1
        for (topic, partition), count in by_partition.items():
            metrics.batches_retransmitted(topic, partition, count)
        if due:
            self._retransmit_log.log(
                logging.INFO,
                "retransmit",
                "retransmitted %d unACKed batch(es) of %s",
                len(due),
                ", ".join(f"{t}[{p}]" for t, p in sorted(by_partition)),
            )

    def _report_progress(self, key: PartitionKey) -> None:
        assert self._start is not None and self._partitions is not None
        progress = self._partitions.progress(key)
        if progress is None:
            return
        self.send(
            self._start.kafka_consumer,
            PartitionProgress(
                topic=progress.topic,
                partition=progress.partition,
                committable=progress.committable,
                released_records=progress.released_records,
                unacked_batches=progress.unacked_batches,
                generation=progress.generation,
            ),
        )
