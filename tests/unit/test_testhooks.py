"""Fault-injection hooks: off by default, read from the environment, repeatable."""

from __future__ import annotations

import json
import random
import threading
import time
from pathlib import Path

import pytest

from actorsys.testhooks import ChaosHooks, compaction_pause

VARS = (
    "ACTORSYS_CHAOS_DROP_ACK",
    "ACTORSYS_CHAOS_DUP_BATCH",
    "ACTORSYS_CHAOS_SEED",
    "ACTORSYS_CHAOS_COMPACTION_DELAY_S",
    "ACTORSYS_CHAOS_COMPACTION_STAGE",
    "ACTORSYS_CHAOS_DIR",
)


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


# --- the compaction pause ----------------------------------------------------------------


def _pause(stage: str = "written") -> float:
    started = time.monotonic()
    compaction_pause(stage, 7, 2, {"raw": ["date=2024-01-01/hour=3/compact-x.parquet"]})
    return time.monotonic() - started


def test_compactions_do_not_pause_by_default() -> None:
    # Given no compaction variables in the environment
    # Then a compaction passes every stage at once
    assert _pause("start") < 0.05 and _pause("written") < 0.05


def test_a_compaction_pauses_at_its_stage_and_reports_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given a 0.3 s pause at "written" (the default stage), reported in a directory
    monkeypatch.setenv("ACTORSYS_CHAOS_COMPACTION_DELAY_S", "0.3")
    monkeypatch.setenv("ACTORSYS_CHAOS_DIR", str(tmp_path))
    # Then it does not pause at the start, nor report
    assert _pause("start") < 0.05 and not list(tmp_path.iterdir())
    # And pauses once its files are written, saying which attempt and which files
    assert _pause("written") >= 0.3
    report = json.loads((tmp_path / "compaction-j7-a2-written.json").read_text())
    assert (report["job_id"], report["attempt"], report["stage"]) == (7, 2, "written")
    assert report["files"] == {"raw": ["date=2024-01-01/hour=3/compact-x.parquet"]}


def test_deleting_the_report_ends_the_pause_and_resume_ends_them_all(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given a long pause at the start, reported in a directory
    monkeypatch.setenv("ACTORSYS_CHAOS_COMPACTION_DELAY_S", "30")
    monkeypatch.setenv("ACTORSYS_CHAOS_COMPACTION_STAGE", "start")
    monkeypatch.setenv("ACTORSYS_CHAOS_DIR", str(tmp_path))
    marker = tmp_path / "compaction-j7-a2-start.json"
    took: list[float] = []
    paused = threading.Thread(target=lambda: took.append(_pause("start")))
    paused.start()
    deadline = time.monotonic() + 10
    while not marker.exists() and time.monotonic() < deadline:
        time.sleep(0.01)
    # When its report is deleted
    marker.unlink()
    paused.join(10)
    # Then the compaction goes on at once
    assert took and took[0] < 5
    # And once "resume" exists, no compaction pauses any more
    (tmp_path / "resume").touch()
    assert _pause("start") < 0.05 and not marker.exists()
