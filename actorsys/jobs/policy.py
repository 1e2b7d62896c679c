"""Retry policy for failed job attempts: exponential backoff with full jitter.

Full jitter (a uniform draw in ``[0, min(max, initial * 2**(n-1))]``) spreads
retries of many jobs that failed together (a store or disk outage), so they
do not come back as one wave.
"""

from __future__ import annotations

import random
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    max_attempts: int
    initial_s: float
    max_s: float

    def delay_after(self, attempt: int, rng: random.Random) -> float | None:
        """Seconds to wait before the next attempt, after attempt number
        ``attempt`` (1-based) failed; None when it was the last one."""
        if attempt >= self.max_attempts:
            return None
        ceiling: float = min(self.max_s, self.initial_s * 2 ** min(attempt - 1, 64))  # no overflow
        # Never retry at once: at least a tenth of the ceiling.
        return max(ceiling / 10, rng.uniform(0, ceiling))
