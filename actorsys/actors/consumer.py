"""Consumer: one per assigned partition.

Cuts the partition's records into batches (count, bytes, linger), sends each
to the JobManager as a ``BatchNotification``, keeps it until ACKed and
retransmits with backoff. After every ACK it tells the KafkaConsumerActor
the committable offset: the end of the contiguous ACKed prefix, never beyond.
"""

from __future__ import annotations

import logging
import time
from datetime import timedelta
from typing import Any

from thespian.actors import ActorExitRequest, ActorTypeDispatcher, WakeupMessage

from actorsys import metrics
from actorsys.actors.lifeline import ParentWatch
from actorsys.batching import AckTracker, Batch, PartitionBatcher
from actorsys.logs import RateLimitedLog
from actorsys.messages import (
    BatchAck,
    BatchHeld,
    BatchNotification,
    ConsumerStart,
    FlushPartition,
    JobManagerMoved,
    PartitionProgress,
    RecordChunk,
)
from actorsys.testhooks import ChaosHooks

log = logging.getLogger("actorsys.consumer")

TICK_S = 0.1


class Consumer(ActorTypeDispatcher):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._start: ConsumerStart | None = None
        self._job_manager: Any = None
        self._batcher: PartitionBatcher | None = None
        self._acks: AckTracker | None = None
        self._chaos = ChaosHooks.from_environment()
        self._early: list[RecordChunk] = []
        self._parent = ParentWatch()
        self._retransmit_log = RateLimitedLog(log)

    # --- wiring -----------------------------------------------------------------------

    def receiveMsg_ConsumerStart(self, msg: ConsumerStart, sender: Any) -> None:
        batching = msg.config.batching
        self._start = msg
        self._job_manager = msg.job_manager
        self._batcher = PartitionBatcher(
            batching.max_records, batching.max_bytes, batching.linger_ms / 1000
        )
        early, self._early = self._early, []
        self._acks = AckTracker(batching.ack_timeout_ms / 1000, batching.max_ack_timeout_ms / 1000)
        self._ack_timer = metrics.AckTimer(msg.topic)
        self.wakeupAfter(timedelta(seconds=TICK_S))
        now = time.monotonic()
        for chunk in sorted(early, key=lambda c: c.start):
            for batch in self._batcher.add(chunk, now):
                self._send(batch, now)

    def receiveMsg_JobManagerMoved(self, msg: JobManagerMoved, sender: Any) -> None:
        self._job_manager = msg.job_manager
        # The new JobManager never saw our unACKed batches' ACKs: resend them now.
        self._retransmit(time.monotonic(), everything=True)

    # --- data ---------------------------------------------------------------------------

    def receiveMsg_RecordChunk(self, msg: RecordChunk, sender: Any) -> None:
        if self._batcher is None:
            # Thespian may deliver a chunk before the ConsumerStart sent ahead of
            # it: keep it (dropping it would leave its records in flight forever).
            self._early.append(msg)
            return
        now = time.monotonic()
        for batch in self._batcher.add(msg, now):
            self._send(batch, now)

    def receiveMsg_FlushPartition(self, msg: FlushPartition, sender: Any) -> None:
        if self._batcher is not None and (batch := self._batcher.flush()) is not None:
            self._send(batch, time.monotonic())
        self._report_progress()

    def receiveMsg_BatchAck(self, msg: BatchAck, sender: Any) -> None:
        if self._acks is None or self._chaos.drop_ack():
            return
        if self._acks.ack(msg.start, msg.end):
            self._ack_timer.acked(msg.start, msg.end, time.monotonic())
            self._report_progress()

    def receiveMsg_BatchHeld(self, msg: BatchHeld, sender: Any) -> None:
        if self._acks is not None:
            self._acks.postpone(msg.start, msg.end, time.monotonic())

    def receiveMsg_WakeupMessage(self, msg: WakeupMessage, sender: Any) -> None:
        if self._batcher is None:
            return
        if self._parent.orphaned():
            log.warning("the KafkaConsumerActor of this partition is gone; exiting")
            self.send(self.myAddress, ActorExitRequest())
            return
        now = time.monotonic()
        if (batch := self._batcher.due(now)) is not None:
            self._send(batch, now)
        self._retransmit(now)
        metrics.process_memory("consumer")
        self.wakeupAfter(timedelta(seconds=TICK_S))

    def receiveUnrecognizedMessage(self, msg: Any, sender: Any) -> None:
        log.debug("consumer ignores %s", type(msg).__name__)

    # --- helpers ------------------------------------------------------------------------

    def _notification(self, batch: Batch) -> BatchNotification:
        assert self._start is not None
        return BatchNotification(
            consumer_group=self._start.config.kafka.group_id,
            topic=self._start.topic,
            partition=self._start.partition,
            start=batch.start,
            end=batch.end,
            record_count=batch.record_count,
            payload=batch.payload,
            starts_assignment=batch.starts_assignment,
        )

    def _send(self, batch: Batch, now: float) -> None:
        assert self._acks is not None
        self._acks.track(batch, now)
        notification = self._notification(batch)
        self.send(self._job_manager, notification)
        metrics.batch_sent(notification.topic, notification.partition)
        self._ack_timer.sent(batch.start, batch.end, now)
        if self._chaos.duplicate_batch():
            self.send(self._job_manager, notification)

    def _retransmit(self, now: float, everything: bool = False) -> None:
        assert self._acks is not None
        due = self._acks.resend_all(now) if everything else self._acks.due_retransmits(now)
        for batch in due:
            self.send(self._job_manager, self._notification(batch))
        if due and self._start is not None:
            metrics.batches_retransmitted(self._start.topic, self._start.partition, len(due))
        if due:
            self._retransmit_log.log(
                logging.INFO,
                "retransmit",
                "partition %s[%d]: retransmitted %d unACKed batch(es)",
                self._start.topic if self._start else "?",
                self._start.partition if self._start else -1,
                len(due),
            )

    def _report_progress(self) -> None:
        assert self._start is not None and self._acks is not None
        self.send(
            self._start.kafka_consumer,
            PartitionProgress(
                topic=self._start.topic,
                partition=self._start.partition,
                committable=self._acks.committable,
                released_records=self._acks.released_records,
                released_bytes=self._acks.released_bytes,
                unacked_batches=len(self._acks),
            ),
        )
