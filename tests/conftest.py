"""Fixtures shared by the whole suite.

- ``broker``: one embedded Tansu broker for the test session (started on a
  free port, stopped — and its process gone — at the end).
- ``topic``: a fresh topic name per test, so tests never see each other's data.
- ``is_valid_reading``: the simulator's record contract, as a predicate.
- ``promtool``: Prometheus's checker, installed once per session if missing.
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Callable, Iterator
from typing import Protocol

import pytest

from actorsys.embedded_broker import EmbeddedBroker


@pytest.fixture(scope="session")
def broker() -> Iterator[EmbeddedBroker]:
    embedded = EmbeddedBroker(port=0)
    embedded.start()
    try:
        yield embedded
    finally:
        embedded.stop()


def unique_topic(request: pytest.FixtureRequest) -> str:
    """A topic name unique to this test and this run, readable in broker logs."""
    name = re.sub(r"[^A-Za-z0-9._-]+", "-", request.node.name).strip("-")[:80]
    return f"t-{name}-{uuid.uuid4().hex[:8]}"


@pytest.fixture
def topic(request: pytest.FixtureRequest) -> str:
    return unique_topic(request)


READING_TYPES: dict[str, tuple[type, ...]] = {
    "device_id": (str,),
    "ts": (int,),
    "temperature": (float, int),
    "humidity": (float, int),
    "battery": (float, int),
}


def _is_valid_reading(value: bytes | None) -> bool:
    """True when ``value`` is a well-formed simulator reading (the record contract)."""
    if value is None:
        return False
    try:
        reading = json.loads(value)
    except ValueError:  # includes UnicodeDecodeError
        return False
    if not isinstance(reading, dict) or set(reading) != set(READING_TYPES):
        return False
    # bool is an int subclass in Python but not a number in this contract.
    return all(
        isinstance(reading[name], types) and not isinstance(reading[name], bool)
        for name, types in READING_TYPES.items()
    )


@pytest.fixture
def is_valid_reading() -> Callable[[bytes | None], bool]:
    return _is_valid_reading


@pytest.fixture(scope="session")
def promtool() -> str:
    """Path of Prometheus's `promtool`, installed on first use when missing
    (scripts/ensure-promtool.sh); tests using it skip, saying why, if it cannot be."""
    from tests.support.prom import ensure_promtool

    return ensure_promtool()


class _Stoppable(Protocol):
    def cleanup(self) -> None: ...


@pytest.fixture
def daemons() -> Iterator[list[_Stoppable]]:
    """Daemons and worker hosts a test starts; whatever happens, each is
    stopped (and its whole actor system ended) afterwards, newest first."""
    started: list[_Stoppable] = []
    try:
        yield started
    finally:
        for process in reversed(started):
            process.cleanup()
