#!/usr/bin/env python3
"""Summarise the actor profiles of one run (``ACTORSYS_PROFILE_DIR``).

Each actor process writes ``<role>-<pid>.prof`` (cProfile, CPU time) there.
Per role this prints the CPU seconds the profile saw, the messages handled by
type (the ``receiveMsg_*`` calls), the ``send`` calls, and how the CPU splits
between the handlers and the rest (Thespian's transport and loop). With
``--jobs N`` every figure is also given per job: the JobManager's cost per job
is its messages per job times its cost per message, which is how the job-size
comparison of ``scripts/bench.py --job-sizes`` is read.

    ACTORSYS_PROFILE_DIR=/tmp/prof scripts/bench.py --job-sizes 50000 ...
    scripts/actor_profile.py /tmp/prof --role job_manager --jobs 22

cProfile slows the process down (every call is timed): compare profiles with
each other, never with the figures of an unprofiled run.
"""

from __future__ import annotations

import argparse
import pstats
import sys
from collections import Counter
from pathlib import Path


def summarise(path: Path) -> dict[str, object]:
    stats = pstats.Stats(str(path))
    entries = stats.stats  # type: ignore[attr-defined]  # pstats keeps it untyped
    total = 0.0
    handled: Counter[str] = Counter()
    handler_s = 0.0
    sends = 0
    for (file, _line, function), (_cc, calls, own_s, cumulative_s, _callers) in entries.items():
        total += own_s
        if function.startswith("receiveMsg_"):
            handled[function.removeprefix("receiveMsg_")] += calls
        elif function == "receiveMessage" and file.endswith("actors/base.py"):
            handler_s = cumulative_s  # every handler runs under the base's receiveMessage
        elif function == "send" and file.endswith("thespian/actors.py"):
            sends += calls
    return {"cpu_s": total, "handled": handled, "handler_s": handler_s, "sends": sends}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("directory", type=Path, help="the ACTORSYS_PROFILE_DIR of the run")
    parser.add_argument("--role", default="", help="only this role (e.g. job_manager)")
    parser.add_argument("--jobs", type=int, default=0, help="jobs of the run: per-job figures")
    args = parser.parse_args(argv)
    files = sorted(args.directory.glob(f"{args.role or '*'}-*.prof"))
    if not files:
        print(f"error: no {args.role or 'actor'} profile in {args.directory}", file=sys.stderr)
        return 2
    for path in files:
        doc = summarise(path)
        handled: Counter[str] = doc["handled"]  # type: ignore[assignment]
        messages = sum(handled.values())
        cpu_s, handler_s = float(doc["cpu_s"]), float(doc["handler_s"])  # type: ignore[arg-type]
        sends = int(doc["sends"])  # type: ignore[call-overload]
        per = f", {messages / args.jobs:.2f} per job" if args.jobs else ""
        print(f"{path.stem}: {cpu_s:.3f} CPU s; {messages} messages handled{per}; {sends} sent")
        print(
            f"  handlers {handler_s:.3f} s, the rest (transport, loop) {cpu_s - handler_s:.3f} s"
            + (f"; {cpu_s * 1000 / messages:.2f} ms per message handled" if messages else "")
        )
        for name, calls in handled.most_common():
            share = f" ({calls / args.jobs:.2f}/job)" if args.jobs else ""
            print(f"  {name:28}{calls:>8}{share}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
