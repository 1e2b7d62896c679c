"""Kafka client settings, built in one place, and the clients made from them.

Every client actorsys creates (the consumer, the dead-letter producer, an
admin client) takes its security settings from
:func:`client_security_properties`, so TLS or SASL written once in
``[kafka.properties]`` reaches them all. Secrets are revealed here, into the
dict handed to librdkafka and nowhere else: never log or send these dicts.

:func:`validate_client_properties` has librdkafka itself check every
property before any process starts, so a misspelled key or a bad value is a
one-line configuration error at start-up instead of an actor that cannot
start.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Callable, Iterable, Mapping
from typing import Any, Final

from confluent_kafka import Consumer, KafkaError, KafkaException, Producer
from confluent_kafka.admin import (  # type: ignore[attr-defined]  # re-exported, not in __all__
    AdminClient,
    NewTopic,
)

from actorsys.config import EMBEDDED, AppConfig
from actorsys.errors import BrokerError, ConfigError
from actorsys.logs import KafkaClientLog
from actorsys.secrets import Secret, reveal

# Connection and identity settings: what every client of one cluster shares.
SECURITY_PREFIXES: Final = (
    "security.",
    "sasl.",
    "ssl.",
    "ssl_",
    "enable.ssl.",
    "enable.sasl.",
    "https.",  # the CA of an OIDC token endpoint (sasl.oauthbearer.method=oidc)
    "client.",
)

# Dead-letter producer defaults that bound its memory (invariant 5); a full queue
# blocks the handler (see DeadLetterSink) rather than growing. Overridable.
PRODUCER_MEMORY_DEFAULTS: Final[Mapping[str, str]] = {
    "queue.buffering.max.kbytes": "32768",
    "queue.buffering.max.messages": "100000",
    "message.timeout.ms": "30000",
}

# Where validation points a client when the real broker is embedded (not running yet).
VALIDATION_BOOTSTRAP: Final = "127.0.0.1:9"


def _revealed(properties: Mapping[str, str | Secret]) -> dict[str, str]:
    return {key: reveal(value) for key, value in properties.items()}


def client_security_properties(config: AppConfig) -> dict[str, str]:
    """The ``security.*``, ``sasl.*``, ``ssl.*``, ``https.*`` and ``client.*`` settings
    of ``[kafka.properties]``, revealed: what every client needs to reach the cluster."""
    return {
        key: reveal(value)
        for key, value in config.kafka.properties.items()
        if key.strip().lower().startswith(SECURITY_PREFIXES)
    }


def consumer_properties(config: AppConfig, bootstrap_servers: str) -> dict[str, str]:
    """The librdkafka consumer settings, built in one place.

    Offsets are stored and committed only by actorsys (never auto-committed):
    those settings are applied last, and the configuration refuses them
    anyway. The consumer is tuned so it does not idle when its queue fills
    (``fetch.queue.backoff.ms``: librdkafka's default 1000 ms cost 3x
    throughput in measurements: it idles a fast consumer for a second each time its
    local queue fills).
    """
    kafka = config.kafka
    props = {
        "fetch.queue.backoff.ms": "10",
        # Bound librdkafka's own prefetch queue: it is memory too (invariant 5).
        "queued.max.messages.kbytes": "16384",
        "statistics.interval.ms": "0",
        # A broker closing idle connections is normal; do not log each one.
        "log.connection.close": "false",
    }
    props.update(_revealed(kafka.properties))
    props.update(
        {
            "bootstrap.servers": bootstrap_servers,
            "group.id": kafka.group_id,
            "enable.auto.commit": "false",
            "enable.auto.offset.store": "false",
            "auto.offset.reset": kafka.auto_offset_reset,
            "session.timeout.ms": str(kafka.session_timeout_ms),
            "partition.assignment.strategy": kafka.partition_assignment_strategy,
        }
    )
    return props


def producer_properties(config: AppConfig, bootstrap_servers: str) -> dict[str, str]:
    """Producer settings for dead letters: durable, ordered, bounded, no silent loss.

    Security settings come from ``[kafka.properties]``, the rest from
    ``[kafka.producer_properties]`` (which may not weaken ``acks``).
    """
    props = {
        "acks": "all",
        "linger.ms": "5",
        "log.connection.close": "false",
        **PRODUCER_MEMORY_DEFAULTS,
    }
    props.update(client_security_properties(config))
    props.update(_revealed(config.kafka.producer_properties))
    props["bootstrap.servers"] = bootstrap_servers
    return props


def admin_properties(
    config: AppConfig, bootstrap_servers: str
) -> dict[str, str | int | float | bool]:
    """Settings for an ``AdminClient`` of the same cluster (topic creation, metadata)."""
    props: dict[str, str | int | float | bool] = {"log.connection.close": "false"}
    props.update(client_security_properties(config))
    props["bootstrap.servers"] = bootstrap_servers
    return props


def dead_letter_producer(config: AppConfig, bootstrap_servers: str) -> Producer:
    """The producer a worker (or the JobManager) sends dead letters with."""
    props: dict[str, Any] = dict(producer_properties(config, bootstrap_servers))
    props["logger"] = KafkaClientLog()
    return Producer(props)


# --- validation ----------------------------------------------------------------------------

_NAMED_PROPERTY: Final = re.compile(r'property:? "([^"]+)"')


def _silent_logger() -> logging.Logger:
    """A logger that drops everything: librdkafka's warnings about a placeholder
    broker are noise, and its complaint comes back as the exception anyway."""
    logger = logging.Logger("actorsys.kafka.validation")
    logger.addHandler(logging.NullHandler())
    logger.propagate = False
    return logger


def _secret_values(config: AppConfig) -> list[str]:
    kafka = config.kafka
    values = [*kafka.properties.values(), *kafka.producer_properties.values()]
    return [v.reveal() for v in values if isinstance(v, Secret) and v.resolved and v.reveal()]


def _complaint(exc: Exception, secrets: Iterable[str]) -> str:
    """librdkafka's message, on one line, with any secret value blanked out."""
    first = exc.args[0] if exc.args else exc
    message = first.str() if isinstance(first, KafkaError) else str(first)
    for value in secrets:
        message = message.replace(value, "***")
    return " ".join(message.split())


