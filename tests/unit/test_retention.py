"""RetentionGuard: the age of the oldest unfinished job against the topic's
retention, and when intake is held back. Wall-clock ``now`` is a plain number."""

from __future__ import annotations

from actorsys.retention import Headroom, RetentionGuard

HOUR_MS = 3_600_000


def test_headroom_is_retention_minus_the_oldest_unfinished_jobs_age() -> None:
    guard = RetentionGuard(headroom_fraction=0.25)
    guard.retention("iot", HOUR_MS)
    [report] = guard.observe({"iot": 1_000.0}, now=1_600.0)
    assert report == Headroom("iot", 600.0, 3600.0, 3000.0)
    assert not guard.holding


def test_nothing_unfinished_means_no_age_and_full_headroom() -> None:
    guard = RetentionGuard(0.25)
    guard.retention("iot", HOUR_MS)
    assert guard.observe({}, now=5_000.0) == [Headroom("iot", 0.0, 3600.0, 3600.0)]


def test_unlimited_or_unknown_retention_has_no_headroom_and_never_holds() -> None:
    guard = RetentionGuard(0.25)
    guard.retention("forever", -1)
    report = guard.observe({"forever": 0.0, "unknown": 0.0}, now=10**9)
    assert [(h.topic, h.retention_s, h.headroom_s) for h in report] == [
        ("forever", None, None),
        ("unknown", None, None),
    ]
    assert not guard.holding


def test_intake_is_held_below_the_fraction_and_resumes_above_twice_it() -> None:
    # Given a one-hour retention and a 25 % headroom fraction (900 s)
    guard = RetentionGuard(0.25)
    guard.retention("iot", HOUR_MS)
    # When the oldest unfinished job is 2,701 s old (headroom 899 s < 900 s)
    guard.observe({"iot": 0.0}, now=2_701.0)
    # Then intake is held
    assert guard.holding
    # And it stays held until the headroom is back at 1,800 s (no flapping)
    guard.observe({"iot": 0.0}, now=1_801.0)
    assert guard.holding
    guard.observe({"iot": 0.0}, now=1_800.0)
    assert not guard.holding


def test_one_topic_at_risk_holds_intake_for_all() -> None:
    guard = RetentionGuard(0.25)
    guard.retention("slow", HOUR_MS)
    guard.retention("fast", 10 * HOUR_MS)
    guard.observe({"slow": 0.0, "fast": 0.0}, now=3_000.0)
    assert guard.holding


def test_a_retention_change_is_reported_once() -> None:
    guard = RetentionGuard(0.25)
    assert guard.retention("iot", HOUR_MS) is True
    assert guard.retention("iot", HOUR_MS) is False
    assert guard.retention("iot", 2 * HOUR_MS) is True
    assert guard.retention("iot", None) is True
