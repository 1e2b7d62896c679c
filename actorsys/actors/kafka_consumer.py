"""KafkaConsumerActor: owns this process's one ``confluent_kafka.Consumer``.

Polls in short ``consume(n, timeout)`` calls on ``wakeupAfter`` ticks (never
blocking the actor's transport), packs each partition's records into one
msgpack chunk per poll, and feeds the Consumer serving the partition: one of a
pool of ``batching.consumers`` actors, created at start, whatever the
assignment (partitions are placed on and revoked from them, each assignment
with a generation of its own). It pauses partitions
with too much unACKed work (back-pressure without leaving the group), and is
the only place that commits offsets — only what Consumers report as ACKed.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import msgpack
from confluent_kafka import OFFSET_BEGINNING, OFFSET_END, Consumer, KafkaError, KafkaException
from confluent_kafka import TopicPartition as KafkaTopicPartition
from thespian.actors import ActorExitRequest, ActorTypeDispatcher, ChildActorExited, WakeupMessage

from actorsys import metrics
from actorsys.actors.consumer import Consumer as ConsumerActor
from actorsys.actors.lifeline import ParentWatch
from actorsys.config import AppConfig
from actorsys.consumer_pool import PoolPlacement
from actorsys.convention import capability_check
from actorsys.flow import FlowControl, TopicPartition
from actorsys.kafka_clients import consumer_properties
from actorsys.lag import ClientStats, TimeLag
from actorsys.logs import KafkaClientLog, RateLimitedLog
from actorsys.messages import (
    ComponentReady,
    ComponentStatus,
    ConsumerStart,
    ConsumingStopped,
    FlushPartitions,
    JobManagerMoved,
    KafkaConsumerStart,
    LeaderLease,
    PartitionAssigned,
    PartitionProgress,
    PartitionRevoked,
    RecordChunk,
    StartFailed,
    StopConsuming,
)
from actorsys.records import encode_record

log = logging.getLogger("actorsys.kafka_consumer")

POLL = "poll"
HOUSEKEEPING = "housekeeping"
HOUSEKEEPING_S = 0.5
# While a subscribed topic does not exist, ask for metadata this often (librdkafka
# itself refreshes every 5 minutes), so consumption starts soon after it appears.
MISSING_TOPIC_CHECK_S = 2.0
# Once every topic exists, check this often (a topic may be deleted).
TOPIC_CHECK_S = 30.0


@dataclass
class _Partition:
    consumer: Any  # the pool member (Consumer actor) serving the partition
    generation: int  # of this assignment (see PartitionAssigned)
    position: int | None = None  # next offset expected; None: just assigned
    committable: int | None = None  # end of the ACKed prefix, per its Consumer
    committed: int | None = None  # last offset we committed
    unacked_batches: int = 0


@dataclass
class _Drain:
    deadline: float
    reply_to: Any
    flushed_at: float = field(default_factory=time.monotonic)


class KafkaConsumerActor(ActorTypeDispatcher):
    @staticmethod
    def actorSystemCapabilityCheck(
        capabilities: dict[str, Any], requirements: dict[str, Any]
    ) -> bool:
        return capability_check(capabilities, requirements)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._config: AppConfig | None = None
        self._consumer: Consumer | None = None
        self._job_manager: Any = None
        self._supervisor: Any = None
        self._partitions: dict[TopicPartition, _Partition] = {}
        self._pool: PoolPlacement[Any] | None = None
        self._flow: FlowControl | None = None
        self._packer = msgpack.Packer(use_bin_type=True)
        self._drain: _Drain | None = None
        self._closed = False
        self._errors = RateLimitedLog(log)
        self._records_consumed = 0
        self._time_lag = TimeLag()  # for actorsys_consumer_lag_seconds
        self._client_stats = ClientStats()  # brokers up, committed offsets
        self._rebalances = 0
        self._parent = ParentWatch()
        self._lease_until: float | None = None
        self._role = "kafka_consumer"
        self._missing_topics: tuple[str, ...] = ()
        self._topics_checked_at = -float("inf")
        self._waiting_log = RateLimitedLog(log, 30.0)

    # --- start-up -------------------------------------------------------------------------

    def receiveMsg_KafkaConsumerStart(self, msg: KafkaConsumerStart, sender: Any) -> None:
        self._config = msg.config
        self._job_manager = msg.job_manager
        self._supervisor = sender
        self._flow = FlowControl(msg.config.flow)
        props: dict[str, Any] = dict(consumer_properties(msg.config, msg.bootstrap_servers))
        props["error_cb"] = self._on_error
        props["on_commit"] = self._on_commit
        props["logger"] = KafkaClientLog()
        # Statistics tell readiness whether a broker is connected (unless configured).
        props["stats_cb"] = self._client_stats.update
        if "statistics.interval.ms" not in msg.config.kafka.properties:
            props["statistics.interval.ms"] = "5000"
        try:
            self._consumer = Consumer(props)
            self._consumer.subscribe(
                list(msg.config.kafka.topics),
                on_assign=self._on_assign,
                on_revoke=self._on_revoke,
                on_lost=self._on_lost,
            )
        except (KafkaException, ValueError, TypeError) as exc:
            self.send(sender, StartFailed(msg.role, f"cannot create the Kafka consumer: {exc}"))
            return
        self._role = msg.role
        self._pool = PoolPlacement(
            [self._create_consumer() for _ in range(msg.config.batching.consumers)]
        )
        self.send(sender, ComponentReady(msg.role))
        self.wakeupAfter(timedelta(0), payload=POLL)
        self.wakeupAfter(timedelta(seconds=HOUSEKEEPING_S), payload=HOUSEKEEPING)

    def receiveMsg_JobManagerMoved(self, msg: JobManagerMoved, sender: Any) -> None:
        self._job_manager = msg.job_manager
        for member in self._pool.members if self._pool is not None else ():
            self.send(member, msg)

    # --- the poll loop ----------------------------------------------------------------------

    def receiveMsg_WakeupMessage(self, msg: WakeupMessage, sender: Any) -> None:
        if self._consumer is None or self._closed:
            return
        if msg.payload == POLL:
            got = self._poll()
            # Poll again at once while the consumer has data; idle on a short tick.
            delay = 0.0 if got else self._config.flow.poll_interval_ms / 1000  # type: ignore[union-attr]
            self.wakeupAfter(timedelta(seconds=delay), payload=POLL)
        elif msg.payload == HOUSEKEEPING:
            lease_lapsed = self._lease_until is not None and time.monotonic() > self._lease_until
            if self._parent.orphaned() or lease_lapsed:
                log.warning("the Supervisor is gone; closing the Kafka consumer and exiting")
                self._close()
                self.send(self.myAddress, ActorExitRequest())
                return
            self._commit(asynchronous=True)
            self._check_topics()
            self._check_drain()
            self._push_status()
            if not self._closed:
                self.wakeupAfter(timedelta(seconds=HOUSEKEEPING_S), payload=HOUSEKEEPING)

    def _check_topics(self) -> None:
        """Find subscribed topics that do not exist. Asking for metadata also
        refreshes librdkafka's view, so a topic created later is picked up in
        seconds rather than at its 5-minute metadata refresh."""
        assert self._consumer is not None and self._config is not None
        now = time.monotonic()
        every = (
            MISSING_TOPIC_CHECK_S if self._missing_topics or not self._partitions else TOPIC_CHECK_S
        )
        if now - self._topics_checked_at < every:
            return
        self._topics_checked_at = now
        try:
            metadata = self._consumer.list_topics(timeout=0.5)
        except KafkaException as exc:
            self._errors.log(logging.WARNING, "metadata", "cannot read topic metadata: %s", exc)
            return
        missing = tuple(
            topic
            for topic in self._config.kafka.topics
            if (found := metadata.topics.get(topic)) is None
            or found.error is not None
            or not found.partitions
        )
        if missing:
            self._waiting_log.log(
                logging.WARNING,
                "missing",
                "waiting for topic %s to exist (checking every %.0fs)",
                ", ".join(missing),
                MISSING_TOPIC_CHECK_S,
            )
        elif self._missing_topics:
            log.info("topic %s exists now", ", ".join(self._missing_topics))
        self._missing_topics = missing

    def _poll(self) -> int:
        assert self._consumer is not None and self._config is not None and self._flow is not None
        try:
            messages = self._consumer.consume(self._config.flow.poll_max_records, timeout=0.005)
        except KafkaException as exc:
            self._errors.log(logging.WARNING, "consume", "consume failed: %s", exc)
            return 0
        if not messages:
            return 0
        packer = self._packer
        # Per partition: packed records, and the offset of the first and last one.
        # Per partition: the packed records and their offsets, in order.
        parts_by_tp: dict[TopicPartition, list[bytes]] = {}
        offsets_by_tp: dict[TopicPartition, list[int]] = {}
        for m in messages:
            if m.error() is not None:
                self._on_message_error(m)
                continue
            tp = (m.topic(), m.partition())
            offset = m.offset()
            ts_type, ts = m.timestamp()
            packed = encode_record(offset, ts if ts_type else None, m.key(), m.value(), packer)
            parts = parts_by_tp.get(tp)
            if parts is None:
                parts_by_tp[tp] = [packed]
                offsets_by_tp[tp] = [offset]
            else:
                parts.append(packed)
                offsets_by_tp[tp].append(offset)
        for tp, parts in parts_by_tp.items():
            self._forward(tp, parts, offsets_by_tp[tp])
        self._records_consumed += len(messages)
        self._apply_flow()
        return len(messages)

    def _forward(self, tp: TopicPartition, parts: list[bytes], offsets: list[int]) -> None:
        part = self._partitions.get(tp)
        if part is None:
            # Records of a partition revoked in this very poll: drop them, never
            # deliver late (the new owner reads them; the offset chain dedupes).
            return
        # Chunks of at most one batch, so the Consumer can keep max_records exact.
        step = self._config.batching.max_records  # type: ignore[union-attr]
        for i in range(0, len(parts), step):
            chunk_offsets = offsets[i : i + step]
            self._send_chunk(tp, part, parts[i : i + step], chunk_offsets[0], chunk_offsets[-1])

    def _send_chunk(
        self, tp: TopicPartition, part: _Partition, parts: list[bytes], first: int, last: int
    ) -> None:
        starts_assignment = part.position is None or first < part.position
        start = first if starts_assignment else part.position
        payload = b"".join(parts)
        self.send(
            part.consumer,
            RecordChunk(
                tp[0],
                tp[1],
                start,
                last + 1,
                len(parts),
                payload,
                starts_assignment,
                part.generation,
            ),
        )
        part.position = last + 1
        self._flow.sent(tp, len(parts), len(payload))  # type: ignore[union-attr]
        metrics.records_consumed(tp[0], tp[1], len(parts), len(payload))
        self._time_lag.consumed(tp, last + 1, parts[0])

    def _apply_flow(self) -> None:
        assert self._consumer is not None and self._flow is not None
        to_pause, to_resume = self._flow.rebalance_pauses()
        try:
            if to_pause:
                self._consumer.pause([KafkaTopicPartition(t, p) for t, p in to_pause])
            if to_resume and self._drain is None:
                self._consumer.resume([KafkaTopicPartition(t, p) for t, p in to_resume])
        except KafkaException as exc:
            self._errors.log(logging.WARNING, "pause", "pause/resume failed: %s", exc)

    # --- progress and commits ---------------------------------------------------------------

    def receiveMsg_PartitionProgress(self, msg: PartitionProgress, sender: Any) -> None:
        tp = (msg.topic, msg.partition)
        part = self._partitions.get(tp)
        if part is None or part.generation != msg.generation:
            return  # about an earlier assignment of the partition
        if msg.committable is not None:
            part.committable = max(part.committable or 0, msg.committable)
        part.unacked_batches = msg.unacked_batches
        self._flow.released(tp, msg.released_records, msg.released_bytes)  # type: ignore[union-attr]
        if self._consumer is not None and not self._closed:
            self._apply_flow()
        self._check_drain()

    def _commit(self, asynchronous: bool, only: set[TopicPartition] | None = None) -> None:
        """Commit each assigned partition's ACKed prefix, if it moved."""
        if self._consumer is None or self._closed:
            return
        offsets = [
            KafkaTopicPartition(tp[0], tp[1], part.committable)
            for tp, part in self._partitions.items()
            if (only is None or tp in only)
            and part.committable is not None
            and (part.committed is None or part.committable > part.committed)
        ]
        if not offsets:
            return
        try:
            self._consumer.commit(offsets=offsets, asynchronous=asynchronous)
        except KafkaException as exc:
            metrics.commit_failed()
            self._errors.log(logging.WARNING, "commit", "commit failed (retried): %s", exc)
            return
        if not asynchronous:  # librdkafka calls on_commit for asynchronous commits only
            metrics.commit_succeeded()
        for tp in offsets:
            self._partitions[(tp.topic, tp.partition)].committed = tp.offset

    def _on_commit(self, err: KafkaError | None, partitions: list[KafkaTopicPartition]) -> None:
        if err is None:
            metrics.commit_succeeded()
        else:
            metrics.commit_failed()
            # Forget what we thought was committed so the next round retries it.
            for tp in partitions:
                part = self._partitions.get((tp.topic, tp.partition))
                if part is not None:
                    part.committed = None
            self._errors.log(logging.WARNING, "commit", "async commit failed: %s", err)

    # --- rebalancing ----------------------------------------------------------------------

    def _on_assign(self, consumer: Consumer, partitions: list[KafkaTopicPartition]) -> None:
        assert self._config is not None and self._flow is not None
        self._rebalances += 1
        metrics.rebalance("assign")
        for tp in partitions:
            key = (tp.topic, tp.partition)
            if key in self._partitions:
                continue
            self._partitions[key] = self._place(key)
            self._flow.assign(key)
            metrics.partition_assigned(*key)
        log.info("assigned %s", _names(partitions))
        # Apply the assignment ourselves so that we can resume right after:
        # librdkafka keeps a partition's paused state across rebalances.
        if self._config.kafka.partition_assignment_strategy == "cooperative-sticky":
            consumer.incremental_assign(partitions)
        else:
            consumer.assign(partitions)
        consumer.resume(partitions)

    def _on_revoke(self, consumer: Consumer, partitions: list[KafkaTopicPartition]) -> None:
        self._rebalances += 1
        metrics.rebalance("revoke")
        keys = {(tp.topic, tp.partition) for tp in partitions}
        # Commit what is ACKed for the revoked partitions while we still own them.
        self._commit(asynchronous=False, only=keys)
        self._retire(keys)
        log.info("revoked %s", _names(partitions))

    def _on_lost(self, consumer: Consumer, partitions: list[KafkaTopicPartition]) -> None:
        # Lost, not revoked: another member may own them already; do not commit.
        self._rebalances += 1
        metrics.rebalance("lost")
        self._retire({(tp.topic, tp.partition) for tp in partitions})
        log.warning("lost %s (not committed: another member owns them)", _names(partitions))

    def _retire(self, keys: set[TopicPartition]) -> None:
        for key in keys:
            part = self._partitions.pop(key, None)
            if part is not None and self._pool is not None:
                self._pool.remove(key)
                self.send(part.consumer, PartitionRevoked(key[0], key[1], part.generation))
            self._flow.revoke(key)  # type: ignore[union-attr]
            self._time_lag.forget(key)
            metrics.partition_removed(*key)

    def _create_consumer(self) -> Any:
        """A new member of the pool of Consumer actors."""
        address = self.createActor(ConsumerActor)
        self.send(address, ConsumerStart(self._config, self._job_manager, self.myAddress))  # type: ignore[arg-type]
        return address

    def _place(self, key: TopicPartition) -> _Partition:
        """Give ``key`` to a member of the pool, as a new assignment."""
        assert self._pool is not None
        member, generation = self._pool.place(key)
        self.send(member, PartitionAssigned(key[0], key[1], generation))
        return _Partition(consumer=member, generation=generation)

    def receiveMsg_ChildActorExited(self, msg: ChildActorExited, sender: Any) -> None:
        if self._pool is None or self._closed or msg.childAddress not in self._pool.members:
            return
        replacement = self._create_consumer()
        orphans = self._pool.replace(msg.childAddress, replacement)
        if orphans:
            log.warning("a consumer of %d partition(s) exited; they are read again from "
                        "their ACKed prefix", len(orphans))  # fmt: skip
        for key in orphans:
            if (part := self._partitions.get(key)) is not None:
                self._restart_partition(key, part)

    def _restart_partition(self, key: TopicPartition, part: _Partition) -> None:
        """Its Consumer died with its unACKed batches: re-read from the ACKed prefix."""
        assert self._consumer is not None and self._flow is not None
        restart_at = part.committable
        if restart_at is None:
            committed = self._consumer.committed([KafkaTopicPartition(*key)], timeout=10)[0].offset
            restart_at = (
                committed
                if committed >= 0
                else (
                    OFFSET_BEGINNING
                    if self._config.kafka.auto_offset_reset == "earliest"  # type: ignore[union-attr]
                    else OFFSET_END
                )
            )
        log.warning("re-reading %s[%d] from %s", key[0], key[1], restart_at)
        placed = self._place(key)
        part.consumer, part.generation = placed.consumer, placed.generation
        part.position = None
        self._flow.reset(key)
        self._time_lag.forget(key)
        try:
            self._consumer.seek(KafkaTopicPartition(key[0], key[1], restart_at))
        except KafkaException as exc:
            log.error("seek %s[%d] to %s failed: %s", key[0], key[1], restart_at, exc)

    # --- errors ------------------------------------------------------------------------------

    def _on_error(self, err: KafkaError) -> None:
        metrics.kafka_error(err.name())
        if err.code() == KafkaError._ALL_BROKERS_DOWN:
            self._client_stats.all_brokers_down()
        self._errors.log(logging.WARNING, f"kafka:{err.code()}", "kafka: %s", err)

    def _on_message_error(self, m: Any) -> None:
        err = m.error()
        if err.code() == KafkaError._PARTITION_EOF:
            return
        if err.code() == KafkaError._AUTO_OFFSET_RESET:
            # The position fell out of the log (retention deleted it): librdkafka
            # applies auto.offset.reset. Never let the next batch silently cover
            # the skipped range: restart the partition's chain as after an
            # assignment, so the JobManager records the exact gap.
            part = self._partitions.get((m.topic(), m.partition()))
            if part is not None:
                part.position = None
            log.error(
                "%s[%s]: offset out of range, reset by auto.offset.reset=%s: %s",
                m.topic(),
                m.partition(),
                self._config.kafka.auto_offset_reset if self._config else "?",
                err,
            )
            return
        self._errors.log(
            logging.WARNING,
            f"msg:{err.code()}",
            "kafka message error on %s[%s]: %s",
            m.topic(),
            m.partition(),
            err,
        )

    # --- draining ----------------------------------------------------------------------------

    def receiveMsg_StopConsuming(self, msg: StopConsuming, sender: Any) -> None:
        self._drain = _Drain(deadline=time.monotonic() + msg.deadline_s, reply_to=sender)
        if self._consumer is not None and self._partitions:
            # Keep servicing the group (no max.poll.interval trip) but fetch nothing more.
            self._consumer.pause([KafkaTopicPartition(t, p) for t, p in self._partitions])
        for member in self._pool.members if self._pool is not None else ():
            self.send(member, FlushPartitions())
        self._check_drain()

    def _check_drain(self) -> None:
        drain = self._drain
        if drain is None or self._closed:
            return
        done = (
            self._flow is not None
            and self._flow.drained()
            and all(p.unacked_batches == 0 for p in self._partitions.values())
        )
        if not done and time.monotonic() < drain.deadline:
            return
        self._commit(asynchronous=False)
        committed = tuple(
            (t, p, part.committed)
            for (t, p), part in self._partitions.items()
            if part.committed is not None
        )
        self._close()
        self.send(drain.reply_to, ConsumingStopped(committed=committed, clean=done))

    def _close(self) -> None:
        if self._consumer is not None and not self._closed:
            self._closed = True
            try:
                self._consumer.close()
            except (KafkaException, RuntimeError) as exc:
                log.warning("closing the Kafka consumer: %s", exc)

    def receiveMsg_ActorExitRequest(self, msg: ActorExitRequest, sender: Any) -> None:
        self._close()

    # --- inspection --------------------------------------------------------------------------

    def _push_status(self) -> None:
        if self._supervisor is None or self._consumer is None:
            return
        partitions = []
        for (topic, partition), part in sorted(self._partitions.items()):
            try:
                _low, high = self._consumer.get_watermark_offsets(
                    KafkaTopicPartition(topic, partition), cached=True
                )
            except KafkaException:
                high = -1
            records, nbytes = self._flow.inflight((topic, partition))  # type: ignore[union-attr]
            # Before its first commit here, a partition's committed offset is the group's.
            committed = part.committed
            if committed is None:
                committed = self._client_stats.committed.get((topic, partition))
            known_high = high if high >= 0 else None
            metrics.partition_state(
                topic,
                partition,
                committed=committed,
                high_watermark=known_high,
                inflight_records=records,
                inflight_bytes=nbytes,
                paused=(topic, partition) in self._flow.paused,  # type: ignore[union-attr]
                seconds_behind=self._time_lag.seconds_behind(
                    (topic, partition), committed, known_high, time.time()
                ),
            )
            partitions.append(
                {
                    "topic": topic,
                    "partition": partition,
                    "position": part.position,
                    "committed": part.committed,
                    "high_watermark": high if high >= 0 else None,
                    "lag": (high - (part.committed or 0)) if high >= 0 else None,
                    "inflight_records": records,
                    "inflight_bytes": nbytes,
                    "paused": (topic, partition) in self._flow.paused,  # type: ignore[union-attr]
                }
            )
        metrics.consumer_state(len(self._partitions), self._client_stats.brokers_up)
        metrics.process_memory("kafka_consumer")
        self.send(
            self._supervisor,
            ComponentStatus(
                self._role,
                {
                    "partitions": partitions,
                    "broker_ok": self._client_stats.broker_ok,
                    "missing_topics": list(self._missing_topics),
                    "records_consumed": self._records_consumed,
                    "rebalances": self._rebalances,
                    "draining": self._drain is not None,
                },
            ),
        )

    def receiveMsg_LeaderLease(self, msg: LeaderLease, sender: Any) -> None:
        # Placed on a member by the leader: leave the group if the leader goes silent,
        # rather than holding partitions nobody can ACK.
        self._lease_until = time.monotonic() + msg.valid_s

    def receiveUnrecognizedMessage(self, msg: Any, sender: Any) -> None:
        log.debug("kafka consumer ignores %s", type(msg).__name__)


def _names(partitions: list[KafkaTopicPartition]) -> str:
    return ", ".join(f"{tp.topic}[{tp.partition}]" for tp in partitions) or "nothing"