def _try_client(
    role: str, make: Callable[[dict[str, Any]], Any], props: Mapping[str, str], secrets: list[str]
) -> Any:
    try:
        return make({**props, "logger": _silent_logger()})
    except (KafkaException, ValueError, TypeError) as exc:
        message = _complaint(exc, secrets)
        named = _NAMED_PROPERTY.search(message)
        what = f"kafka property {named.group(1)}" if named else "kafka properties"
        raise ConfigError(f"{what} ({role}): {message}") from None


def validate_client_properties(config: AppConfig) -> None:
    """Have librdkafka check every property by building (and at once closing) the
    consumer and the dead-letter producer actorsys will build; raise ConfigError
    with librdkafka's one-line complaint. Nothing is waited for on the network."""
    bootstrap = config.kafka.bootstrap_servers
    if bootstrap == EMBEDDED:
        bootstrap = VALIDATION_BOOTSTRAP
    secrets = _secret_values(config)
    consumer = _try_client("consumer", Consumer, consumer_properties(config, bootstrap), secrets)
    consumer.close()
    producer = _try_client(
        "dead-letter producer", Producer, producer_properties(config, bootstrap), secrets
    )
    producer.flush(0)


# --- topic administration ------------------------------------------------------------------

log = logging.getLogger(__name__)
# librdkafka's lines of these short-lived admin clients ("Connect to ... failed")
# go through Python logging, never straight to stderr: a CLI shows one clean line.
_admin_log = logging.getLogger("actorsys.kafka.admin")
_admin_log.addHandler(logging.NullHandler())


def create_topic_if_missing(
    bootstrap_servers: str,
    topic: str,
    partitions: int,
    timeout_s: float = 10.0,
    client_config: Mapping[str, str | int | float | bool] | None = None,
) -> bool:
    """Create ``topic`` with ``partitions`` partitions unless it exists.

    Returns ``True`` if this call created it. An existing topic is left as it
    is, whatever its partition count. Raises :class:`BrokerError` (one line)
    when the broker cannot be reached within ``timeout_s`` or refuses the topic.
    """
    if partitions < 1:
        raise ValueError(f"partitions must be at least 1, got {partitions}")
    # client_config: the cluster's security settings (SASL/SSL), as every client gets.
    admin = AdminClient(
        {**(client_config or {}), "bootstrap.servers": bootstrap_servers},
        logger=_admin_log,
    )
    deadline = time.monotonic() + timeout_s
    # Ask for all topics, never one by name: a by-name metadata request can
    # auto-create the topic on brokers that allow it, with the wrong partitions.
    if _has_topic(admin, bootstrap_servers, topic, timeout_s):
        return False
    futures = admin.create_topics(
        [NewTopic(topic, num_partitions=partitions)], request_timeout=timeout_s
    )
    created = True
    try:
        futures[topic].result(timeout=max(0.1, deadline - time.monotonic()))
    except KafkaException as exc:
        error: KafkaError = exc.args[0]
        if error.code() != KafkaError.TOPIC_ALREADY_EXISTS:
            raise BrokerError(f"cannot create topic {topic!r}: {error.str()}") from None
        created = False  # someone else created it since we looked: fine
    except TimeoutError:
        raise BrokerError(
            f"cannot create topic {topic!r}: no answer from {bootstrap_servers} "
            f"within {timeout_s:g} s"
        ) from None
    # Wait until metadata shows the topic, so the first produce does not race
    # the creation and see "unknown topic".
    while not _has_topic(admin, bootstrap_servers, topic, max(0.5, deadline - time.monotonic())):
        if time.monotonic() >= deadline:
            raise BrokerError(f"topic {topic!r} was created but does not appear in metadata")
        time.sleep(0.05)
    if created:
        log.info("created topic %s with %d partitions", topic, partitions)
    return created


def _has_topic(admin: AdminClient, bootstrap_servers: str, topic: str, timeout_s: float) -> bool:
    try:
        metadata = admin.list_topics(timeout=timeout_s)
    except KafkaException:
        raise BrokerError(
            f"cannot reach Kafka at {bootstrap_servers} within {timeout_s:g} s"
        ) from None
    found = metadata.topics.get(topic)
    return found is not None and found.error is None and bool(found.partitions)
