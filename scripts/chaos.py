#!/usr/bin/env python3
"""Run one fault-injection scenario by hand, as the tests do.

    .venv/bin/python scripts/chaos.py --list
    .venv/bin/python scripts/chaos.py overload [--workdir DIR]

Starts an embedded broker of its own, runs the scenario (real daemons, the
fault injected for real, the exactly-once output check), prints its figures
and exits 0, or prints what failed and exits 1. Daemon logs, configs, the job
store and the Parquet output stay in the work directory (a fresh temporary
one unless --workdir is given). Scenarios live in tests/support/scenarios/.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
import tempfile
import time
import traceback
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[1]
SCENARIO_PACKAGE = "tests.support.scenarios"


def _load_scenarios() -> dict[str, Any]:
    """Import the scenarios (which registers them) and return the registry."""
    # The scenarios and the handlers they configure live under tests/: make them
    # importable here and in every daemon (and actor) process started from here.
    sys.path.insert(0, str(REPO_ROOT))
    from tests.support.process import repo_pythonpath

    os.environ["PYTHONPATH"] = repo_pythonpath()
    importlib.import_module(SCENARIO_PACKAGE)
    from tests.support.scenario import SCENARIOS

    return dict(SCENARIOS)


def _describe(fn: object) -> str:
    """The first sentence of a scenario's docstring, on one line."""
    doc = " ".join((getattr(fn, "__doc__", None) or "").replace("``", "").split())
    return doc.split(". ")[0].rstrip(".")


def main(argv: list[str] | None = None) -> int:
    scenarios = _load_scenarios()
    parser = argparse.ArgumentParser(
        prog="chaos.py",
        description="Run one actorsys fault-injection scenario against an embedded broker.",
    )
    parser.add_argument("scenario", nargs="?", help="the scenario to run (see --list)")
    parser.add_argument("--list", action="store_true", help="list the scenarios and exit")
    parser.add_argument(
        "--workdir",
        type=Path,
        help="where daemon logs, configs, job store and output go (default: a new temp dir)",
    )
    args = parser.parse_args(argv)
    if args.list:
        width = max(len(name) for name in scenarios)
        for name, fn in sorted(scenarios.items()):
            print(f"{name:<{width}}  {_describe(fn)}")
        return 0
    if not args.scenario:
        parser.error("name a scenario, or use --list")
    if args.scenario not in scenarios:
        parser.error(f"unknown scenario {args.scenario!r}; known: {', '.join(sorted(scenarios))}")

    from actorsys.embedded_broker import EmbeddedBroker

    workdir = args.workdir or Path(tempfile.mkdtemp(prefix=f"actorsys-chaos-{args.scenario}-"))
    workdir.mkdir(parents=True, exist_ok=True)
    print(f"scenario {args.scenario}: work directory {workdir}", flush=True)
    started = time.monotonic()
    try:
        with EmbeddedBroker() as broker:
            result = scenarios[args.scenario](workdir, broker)
    except AssertionError as exc:
        print(f"FAILED after {time.monotonic() - started:.0f} s: {exc}", file=sys.stderr)
        return 1
    except Exception:
        traceback.print_exc()
        print(f"ERROR after {time.monotonic() - started:.0f} s", file=sys.stderr)
        return 1
    print(result.summary())
    print(f"passed in {time.monotonic() - started:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
