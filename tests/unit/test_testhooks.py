"""Fault-injection hooks: off by default, read from the environment, repeatable."""

from __future__ import annotations

import random

import pytest

from actorsys.testhooks import ChaosHooks

VARS = ("ACTORSYS_CHAOS_DROP_ACK", "ACTORSYS_CHAOS_DUP_BATCH", "ACTORSYS_CHAOS_SEED")


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in VARS:
        monkeypatch.delenv(name, raising=False)


def test_hooks_are_off_by_default() -> None:
    # Given no chaos variables in the environment
    hooks = ChaosHooks.from_environment()
    # Then nothing is ever dropped or duplicated
    assert (hooks.drop_ack_ratio, hooks.duplicate_batch_ratio) == (0.0, 0.0)
    assert not any(hooks.drop_ack() or hooks.duplicate_batch() for _ in range(1000))


@pytest.mark.parametrize(
    ("raw", "ratio"),
    [("0.25", 0.25), ("1", 1.0), ("7", 1.0), ("-0.5", 0.0), ("", 0.0), ("lots", 0.0)],
)
def test_ratios_are_parsed_and_clamped(
    monkeypatch: pytest.MonkeyPatch, raw: str, ratio: float
) -> None:
    # Given a ratio in the environment, valid or not
    monkeypatch.setenv("ACTORSYS_CHAOS_DROP_ACK", raw)
    monkeypatch.setenv("ACTORSYS_CHAOS_DUP_BATCH", raw)
    # When the hooks are read
    hooks = ChaosHooks.from_environment()
    # Then the ratio is clamped to [0, 1], and nonsense means off
    assert hooks.drop_ack_ratio == ratio
    assert hooks.duplicate_batch_ratio == ratio


def test_ratio_one_always_fires() -> None:
    # Given both ratios at 1
    hooks = ChaosHooks(1.0, 1.0, random.Random(0))
    # Then every ACK is dropped and every batch duplicated
    assert all(hooks.drop_ack() and hooks.duplicate_batch() for _ in range(1000))


def test_ratio_fires_about_that_share_of_the_time() -> None:
    # Given a 30% drop ratio and a seeded Random
    hooks = ChaosHooks(drop_ack_ratio=0.3, rng=random.Random(42))
    # When many ACKs pass
    dropped = sum(hooks.drop_ack() for _ in range(10_000))
    # Then about 30% are dropped, and duplicates stay off
    assert 2_700 < dropped < 3_300
    assert not any(hooks.duplicate_batch() for _ in range(1000))


def test_same_seed_same_faults(monkeypatch: pytest.MonkeyPatch) -> None:
    # Given a seed and ratios in the environment
    monkeypatch.setenv("ACTORSYS_CHAOS_DROP_ACK", "0.5")
    monkeypatch.setenv("ACTORSYS_CHAOS_DUP_BATCH", "0.5")
    monkeypatch.setenv("ACTORSYS_CHAOS_SEED", "1234")
    # When two hooks are read from it
    a, b = ChaosHooks.from_environment(), ChaosHooks.from_environment()
    # Then they inject the same faults in the same order
    run_a = [(a.drop_ack(), a.duplicate_batch()) for _ in range(200)]
    run_b = [(b.drop_ack(), b.duplicate_batch()) for _ in range(200)]
    assert run_a == run_b
    assert any(x for pair in run_a for x in pair)
    assert not all(x for pair in run_a for x in pair)


def test_non_numeric_seed_is_ignored(monkeypatch: pytest.MonkeyPatch) -> None:
    # Given a seed that is not a number
    monkeypatch.setenv("ACTORSYS_CHAOS_DROP_ACK", "0.5")
    monkeypatch.setenv("ACTORSYS_CHAOS_SEED", "abc")
    # When the hooks are read
    hooks = ChaosHooks.from_environment()
    # Then they still work (unseeded)
    assert hooks.drop_ack_ratio == 0.5
    assert {hooks.drop_ack() for _ in range(200)} == {True, False}
