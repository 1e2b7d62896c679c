"""The settings every Kafka client gets, built in one place, and librdkafka's own
check of them before any process starts."""

from __future__ import annotations

import logging
from typing import Any

import pytest

from actorsys.config import AppConfig, build_config
from actorsys.errors import ConfigError
from actorsys.kafka_clients import (
    PRODUCER_MEMORY_DEFAULTS,
    admin_properties,
    client_security_properties,
    consumer_properties,
    producer_properties,
    validate_client_properties,
)

SECURE = {
    "security.protocol": "SASL_SSL",
    "sasl.mechanism": "SCRAM-SHA-512",
    "sasl.username": "actorsys",
    "sasl.password": "kafka-Pa55",
    "ssl.ca.location": "/etc/ssl/ca.pem",
    "enable.ssl.certificate.verification": "true",
    "client.id": "actorsys-1",
    "fetch.max.bytes": "1048576",
}


def kafka(**values: Any) -> AppConfig:
    return build_config({"kafka": values})


# --- what each client gets ------------------------------------------------------------------


def test_security_settings_are_shared_and_revealed() -> None:
    props = client_security_properties(kafka(properties=SECURE))
    # Then every connection setting is there, the password as a plain string ...
    assert props == {k: v for k, v in SECURE.items() if k != "fetch.max.bytes"}
    assert all(isinstance(v, str) for v in props.values())


def test_every_client_gets_the_security_settings() -> None:
    config = kafka(properties=SECURE)
    security = client_security_properties(config)
    for props in (
        consumer_properties(config, "b:1"),
        producer_properties(config, "b:1"),
        admin_properties(config, "b:1"),
    ):
        assert security.items() <= props.items()
        assert props["bootstrap.servers"] == "b:1"
        assert all(isinstance(v, str) for v in props.values())


def test_the_admin_client_gets_no_consumer_settings() -> None:
    props = admin_properties(kafka(properties=SECURE), "b:1")
    assert "fetch.max.bytes" not in props and "group.id" not in props


def test_the_consumer_keeps_the_invariant_settings_last() -> None:
    props = consumer_properties(kafka(properties=SECURE, group_id="g"), "b:1")
    assert props["enable.auto.commit"] == "false"
    assert props["enable.auto.offset.store"] == "false"
    assert props["group.id"] == "g"
    assert props["sasl.password"] == "kafka-Pa55"
    assert props["fetch.max.bytes"] == "1048576"


def test_the_dead_letter_producer_is_bounded_by_default() -> None:
    props = producer_properties(AppConfig(), "b:1")
    assert props["acks"] == "all"
    assert PRODUCER_MEMORY_DEFAULTS.items() <= props.items()
    assert props["queue.buffering.max.kbytes"] == "32768"
    assert props["queue.buffering.max.messages"] == "100000"
    assert props["message.timeout.ms"] == "30000"


def test_producer_properties_override_the_memory_defaults_and_reveal_secrets() -> None:
    config = kafka(
        producer_properties={
            "queue.buffering.max.kbytes": 4096,
            "compression.type": "zstd",
            "ssl.key.password": "key-Pa55",
        }
    )
    props = producer_properties(config, "b:1")
    assert props["queue.buffering.max.kbytes"] == "4096"
    assert props["compression.type"] == "zstd"
    assert props["ssl.key.password"] == "key-Pa55"
    assert props["message.timeout.ms"] == "30000"


# --- validation by librdkafka -----------------------------------------------------------------


def validation_error(config: AppConfig) -> str:
    with pytest.raises(ConfigError) as info:
        validate_client_properties(config)
    message = str(info.value)
    assert "\n" not in message
    return message


def test_valid_properties_pass_silently(
    capfd: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture
) -> None:
    # Given secure settings and the embedded broker (not running: a placeholder is used)
    caplog.set_level(logging.DEBUG)
    config = kafka(properties={**SECURE, "security.protocol": "SASL_PLAINTEXT"})
    # When librdkafka checks them
    validate_client_properties(config)
    # Then nothing is printed or logged
    out, err = capfd.readouterr()
    assert out == "" and err == ""
    assert caplog.records == []


def test_a_misspelled_property_is_refused_naming_it() -> None:
    message = validation_error(kafka(properties={"fetch.max.byte": "1"}))
    assert message == (
        'kafka property fetch.max.byte (consumer): No such configuration property: "fetch.max.byte"'
    )


def test_a_bad_value_is_refused_naming_the_property() -> None:
    message = validation_error(kafka(properties={"fetch.max.bytes": "lots"}))
    assert message.startswith("kafka property fetch.max.bytes (consumer): Invalid value")


def test_a_value_out_of_range_is_one_line() -> None:
    message = validation_error(kafka(properties={"queued.max.messages.kbytes": -5}))
    assert message.startswith("kafka property queued.max.messages.kbytes (consumer):")
    assert "outside allowed range" in message


def test_a_bad_dead_letter_producer_property_names_that_client() -> None:
    message = validation_error(kafka(producer_properties={"batch.size": "big"}))
    assert message.startswith("kafka property batch.size (dead-letter producer): Invalid value")


def test_a_python_callback_name_given_as_text_is_refused() -> None:
    message = validation_error(kafka(properties={"error_cb": "print"}))
    assert "error_cb" in message and "callable" in message


def test_librdkafka_complaints_never_show_a_secret() -> None:
    # Given a TLS key whose content librdkafka quotes in no message, and a password
    config = kafka(
        properties={
            "security.protocol": "SSL",
            "ssl.key.pem": "not-a-pem-key",
            "ssl.key.password": "key-Pa55",
        }
    )
    message = validation_error(config)
    assert "ssl.key.pem" in message
    assert "not-a-pem-key" not in message and "key-Pa55" not in message


def test_a_secret_librdkafka_would_quote_is_blanked() -> None:
    # Given the password pasted by mistake into a property whose bad value librdkafka quotes
    config = kafka(properties={"sasl.password": "Pa55-pasted", "security.protocol": "Pa55-pasted"})
    message = validation_error(config)
    # Then the complaint is kept, the secret is not
    assert message.startswith("kafka property security.protocol (consumer): Invalid value")
    assert "Pa55-pasted" not in message and '"***"' in message
