"""WindowTracker: when an event-time hour may be compacted, driven with a fake
clock (``now`` is a plain float of seconds; event times are epoch ms)."""

from __future__ import annotations

import pytest

from actorsys.tables.windows import HOUR_MS, WindowTracker, hour_of

P0 = ("t", 0)
P1 = ("t", 1)
H = 1_700_000_000_000 - 1_700_000_000_000 % HOUR_MS  # an hour start
NEXT = H + HOUR_MS
LATENESS_MS = 10 * 60_000


def tracker(idle_s: float = 600.0, recompact_delay_s: float = 300.0) -> WindowTracker:
    return WindowTracker(
        allowed_lateness_ms=LATENESS_MS, idle_s=idle_s, recompact_delay_s=recompact_delay_s
    )


def compact(w: WindowTracker, hour: int, now: float) -> None:
    w.compacting(hour)
    w.compacted(hour, now)


def test_hour_of_names_an_hour_by_its_start() -> None:
    assert hour_of(H) == H
    assert hour_of(H + HOUR_MS - 1) == H
    assert hour_of(NEXT) == NEXT


def test_hour_closes_when_the_watermark_passes_its_end_plus_lateness() -> None:
    # Given rows of hour H committed by P0
    w = tracker()
    w.committed(P0, {H: 100}, max_event_ms=H + 30 * 60_000, now=0.0)
    assert w.due_compactions(now=1.0) == []
    # When P0's watermark reaches the hour's end, but not the allowed lateness
    w.committed(P0, {NEXT: 5}, max_event_ms=NEXT + LATENESS_MS - 1, now=2.0)
    # Then H is still open
    assert w.due_compactions(now=3.0) == []
    assert not w.late(P0, H)
    # When the watermark passes the end plus the lateness
    w.committed(P0, {NEXT: 5}, max_event_ms=NEXT + LATENESS_MS, now=4.0)
    # Then H is due (and the next hour is not), and a record for H is late
    assert w.due_compactions(now=5.0) == [H]
    assert w.late(P0, H)
    assert not w.late(P0, NEXT)
    assert w.watermarks() == {P0: NEXT + LATENESS_MS}


def test_watermark_never_moves_back() -> None:
    # Given P0's watermark past H's closing time
    w = tracker()
    w.committed(P0, {H: 1}, max_event_ms=NEXT + LATENESS_MS, now=0.0)
    # When an older commit's event times arrive / Then the watermark stays
    w.committed(P0, {H: 1}, max_event_ms=H, now=1.0)
    assert w.watermarks() == {P0: NEXT + LATENESS_MS}


def test_hour_closes_when_its_partition_is_idle() -> None:
    # Given P0 committed rows of H and then went quiet (its watermark stays inside H)
    w = tracker(idle_s=600.0)
    w.committed(P0, {H: 100}, max_event_ms=H + 60_000, now=1000.0)
    # When less than idle_s passed / Then H waits
    assert w.due_compactions(now=1599.0) == []
    # When idle_s passed without a commit / Then H is due
    assert w.due_compactions(now=1600.0) == [H]


def test_hour_dirty_in_two_partitions_closes_only_when_both_pass() -> None:
    # Given H dirty in P0 and P1
    w = tracker(idle_s=1e9)
    w.committed(P0, {H: 10}, max_event_ms=H + 1, now=0.0)
    w.committed(P1, {H: 10}, max_event_ms=H + 2, now=0.0)
    # When only P0's watermark passes H's closing time
    w.committed(P0, {NEXT: 1}, max_event_ms=NEXT + LATENESS_MS, now=1.0)
    # Then H waits for P1
    assert w.due_compactions(now=2.0) == []
    # When P1's passes too / Then H is due
    w.committed(P1, {NEXT: 1}, max_event_ms=NEXT + LATENESS_MS, now=3.0)
    assert w.due_compactions(now=4.0) == [H]


def test_partition_without_files_in_an_hour_does_not_hold_it_open() -> None:
    # Given H dirty only in P0, and P1 active but far behind in event time
    w = tracker(idle_s=1e9)
    w.committed(P0, {H: 10}, max_event_ms=NEXT + LATENESS_MS, now=0.0)
    w.committed(P1, {H - HOUR_MS: 10}, max_event_ms=H - 1, now=0.0)
    # When due compactions are asked / Then H is due: only its dirty partitions count
    assert w.due_compactions(now=1.0) == [H]


def test_due_hours_come_oldest_first_and_not_while_compacting() -> None:
    # Given two closed hours
    w = tracker()
    w.committed(P0, {NEXT: 1, H: 1}, max_event_ms=NEXT + HOUR_MS + LATENESS_MS, now=0.0)
    assert w.due_compactions(now=1.0) == [H, NEXT]
    assert w.open_windows() == 2
    # When H is being compacted / Then it is not offered again
    w.compacting(H)
    assert w.due_compactions(now=2.0) == [NEXT]
    # When it is done / Then it is clean and its window is no longer open
    w.compacted(H, now=3.0)
    assert w.due_compactions(now=4.0) == [NEXT]
    assert w.open_windows() == 1
    assert w.dirty_rows() == {NEXT: 1}


