"""RetryPolicy: exponential backoff with full jitter, bounded below and above."""

from __future__ import annotations

import random

import pytest

from actorsys.jobs.policy import RetryPolicy

POLICY = RetryPolicy(max_attempts=10, initial_s=1.0, max_s=30.0)


class FixedDraw(random.Random):
    """A Random whose uniform(a, b) always lands at ``a + share * (b - a)``."""

    def __init__(self, share: float) -> None:
        super().__init__(0)
        self.share = share

    def uniform(self, a: float, b: float) -> float:
        return a + self.share * (b - a)


def ceiling(attempt: int) -> float:
    return min(POLICY.max_s, POLICY.initial_s * 2 ** (attempt - 1))


@pytest.mark.parametrize("attempt", range(1, 10))
def test_delay_stays_between_a_tenth_of_the_ceiling_and_the_ceiling(attempt: int) -> None:
    # Given a seeded Random
    rng = random.Random(1234)
    # When many delays are drawn after the same failed attempt
    delays = [POLICY.delay_after(attempt, rng) for _ in range(500)]
    # Then each lies in [ceiling / 10, ceiling] ...
    assert all(d is not None and ceiling(attempt) / 10 <= d <= ceiling(attempt) for d in delays)
    # ... and they are spread out (jitter), not one value
    assert len(set(delays)) > 400


def test_ceiling_doubles_per_attempt_until_the_cap() -> None:
    # Given draws pinned at the top of the range
    top = FixedDraw(1.0)
    # When delays are computed after attempts 1..9
    delays = [POLICY.delay_after(attempt, top) for attempt in range(1, 10)]
    # Then they double from initial_s, then stay at max_s
    assert delays == [1.0, 2.0, 4.0, 8.0, 16.0, 30.0, 30.0, 30.0, 30.0]


def test_delay_is_never_below_a_tenth_of_the_ceiling() -> None:
    # Given draws pinned at zero (an immediate retry)
    bottom = FixedDraw(0.0)
    # When delays are computed
    delays = [POLICY.delay_after(attempt, bottom) for attempt in range(1, 8)]
    # Then each is a tenth of its ceiling: never an instant retry
    assert delays == pytest.approx([0.1, 0.2, 0.4, 0.8, 1.6, 3.0, 3.0])


def test_seeded_draws_grow_with_the_attempt() -> None:
    # Given one seeded Random per attempt
    # When many delays are averaged per attempt
    means = []
    for attempt in (1, 2, 3, 4, 5):
        rng = random.Random(attempt)
        draws = [POLICY.delay_after(attempt, rng) or 0.0 for _ in range(2000)]
        means.append(sum(draws) / len(draws))
    # Then the mean roughly doubles from one attempt to the next (about ceiling / 2)
    for attempt, mean in enumerate(means, start=1):
        assert mean == pytest.approx(0.505 * ceiling(attempt), rel=0.1)


def test_same_seed_same_delays() -> None:
    # Given two Randoms with the same seed
    a, b = random.Random(7), random.Random(7)
    # Then the policy draws the same delays from both
    assert [POLICY.delay_after(n, a) for n in range(1, 10)] == [
        POLICY.delay_after(n, b) for n in range(1, 10)
    ]


@pytest.mark.parametrize("attempt", [10, 11, 100])
def test_no_retry_after_the_last_attempt(attempt: int) -> None:
    # Given a policy of 10 attempts
    # When attempt 10 (or a later one) failed
    # Then there is no next attempt
    assert POLICY.delay_after(attempt, random.Random(0)) is None


def test_single_attempt_policy_never_retries() -> None:
    # Given max_attempts = 1
    policy = RetryPolicy(max_attempts=1, initial_s=1.0, max_s=10.0)
    # Then the first failure is final
    assert policy.delay_after(1, random.Random(0)) is None


def test_cap_holds_for_very_late_attempts() -> None:
    # Given a policy with many attempts
    policy = RetryPolicy(max_attempts=10_000, initial_s=0.5, max_s=60.0)
    # When attempt 5000 failed (2**4999 overflows a float: it raised OverflowError, fixed)
    delay = policy.delay_after(5000, FixedDraw(1.0))
    # Then the delay is still the cap
    assert delay == 60.0
