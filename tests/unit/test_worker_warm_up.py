"""The worker's call of a handler's optional warm_up(): called once if present,
and a failing one is logged, never fatal (the first job speaks for itself)."""

from __future__ import annotations

import logging

import pytest

from actorsys.actors.worker import _warm_up
from actorsys.handlers.api import DeadLetterSink, HandlerResult, JobInput


class _Plain:
    def handle(self, job: JobInput, dead_letters: DeadLetterSink) -> HandlerResult:
        raise AssertionError("not called here")


class _Warming(_Plain):
    def __init__(self, fail: bool = False) -> None:
        self.calls = 0
        self.fail = fail

    def warm_up(self) -> None:
        self.calls += 1
        if self.fail:
            raise OSError("no cache directory")


def test_a_handler_without_warm_up_is_left_alone() -> None:
    _warm_up(_Plain(), "worker-1")


def test_warm_up_is_called_once() -> None:
    handler = _Warming()
    _warm_up(handler, "worker-1")
    assert handler.calls == 1


def test_a_failing_warm_up_is_logged_with_the_worker_and_the_error(
    caplog: pytest.LogCaptureFixture,
) -> None:
    handler = _Warming(fail=True)
    with caplog.at_level(logging.WARNING):
        _warm_up(handler, "worker-2")
    assert handler.calls == 1
    assert "worker-2: handler warm_up() failed: OSError: no cache directory" in caplog.text
