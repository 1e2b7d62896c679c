"""LogEnds: where each partition's log ends, from end-offset queries and probes,
driven with a fake clock (``now`` is a plain number)."""

from __future__ import annotations

from actorsys.log_ends import LogEnds

TP = ("t", 0)


def ends(*partitions: tuple[str, int]) -> LogEnds:
    tracker = LogEnds(probe_after_s=0.5, probe_timeout_s=2.0)
    for tp in partitions:
        tracker.assign(tp)
    return tracker


def test_nothing_is_known_before_the_first_answer() -> None:
    tracker = ends(TP)
    assert tracker.end(TP) is None
    assert tracker.probes_due(100.0) == []


def test_a_query_answer_is_the_end_and_never_moves_it_back() -> None:
    tracker = ends(TP)
    tracker.queried(TP, 100, now=0.0)
    assert tracker.end(TP) == 100
    tracker.queried(TP, 90, now=0.1)  # a stale answer overtaken by a newer one
    assert tracker.end(TP) == 100


def test_a_quiet_partition_is_probed_once_from_its_queried_end_minus_one() -> None:
    # Given a broker that answered 71 (a batch's base offset + 1: the log holds more)
    tracker = ends(TP)
    tracker.queried(TP, 71, now=0.0)
    # When the answer has not moved for less than probe_after_s, Then no probe
    tracker.queried(TP, 71, now=0.4)
    assert tracker.probes_due(0.49) == []
    # When it has been quiet long enough, Then one probe, from offset 70
    assert tracker.probes_due(0.5) == [(TP, 70)]
    assert tracker.probing() == [TP]
    assert tracker.probes_due(0.6) == []  # in progress: not again
    # When the probe's records show the log reaches 100, Then that is the end
    tracker.reaches(TP, 100)
    assert tracker.probed(TP) is True
    assert tracker.end(TP) == 100
    # And the same queried end is never probed again
    tracker.queried(TP, 71, now=10.0)
    assert tracker.probes_due(20.0) == []
    assert tracker.end(TP) == 100


def test_a_partition_whose_end_keeps_moving_is_not_probed() -> None:
    tracker = ends(TP)
    for step in range(20):
        tracker.queried(TP, 10 * (step + 1), now=step * 0.1)
        assert tracker.probes_due(step * 0.1) == []
    assert tracker.end(TP) == 200


def test_once_the_end_moves_again_a_new_quiet_spell_is_probed_again() -> None:
    tracker = ends(TP)
    tracker.queried(TP, 10, now=0.0)
    assert tracker.probes_due(1.0) == [(TP, 9)]
    tracker.probed(TP)
    tracker.queried(TP, 30, now=2.0)
    assert tracker.probes_due(2.4) == []
    assert tracker.probes_due(2.5) == [(TP, 29)]


def test_a_probe_cut_short_is_made_again_from_where_it_got_to() -> None:
    # Given a stale queried end of 10 and a probe that learnt the log reaches 5,000
    # before it timed out (the tail was long: the answer lagged many batches)
    tracker = ends(TP)
    tracker.queried(TP, 10, now=0.0)
    assert tracker.probes_due(1.0) == [(TP, 9)]
    tracker.reaches(TP, 5_000)
    assert tracker.probes_timed_out(3.0) == [TP]
    # When the next quiet spell has passed, Then the probe goes on from 4,999
    assert tracker.probes_due(3.5) == [(TP, 4_999)]
    tracker.reaches(TP, 7_000)
    assert tracker.probed(TP)
    assert tracker.end(TP) == 7_000


def test_an_empty_partition_is_never_probed() -> None:
    tracker = ends(TP)
    tracker.queried(TP, 0, now=0.0)
    assert tracker.probes_due(100.0) == []
    assert tracker.end(TP) == 0


def test_a_probe_without_answer_times_out_and_is_made_again_after_a_quiet_spell() -> None:
    # Given a probe that gets no answer (its fetch could not start: a broker
    # just back from a freeze)
    tracker = ends(TP)
    tracker.queried(TP, 5, now=0.0)
    assert tracker.probes_due(1.0) == [(TP, 4)]
    assert tracker.probes_timed_out(2.9) == []
    # When it times out
    assert tracker.probes_timed_out(3.0) == [TP]
    assert tracker.probing() == []
    assert tracker.probed(TP) is False  # a late answer after the timeout ends nothing
    # Then the same end is probed again, once another quiet spell has passed:
    # the records past it would otherwise wait for ever
    assert tracker.probes_due(3.4) == []
    assert tracker.probes_due(3.5) == [(TP, 4)]


def test_evidence_only_extends_the_end_and_late_evidence_is_harmless() -> None:
    tracker = ends(TP)
    tracker.reaches(TP, 50)
    tracker.reaches(TP, 20)  # a record of an earlier probe, delivered late
    assert tracker.end(TP) == 50
    tracker.queried(TP, 40, now=0.0)  # a query lagging behind a probe
    assert tracker.end(TP) == 50


def test_partitions_are_independent_and_forgotten_ones_ignore_answers() -> None:
    other = ("t", 1)
    tracker = ends(TP, other)
    tracker.queried(TP, 10, now=0.0)
    tracker.queried(other, 20, now=0.4)
    assert tracker.probes_due(0.5) == [(TP, 9)]
    tracker.forget(other)
    tracker.queried(other, 99, now=1.0)
    tracker.reaches(other, 99)
    assert tracker.end(other) is None
    assert tracker.partitions() == [TP]
    assert tracker.probes_due(5.0) == []  # TP is still probing
