"""Secrets: never in a repr, a str, a pickle or an actor message; resolved by name
in the receiving process; and which librdkafka properties and URLs are secret."""

from __future__ import annotations

import copy
import pickle

import pytest

import actorsys.secrets as secrets_module
from actorsys.config import AppConfig, build_config
from actorsys.errors import ConfigError
from actorsys.messages import JobManagerStart, KafkaConsumerStart, SupervisorStart
from actorsys.secrets import (
    Secret,
    is_secret_property,
    redact_url,
    reveal,
    url_has_password,
)

SASL_PASSWORD = "sasl-Pa55word-never-shown"
PG_PASSWORD = "pg-Pa55word-never-shown"


@pytest.fixture
def empty_registry(monkeypatch: pytest.MonkeyPatch) -> None:
    """This process as another host would be: no secret configured."""
    monkeypatch.setattr(secrets_module, "_REGISTRY", {})


def config_with_passwords() -> AppConfig:
    return build_config(
        {
            "kafka": {
                "properties": {
                    "security.protocol": "SASL_SSL",
                    "sasl.mechanism": "SCRAM-SHA-512",
                    "sasl.username": "actorsys",
                    "sasl.password": SASL_PASSWORD,
                }
            },
            "jobs": {"store": f"postgresql://actorsys:{PG_PASSWORD}@db:5432/jobs"},
        }
    )


# --- the value type ---------------------------------------------------------------------


def test_repr_and_str_show_the_name_only() -> None:
    secret = Secret("kafka.properties.sasl.password", "hunter2")
    assert repr(secret) == "Secret('kafka.properties.sasl.password')"
    assert str(secret) == repr(secret)
    assert f"{secret}" == repr(secret)
    assert "hunter2" not in repr([secret]) + repr({"k": secret})


def test_reveal_gives_the_value() -> None:
    secret = Secret("a.name", "value")
    assert secret.reveal() == "value"
    assert reveal(secret) == "value"
    assert reveal("plain") == "plain"
    assert secret.name == "a.name"
    assert secret.resolved


def test_equality_is_by_name_and_value() -> None:
    assert Secret("a", "1") == Secret("a", "1")
    assert Secret("a", "1") != Secret("a", "2")
    assert Secret("a", "1") != Secret("b", "1")
    assert Secret("a", "1") != "1"
    assert hash(Secret("a", "1")) == hash(Secret("a", "1"))


def test_a_secret_is_immutable_and_copies_are_itself() -> None:
    secret = Secret("a", "1")
    with pytest.raises(AttributeError):
        secret._value = "2"
    assert copy.copy(secret) is secret
    assert copy.deepcopy(secret) is secret


def test_a_secret_needs_a_name_and_a_string() -> None:
    with pytest.raises(TypeError):
        Secret("", "x")
    with pytest.raises(TypeError):
        Secret("a", 5)  # type: ignore[arg-type]  # deliberately wrong type


@pytest.mark.parametrize("protocol", range(pickle.HIGHEST_PROTOCOL + 1))
def test_a_pickle_carries_the_name_not_the_value(protocol: int) -> None:
    # Given a secret
    secret = Secret("kafka.properties.sasl.password", SASL_PASSWORD)
    # When it is pickled
    data = pickle.dumps(secret, protocol=protocol)
    # Then the bytes hold its name but not its value
    assert SASL_PASSWORD.encode() not in data
    assert b"kafka.properties.sasl.password" in data
    # And this process (or a fork of it) unpickles it to the same secret
    assert pickle.loads(data) == secret


def test_unpickling_resolves_the_receivers_value() -> None:
    # Given a secret pickled by a sender
    data = pickle.dumps(Secret("test.receiver.value", "senders"))
    # When the receiving process has configured its own value under that name
    Secret("test.receiver.value", "receivers")
    # Then the receiver's value is what it gets
    assert pickle.loads(data).reveal() == "receivers"


def test_an_unconfigured_secret_unpickles_but_cannot_be_revealed(empty_registry: None) -> None:
    # Given a secret pickled on a host that has it, unpickled on one that does not
    data = pickle.dumps(Secret._unresolved("kafka.properties.sasl.password"))
    secrets_module._REGISTRY.clear()
    received = pickle.loads(data)
    # Then it unpickles, says what it is, and refuses to reveal with one line
    assert repr(received) == "Secret('kafka.properties.sasl.password')"
    assert not received.resolved
    with pytest.raises(ConfigError) as info:
        received.reveal()
    assert str(info.value) == (
        "secret kafka.properties.sasl.password is not configured on this host: "
        "set it in this host's config or environment"
    )


# --- a whole configuration, and messages holding it ----------------------------------------


