"""Fault-injection hooks for tests and `scripts/chaos.py`, off by default.

Set in the daemon's environment (actor processes inherit it):

* ``ACTORSYS_CHAOS_DROP_ACK`` — share (0..1) of BatchAcks a Consumer drops;
* ``ACTORSYS_CHAOS_DUP_BATCH`` — share of batches a Consumer sends twice;
* ``ACTORSYS_CHAOS_SEED`` — seed, for repeatable runs.

They exercise the guaranteed-delivery protocol with lost and duplicated
actor messages; production never sets them.
"""

from __future__ import annotations

import os
import random
from dataclasses import dataclass, field


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