def test_late_data_after_compaction_is_recompacted_only_after_the_delay() -> None:
    # Given H compacted
    w = tracker(idle_s=1e9, recompact_delay_s=300.0)
    w.committed(P0, {H: 100}, max_event_ms=NEXT + LATENESS_MS, now=0.0)
    compact(w, H, now=10.0)
    assert w.open_windows() == 0
    assert w.late(P1, H)  # compacted: late for any partition
    # When late files for H arrive at t=100 and t=200
    w.committed(P1, {H: 3}, max_event_ms=H + 5, now=100.0)
    w.committed(P1, {H: 2}, max_event_ms=H + 6, now=200.0)
    # Then H is dirty again, but waits recompact_delay_s from the first late file
    assert w.open_windows() == 1
    assert w.dirty_rows() == {H: 5}
    w.committed(P1, {}, max_event_ms=NEXT + LATENESS_MS, now=250.0)  # P1 closes H too
    assert w.due_compactions(now=399.0) == []
    assert w.due_compactions(now=400.0) == [H]
    # And once recompacted it is clean again
    compact(w, H, now=410.0)
    assert w.due_compactions(now=1000.0) == []
    assert w.open_windows() == 0


def test_files_committed_during_a_compaction_stay_dirty() -> None:
    # Given a compaction of H running
    w = tracker(idle_s=1e9, recompact_delay_s=300.0)
    w.committed(P0, {H: 100}, max_event_ms=NEXT + LATENESS_MS, now=0.0)
    w.compacting(H)
    # When a file for H is committed meanwhile
    w.committed(P1, {H: 7}, max_event_ms=NEXT + LATENESS_MS, now=50.0)
    assert w.late(P1, H)
    # When the compaction ends
    w.compacted(H, now=60.0)
    # Then only the new file is dirty, and it waits the delay since it arrived
    assert w.dirty() == {P1: [H]}
    assert w.dirty_rows() == {H: 7}
    assert w.due_compactions(now=349.0) == []
    assert w.due_compactions(now=350.0) == [H]


def test_failed_compaction_is_retried() -> None:
    # Given a compaction of closed H running
    w = tracker()
    w.committed(P0, {H: 100}, max_event_ms=NEXT + LATENESS_MS, now=0.0)
    w.compacting(H)
    assert w.due_compactions(now=1.0) == []
    # When it fails / Then H is due again with its files still dirty
    w.compaction_failed(H)
    assert w.due_compactions(now=2.0) == [H]
    assert w.dirty() == {P0: [H]}
    # And the retry settles it
    compact(w, H, now=3.0)
    assert w.due_compactions(now=4.0) == []


def test_failed_recompaction_keeps_its_late_files_due() -> None:
    # Given late files of H past their delay, being recompacted
    w = tracker(idle_s=1e9, recompact_delay_s=300.0)
    w.committed(P0, {H: 1}, max_event_ms=NEXT + LATENESS_MS, now=0.0)
    compact(w, H, now=1.0)
    w.committed(P0, {H: 1}, max_event_ms=H, now=100.0)
    assert w.due_compactions(now=400.0) == [H]
    w.compacting(H)
    # When another late file arrives and the recompaction fails
    w.committed(P0, {H: 1}, max_event_ms=H, now=450.0)
    w.compaction_failed(H)
    # Then H is due again at once: its first pending late file is old enough
    assert w.due_compactions(now=451.0) == [H]


def test_compacted_without_compacting_changes_nothing() -> None:
    # Given dirty H / When compacted() comes without compacting() / Then H stays dirty
    w = tracker()
    w.committed(P0, {H: 1}, max_event_ms=NEXT + LATENESS_MS, now=0.0)
    w.compacted(H, now=1.0)
    w.compaction_failed(H)
    w.compacting(NEXT)  # not dirty: nothing to do
    assert w.due_compactions(now=2.0) == [H]


def test_hours_without_rows_are_ignored_and_misaligned_hours_rejected() -> None:
    w = tracker()
    w.committed(P0, {H: 0}, max_event_ms=H, now=0.0)
    assert w.open_windows() == 0
    with pytest.raises(ValueError, match="start of an hour"):
        w.committed(P0, {H + 1: 1}, max_event_ms=H, now=0.0)


def test_restore_rebuilds_watermarks_and_dirty_hours() -> None:
    # Given a tracker's persisted facts: P0 past H's closing time, P1 inside it
    before = tracker(idle_s=600.0)
    before.committed(P0, {H: 1}, max_event_ms=NEXT + LATENESS_MS, now=0.0)
    before.committed(P1, {H: 1, NEXT: 1}, max_event_ms=H + 1, now=0.0)
    # When a new tracker restores them after a restart at t=5000
    w = tracker(idle_s=600.0)
    w.restore(before.watermarks(), before.dirty(), now=5000.0)
    # Then it knows the same, and P1 gets idle_s from the restart before it closes H
    assert w.watermarks() == before.watermarks()
    assert w.dirty() == {P0: [H], P1: [H, NEXT]}
    assert w.open_windows() == 2
    assert w.due_compactions(now=5599.0) == []
    assert w.due_compactions(now=5600.0) == [H, NEXT]
    # And a compaction after the restart cleans the hour
    compact(w, H, now=5601.0)
    assert w.dirty() == {P1: [NEXT]}


def test_restore_with_compacted_hours_paces_their_late_files() -> None:
    # Given H compacted before the restart and dirty again with late files
    w = tracker(idle_s=1e9, recompact_delay_s=300.0)
    w.restore({P0: NEXT + LATENESS_MS}, {P0: [H]}, now=100.0, compacted=[H, H - HOUR_MS])
    # Then H is recompacted only recompact_delay_s after the restart
    assert w.due_compactions(now=399.0) == []
    assert w.due_compactions(now=400.0) == [H]
    # And a record for the clean compacted hour is late
    assert w.late(P1, H - HOUR_MS)


def test_restore_replaces_what_was_there() -> None:
    # Given a tracker with state / When restored from nothing / Then it is empty
    w = tracker()
    w.committed(P0, {H: 1}, max_event_ms=H, now=0.0)
    w.restore({}, {}, now=1.0)
    assert (w.watermarks(), w.dirty(), w.open_windows()) == ({}, {}, 0)
