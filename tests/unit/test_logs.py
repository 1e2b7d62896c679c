"""Logging: RateLimitedLog (with a fake clock) and the JSON line format."""

from __future__ import annotations

import json
import logging
import socket
import sys
from collections.abc import Iterator

import pytest

from actorsys.logs import JsonFormatter, RateLimitedLog, thespian_log_defs


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class Captured(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)

    @property
    def messages(self) -> list[str]:
        return [r.getMessage() for r in self.records]


@pytest.fixture
def captured() -> Iterator[Captured]:
    handler = Captured()
    logger = logging.getLogger("actorsys.test.ratelimit")
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)
    logger.propagate = False
    yield handler
    logger.removeHandler(handler)


def limited(clock: FakeClock, interval_s: float = 10.0) -> RateLimitedLog:
    return RateLimitedLog(logging.getLogger("actorsys.test.ratelimit"), interval_s, clock)


def test_first_event_is_logged_with_its_arguments(captured: Captured) -> None:
    # Given a fresh rate-limited log
    log = limited(FakeClock())
    # When an event is logged
    logged = log.log(logging.WARNING, "kafka:-195", "kafka: %s", "broker down")
    # Then it is emitted once, formatted, at its level
    assert logged is True
    assert captured.messages == ["kafka: broker down"]
    assert captured.records[0].levelno == logging.WARNING


def test_repeats_within_the_interval_are_suppressed_then_counted(captured: Captured) -> None:
    # Given an event logged at t=1000 (interval 10 s)
    clock = FakeClock()
    log = limited(clock)
    log.log(logging.WARNING, "k", "down")
    # When it repeats three times before t=1010
    results = []
    for t in (1001.0, 1005.0, 1009.99):
        clock.now = t
        results.append(log.log(logging.WARNING, "k", "down"))
    # Then none of them is emitted
    assert results == [False, False, False]
    assert captured.messages == ["down"]
    # When it happens again once the interval has passed
    clock.now = 1010.0
    assert log.log(logging.WARNING, "k", "down") is True
    # Then it is emitted with the number held back
    assert captured.messages == ["down", "down (3 similar suppressed)"]


def test_suppressed_count_starts_again_after_each_report(captured: Captured) -> None:
    # Given an event reported with its suppressed count
    clock = FakeClock()
    log = limited(clock)
    log.log(logging.INFO, "k", "e")
    clock.now += 1
    log.log(logging.INFO, "k", "e")
    clock.now += 10
    log.log(logging.INFO, "k", "e")
    # When it next happens after another quiet interval
    clock.now += 10
    log.log(logging.INFO, "k", "e")
    # Then no stale count is attached
    assert captured.messages == ["e", "e (1 similar suppressed)", "e"]


def test_interval_runs_from_the_last_emitted_line_not_the_last_attempt(
    captured: Captured,
) -> None:
    # Given an event repeated every second for 25 s (interval 10 s)
    clock = FakeClock()
    log = limited(clock)
    for _ in range(26):
        log.log(logging.WARNING, "k", "tick")
        clock.now += 1
    # Then it was emitted once per interval, not starved by the steady repeats
    assert captured.messages == [
        "tick",
        "tick (9 similar suppressed)",
        "tick (9 similar suppressed)",
    ]


def test_keys_are_limited_independently(captured: Captured) -> None:
    # Given one event logged under key "a"
    clock = FakeClock()
    log = limited(clock)
    log.log(logging.WARNING, "a", "A")
    # When another key logs within the interval
    # Then it is not suppressed by the first
    assert log.log(logging.WARNING, "b", "B") is True
    assert log.log(logging.WARNING, "a", "A") is False
    assert captured.messages == ["A", "B"]


def record(msg: str, *args: object, **extra: object) -> logging.LogRecord:
    rec = logging.LogRecord("actorsys.consumer", logging.ERROR, __file__, 1, msg, args, None)
    for key, value in extra.items():
        setattr(rec, key, value)
    return rec


def test_json_formatter_emits_one_object_per_line() -> None:
    # Given a record with arguments and a multi-line message
    rec = record("batch %s\nfailed", "0-10", host="node-7")
    # When it is formatted as JSON
    line = JsonFormatter().format(rec)
    # Then it is one line holding one JSON object with the fields
    assert "\n" not in line
    doc = json.loads(line)
    assert doc["level"] == "ERROR"
    assert doc["role"] == "actorsys.consumer"
    assert doc["host"] == "node-7"
    assert doc["msg"] == "batch 0-10\nfailed"
    assert doc["ts"]


def test_json_formatter_defaults_the_host_to_this_machine() -> None:
    # Given a record that did not pass the host filter
    # Then the host is this machine's name
    assert json.loads(JsonFormatter().format(record("x")))["host"] == socket.gethostname()


def test_json_formatter_keeps_the_traceback_on_the_same_line() -> None:
    # Given a record carrying an exception
    try:
        raise ValueError("boom")
    except ValueError:
        rec = record("failed")
        rec.exc_info = sys.exc_info()
    # When it is formatted
    line = JsonFormatter().format(rec)
    # Then the traceback is a field of the same one-line object
    assert "\n" not in line
    assert "ValueError: boom" in json.loads(line)["exc"]


@pytest.mark.parametrize(
    ("log_format", "key"), [("json", "()"), ("text", "format")], ids=["json", "text"]
)
def test_thespian_log_defs_pick_the_formatter_and_level(log_format: str, key: str) -> None:
    # Given a lower-case level and a format
    defs = thespian_log_defs("debug", log_format)
    # Then the handler and root level are upper case and the formatter matches
    assert defs["root"]["level"] == "DEBUG"
    assert defs["handlers"]["stderr"]["level"] == "DEBUG"
    assert key in defs["formatters"]["main"]
    if log_format == "json":
        assert defs["formatters"]["main"]["()"] == "actorsys.logs.JsonFormatter"
    # And every line goes through the host filter
    assert defs["handlers"]["stderr"]["filters"] == ["host"]
