"""Reading a Prometheus exposition in tests, and running promtool."""

from __future__ import annotations

import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

ENSURE_PROMTOOL = Path(__file__).resolve().parents[2] / "scripts" / "ensure-promtool.sh"


@dataclass(frozen=True)
class Sample:
    name: str
    labels: dict[str, str]
    value: float


class Exposition:
    """One scrape of /metrics: samples by name, help text by family."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.samples: list[Sample] = []
        self.help: dict[str, str] = {}
        self.types: dict[str, str] = {}
        for family in text_string_to_metric_families(text):
            self.help[family.name] = family.documentation
            self.types[family.name] = family.type
            for s in family.samples:
                self.samples.append(Sample(s.name, dict(s.labels), s.value))

    def select(self, name: str, **labels: object) -> list[Sample]:
        want = {k: str(v) for k, v in labels.items()}
        return [
            s
            for s in self.samples
            if s.name == name and all(s.labels.get(k) == v for k, v in want.items())
        ]

    def sum(self, name: str, **labels: object) -> float:
        return sum(s.value for s in self.select(name, **labels))

    def value(self, name: str, **labels: object) -> float | None:
        """The one sample matching, or None; fails when several match."""
        found = self.select(name, **labels)
        assert len(found) <= 1, f"{name}{labels} matches {len(found)} samples"
        return found[0].value if found else None

    def by_label(self, name: str, label: str, **labels: object) -> dict[str, float]:
        return {s.labels[label]: s.value for s in self.select(name, **labels)}


def ensure_promtool() -> str:
    """promtool's path, installed by scripts/ensure-promtool.sh when missing;
    skips the calling test, saying why, when it cannot be installed."""
    found = shutil.which("promtool")
    if found:
        return found
    result = subprocess.run(
        ["sh", str(ENSURE_PROMTOOL)], capture_output=True, text=True, timeout=600
    )
    found = shutil.which("promtool")
    if result.returncode != 0 or not found:
        reason = (result.stderr or result.stdout).strip().splitlines()[-3:]
        message = f"promtool is not available and could not be installed: {' '.join(reason)}"
        print(message)
        pytest.skip(message)
    return found


def run_promtool(
    tool: str, *args: str, stdin: str | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run([tool, *args], input=stdin, capture_output=True, text=True, timeout=60)
