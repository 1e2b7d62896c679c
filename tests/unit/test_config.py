"""Configuration: defaults, validation of every section, type checks, overrides,
loading from TOML, values from the environment or files, secrets, the Kafka
properties actorsys refuses, [cluster], and the Kafka client properties built
from it."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import pytest

from actorsys.config import (
    AppConfig,
    BatchingConfig,
    ClusterConfig,
    KafkaConfig,
    build_config,
    load_config,
)
from actorsys.errors import ConfigError
from actorsys.kafka_clients import consumer_properties, producer_properties
from actorsys.secrets import Secret, reveal

REPO = Path(__file__).resolve().parents[2]


def case_id(value: object) -> str:
    """``section.key=value`` for a config dict, nothing for an expected message."""
    if isinstance(value, dict):
        return "-".join(f"{s}.{k}={v!r}" for s, kv in value.items() for k, v in kv.items())
    return ""


def config_error(data: dict[str, Any]) -> str:
    """The message of the ConfigError ``build_config(data)`` raises; it is one line."""
    with pytest.raises(ConfigError) as info:
        build_config(data)
    message = str(info.value)
    assert "\n" not in message
    return message


# --- defaults -----------------------------------------------------------------------------


def test_defaults_are_valid_and_match_an_empty_file() -> None:
    # Given no configuration at all
    # When it is built from an empty document, or from no file
    # Then it is the defaults
    assert build_config({}) == AppConfig()
    assert load_config(None) == AppConfig()


def test_every_section_of_the_defaults_survives_a_round_trip() -> None:
    # Given the defaults as plain data (what a complete TOML file would say)
    data = dataclasses.asdict(AppConfig())
    # When they are built again
    # Then nothing is lost or changed
    assert build_config(data) == AppConfig()


def test_section_defaults_the_pipeline_relies_on() -> None:
    config = AppConfig()
    # Then the defaults read from the embedded broker and the "iot" topic ...
    assert config.kafka.bootstrap_servers == "embedded"
    assert config.kafka.topics == ("iot",)
    # ... and the dead-letter topic defaults to "<topic>.dlq" unless named
    assert config.kafka.dead_letter_topic_for("iot") == "iot.dlq"
    named = KafkaConfig(dead_letter_topic="dead")
    assert named.dead_letter_topic_for("iot") == "dead"
    # ... and 0 workers means one per CPU (at least one)
    assert config.workers.count == 0
    assert config.workers.effective_count >= 1
    assert build_config({"workers": {"count": 3}}).workers.effective_count == 3


# --- every section's validation -----------------------------------------------------------


@pytest.mark.parametrize(
    ("data", "fragment"),
    [
        ({"kafka": {"bootstrap_servers": ""}}, "[kafka] bootstrap_servers"),
        ({"kafka": {"topics": []}}, "[kafka] topics"),
        ({"kafka": {"topics": ["iot", ""]}}, "[kafka] topics"),
        ({"kafka": {"group_id": ""}}, "[kafka] group_id"),
        ({"kafka": {"auto_offset_reset": "smallest"}}, "[kafka] auto_offset_reset"),
        ({"batching": {"max_records": 0}}, "[batching] max_records"),
        ({"flow": {"end_offsets_interval_ms": 0}}, "[flow] end_offsets_interval_ms"),
        ({"batching": {"linger_ms": 0}}, "[batching] linger_ms"),
        ({"batching": {"ack_timeout_ms": 0}}, "[batching] ack_timeout_ms"),
        ({"batching": {"max_ack_timeout_ms": 0}}, "[batching] max_ack_timeout_ms"),
        *(
            ({"flow": {f.name: 0}}, f"[flow] {f.name}")
            for f in dataclasses.fields(AppConfig().flow)
        ),
        ({"jobs": {"store": "mysql://x"}}, "[jobs] store"),
        ({"jobs": {"max_attempts": 0}}, "[jobs] max_attempts"),
        ({"jobs": {"retry_backoff_initial_s": 0}}, "[jobs] retry_backoff_initial_s"),
        ({"jobs": {"retry_backoff_max_s": -1.5}}, "[jobs] retry_backoff_max_s"),
        ({"jobs": {"job_timeout_s": 0}}, "[jobs] job_timeout_s"),
        ({"workers": {"count": -1}}, "[workers] count"),
        ({"daemon": {"admin_port": 65536}}, "[daemon] admin_port"),
        ({"daemon": {"metrics_port": -1}}, "[daemon] metrics_port"),
        ({"daemon": {"shutdown_grace_s": 0}}, "[daemon] shutdown_grace_s"),
        ({"daemon": {"log_level": "TRACE"}}, "[daemon] log_level"),
        ({"daemon": {"log_format": "xml"}}, "[daemon] log_format"),
        ({"daemon": {"progress_interval_s": -1}}, "[daemon] progress_interval_s"),
        ({"simulator": {"malformed_ratio": 1.5}}, "[simulator] malformed_ratio"),
        ({"simulator": {"malformed_ratio": -0.1}}, "[simulator] malformed_ratio"),
    ],
    ids=case_id,
)
def test_impossible_values_are_rejected_naming_the_key(data: dict[str, Any], fragment: str) -> None:
    # Given one impossible value
    # When the configuration is built
    # Then a one-line ConfigError names its section and key
    assert fragment in config_error(data)


@pytest.mark.parametrize(
    "data",
    [
        {"kafka": {"auto_offset_reset": "latest"}},
        {"jobs": {"store": "postgresql://u@h/db"}},
        {"jobs": {"store": "sqlite:///tmp/x.db"}},
        {"daemon": {"log_level": "debug", "admin_port": 0, "metrics_port": 65535}},
        {"simulator": {"malformed_ratio": 0}},
        {"simulator": {"malformed_ratio": 1}},
        {"workers": {"count": 0}},
    ],
)
def test_boundary_values_are_accepted(data: dict[str, Any]) -> None:
    # Given values at the edge of what is allowed
    # When the configuration is built
    config = build_config(data)
    # Then they are kept
    for section, values in data.items():
        for key, value in values.items():
            assert getattr(getattr(config, section), key) == value


@pytest.mark.parametrize(
    "data",
    [
        {"embedded_broker": {"port": 70000}},
        {"embedded_broker": {"port": -1}},
        {"kafka": {"session_timeout_ms": 0}},
        {"simulator": {"devices": 0}},
        {"simulator": {"partitions": 0}},
        {"simulator": {"rate": -1.0}},
        {"simulator": {"count": -1}},
    ],
    ids=case_id,
)
def test_impossible_values_are_refused(data: dict[str, Any]) -> None:
    # Given an impossible value in a section without that check
    # When the configuration is built
    # Then it should be rejected like every other impossible value
    ((section, values),) = data.items()
    ((key, _),) = values.items()
    assert f"[{section}] {key}" in config_error(data)


# --- unknown names -------------------------------------------------------------------------


def test_unknown_section_is_named() -> None:
    # Given a section that does not exist
    message = config_error({"kafak": {"group_id": "g"}})
    # Then the error names it and lists the known ones
    assert "unknown section [kafak]" in message
    assert "kafka" in message and "batching" in message


@pytest.mark.parametrize("section", [f.name for f in dataclasses.fields(AppConfig)])
def test_unknown_key_is_named_in_every_section(section: str) -> None:
    # Given a key that no section has
    message = config_error({section: {"no_such_key": 1}})
    # Then the error names the section and the key
    assert f"[{section}] unknown key 'no_such_key'" in message


def test_section_that_is_not_a_table_is_rejected() -> None:
    # Given `kafka = 5` instead of a [kafka] table
    # Then the error says the section must be a table
    assert "[kafka] must be a table" in config_error({"kafka": 5})


# --- wrong types ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("data", "fragment"),
    [
        ({"batching": {"max_records": "5000"}}, "[batching] max_records must be an integer"),
        ({"batching": {"max_records": True}}, "[batching] max_records must be an integer"),
        ({"batching": {"max_records": 5000.0}}, "[batching] max_records must be an integer"),
        ({"daemon": {"admin_port": "1900"}}, "[daemon] admin_port must be an integer"),
        ({"jobs": {"job_timeout_s": "300"}}, "[jobs] job_timeout_s must be a number"),
        ({"jobs": {"job_timeout_s": True}}, "[jobs] job_timeout_s must be a number"),
        ({"kafka": {"group_id": 7}}, "[kafka] group_id must be a string"),
        ({"kafka": {"topics": [1, 2]}}, "[kafka] topics must be a list of strings"),
        ({"kafka": {"topics": ["iot", None]}}, "[kafka] topics must be a list of strings"),
        ({"kafka": {"topics": "iot"}}, "[kafka] topics must be a list of strings"),
        ({"output": {"metrics": [1.5]}}, "[output] metrics must be a list of strings"),
        ({"kafka": {"properties": ["a=b"]}}, "[kafka] properties must be a table"),
        ({"output": {"options": "x"}}, "[output] options must be a table"),
        ({"simulator": {"enabled": 1}}, "[simulator] enabled must be true or false"),
        ({"simulator": {"enabled": "true"}}, "[simulator] enabled must be true or false"),
    ],
    ids=case_id,
)
def test_wrong_types_are_rejected_naming_the_key(data: dict[str, Any], fragment: str) -> None:
    # Given a value of the wrong type
    # When the configuration is built
    # Then a one-line ConfigError names the key and the expected type
    assert fragment in config_error(data)


def test_integers_are_accepted_where_numbers_are_expected() -> None:
    # Given TOML integers for float keys
    config = build_config({"jobs": {"job_timeout_s": 60}, "simulator": {"rate": 10}})
    # Then they become floats
    assert config.jobs.job_timeout_s == 60.0
    assert isinstance(config.jobs.job_timeout_s, float)
    assert isinstance(config.simulator.rate, float)


def test_lists_become_tuples() -> None:
    # Given TOML arrays
    config = build_config({"kafka": {"topics": ["a", "b"]}, "output": {"metrics": ["x"]}})
    # Then the config holds immutable tuples
    assert config.kafka.topics == ("a", "b")
    assert config.output.metrics == ("x",)


def test_kafka_properties_values_become_strings() -> None:
    # Given librdkafka properties written as TOML booleans, integers and floats
    config = build_config(
        {
            "kafka": {
                "properties": {
                    "enable.idempotence": True,
                    "check.crcs": False,
                    "fetch.max.bytes": 1048576,
                    "x.ratio": 1.5,
                    "client.id": "me",
                }
            }
        }
    )
    # Then librdkafka gets strings, booleans in lower case
    assert config.kafka.properties == {
        "enable.idempotence": "true",
        "check.crcs": "false",
        "fetch.max.bytes": "1048576",
        "x.ratio": "1.5",
        "client.id": "me",
    }


def test_output_options_are_kept_as_written() -> None:
    # Given handler options of several types
    options = {"compression": "zstd", "row_group": 1000, "stats": True}
    # Then they reach the handler untouched (not stringified like kafka.properties)
    assert build_config({"output": {"options": options}}).output.options == options


# --- with_overrides ------------------------------------------------------------------------


def test_with_overrides_replaces_only_the_named_keys() -> None:
    # Given a configuration from a file
    base = build_config({"kafka": {"group_id": "a", "topics": ["x"]}, "workers": {"count": 2}})
    # When some keys are overridden
    changed = base.with_overrides({"kafka": {"group_id": "b"}, "jobs": {"max_attempts": 9}})
    # Then those change and everything else is kept
    assert changed.kafka.group_id == "b"
    assert changed.kafka.topics == ("x",)
    assert changed.jobs.max_attempts == 9
    assert changed.workers.count == 2
    assert changed.batching == base.batching
    # And the original is untouched
    assert base.kafka.group_id == "a"
    assert base.jobs.max_attempts == AppConfig().jobs.max_attempts


def test_with_overrides_validates_like_a_file() -> None:
    base = AppConfig()
    # When an override has a wrong type, an impossible value or an unknown key
    # Then it is a ConfigError naming it
    with pytest.raises(ConfigError, match=r"\[workers\] count must be an integer"):
        base.with_overrides({"workers": {"count": "4"}})
    with pytest.raises(ConfigError, match=r"\[batching\] max_records must be > 0"):
        base.with_overrides({"batching": {"max_records": 0}})
    with pytest.raises(ConfigError, match=r"\[kafka\] unknown key 'nope'"):
        base.with_overrides({"kafka": {"nope": 1}})


def test_with_overrides_of_an_unknown_section_is_a_config_error() -> None:
    # Given an override for a section that does not exist
    # When it is applied
    # Then it is a ConfigError naming the section (it was a bare KeyError: fixed)
    with pytest.raises(ConfigError, match=r"unknown section \[nope\]"):
        AppConfig().with_overrides({"nope": {"a": 1}})


def test_with_overrides_keeps_kafka_properties_and_output_options() -> None:
    # Given properties and options from a file
    base = build_config({"kafka": {"properties": {"a": "1"}}, "output": {"options": {"k": [1, 2]}}})
    # When an unrelated key is overridden
    changed = base.with_overrides({"daemon": {"log_format": "json"}})
    # Then they are carried over
    assert changed.kafka.properties == {"a": "1"}
    assert changed.output.options == {"k": [1, 2]}
    assert changed.daemon.log_format == "json"


# --- load_config ---------------------------------------------------------------------------


def load_error(path: Path) -> str:
    with pytest.raises(ConfigError) as info:
        load_config(path)
    message = str(info.value)
    assert "\n" not in message
    assert info.value.__cause__ is None  # raised "from None": no chained traceback
    return message


def test_load_config_reads_a_toml_file(tmp_path: Path) -> None:
    # Given a TOML file
    path = tmp_path / "a.toml"
    path.write_text('[kafka]\ntopics = ["a", "b"]\n[batching]\nlinger_ms = 250\n')
    # When it is loaded (as a path or a string)
    # Then its values are there and the rest are defaults
    config = load_config(path)
    assert config == load_config(str(path))
    assert config.kafka.topics == ("a", "b")
    assert config.batching == BatchingConfig(linger_ms=250)


def test_missing_file_is_one_line(tmp_path: Path) -> None:
    message = load_error(tmp_path / "nope.toml")
    assert "nope.toml" in message and "does not exist" in message


def test_invalid_toml_is_one_line(tmp_path: Path) -> None:
    # Given a file with a broken table header
    path = tmp_path / "bad.toml"
    path.write_text("[kafka\ngroup_id = 'x'\n")
    # Then the error names the file and says it is not TOML
    message = load_error(path)
    assert "bad.toml" in message and "not valid TOML" in message


def test_file_that_is_not_utf8_is_one_line(tmp_path: Path) -> None:
    # Given a file in another encoding (it raised UnicodeDecodeError, a traceback: fixed)
    path = tmp_path / "latin1.toml"
    path.write_bytes('[kafka]\ngroup_id = "caf\u00e9"\n'.encode("latin-1"))
    # Then it is reported like any other invalid TOML
    message = load_error(path)
    assert "latin1.toml" in message and "not valid TOML" in message


def test_unreadable_file_is_one_line(tmp_path: Path) -> None:
    # Given a path that exists but cannot be read as a file
    message = load_error(tmp_path)
    # Then the error names it and says why
    assert "cannot be read" in message and str(tmp_path) in message


def test_valid_toml_with_a_bad_value_names_the_key(tmp_path: Path) -> None:
    # Given valid TOML with an unknown key
    path = tmp_path / "c.toml"
    path.write_text("[batching]\nmax_record = 10\n")
    # Then loading fails naming it
    assert "[batching] unknown key 'max_record'" in load_error(path)


@pytest.mark.parametrize("path", sorted((REPO / "config").glob("*.toml")), ids=lambda p: p.name)
def test_configuration_files_in_the_repository_load(path: Path) -> None:
    # Given a configuration file shipped in config/
    # When it is loaded
    config = load_config(path)
    # Then it is valid
    assert isinstance(config, AppConfig)


def test_local_toml_loads_with_what_make_run_expects() -> None:
    # Given config/local.toml (what `make run` uses)
    config = load_config(REPO / "config" / "local.toml")
    # Then it runs the embedded broker with the simulator on
    assert config.kafka.bootstrap_servers == "embedded"
    assert config.simulator.enabled is True
    assert config.workers.count == 2


# --- Kafka client properties ---------------------------------------------------------------


def test_consumer_never_auto_commits_nor_stores_offsets() -> None:
    # Given the default configuration
    props = consumer_properties(AppConfig(), "host:9092")
    # Then offsets are stored and committed only by actorsys
    assert props["enable.auto.commit"] == "false"
    assert props["enable.auto.offset.store"] == "false"
    # And the rest comes from the config
    assert props["bootstrap.servers"] == "host:9092"
    assert props["group.id"] == "actorsys"
    assert props["auto.offset.reset"] == "earliest"
    assert props["session.timeout.ms"] == "10000"
    assert props["partition.assignment.strategy"] == "cooperative-sticky"
    # And librdkafka gets strings only
    assert all(isinstance(v, str) for v in props.values())


def test_consumer_properties_pass_through_wins_over_tuning_defaults() -> None:
    # Given pass-through properties that also set tuning keys actorsys sets
    config = build_config(
        {
            "kafka": {
                "session_timeout_ms": 6000,
                "properties": {
                    "fetch.queue.backoff.ms": "50",
                    "queued.max.messages.kbytes": 4096,
                    "security.protocol": "SSL",
                },
            }
        }
    )
    props = consumer_properties(config, "b:1")
    # Then the pass-through values win, and new keys are added
    assert props["fetch.queue.backoff.ms"] == "50"
    assert props["queued.max.messages.kbytes"] == "4096"
    assert props["security.protocol"] == "SSL"
    # And the first-class key is what sets the session timeout
    assert props["session.timeout.ms"] == "6000"


def test_producer_is_durable_and_takes_only_connection_properties() -> None:
    # Given pass-through properties for security, client and consumer-only settings
    config = build_config(
        {
            "kafka": {
                "properties": {
                    "security.protocol": "SASL_SSL",
                    "sasl.mechanism": "PLAIN",
                    "ssl.ca.location": "/ca.pem",
                    "client.id": "me",
                    "fetch.max.bytes": 1000,
                    "isolation.level": "read_committed",
                }
            }
        }
    )
    props = producer_properties(config, "b:1")
    # Then the producer waits for all replicas
    assert props["acks"] == "all"
    assert props["bootstrap.servers"] == "b:1"
    # And receives the connection settings, but no consumer-only keys
    assert props["security.protocol"] == "SASL_SSL"
    assert props["sasl.mechanism"] == "PLAIN"
    assert props["ssl.ca.location"] == "/ca.pem"
    assert props["client.id"] == "me"
    assert "fetch.max.bytes" not in props
    assert "isolation.level" not in props
    assert "group.id" not in props


# --- values from the environment or a file ---------------------------------------------------


def test_a_string_may_come_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    # Given a group id and a non-secret property written as { env = NAME }
    monkeypatch.setenv("ACTORSYS_TEST_GROUP", "from-env")
    monkeypatch.setenv("ACTORSYS_TEST_CLIENT", "client-env")
    config = build_config(
        {
            "kafka": {
                "group_id": {"env": "ACTORSYS_TEST_GROUP"},
                "topics": [{"env": "ACTORSYS_TEST_GROUP"}, "b"],
                "properties": {"client.id": {"env": "ACTORSYS_TEST_CLIENT"}},
            }
        }
    )
    # Then the values are the variables' (plain strings: they are not secret)
    assert config.kafka.group_id == "from-env"
    assert config.kafka.topics == ("from-env", "b")
    assert config.kafka.properties == {"client.id": "client-env"}


def test_a_string_may_come_from_a_file(tmp_path: Path) -> None:
    # Given a password file ending in a newline, as editors and `echo` write them
    password = tmp_path / "sasl.password"
    password.write_text("s3cret\n")
    config = build_config({"kafka": {"properties": {"sasl.password": {"file": str(password)}}}})
    # Then the value is the content without the newline, held as a Secret
    value = config.kafka.properties["sasl.password"]
    assert isinstance(value, Secret)
    assert value.reveal() == "s3cret"
    assert value.name == "kafka.properties.sasl.password"


def test_a_toml_file_may_point_at_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given the documented TOML spelling
    monkeypatch.setenv("KAFKA_SASL_PASSWORD", "from-env")
    path = tmp_path / "c.toml"
    path.write_text('[kafka.properties]\n"sasl.password" = { env = "KAFKA_SASL_PASSWORD" }\n')
    # Then the secret is read from the environment
    assert reveal(load_config(path).kafka.properties["sasl.password"]) == "from-env"


@pytest.mark.parametrize(
    ("value", "fragment"),
    [
        (
            {"env": "ACTORSYS_TEST_UNSET"},
            "[kafka] group_id: environment variable ACTORSYS_TEST_UNSET is not set",
        ),
        ({"env": ""}, "[kafka] group_id: env must name an environment variable"),
        ({"env": 5}, "[kafka] group_id: env must name an environment variable"),
        ({"file": "/no/such/file"}, "[kafka] group_id: file '/no/such/file' does not exist"),
        ({"file": ""}, "[kafka] group_id: file must name a file"),
        ({"env": "A", "file": "/b"}, "[kafka] group_id must be a string or { env"),
        ({"value": "x"}, "[kafka] group_id must be a string or { env"),
    ],
    ids=["unset", "empty-name", "not-a-name", "missing-file", "empty-path", "both", "other-key"],
)
def test_env_and_file_errors_name_the_key(
    monkeypatch: pytest.MonkeyPatch, value: dict[str, Any], fragment: str
) -> None:
    monkeypatch.delenv("ACTORSYS_TEST_UNSET", raising=False)
    assert fragment in config_error({"kafka": {"group_id": value}})


def test_an_unreadable_file_names_the_key(tmp_path: Path) -> None:
    # Given a directory where a file is expected, and a file that is not UTF-8
    latin = tmp_path / "latin.txt"
    latin.write_bytes("caf\u00e9".encode("latin-1"))
    where = "[kafka.properties] sasl.password"
    message = config_error({"kafka": {"properties": {"sasl.password": {"file": str(tmp_path)}}}})
    assert message.startswith(f"{where}: file ") and "cannot be read" in message
    message = config_error({"kafka": {"properties": {"sasl.password": {"file": str(latin)}}}})
    assert message == f"{where}: file {str(latin)!r} is not UTF-8 text"


# --- secrets in the configuration ------------------------------------------------------------


def test_credential_properties_become_secrets_even_when_literal() -> None:
    config = build_config(
        {
            "kafka": {
                "properties": {"sasl.password": "pw", "sasl.username": "u"},
                "producer_properties": {"ssl.key.password": "kp"},
            }
        }
    )
    assert config.kafka.properties["sasl.password"] == Secret(
        "kafka.properties.sasl.password", "pw"
    )
    assert config.kafka.properties["sasl.username"] == "u"
    assert config.kafka.producer_properties["ssl.key.password"] == Secret(
        "kafka.producer_properties.ssl.key.password", "kp"
    )
    assert "pw" not in repr(config) and "kp" not in repr(config)


def test_a_job_store_url_with_a_password_becomes_a_secret() -> None:
    # Given PostgreSQL URLs with and without a password
    with_password = build_config({"jobs": {"store": "postgresql://u:pw@h/db"}}).jobs
    without = build_config({"jobs": {"store": "postgresql://u@h/db"}}).jobs
    # Then only the one with a password is wrapped, and both log without it
    assert with_password.store == Secret("jobs.store", "postgresql://u:pw@h/db")
    assert with_password.store_for_logs == "postgresql://u:***@h/db"
    assert without.store == "postgresql://u@h/db"
    assert without.store_for_logs == "postgresql://u@h/db"


def test_a_bad_job_store_url_is_reported_without_its_password() -> None:
    message = config_error({"jobs": {"store": "mysql://u:pw@h/db"}})
    assert "[jobs] store" in message and "pw" not in message and "u:***@h" in message


# --- properties that would void an invariant ---------------------------------------------------


@pytest.mark.parametrize(
    ("key", "value", "instead"),
    [
        ("enable.auto.commit", "true", "actorsys commits offsets itself"),
        ("enable.auto.commit", "false", "actorsys commits offsets itself"),
        ("auto.commit.enable", "true", "actorsys commits offsets itself"),
        ("topic.auto.commit.enable", "true", "actorsys commits offsets itself"),
        ("enable.auto.offset.store", "true", "actorsys commits offsets itself"),
        ("Enable.Auto.Commit", "true", "actorsys commits offsets itself"),
        ("group.id", "other", "use [kafka] group_id instead"),
        ("bootstrap.servers", "k:9092", "use [kafka] bootstrap_servers instead"),
        ("metadata.broker.list", "k:9092", "use [kafka] bootstrap_servers instead"),
        ("auto.offset.reset", "latest", "use [kafka] auto_offset_reset instead"),
        ("topic.auto.offset.reset", "latest", "use [kafka] auto_offset_reset instead"),
        (
            "partition.assignment.strategy",
            "range",
            "use [kafka] partition_assignment_strategy instead",
        ),
        ("group.protocol", "consumer", "classic rebalance protocol"),
        ("session.timeout.ms", "45000", "use [kafka] session_timeout_ms instead"),
        ("default.topic.config", "x", "directly in [kafka.properties]"),
    ],
)
def test_consumer_properties_that_void_an_invariant_are_refused(
    key: str, value: str, instead: str
) -> None:
    # Given a pass-through property actorsys must own
    message = config_error({"kafka": {"properties": {key: value}}})
    # Then the error names the key and says what to do instead
    assert message.startswith(f"[kafka.properties] {key}: ")
    assert instead in message


@pytest.mark.parametrize("value", ["read_committed", "read_uncommitted"])
def test_isolation_level_is_allowed(value: str) -> None:
    config = build_config({"kafka": {"properties": {"isolation.level": value}}})
    assert consumer_properties(config, "b:1")["isolation.level"] == value


@pytest.mark.parametrize(
    ("key", "value", "fragment"),
    [
        ("acks", "1", "[kafka.producer_properties] acks must be all (or -1)"),
        ("acks", "0", "[kafka.producer_properties] acks must be all (or -1)"),
        ("request.required.acks", "1", "[kafka.producer_properties] request.required.acks must"),
        ("topic.acks", "0", "[kafka.producer_properties] topic.acks must be all"),
        ("bootstrap.servers", "k:1", "[kafka.producer_properties] bootstrap.servers: use [kafka]"),
        ("transactional.id", "t", "[kafka.producer_properties] transactional.id: dead letters"),
    ],
)
def test_producer_properties_that_can_lose_dead_letters_are_refused(
    key: str, value: str, fragment: str
) -> None:
    assert fragment in config_error({"kafka": {"producer_properties": {key: value}}})


@pytest.mark.parametrize("props", [{"acks": "all"}, {"acks": "-1"}, {"enable.idempotence": False}])
def test_producer_properties_that_keep_dead_letters_are_accepted(props: dict[str, Any]) -> None:
    build_config({"kafka": {"producer_properties": props}})


def test_forbidden_properties_are_refused_when_built_directly() -> None:
    # Given code that builds the section itself, not from a file
    # Then the invariants hold all the same
    with pytest.raises(ConfigError, match=r"\[kafka.properties\] enable.auto.commit"):
        KafkaConfig(properties={"enable.auto.commit": "true"})


# --- [cluster] ---------------------------------------------------------------------------------


def test_cluster_defaults_bind_loopback() -> None:
    cluster = AppConfig().cluster
    assert cluster == ClusterConfig()
    assert cluster.bind_host == "127.0.0.1"
    assert cluster.effective_advertised_host == "127.0.0.1"
    assert cluster.key_file == "./data/cluster.key"
    assert cluster.max_frame_bytes == 64 * 1024 * 1024


def test_the_advertised_host_defaults_to_the_bind_host() -> None:
    assert ClusterConfig(bind_host="10.0.0.5").effective_advertised_host == "10.0.0.5"
    both = ClusterConfig(bind_host="0.0.0.0", advertised_host="node-1.example")
    assert both.effective_advertised_host == "node-1.example"


@pytest.mark.parametrize(
    ("values", "fragment"),
    [
        ({"bind_host": "0.0.0.0"}, "[cluster] bind_host '0.0.0.0' listens on every interface"),
        ({"bind_host": "::"}, "set [cluster] advertised_host"),
        ({"bind_host": ""}, "[cluster] bind_host must not be empty"),
        ({"advertised_host": "0.0.0.0"}, "[cluster] advertised_host '0.0.0.0' is a wildcard"),
        ({"key_file": ""}, "[cluster] key_file"),
        ({"max_frame_bytes": 1024 * 1024 - 1}, "[cluster] max_frame_bytes must be >= 1048576"),
        ({"max_frame_bytes": "64"}, "[cluster] max_frame_bytes must be an integer"),
    ],
)
def test_cluster_mistakes_are_one_line(values: dict[str, Any], fragment: str) -> None:
    assert fragment in config_error({"cluster": values})


def test_the_minimum_frame_is_accepted() -> None:
    assert build_config({"cluster": {"max_frame_bytes": 1024 * 1024}}).cluster.max_frame_bytes


def test_the_old_daemon_advertised_host_says_where_it_moved() -> None:
    message = config_error({"daemon": {"advertised_host": "10.0.0.5"}})
    assert message == "[daemon] advertised_host moved to [cluster] advertised_host"


def test_the_simulator_takes_event_time_settings_and_refuses_nonsense() -> None:
    config = build_config({"simulator": {"time_scale": 60.0, "late_ratio": 0.1, "late_max_s": 30}})
    assert (config.simulator.time_scale, config.simulator.late_ratio) == (60.0, 0.1)
    for bad in ({"time_scale": 0}, {"late_ratio": 2.0}, {"late_ratio": 0.5}):
        with pytest.raises(ConfigError, match=r"\[simulator\]"):
            build_config({"simulator": bad})