def test_a_pickled_config_holds_no_password_and_unpickles_equal() -> None:
    # Given a configuration with a SASL password and a PostgreSQL password
    config = config_with_passwords()
    # When it is pickled (as Thespian does with every actor message)
    data = pickle.dumps(config)
    # Then neither password is in the bytes
    assert SASL_PASSWORD.encode() not in data
    assert PG_PASSWORD.encode() not in data
    # And in this process it unpickles to an equal configuration, secrets resolved
    back = pickle.loads(data)
    assert back == config
    assert reveal(back.kafka.properties["sasl.password"]) == SASL_PASSWORD
    assert PG_PASSWORD in reveal(back.jobs.store)


def test_messages_holding_the_config_show_and_pickle_no_password() -> None:
    config = config_with_passwords()
    messages = [
        SupervisorStart(config, "kafka:9092", 1, 1),
        KafkaConsumerStart(config, "kafka:9092", job_manager=None),
        JobManagerStart(config, "kafka:9092", worker_master=None),
    ]
    for message in messages:
        for text in (repr(message), str(message), repr(config), str(config)):
            assert SASL_PASSWORD not in text
            assert PG_PASSWORD not in text
        data = pickle.dumps(message)
        assert SASL_PASSWORD.encode() not in data
        assert PG_PASSWORD.encode() not in data
        assert pickle.loads(data) == message


def test_a_config_received_on_a_host_without_the_secrets_fails_at_use(
    empty_registry: None,
) -> None:
    # Given a configuration pickled by a leader ...
    data = pickle.dumps(config_with_passwords())
    # ... and received where nobody configured those secrets
    secrets_module._REGISTRY.clear()
    received = pickle.loads(data)
    # Then everything else is there, and the secrets refuse to reveal
    assert received.kafka.properties["sasl.username"] == "actorsys"
    with pytest.raises(ConfigError, match=r"secret kafka\.properties\.sasl\.password is not"):
        reveal(received.kafka.properties["sasl.password"])
    with pytest.raises(ConfigError, match=r"secret jobs\.store is not configured"):
        reveal(received.jobs.store)


def test_overrides_keep_secrets() -> None:
    # Given a configuration with secrets, copied with an unrelated change
    config = config_with_passwords()
    changed = config.with_overrides({"daemon": {"log_format": "json"}})
    # Then the secrets are the same objects, still wrapped
    assert changed.kafka.properties["sasl.password"] is config.kafka.properties["sasl.password"]
    assert changed.jobs.store == config.jobs.store


# --- which properties are secret -------------------------------------------------------------


@pytest.mark.parametrize(
    "key",
    [
        "sasl.password",
        "ssl.key.password",
        "ssl.keystore.password",
        "sasl.oauthbearer.client.secret",
        "sasl.oauthbearer.config",
        "sasl.oauthbearer.assertion.private.key.passphrase",
        "sasl.oauthbearer.assertion.private.key.pem",
        "ssl.key.pem",
        "SASL.Password",
        " sasl.password ",
    ],
)
def test_credential_properties_are_secret(key: str) -> None:
    assert is_secret_property(key)


@pytest.mark.parametrize(
    "key",
    [
        "sasl.username",
        "sasl.mechanism",
        "security.protocol",
        "ssl.key.location",
        "ssl.keystore.location",
        "ssl.certificate.pem",
        "ssl.ca.pem",
        "ssl.ca.location",
        "sasl.kerberos.keytab",
        "sasl.oauthbearer.assertion.private.key.file",
        "client.id",
        "fetch.max.bytes",
    ],
)
def test_paths_certificates_and_names_are_not_secret(key: str) -> None:
    assert not is_secret_property(key)


# --- URLs ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "secret", "redacted"),
    [
        ("postgresql://u:pw@h:5432/db", True, "postgresql://u:***@h:5432/db"),
        ("postgresql://u@h/db?password=pw", True, "postgresql://u@h/db?password=***"),
        ("postgresql://u@h/db?sslpassword=pw&a=1", True, "postgresql://u@h/db?sslpassword=***&a=1"),
        ("postgresql://u@h/db", False, "postgresql://u@h/db"),
        ("postgresql://u:@h/db", False, "postgresql://u:***@h/db"),
        ("sqlite:///./data/jobs.db", False, "sqlite:///./data/jobs.db"),
        (
            "sqlite:////var/lib/jobs.db?synchronous=FULL",
            False,
            "sqlite:////var/lib/jobs.db?synchronous=FULL",
        ),
    ],
)
def test_urls_with_a_password(url: str, secret: bool, redacted: str) -> None:
    assert url_has_password(url) is secret
    assert redact_url(url) == redacted
    assert redact_url(Secret("test.url", url)) == redacted
