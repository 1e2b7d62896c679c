"""How often the KafkaConsumerActor polls: at its fast pace while anything
moves, slower once its partitions have been quiet for a while.

The poll tick (``flow.poll_interval_ms``, 20 ms) learns where the logs end and
hands out new offsets, so it sets how soon new records become batches. An
idle daemon polled 50 times a second all the same: its KafkaConsumerActor's
wakeups were 37 of the 82 ms of CPU per second an idle daemon used
(``scripts/bench_idle.py``). Once nothing has moved for ``quiet_after_s``,
each wait doubles, up to ``idle_s`` (``flow.idle_poll_interval_ms``); the
first tick that sees anything move goes back to the fast pace. So a record
produced after a quiet spell is noticed at most ``idle_s`` later than
before; under load nothing changes.

A plain object: the actor says whether its tick saw anything move and
passes ``now`` (monotonic seconds); it gets the wait until the next tick.
"""

from __future__ import annotations


class PollPace:
    def __init__(self, busy_s: float, idle_s: float, quiet_after_s: float = 1.0) -> None:
        self.busy_s = busy_s
        self.idle_s = max(busy_s, idle_s)
        self.quiet_after_s = quiet_after_s
        self._moved_at: float | None = None
        self._wait_s = busy_s

    def next_wait(self, moved: bool, now: float) -> float:
        """Seconds until the next tick, after a tick that saw something move or not."""
        if moved or self._moved_at is None:
            self._moved_at, self._wait_s = now, self.busy_s
        elif now - self._moved_at >= self.quiet_after_s:
            self._wait_s = min(self.idle_s, self._wait_s * 2)
        return self._wait_s

    @property
    def quiet(self) -> bool:
        """Past the fast pace: nothing moved for ``quiet_after_s`` or more."""
        return self._wait_s > self.busy_s
