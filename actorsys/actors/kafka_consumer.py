"""KafkaConsumerActor: owns this process's one ``confluent_kafka.Consumer``.

It carries control, never data. The group consumer is a member of the
consumer group (assignment, rebalancing, commits) whose partitions stay
paused: it fetches no record. On short ``wakeupAfter`` ticks (never blocking
the actor's transport) it learns where each assigned partition's log ends
(:class:`actorsys.log_ends.LogEnds`: end-offset queries, and a probe that
reads a quiet partition's tail to its end) and hands the new offsets, as intervals of at most
``batching.max_records``, to the Consumer serving the partition: one of a
pool of ``batching.consumers`` actors, created at start, whatever the
assignment (partitions are placed on and revoked from them, each assignment
with a generation of its own). The Consumers cut the intervals into jobs;
workers read each job's records from Kafka themselves.

Back-pressure: a partition with too many offsets handed out and not yet
ACKed as stored jobs gets no more (nothing is buffered: no record was read).
It is the only place that commits offsets — only what Consumers report as ACKed.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from confluent_kafka import OFFSET_END, Consumer, IsolationLevel, KafkaError, KafkaException
from confluent_kafka import TopicPartition as KafkaTopicPartition
from confluent_kafka.admin import (  # type: ignore[attr-defined]  # re-exported, not in __all__
    AdminClient,
    ConfigResource,
    OffsetSpec,
    ResourceType,
)
from thespian.actors import ActorExitRequest, ChildActorExited, WakeupMessage

from actorsys import metrics
from actorsys.actors.base import ActorsysActor
from actorsys.actors.consumer import Consumer as ConsumerActor
from actorsys.config import AppConfig, FlowConfig
from actorsys.consumer_pool import HandoutWindow, PoolPlacement
from actorsys.flow import FlowControl
from actorsys.kafka_clients import admin_properties, consumer_properties
from actorsys.lag import ClientStats, TimeLag
from actorsys.log_ends import LogEnds
from actorsys.logs import KafkaClientLog, RateLimitedLog
from actorsys.messages import (
    ComponentReady,
    ConsumerExited,
    ConsumerStart,
    ConsumingStopped,
    FlushPartitions,
    HandoutTaken,
    JobManagerMoved,
    KafkaConsumerStart,
    NewOffsets,
    OffsetsHandout,
    PartitionAssigned,
    PartitionProgress,
    PartitionRevoked,
    StartFailed,
    StopConsuming,
    TopicRetention,
)
from actorsys.offsets import OffsetInterval, PartitionKey
from actorsys.poll_pace import PollPace
from actorsys.roles import Role
from actorsys.status import KafkaConsumerStatus, PartitionStatus
from actorsys.timers import Housekeeping, Poll

log = logging.getLogger("actorsys.kafka_consumer")
_unanswered_log = RateLimitedLog(log)

HOUSEKEEPING_S = 0.5
# While a subscribed topic does not exist, ask for metadata this often (librdkafka
# itself refreshes every 5 minutes), so consumption starts soon after it appears.
MISSING_TOPIC_CHECK_S = 2.0
# Once every topic exists, check this often (a topic may be deleted).
TOPIC_CHECK_S = 30.0
# A partition whose queried log end has not moved for this long is probed
# (see LogEnds); a probe that does not reach the partition's end in
# PROBE_TIMEOUT_S ends, and is made again after the next quiet spell.
PROBE_AFTER_S = 0.3
PROBE_TIMEOUT_S = 2.0
# Topics' retention settings are read at start and this often (changes are picked up).
RETENTION_CHECK_S = 300.0
RETENTION_RETRY_S = 10.0
# An admin request (log ends, retention) unanswered for this long is given up
# and asked again: a broker that froze may never answer it.
ADMIN_QUERY_TIMEOUT_S = 15.0
# Handouts of new offsets a Consumer may have unconfirmed (see HandoutWindow),
# and the intervals one handout carries at most (a backlog goes in several).
HANDOUT_WINDOW = 2
MAX_INTERVALS_PER_HANDOUT = 512
# An unconfirmed handout this old is logged: its Consumer is stuck or gone.
HANDOUT_LATE_S = 10.0
# Records probes may take from librdkafka's queue per tick.
PROBE_CONSUME_MAX = 10_000


@dataclass
class _Partition:
    consumer: Any  # the pool member (Consumer actor) serving the partition
    generation: int  # of this assignment (see PartitionAssigned)
    position: int | None = None  # next offset to hand out; None: not known yet
    fresh: bool = True  # nothing handed out since the assignment (or a restart)
    committable: int | None = None  # end of the ACKed prefix, per its Consumer
    committed: int | None = None  # last offset we committed
    group_committed: int | None = None  # the group's, when the assignment started
    unacked_batches: int = 0


@dataclass
class _Drain:
    deadline: float
    reply_to: Any
    flushed_at: float = field(default_factory=time.monotonic)


class KafkaConsumerActor(ActorsysActor):
    ROLE = Role.KAFKA_CONSUMER

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._config: AppConfig | None = None
        self._consumer: Consumer | None = None
        self._job_manager: Any = None
        self._supervisor: Any = None
        self._partitions: dict[PartitionKey, _Partition] = {}
        self._pool: PoolPlacement[Any] | None = None
        self._handouts = HandoutWindow(HANDOUT_WINDOW)
        self._flow: FlowControl | None = None
        self._admin: AdminClient | None = None
        self._ends = LogEnds(PROBE_AFTER_S, PROBE_TIMEOUT_S)
        self._end_request = _AdminRequest(FlowConfig().end_offsets_interval_ms / 1000)
        defaults = FlowConfig()
        self._pace = PollPace(
            defaults.poll_interval_ms / 1000, defaults.idle_poll_interval_ms / 1000
        )
        self._isolation = IsolationLevel.READ_COMMITTED
        self._retention: dict[str, tuple[int | None, int | None]] = {}  # ms, bytes
        self._retention_request = _AdminRequest(RETENTION_CHECK_S)
        self._drain: _Drain | None = None
        self._closed = False
        self._errors = RateLimitedLog(log)
        self._records_consumed = 0  # offsets handed out
        self._time_lag = TimeLag()  # for actorsys_consumer_lag_seconds
        self._client_stats = ClientStats()  # brokers up, committed offsets
        self._rebalances = 0
        self._role: str = self.ROLE  # its status key: a worker host's has its own
        self._missing_topics: tuple[str, ...] = ()
        self._topics_checked_at = -float("inf")
        self._waiting_log = RateLimitedLog(log, 30.0)
        # No committed offset and auto_offset_reset "error": left alone until revoked.
        self._unconsumable: set[PartitionKey] = set()

    # --- start-up -------------------------------------------------------------------------

    def receiveMsg_KafkaConsumerStart(self, msg: KafkaConsumerStart, sender: Any) -> None:
        self._config = msg.config
        self._job_manager = msg.job_manager
        self._supervisor = sender
        self._flow = FlowControl(msg.config.flow)
        self._end_request = _AdminRequest(msg.config.flow.end_offsets_interval_ms / 1000)
        flow = msg.config.flow
        self._pace = PollPace(flow.poll_interval_ms / 1000, flow.idle_poll_interval_ms / 1000)
        props: dict[str, Any] = dict(consumer_properties(msg.config, msg.bootstrap_servers))
        props["error_cb"] = self._on_error
        props["on_commit"] = self._on_commit
        props["logger"] = KafkaClientLog()
        # Statistics tell readiness whether a broker is connected (unless configured).
        props["stats_cb"] = self._client_stats.update
        # A probe reads until the log's end says so (see LogEnds).
        props["enable.partition.eof"] = "true"
        if "statistics.interval.ms" not in msg.config.kafka.properties:
            props["statistics.interval.ms"] = "5000"
        if props.get("isolation.level") == "read_uncommitted":
            self._isolation = IsolationLevel.READ_UNCOMMITTED
        try:
            admin = admin_properties(msg.config, msg.bootstrap_servers)
            self._admin = AdminClient(admin, logger=KafkaClientLog())
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
        self.wakeupAfter(timedelta(0), payload=Poll())
        self.wakeupAfter(timedelta(seconds=HOUSEKEEPING_S), payload=Housekeeping())

    def receiveMsg_JobManagerMoved(self, msg: JobManagerMoved, sender: Any) -> None:
        self._job_manager = msg.job_manager
        for topic, (ms, nbytes) in self._retention.items():
            self.send(self._job_manager, TopicRetention(topic, ms, nbytes))
        for member in self._pool.members if self._pool is not None else ():
            self.send(member, msg)

    # --- the poll loop ----------------------------------------------------------------------

    def receiveMsg_WakeupMessage(self, msg: WakeupMessage, sender: Any) -> None:
        if self._consumer is None or self._closed:
            return
        if isinstance(msg.payload, Poll):
            moved = self._poll()
            wait_s = self._pace.next_wait(moved, time.monotonic())
            self.wakeupAfter(timedelta(seconds=wait_s), payload=Poll())
        elif isinstance(msg.payload, Housekeeping):
            if self.parent_gone() or self.lease_lapsed():
                log.warning("the Supervisor is gone; closing the Kafka consumer and exiting")
                self._close()
                self.send(self.myAddress, ActorExitRequest())
                return
            self._resolve_positions()
            if (late := self._handouts.oldest_unconfirmed_s(time.monotonic())) > HANDOUT_LATE_S:
                self._waiting_log.log(
                    logging.WARNING,
                    "handout",
                    "a Consumer has not taken its new offsets for %.0fs: its partitions "
                    "wait (it is stuck, or it died and is replaced once that is noticed)",
                    late,
                )
            self._commit(asynchronous=True)
            self._check_topics()
            self._check_retention()
            self._check_drain()
            self._push_status()
            if not self._closed:
                self.wakeupAfter(timedelta(seconds=HOUSEKEEPING_S), payload=Housekeeping())

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

    def _check_retention(self) -> None:
        """Read each topic's retention.ms/retention.bytes (asynchronously) and
        tell the JobManager when they change: it holds pending jobs to them."""
        assert self._admin is not None and self._config is not None
        now = time.monotonic()
        for resource, future in self._retention_request.answers(now).items():
            try:
                entries = future.result()
            except KafkaException as exc:
                self._errors.log(
                    logging.WARNING, "retention", "cannot read %s's retention: %s",
                    resource.name, exc,
                )  # fmt: skip
                self._retention_request.ask_again_in(RETENTION_RETRY_S, now)
                continue
            found = (
                _config_int(entries, "retention.ms"),
                _config_int(entries, "retention.bytes"),
            )
            if self._retention.get(resource.name) != found:
                self._retention[resource.name] = found
                if found[0] is None:
                    log.warning(
                        "the broker does not say how long %s keeps records: the "
                        "retention headroom of pending jobs is not watched", resource.name,
                    )  # fmt: skip
                self.send(self._job_manager, TopicRetention(resource.name, *found))
        topics = [t for t in self._config.kafka.topics if t not in self._missing_topics]
        if not topics or not self._retention_request.due(now):
            return
        try:
            self._retention_request.asked(
                self._admin.describe_configs(
                    [ConfigResource(ResourceType.TOPIC, t) for t in topics], request_timeout=10
                ),
                now,
            )
        except KafkaException as exc:
            self._errors.log(logging.WARNING, "retention", "cannot read retention: %s", exc)

    def _poll(self) -> bool:
        """One tick: learn log ends, take probe answers, hand out new offsets.
        True when anything moved or waits on a quick answer (the poll pace)."""
        assert self._consumer is not None and self._flow is not None
        now = time.monotonic()
        moves = self._ends.moves
        self._query_ends(now)
        try:
            # Serves the group (rebalance callbacks, errors) and brings probe answers.
            messages = self._consumer.consume(PROBE_CONSUME_MAX, timeout=0)
        except KafkaException as exc:
            self._errors.log(logging.WARNING, "consume", "consume failed: %s", exc)
            messages = []
        self._take_probe_answers(messages)
        self._start_probes(now)
        wall = time.time()
        handouts: dict[int, list[NewOffsets]] = {}
        for tp, part in self._partitions.items():
            end = self._ends.end(tp)
            if end is None:
                continue
            self._time_lag.seen(tp, end, wall)
            assert self._pool is not None  # set at start
            member = self._pool.index_of(part.consumer)
            if self._handouts.open(member):
                intervals = handouts.setdefault(member, [])
                budget = MAX_INTERVALS_PER_HANDOUT - len(intervals)
                intervals += self._hand_out(tp, part, end, budget)
        for member, intervals in handouts.items():
            if intervals:
                seq = self._handouts.sent(member, now)
                assert self._pool is not None  # set at start
                self.send(self._pool.members[member], OffsetsHandout(seq, tuple(intervals)))
        return (
            self._ends.moves != moves
            or any(handouts.values())
            or bool(self._ends.probing())
            or bool(self._flow.paused)
            or self._handouts.oldest_unconfirmed_s(now) > 0
            or self._drain is not None
            or any(part.position is None for part in self._partitions.values())
            # Just assigned: its log end comes with the next ListOffsets answer.
            # At the idle pace that was two 250 ms ticks (query, then answer)
            # between every assignment and its first job.
            or any(self._ends.end(tp) is None for tp in self._partitions)
        )

    def _query_ends(self, now: float) -> None:
        """Collect the answer of the end-offset query in flight; ask again when due.
        One ListOffsets request covers every assigned partition, asynchronously."""
        assert self._admin is not None
        for ktp, future in self._end_request.answers(now).items():
            try:
                self._ends.queried((ktp.topic, ktp.partition), future.result().offset, now)
            except KafkaException as exc:
                self._errors.log(logging.WARNING, "end-offsets", "cannot query log ends: %s", exc)
        if not self._partitions or not self._end_request.due(now):
            return
        latest = OffsetSpec.latest()  # type: ignore[no-untyped-call]  # confluent_kafka: untyped
        request = {KafkaTopicPartition(t, p): latest for t, p in self._partitions}
        try:
            self._end_request.asked(
                self._admin.list_offsets(
                    request, isolation_level=self._isolation, request_timeout=10
                ),
                now,
            )
        except KafkaException as exc:
            self._errors.log(logging.WARNING, "end-offsets", "cannot query log ends: %s", exc)

    def _take_probe_answers(self, messages: list[Any]) -> None:
        """Records a probe fetched: evidence of where the log ends. They are
        dropped at once (the workers read them); only their offsets count."""
        ended: set[PartitionKey] = set()
        for m in messages:
            tp = (m.topic(), m.partition())
            error = m.error()
            if error is None:
                self._ends.reaches(tp, m.offset() + 1)
            elif error.code() == KafkaError._PARTITION_EOF:
                # The probe read to the log's end (under read_committed: its last
                # stable offset, which is what the workers can read up to).
                self._ends.reaches(tp, m.offset())
                ended.add(tp)
            else:
                self._on_message_error(m)
        self._pause([tp for tp in ended if self._ends.probed(tp)])
        self._pause(self._ends.probes_timed_out(time.monotonic()))

    def _start_probes(self, now: float) -> None:
        assert self._consumer is not None
        for tp, offset in self._ends.probes_due(now):
            ktp = KafkaTopicPartition(tp[0], tp[1], offset)
            try:
                # Resume first: a seek on a paused partition is applied only after
                # a fetch backoff (measured 1 s against 50 ms this way round).
                self._consumer.resume([KafkaTopicPartition(*tp)])
                self._consumer.seek(ktp)
            except KafkaException as exc:
                self._ends.probed(tp)
                self._pause([tp])
                self._errors.log(logging.WARNING, "probe", "probing %s failed: %s", tp, exc)

    def _pause(self, keys: list[PartitionKey]) -> None:
        if not keys or self._consumer is None or self._closed:
            return
        try:
            self._consumer.pause([KafkaTopicPartition(t, p) for t, p in keys])
        except KafkaException as exc:
            self._errors.log(logging.WARNING, "pause", "pause failed: %s", exc)

    def _hand_out(
        self, tp: PartitionKey, part: _Partition, end: int, budget: int
    ) -> list[NewOffsets]:
        """Offsets ``[position, end)`` for the partition's Consumer, in at most
        ``budget`` intervals of at most one batch each, while the partition is
        under its in-flight cap."""
        assert self._config is not None and self._flow is not None
        intervals: list[NewOffsets] = []
        if self._drain is not None or part.position is None:
            return intervals
        step = self._config.batching.max_records
        while part.position < end and tp not in self._flow.paused and len(intervals) < budget:
            start = part.position
            stop = min(end, start + step)
            interval = OffsetInterval(tp[0], tp[1], start, stop)
            intervals.append(NewOffsets(interval, part.fresh, part.generation))
            part.position, part.fresh = stop, False
            self._flow.sent(tp, stop - start)
            self._records_consumed += stop - start
            metrics.records_consumed(tp[0], tp[1], stop - start)
            self._flow.rebalance_pauses()
        return intervals

    def receiveMsg_HandoutTaken(self, msg: HandoutTaken, sender: Any) -> None:
        self._handouts.taken(msg.seq)

    # --- progress and commits ---------------------------------------------------------------

    def receiveMsg_PartitionProgress(self, msg: PartitionProgress, sender: Any) -> None:
        tp = (msg.topic, msg.partition)
        part = self._partitions.get(tp)
        if part is None or part.generation != msg.generation:
            return  # about an earlier assignment of the partition
        if msg.committable is not None:
            part.committable = max(part.committable or 0, msg.committable)
        part.unacked_batches = msg.unacked_batches
        assert self._flow is not None  # set at start
        self._flow.released(tp, msg.released_records)
        self._flow.rebalance_pauses()
        self._check_drain()

    def _commit(self, asynchronous: bool, only: set[PartitionKey] | None = None) -> None:
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
            if asynchronous:  # two calls: the stubs type each mode by a Literal
                self._consumer.commit(offsets=offsets, asynchronous=True)
            else:
                self._consumer.commit(offsets=offsets, asynchronous=False)
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
        new = []
        for tp in partitions:
            key = (tp.topic, tp.partition)
            if key in self._partitions:
                continue
            self._partitions[key] = self._place(key)
            self._flow.assign(key)
            self._ends.assign(key)
            metrics.partition_assigned(*key)
            new.append(key)
        log.info("assigned %s", _names(partitions))
        # The group consumer never reads from its partitions (workers do): they
        # stay paused but for probes, which start at the log end. Its fetch
        # position is not what is committed (commits name explicit offsets).
        at_end = [KafkaTopicPartition(tp.topic, tp.partition, OFFSET_END) for tp in partitions]
        if self._config.kafka.partition_assignment_strategy == "cooperative-sticky":
            consumer.incremental_assign(at_end)
        else:
            consumer.assign(at_end)
        consumer.pause(partitions)
        self._resolve_positions(new)

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

    def _retire(self, keys: set[PartitionKey]) -> None:
        for key in keys:
            part = self._partitions.pop(key, None)
            if part is not None and self._pool is not None:
                self._pool.remove(key)
                self.send(part.consumer, PartitionRevoked(key[0], key[1], part.generation))
            assert self._flow is not None  # set at start
            self._flow.revoke(key)
            self._ends.forget(key)
            self._unconsumable.discard(key)
            self._time_lag.forget(key)
            metrics.partition_removed(*key)

    def _create_consumer(self) -> Any:
        """A new member of the pool of Consumer actors."""
        address = self.createActor(ConsumerActor)
        assert self._config is not None  # set at start
        self.send(address, ConsumerStart(self._config, self._job_manager, self.myAddress))
        return address

    def _place(self, key: PartitionKey) -> _Partition:
        """Give ``key`` to a member of the pool, as a new assignment."""
        assert self._pool is not None
        member, generation = self._pool.place(key)
        self.send(member, PartitionAssigned(key[0], key[1], generation))
        return _Partition(consumer=member, generation=generation)

    def receiveMsg_ChildActorExited(self, msg: ChildActorExited, sender: Any) -> None:
        if self._pool is None or self._closed or msg.childAddress not in self._pool.members:
            return
        replacement = self._create_consumer()
        self._handouts.reset(self._pool.index_of(msg.childAddress))
        self.send(self._job_manager, ConsumerExited(msg.childAddress))
        orphans = self._pool.replace(msg.childAddress, replacement)
        if orphans:
            log.warning("a consumer of %d partition(s) exited; they are read again from "
                        "their ACKed prefix", len(orphans))  # fmt: skip
        for key in orphans:
            if (part := self._partitions.get(key)) is not None:
                self._restart_partition(key, part)

    def _restart_partition(self, key: PartitionKey, part: _Partition) -> None:
        """Its Consumer died with its unACKed batches: hand out again from the
        ACKed prefix (the offset chain drops what was persisted already)."""
        assert self._flow is not None
        placed = self._place(key)
        part.consumer, part.generation = placed.consumer, placed.generation
        part.position, part.fresh = part.committable, True
        self._flow.reset(key)
        self._time_lag.forget(key)
        if part.position is None:
            self._resolve_positions([key])
        log.warning("handing out %s[%d] again from %s", key[0], key[1], part.position)

    def _resolve_positions(self, keys: list[PartitionKey] | None = None) -> None:
        """Where partitions without a position start: the group's committed
        offset, else ``auto_offset_reset`` (earliest: the log start; latest: the
        log end; error: nowhere, logged). Retried each housekeeping tick while
        the broker cannot say."""
        assert self._config is not None
        if self._consumer is None or self._closed:
            return
        unknown = [
            key
            for key in (keys if keys is not None else list(self._partitions))
            if (part := self._partitions.get(key)) is not None and part.position is None
        ]
        policy = self._config.kafka.auto_offset_reset
        unknown = [key for key in unknown if key not in self._unconsumable]
        if not unknown:
            return
        try:
            committed = self._consumer.committed(
                [KafkaTopicPartition(t, p) for t, p in unknown], timeout=10
            )
        except KafkaException as exc:
            self._errors.log(logging.WARNING, "committed", "cannot read committed offsets: %s", exc)
            return
        for ktp in committed:
            key = (ktp.topic, ktp.partition)
            part = self._partitions.get(key)
            if part is None:
                continue
            if ktp.offset >= 0:
                part.position = part.group_committed = ktp.offset
                continue
            if policy == "error":
                self._unconsumable.add(key)
                log.error(
                    "%s[%d] has no committed offset and auto_offset_reset is error: "
                    "not consumed", key[0], key[1],
                )  # fmt: skip
                continue
            try:
                low, high = self._consumer.get_watermark_offsets(
                    KafkaTopicPartition(*key), timeout=10, cached=False
                )
            except KafkaException as exc:
                self._errors.log(logging.WARNING, "watermarks", "cannot read log bounds: %s", exc)
                continue
            part.position = int(low) if policy == "earliest" else int(high)
            log.info("%s[%d]: no committed offset; starting at %s offset %d",
                     key[0], key[1], policy, part.position)  # fmt: skip

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
            # A probe's offset fell out of the log: it proves nothing about the
            # end. (Records deleted before their job ran are found, logged and
            # counted by the worker that reads the job.)
            self._ends.probed((m.topic(), m.partition()))
            self._pause([(m.topic(), m.partition())])
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
            # Keep servicing the group (no max.poll.interval trip); no more probes.
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
        partitions: list[PartitionStatus] = []
        now = time.time()
        for (topic, partition), part in sorted(self._partitions.items()):
            key = (topic, partition)
            end = self._ends.end(key)
            assert self._flow is not None  # set at start
            records = self._flow.inflight(key)
            # Before its first commit here, a partition's committed offset is the group's.
            committed = part.committed if part.committed is not None else part.group_committed
            paused = key in self._flow.paused
            behind = self._time_lag.seconds_behind(key, committed, now)
            metrics.partition_state(
                topic,
                partition,
                committed=committed,
                high_watermark=end,
                inflight_records=records,
                paused=paused,
                seconds_behind=behind,
            )
            partitions.append(
                PartitionStatus(
                    topic,
                    partition,
                    position=part.position,
                    committed=part.committed,
                    high_watermark=end,
                    lag=(end - (committed or 0)) if end is not None else None,
                    inflight_records=records,
                    paused=paused,
                    seconds_behind=None if behind is None else round(behind, 1),
                )
            )
        metrics.consumer_state(len(self._partitions), self._client_stats.brokers_up)
        self.push_status(
            self._supervisor,
            KafkaConsumerStatus(
                partitions=tuple(partitions),
                broker_ok=self._client_stats.broker_ok,
                missing_topics=self._missing_topics,
                records_consumed=self._records_consumed,
                rebalances=self._rebalances,
                draining=self._drain is not None,
            ),
            key=self._role,
        )


class _AdminRequest:
    """One asynchronous admin request at a time (its futures, by key), asked
    again every ``every_s``. One unanswered for ADMIN_QUERY_TIMEOUT_S is given
    up and due again at once: a broker that froze may never answer it."""

    def __init__(self, every_s: float) -> None:
        self._every_s = every_s
        self._futures: dict[Any, Any] | None = None
        self._asked_at = -float("inf")

    def answers(self, now: float) -> dict[Any, Any]:
        """The futures of the request once every one is done (then it is over);
        nothing while it is in flight."""
        if self._futures is None:
            return {}
        if not all(future.done() for future in self._futures.values()):
            if now - self._asked_at >= ADMIN_QUERY_TIMEOUT_S:
                _unanswered_log.log(logging.WARNING, "admin", "an admin request went unanswered"
                                    " for %.0fs: asking again", ADMIN_QUERY_TIMEOUT_S)  # fmt: skip
                self._futures, self._asked_at = None, -float("inf")
            return {}
        futures, self._futures = self._futures, None
        return futures

    def due(self, now: float) -> bool:
        return self._futures is None and now - self._asked_at >= self._every_s

    def asked(self, futures: dict[Any, Any], now: float) -> None:
        self._futures, self._asked_at = futures, now

    def ask_again_in(self, seconds: float, now: float) -> None:
        """Sooner than the regular interval (the last answer was an error)."""
        self._asked_at = min(self._asked_at, now - self._every_s + seconds)


def _config_int(entries: dict[str, Any], name: str) -> int | None:
    """A numeric topic setting; None when absent, unparsable or unlimited (-1)."""
    entry = entries.get(name)
    try:
        value = int(entry.value) if entry is not None and entry.value is not None else None
    except ValueError:
        return None
    return None if value is None or value < 0 else value


def _names(partitions: list[KafkaTopicPartition]) -> str:
    return ", ".join(f"{tp.topic}[{tp.partition}]" for tp in partitions) or "nothing"
