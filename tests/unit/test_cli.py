"""The ``actorsys`` command line, driven through click's CliRunner.

``actorsys run`` never starts a daemon here: ``run_daemon`` is replaced by a
recorder, so a test that wrongly gets past configuration fails instead of
starting actors.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import click
import pytest
from click.testing import CliRunner, Result

import actorsys.cli.join
import actorsys.daemon
from actorsys import __version__
from actorsys.cli import main
from actorsys.config import AppConfig, ClusterConfig
from actorsys.member import MemberSettings
from actorsys.secrets import Secret


def command_paths(group: click.Group, prefix: tuple[str, ...] = ()) -> Iterator[tuple[str, ...]]:
    """Every subcommand of ``group``, nested groups included, as argument lists."""
    for name, command in sorted(group.commands.items()):
        yield (*prefix, name)
        if isinstance(command, click.Group):
            yield from command_paths(command, (*prefix, name))


COMMANDS = list(command_paths(main))


@pytest.fixture
def daemon_calls(monkeypatch: pytest.MonkeyPatch) -> list[AppConfig]:
    """Replaces run_daemon: records the configuration it would have run, exits 0."""
    calls: list[AppConfig] = []

    def fake_run_daemon(config: AppConfig) -> int:
        calls.append(config)
        return 0

    monkeypatch.setattr(actorsys.daemon, "run_daemon", fake_run_daemon)
    return calls


def invoke(*args: str) -> Result:
    return CliRunner().invoke(main, list(args), prog_name="actorsys")


def assert_one_line_error(result: Result, prefix: str) -> str:
    """Exit 2, nothing on stdout, one line on stderr starting with ``prefix``, no traceback."""
    assert result.exit_code == 2, result.output
    assert isinstance(result.exception, SystemExit), result.exception
    assert result.stdout == ""
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith(prefix), lines[0]
    assert "Traceback" not in result.stderr
    return lines[0]


# --- help -----------------------------------------------------------------------------------


@pytest.mark.parametrize("flag", ["--help", "-h"])
def test_group_help_lists_every_command(flag: str) -> None:
    # When `actorsys --help` runs
    result = invoke(flag)
    # Then it succeeds and names every subcommand
    assert result.exit_code == 0, result.output
    assert result.stdout.startswith("Usage: actorsys [OPTIONS] COMMAND")
    for name in main.commands:
        assert name in result.stdout


def test_discovery_finds_the_commands() -> None:
    # Given the group's commands (iterated, so a new one is covered automatically)
    # Then the known ones are among them
    assert {("run",), ("broker",), ("simulate",)} <= set(COMMANDS)


@pytest.mark.parametrize("path", COMMANDS, ids=" ".join)
def test_every_subcommand_has_help(path: tuple[str, ...]) -> None:
    # When `actorsys <command> --help` runs
    result = invoke(*path, "--help")
    # Then it succeeds with that command's usage, on stdout only
    assert result.exit_code == 0, result.output
    assert result.stdout.startswith(f"Usage: actorsys {' '.join(path)} ")
    assert result.stderr == ""


def test_version() -> None:
    result = invoke("--version")
    assert result.exit_code == 0
    assert result.stdout.strip() == f"actorsys, version {__version__}"


def test_no_arguments_prints_the_help_not_an_error() -> None:
    # When `actorsys` runs alone
    result = invoke()
    # Then it shows the help (click >= 8.2 exits 2 here) and no error line
    assert result.exit_code in (0, 2)
    assert "Commands:" in result.output
    assert "Error" not in result.output


# --- run: configuration errors -------------------------------------------------------------


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        ("[kafka]\nbogus = 1\n", "[kafka] unknown key 'bogus'"),
        ("[nosuch]\nx = 1\n", "unknown section [nosuch]"),
        ('[batching]\nmax_records = "5000"\n', "[batching] max_records must be an integer"),
        ("[batching]\nmax_records = true\n", "[batching] max_records must be an integer"),
        ("[daemon]\nadmin_port = 1900.0\n", "[daemon] admin_port must be an integer"),
        ("[kafka]\ntopics = [1, 2]\n", "[kafka] topics must be a list of strings"),
        ("[kafka\n", "is not valid TOML"),
        ("a = = 1\n", "is not valid TOML"),
        ("[workers]\ncount = -1\n", "[workers] count must be >= 0"),
    ],
    ids=[
        "unknown-key",
        "unknown-section",
        "string-for-int",
        "bool-for-int",
        "float-for-int",
        "list-of-non-strings",
        "invalid-toml-header",
        "invalid-toml-value",
        "impossible-value",
    ],
)
def test_run_with_a_bad_config_prints_one_line_and_exits_2(
    tmp_path: Path, daemon_calls: list[AppConfig], content: str, expected: str
) -> None:
    # Given a configuration file with one mistake
    path = tmp_path / "bad.toml"
    path.write_text(content)
    # When `actorsys run -c` is given it
    result = invoke("run", "-c", str(path))
    # Then one line names the mistake, the exit code is 2, and no daemon starts
    line = assert_one_line_error(result, "actorsys: configuration error:")
    assert expected in line
    assert daemon_calls == []


def test_run_with_a_missing_config_file_prints_one_line(
    tmp_path: Path, daemon_calls: list[AppConfig]
) -> None:
    result = invoke("run", "--config", str(tmp_path / "missing.toml"))
    line = assert_one_line_error(result, "actorsys: configuration error:")
    assert "missing.toml" in line and "does not exist" in line
    assert daemon_calls == []


def test_run_with_a_non_utf8_config_file_prints_one_line(
    tmp_path: Path, daemon_calls: list[AppConfig]
) -> None:
    # Given a Latin-1 file (it used to end in a UnicodeDecodeError traceback)
    path = tmp_path / "latin.toml"
    path.write_bytes('[kafka]\ngroup_id = "caf\u00e9"\n'.encode("latin-1"))
    result = invoke("run", "-c", str(path))
    assert_one_line_error(result, "actorsys: configuration error:")
    assert daemon_calls == []


def test_run_with_a_bad_flag_value_is_a_configuration_error(daemon_calls: list[AppConfig]) -> None:
    # Given a flag whose value the configuration rejects
    result = invoke("run", "--job-store", "mysql://db")
    # Then it is reported like a mistake in the file
    line = assert_one_line_error(result, "actorsys: configuration error:")
    assert "[jobs] store" in line
    assert daemon_calls == []


# --- run: usage errors ---------------------------------------------------------------------


@pytest.mark.parametrize("value", ["foo", "=bar", " =bar"])
def test_run_with_a_kafka_property_without_a_key_prints_one_line(
    daemon_calls: list[AppConfig], value: str
) -> None:
    # When -X is not KEY=VALUE
    result = invoke("run", "-X", value)
    # Then one usage line says so and exits 2
    line = assert_one_line_error(result, "Error: actorsys run:")
    assert "KEY=VALUE" in line
    assert "--help" in line
    assert daemon_calls == []


@pytest.mark.parametrize(
    "args",
    [
        ("run", "--bogus"),
        ("run", "--admin-port", "0"),
        ("run", "--workers", "many"),
        ("run", "--log-format", "xml"),
        ("run", "-c", "."),  # a directory
        ("run", "extra-argument"),
    ],
    ids=" ".join,
)
def test_run_usage_errors_are_one_line(
    daemon_calls: list[AppConfig], args: tuple[str, ...]
) -> None:
    # When `actorsys run` gets an option it cannot parse
    result = invoke(*args)
    # Then click's usage error is one line, not usage + hint + error
    assert_one_line_error(result, "Error: actorsys run:")
    assert daemon_calls == []


@pytest.mark.parametrize(
    ("args", "what"),
    [(("nosuch",), "No such command"), (("--bogus",), "No such option"), (("--",), "Missing")],
    ids=["unknown-command", "unknown-option", "missing-command"],
)
def test_group_usage_errors_are_one_line(args: tuple[str, ...], what: str) -> None:
    # When `actorsys` itself is misused
    result = invoke(*args)
    # Then the error is one line too
    line = assert_one_line_error(result, "Error: actorsys:")
    assert what in line


@pytest.mark.parametrize("path", COMMANDS, ids=" ".join)
def test_unknown_option_is_one_line_for_every_subcommand(path: tuple[str, ...]) -> None:
    # When any subcommand gets an option it does not have
    result = invoke(*path, "--no-such-option")
    # Then the error is one line naming that command
    assert_one_line_error(result, f"Error: actorsys {' '.join(path)}:")


# --- run: flags reach the configuration ----------------------------------------------------


def test_run_flags_override_the_file(tmp_path: Path, daemon_calls: list[AppConfig]) -> None:
    # Given a configuration file with a group, a property and a worker count
    path = tmp_path / "ok.toml"
    path.write_text(
        '[kafka]\ngroup_id = "from-file"\n'
        'properties = { "client.id" = "file", "fetch.max.bytes" = 1048576 }\n'
        "[workers]\ncount = 3\n"
    )
    # When run with flags that override some of it
    result = invoke(
        "run",
        "-c",
        str(path),
        "--group-id",
        "from-flag",
        "--topic",
        "a",
        "--topic",
        "b",
        "-X",
        "client.id=flag",
        "-X",
        "client.rack=",
        "--admin-port",
        "1999",
        "--log-format",
        "json",
    )
    # Then the daemon runs with the file, overridden by the flags
    assert result.exit_code == 0, result.output
    (config,) = daemon_calls
    assert config.kafka.group_id == "from-flag"
    assert config.kafka.topics == ("a", "b")
    assert config.kafka.properties == {
        "client.id": "flag",
        "fetch.max.bytes": "1048576",
        "client.rack": "",
    }
    assert config.workers.count == 3
    assert config.daemon.admin_port == 1999
    assert config.daemon.log_format == "json"


def test_run_without_a_file_uses_the_defaults(daemon_calls: list[AppConfig]) -> None:
    # When run with no configuration and no flags
    result = invoke("run")
    # Then the daemon gets the defaults
    assert result.exit_code == 0, result.output
    assert daemon_calls == [AppConfig()]


# --- run: no secret on the command line, no invariant switched off -------------------------


@pytest.mark.parametrize(
    "key", ["sasl.password", "ssl.key.password", "sasl.oauthbearer.client.secret", "ssl.key.pem"]
)
def test_run_refuses_a_secret_on_the_command_line(daemon_calls: list[AppConfig], key: str) -> None:
    # When a secret is given with -X (every user of the machine sees argv)
    result = invoke("run", "-X", f"{key}=hunter2")
    # Then one line says where it belongs, without repeating it, and nothing starts
    line = assert_one_line_error(result, "actorsys: configuration error:")
    assert line == (
        f"actorsys: configuration error: -X {key}: secrets must not be given on the command"
        ' line (ps shows them); set it in [kafka.properties] as { env = "NAME" } or'
        ' { file = "/path" }'
    )
    assert "hunter2" not in result.output
    assert daemon_calls == []


def test_run_refuses_a_job_store_password_on_the_command_line(
    daemon_calls: list[AppConfig],
) -> None:
    result = invoke("run", "--job-store", "postgresql://u:hunter2@h/db")
    line = assert_one_line_error(result, "actorsys: configuration error: --job-store:")
    assert "ps shows it" in line and "{ env = " in line
    assert "hunter2" not in result.output
    assert daemon_calls == []


def test_run_accepts_a_job_store_without_a_password(daemon_calls: list[AppConfig]) -> None:
    result = invoke("run", "--job-store", "postgresql://u@h/db")
    assert result.exit_code == 0, result.output
    assert daemon_calls[0].jobs.store == "postgresql://u@h/db"


@pytest.mark.parametrize(
    ("prop", "fragment"),
    [
        ("enable.auto.commit=true", "[kafka.properties] enable.auto.commit: actorsys commits"),
        ("enable.auto.offset.store=true", "[kafka.properties] enable.auto.offset.store:"),
        ("group.id=other", "[kafka.properties] group.id: use [kafka] group_id instead"),
        ("session.timeout.ms=45000", "[kafka.properties] session.timeout.ms: use [kafka]"),
        ("no.such.property=1", "kafka property no.such.property (consumer): No such configuration"),
        ("fetch.max.bytes=lots", "kafka property fetch.max.bytes (consumer): Invalid value"),
    ],
)
def test_run_refuses_a_bad_kafka_property_before_starting(
    daemon_calls: list[AppConfig], prop: str, fragment: str
) -> None:
    # When -X gives a property that voids an invariant, does not exist, or has a bad value
    result = invoke("run", "-X", prop)
    # Then one line names it, exit 2, and no process starts
    line = assert_one_line_error(result, "actorsys: configuration error:")
    assert fragment in line
    assert daemon_calls == []


def test_run_refuses_a_bad_kafka_property_in_the_file(
    tmp_path: Path, daemon_calls: list[AppConfig]
) -> None:
    path = tmp_path / "bad.toml"
    path.write_text('[kafka.properties]\n"fetch.max.byte" = 1\n')
    line = assert_one_line_error(invoke("run", "-c", str(path)), "actorsys: configuration error:")
    assert "fetch.max.byte" in line
    assert daemon_calls == []


def test_run_takes_secrets_from_the_environment(
    tmp_path: Path, daemon_calls: list[AppConfig], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ACTORSYS_TEST_SASL", "hunter2")
    path = tmp_path / "ok.toml"
    path.write_text(
        '[kafka.properties]\n"security.protocol" = "SASL_PLAINTEXT"\n'
        '"sasl.mechanism" = "PLAIN"\n"sasl.username" = "u"\n'
        '"sasl.password" = { env = "ACTORSYS_TEST_SASL" }\n'
    )
    result = invoke("run", "-c", str(path))
    assert result.exit_code == 0, result.output
    (config,) = daemon_calls
    assert config.kafka.properties["sasl.password"] == Secret(
        "kafka.properties.sasl.password", "hunter2"
    )


def test_run_with_the_old_daemon_advertised_host_says_where_it_moved(
    tmp_path: Path, daemon_calls: list[AppConfig]
) -> None:
    path = tmp_path / "old.toml"
    path.write_text('[daemon]\nadvertised_host = "10.0.0.5"\n')
    line = assert_one_line_error(invoke("run", "-c", str(path)), "actorsys: configuration error:")
    assert line.endswith("[daemon] advertised_host moved to [cluster] advertised_host")
    assert daemon_calls == []


def test_run_cluster_flags_override_the_file(tmp_path: Path, daemon_calls: list[AppConfig]) -> None:
    path = tmp_path / "c.toml"
    path.write_text('[cluster]\nbind_host = "10.0.0.5"\nkey_file = "/etc/a.key"\n')
    result = invoke("run", "-c", str(path), "--bind-host", "0.0.0.0", "--advertised-host", "node-1")
    assert result.exit_code == 0, result.output
    (config,) = daemon_calls
    assert config.cluster.bind_host == "0.0.0.0"
    assert config.cluster.effective_advertised_host == "node-1"
    assert config.cluster.key_file == "/etc/a.key"


def test_run_with_a_wildcard_bind_host_alone_is_one_line(daemon_calls: list[AppConfig]) -> None:
    line = assert_one_line_error(
        invoke("run", "--bind-host", "0.0.0.0"), "actorsys: configuration error:"
    )
    assert "[cluster] advertised_host" in line
    assert daemon_calls == []


# --- join: this host's own configuration ---------------------------------------------------


@pytest.fixture
def member_calls(monkeypatch: pytest.MonkeyPatch) -> list[MemberSettings]:
    """Replaces run_member: records the settings it would have run with, exits 0."""
    calls: list[MemberSettings] = []

    def fake_run_member(settings: MemberSettings) -> int:
        calls.append(settings)
        return 0

    monkeypatch.setattr(actorsys.cli.join, "run_member", fake_run_member)
    return calls


def test_join_takes_this_hosts_config_and_cluster_flags(
    tmp_path: Path, member_calls: list[MemberSettings], monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given this host's file with its own secret and [cluster] section
    monkeypatch.setenv("ACTORSYS_TEST_SASL", "hunter2")
    path = tmp_path / "worker.toml"
    path.write_text(
        '[cluster]\nbind_host = "10.0.0.7"\nkey_file = "/etc/k"\n'
        '[kafka.properties]\n"sasl.password" = { env = "ACTORSYS_TEST_SASL" }\n'
    )
    # When the host joins with a flag overriding one key
    result = invoke(
        "join", "--convention", "10.0.0.5:1900", "-c", str(path), "--key-file", "/etc/other"
    )
    # Then the member runs with that configuration
    assert result.exit_code == 0, result.output
    (settings,) = member_calls
    cluster = settings.config.cluster
    assert (cluster.bind_host, cluster.key_file) == ("10.0.0.7", "/etc/other")
    assert settings.config.kafka.properties["sasl.password"] == Secret(
        "kafka.properties.sasl.password", "hunter2"
    )


def test_join_without_a_config_uses_the_defaults(member_calls: list[MemberSettings]) -> None:
    result = invoke("join", "--convention", "10.0.0.5:1900", "--bind-host", "10.0.0.8")
    assert result.exit_code == 0, result.output
    assert member_calls[0].config.cluster == ClusterConfig(bind_host="10.0.0.8")


@pytest.mark.parametrize(
    ("content", "args", "fragment"),
    [
        ('[daemon]\nadvertised_host = "x"\n', (), "moved to [cluster] advertised_host"),
        ('[kafka.properties]\n"no.such" = 1\n', (), "kafka property no.such"),
        ("", ("--bind-host", "0.0.0.0"), "[cluster] bind_host '0.0.0.0'"),
        ('[kafka.properties]\n"sasl.password" = { env = "ACTORSYS_TEST_UNSET" }\n', (), "not set"),
    ],
    ids=["moved-key", "bad-property", "wildcard", "unset-env"],
)
def test_join_configuration_errors_are_one_line(
    tmp_path: Path,
    member_calls: list[MemberSettings],
    monkeypatch: pytest.MonkeyPatch,
    content: str,
    args: tuple[str, ...],
    fragment: str,
) -> None:
    monkeypatch.delenv("ACTORSYS_TEST_UNSET", raising=False)
    path = tmp_path / "worker.toml"
    path.write_text(content)
    result = invoke("join", "--convention", "10.0.0.5:1900", "-c", str(path), *args)
    line = assert_one_line_error(result, "actorsys: configuration error:")
    assert fragment in line
    assert member_calls == []


# --- jobs: no password on the command line ---------------------------------------------------


def test_jobs_refuses_a_job_store_password_on_the_command_line() -> None:
    result = invoke("jobs", "list", "--job-store", "postgresql://u:hunter2@h/db")
    line = assert_one_line_error(result, "actorsys: configuration error: --job-store:")
    assert "hunter2" not in line


def test_status_shows_each_topics_retention_headroom_and_a_hold() -> None:
    from actorsys.cli.status import _retention
    from actorsys.status import JobManagerStatus, StatusDocument

    manager = {
        "retention_hold": True,
        "retention": [
            {"topic": "iot", "oldest_job_age_s": 2800.0, "retention_s": 3600.0,
             "headroom_s": 800.0},
            {"topic": "raw", "oldest_job_age_s": 5.0, "retention_s": None, "headroom_s": None},
        ],
    }  # fmt: skip
    # (as the daemon's /status document carries it, read back typed)
    typed = StatusDocument.from_json({"job_manager": manager}).job_manager()
    assert _retention(typed) == (
        "iot oldest job 2800s, headroom 800s of 3600s; "
        "raw oldest job 5s (retention unlimited)   NEW BATCHES HELD BACK"
    )
    assert _retention(JobManagerStatus()) == "-"
