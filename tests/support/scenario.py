"""Fault scenarios, shared by the tests and `scripts/chaos.py SCENARIO`.

A scenario is a function ``run(workdir: Path, broker: EmbeddedBroker) ->
ScenarioResult`` registered with ``@scenario("name")``. It drives a real
daemon against the real broker, injects its fault, waits for the backlog to
drain, and runs the exactly-once output check; the figures it returns (records
in and out, peak RSS, drain and shutdown times) go into test output and the
issue notes. Tests call it and assert on the result; operators run it by hand.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from actorsys.embedded_broker import EmbeddedBroker


@dataclass
class ScenarioResult:
    """What a scenario did (``injected``: the fault, in words) and its figures."""

    name: str
    injected: str
    figures: dict[str, Any] = field(default_factory=dict)

    def summary(self) -> str:
        figures = ", ".join(f"{k}={v}" for k, v in self.figures.items())
        return f"{self.name}: injected {self.injected}; {figures}"


ScenarioFn = Callable[[Path, EmbeddedBroker], ScenarioResult]
SCENARIOS: dict[str, ScenarioFn] = {}


def scenario(name: str) -> Callable[[ScenarioFn], ScenarioFn]:
    """Register the decorated function as scenario ``name`` (once: a second
    scenario of the same name would silently replace the first)."""

    def register(fn: ScenarioFn) -> ScenarioFn:
        if name in SCENARIOS:
            raise ValueError(f"scenario {name!r} registered twice")
        SCENARIOS[name] = fn
        return fn

    return register


def run_scenario(name: str, workdir: Path, broker: EmbeddedBroker) -> ScenarioResult:
    """Run scenario ``name`` and print its summary (a test shows it with ``-s``
    or ``-rA``); the scenario asserts its own promises."""
    result = SCENARIOS[name](workdir, broker)
    print(result.summary())
    return result
