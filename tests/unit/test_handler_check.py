"""The daemon checks its handler at start-up in a fresh interpreter (so that it
imports nothing heavy itself), and a bad one is still one clear line."""

from __future__ import annotations

from pathlib import Path

import pytest

from actorsys.config import AppConfig, OutputConfig
from actorsys.daemon import Daemon, handler_problem
from actorsys.errors import ConfigError


def test_a_bad_reference_or_bad_options_are_named() -> None:
    assert "must look like" in (handler_problem("nope", "/tmp", ("t",), {}) or "")
    assert "cannot import" in (handler_problem("no_such_module:f", "/tmp", ("t",), {}) or "")
    problem = handler_problem("actorsys.handlers.iot_delta:IotDeltaHandler", "/tmp", ("t",),
                              {"bogus": 1})  # fmt: skip
    assert problem is not None and "unknown key" in problem
    assert (
        handler_problem("actorsys.handlers.iot_delta:IotDeltaHandler", "/tmp", ("t",), {}) is None
    )


def test_the_daemon_refuses_a_bad_handler_in_one_line(tmp_path: Path) -> None:
    config = AppConfig(output=OutputConfig(dir=str(tmp_path), options={"max_record_bytes": -1}))
    with pytest.raises(ConfigError, match="max_record_bytes must be a positive integer"):
        Daemon(config)._check_handler()


def test_a_good_handler_passes(tmp_path: Path) -> None:
    Daemon(AppConfig(output=OutputConfig(dir=str(tmp_path))))._check_handler()
