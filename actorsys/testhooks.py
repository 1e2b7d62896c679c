"""Fault-injection hooks for tests and `scripts/chaos.py`, off by default.

Set in the daemon's environment (actor processes inherit it):

* ``ACTORSYS_CHAOS_DROP_ACK`` — share (0..1) of BatchAcks a Consumer drops;
* ``ACTORSYS_CHAOS_DUP_BATCH`` — share of batches a Consumer sends twice;
* ``ACTORSYS_CHAOS_SEED`` — seed, for repeatable runs.

They exercise the guaranteed-delivery protocol with lost and duplicated
actor messages. And, for a fault to strike in the middle of a compaction
(a kill -9, a full disk) rather than by luck of timing:

* ``ACTORSYS_CHAOS_COMPACTION_DELAY_S`` — every compaction pauses this long
  (seconds; unset or 0: no pause) at one stage of its work;
* ``ACTORSYS_CHAOS_COMPACTION_STAGE`` — which: ``written`` (the default:
  every file written, before the worker hands them to the committers) or
  ``start`` (inputs listed, nothing written yet);
* ``ACTORSYS_CHAOS_DIR`` — where a pausing compaction reports: it creates
  ``compaction-j<job>-a<attempt>-<stage>.json`` (job, attempt, stage, pid and
  the files written so far, per table, relative to the table's root) as the
  pause begins. The pause ends early once that file is deleted, and no
  compaction pauses while a file ``resume`` exists there.

And, to see where an actor's CPU goes:

* ``ACTORSYS_PROFILE_DIR`` — every actor process runs under cProfile (CPU
  time) and writes ``<role>-<pid>.prof`` there (``python -m pstats`` reads
  it) as it stops, and every 10 s before that.

Production never sets them.
"""

from __future__ import annotations

import cProfile
import json
import os
import random
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

COMPACTION_STAGES = ("start", "written")


def _ratio(name: str) -> float:
    raw = os.environ.get(name, "")
    try:
        value = float(raw) if raw else 0.0
    except ValueError:
        return 0.0
    return min(max(value, 0.0), 1.0)


@dataclass
class ChaosHooks:
    drop_ack_ratio: float = 0.0
    duplicate_batch_ratio: float = 0.0
    rng: random.Random = field(default_factory=random.Random)

    @classmethod
    def from_environment(cls) -> ChaosHooks:
        seed = os.environ.get("ACTORSYS_CHAOS_SEED")
        return cls(
            drop_ack_ratio=_ratio("ACTORSYS_CHAOS_DROP_ACK"),
            duplicate_batch_ratio=_ratio("ACTORSYS_CHAOS_DUP_BATCH"),
            rng=random.Random(int(seed) if seed and seed.isdigit() else None),
        )

    def drop_ack(self) -> bool:
        return self.drop_ack_ratio > 0 and self.rng.random() < self.drop_ack_ratio

    def duplicate_batch(self) -> bool:
        return self.duplicate_batch_ratio > 0 and self.rng.random() < self.duplicate_batch_ratio


def compaction_pause(
    stage: str, job_id: int, attempt: int, files: Mapping[str, Sequence[str]]
) -> None:
    """Where a compaction reaches ``stage`` (one of ``COMPACTION_STAGES``):
    pause there if the environment asks for it (see the module docstring).
    ``files`` are what it has written so far, per table."""
    try:
        delay_s = float(os.environ.get("ACTORSYS_CHAOS_COMPACTION_DELAY_S", "") or 0.0)
    except ValueError:
        return
    wanted = os.environ.get("ACTORSYS_CHAOS_COMPACTION_STAGE", "") or "written"
    if delay_s <= 0 or stage != wanted:
        return
    directory = os.environ.get("ACTORSYS_CHAOS_DIR", "")
    marker = None
    if directory:
        if (Path(directory) / "resume").exists():
            return
        marker = Path(directory) / f"compaction-j{job_id}-a{attempt}-{stage}.json"
        report = {
            "job_id": job_id,
            "attempt": attempt,
            "stage": stage,
            "pid": os.getpid(),
            "files": {table: list(paths) for table, paths in files.items()},
        }
        partial = marker.with_name(f".{marker.name}.partial")
        partial.write_text(json.dumps(report))
        partial.replace(marker)  # whole or absent, for the test that waits for it
    deadline = time.monotonic() + delay_s
    while time.monotonic() < deadline and (marker is None or marker.exists()):
        time.sleep(0.05)


class ActorProfiler:
    """cProfile over one actor process, if ``ACTORSYS_PROFILE_DIR`` asks for it."""

    def __init__(self, role: str, directory: str) -> None:
        self._path = Path(directory) / f"{role}-{os.getpid()}.prof"
        self._profile = cProfile.Profile(time.process_time)  # CPU, not waiting
        self._dumped_at = time.monotonic()
        self._profile.enable()

    @classmethod
    def from_environment(cls, role: str) -> ActorProfiler | None:
        directory = os.environ.get("ACTORSYS_PROFILE_DIR", "")
        return cls(role, directory) if directory else None

    def dump(self, every_s: float = 0.0) -> None:
        """Write the stats so far (at most every ``every_s`` seconds)."""
        if time.monotonic() - self._dumped_at < every_s:
            return
        self._dumped_at = time.monotonic()
        self._profile.disable()
        self._profile.dump_stats(self._path)
        self._profile.enable()
