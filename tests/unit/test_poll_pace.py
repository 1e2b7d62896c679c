"""The KafkaConsumerActor's poll pace (fake clock)."""

from __future__ import annotations

from actorsys.poll_pace import PollPace


def test_the_pace_stays_fast_while_things_move_and_for_a_second_after() -> None:
    pace = PollPace(busy_s=0.02, idle_s=0.25, quiet_after_s=1.0)
    assert pace.next_wait(moved=False, now=0.0) == 0.02  # the first tick counts as movement
    assert pace.next_wait(moved=True, now=0.5) == 0.02
    assert pace.next_wait(moved=False, now=1.4) == 0.02  # quiet for 0.9 s only
    assert not pace.quiet


def test_a_quiet_spell_doubles_the_wait_up_to_the_idle_pace() -> None:
    pace = PollPace(busy_s=0.02, idle_s=0.25, quiet_after_s=1.0)
    pace.next_wait(moved=True, now=0.0)
    waits = [pace.next_wait(moved=False, now=1.0 + i) for i in range(6)]
    assert waits == [0.04, 0.08, 0.16, 0.25, 0.25, 0.25]
    assert pace.quiet


def test_the_first_movement_after_a_quiet_spell_is_back_to_the_fast_pace() -> None:
    pace = PollPace(busy_s=0.02, idle_s=0.25, quiet_after_s=1.0)
    pace.next_wait(moved=True, now=0.0)
    for i in range(5):
        pace.next_wait(moved=False, now=2.0 + i)
    assert pace.next_wait(moved=True, now=10.0) == 0.02
    assert pace.next_wait(moved=False, now=10.5) == 0.02  # and stays so for a second
    assert not pace.quiet


def test_an_idle_pace_below_the_fast_one_is_the_fast_one() -> None:
    pace = PollPace(busy_s=0.05, idle_s=0.01)
    pace.next_wait(moved=True, now=0.0)
    assert pace.next_wait(moved=False, now=5.0) == 0.05
