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
    name: str
    injected: str
    figures: dict[str, Any] = field(default_factory=dict)

    def summary(self) -> str:
        figures = ", ".join(f"{k}={v}" for k, v in self.figures.items())
        return f"{self.name}: injected {self.injected}; {figures}"


ScenarioFn = Callable[[Path, EmbeddedBroker], ScenarioResult]
SCENARIOS: dict[str, ScenarioFn] = {}


def scenario(name: str) -> Callable[[ScenarioFn], ScenarioFn]:
    def register(fn: ScenarioFn) -> ScenarioFn:
        if name in SCENARIOS:
            raise ValueError(f"scenario {name!r} registered twice")
        SCENARIOS[name] = fn
        return fn

    return register
