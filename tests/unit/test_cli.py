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

import actorsys.daemon
from actorsys import __version__
from actorsys.cli import main
from actorsys.config import AppConfig


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
        '[kafka]\ngroup_id = "from-file"\nproperties = { "client.id" = "file", "a" = 1 }\n'
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
        "empty=",
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
    assert config.kafka.properties == {"client.id": "flag", "a": "1", "empty": ""}
    assert config.workers.count == 3
    assert config.daemon.admin_port == 1999
    assert config.daemon.log_format == "json"


def test_run_without_a_file_uses_the_defaults(daemon_calls: list[AppConfig]) -> None:
    # When run with no configuration and no flags
    result = invoke("run")
    # Then the daemon gets the defaults
    assert result.exit_code == 0, result.output
    assert daemon_calls == [AppConfig()]
