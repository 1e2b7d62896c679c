"""When an event-time hour of a table may be compacted.

Commits add small files to every hour their rows fall in; compaction
rewrites an hour's files into few large ones. Compacting an hour that still
receives files wastes the work, so an hour is compacted once it is *closed*
for every partition that has uncompacted ("dirty") files in it. An hour is
closed for a partition once

- the partition's watermark (the newest event time it committed) reaches
  the hour's end plus ``allowed_lateness_ms``, or
- the partition has committed nothing for ``idle_s`` (a quiet partition
  would otherwise hold its hours open forever).

Files may still arrive for a compacted hour (a record later than the
allowed lateness, or a partition that lagged behind). The hour is dirty
again and is recompacted, but only ``recompact_delay_s`` after its first
late file, so a trickle of late records costs one rewrite, not one each.

Each commit touching an hour bumps its generation; a compaction remembers
the generation it started at, so files committed while it ran stay dirty
when it ends (they are late for it).

No actor code here: the caller passes ``now`` (monotonic seconds); event
times and hours are epoch milliseconds, an hour named by its start.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from actorsys.offsets import PartitionKey

HOUR_MS = 3_600_000


def hour_of(event_ms: int) -> int:
    """The start (epoch ms) of the hour ``event_ms`` falls in."""
    return event_ms - event_ms % HOUR_MS


@dataclass(frozen=True, slots=True)
class _Run:
    """A compaction in progress: what it covers, to settle it when it ends."""

    generation: int
    rows: int
    late_since: float | None


@dataclass(slots=True)
class _Hour:
    dirty: dict[PartitionKey, int] = field(default_factory=dict)  # -> generation of newest file
    rows: int = 0  # uncompacted rows (0 for hours restored after a restart)
    generation: int = 0
    compacted_once: bool = False  # so dirty files now are late ones
    late_since: float | None = None  # first late file not yet being compacted
    run: _Run | None = None


class WindowTracker:
    def __init__(self, allowed_lateness_ms: int, idle_s: float, recompact_delay_s: float) -> None:
        self._lateness_ms = allowed_lateness_ms
        self._idle_s = idle_s
        self._recompact_delay_s = recompact_delay_s
        self._watermarks: dict[PartitionKey, int] = {}
        self._last_commit: dict[PartitionKey, float] = {}
        self._hours: dict[int, _Hour] = {}  # hours with dirty files
        # Clean hours compacted at least once, to know later files are late (an int an hour).
        self._compacted: set[int] = set()

    def committed(
        self, key: PartitionKey, hours: Mapping[int, int], max_event_ms: int, now: float
    ) -> None:
        """A table commit added ``key``'s files: rows per hour, and the newest
        event time among them. Hours with no rows are ignored."""
        self._watermarks[key] = max(self._watermarks.get(key, max_event_ms), max_event_ms)
        self._last_commit[key] = now
        for hour, rows in hours.items():
            if rows <= 0:
                continue
            _check_hour(hour)
            state = self._hours.get(hour)
            if state is None:
                state = self._hours[hour] = _Hour(compacted_once=hour in self._compacted)
                self._compacted.discard(hour)
            state.generation += 1
            state.dirty[key] = state.generation
            state.rows += rows
            if (state.compacted_once or state.run is not None) and state.late_since is None:
                state.late_since = now

    def due_compactions(self, now: float) -> list[int]:
        """Hours to compact now, oldest first: dirty, closed for every
        partition dirty in them, not compacting, and for late files past
        ``recompact_delay_s`` since the first of them."""
        due: list[int] = []
        for hour, state in sorted(self._hours.items()):
            if state.run is not None or not state.dirty:
                continue
            if not all(self._closed(key, hour, now) for key in state.dirty):
                continue
            if (
                state.compacted_once
                and state.late_since is not None
                and now - state.late_since < self._recompact_delay_s
            ):
                continue
            due.append(hour)
        return due

    def compacting(self, hour: int) -> None:
        """A compaction of ``hour`` started; it covers the files committed so far.
        A no-op for an hour with no dirty files."""
        state = self._hours.get(hour)
        if state is None or state.run is not None:
            return
        state.run = _Run(state.generation, state.rows, state.late_since)
        state.late_since = None  # late files from now on are late for this run

    def compacted(self, hour: int, now: float) -> None:
        """The compaction of ``hour`` succeeded: the files it covered are clean.
        Files committed while it ran stay dirty and wait ``recompact_delay_s``.
        A no-op unless ``compacting(hour)`` was called."""
        state = self._hours.get(hour)
        if state is None or state.run is None:
            return
        run, state.run = state.run, None
        state.dirty = {k: g for k, g in state.dirty.items() if g > run.generation}
        state.rows -= run.rows
        state.compacted_once = True
        if not state.dirty:
            del self._hours[hour]
            self._compacted.add(hour)
        elif state.late_since is None:
            state.late_since = now  # cannot happen: a file committed mid-run set it

    def compaction_failed(self, hour: int) -> None:
        """The compaction of ``hour`` failed: its files are still dirty, and the
        hour is due again as before (the caller paces its retries)."""
        state = self._hours.get(hour)
        if state is None or state.run is None:
            return
        run, state.run = state.run, None
        pending = [t for t in (run.late_since, state.late_since) if t is not None]
        state.late_since = min(pending) if pending else None

    def late(self, key: PartitionKey, hour: int) -> bool:
        """Whether a record of ``key`` for ``hour`` arrives late: the hour was
        compacted (or is being compacted), or ``key``'s watermark closed it.
        (Idleness is no reason: a partition that sends a record is not idle.)"""
        if hour in self._compacted:
            return True
        state = self._hours.get(hour)
        if state is not None and (state.compacted_once or state.run is not None):
            return True
        return self._closed_by_watermark(key, hour)

    # --- status and persistence ------------------------------------------------------------

    def open_windows(self) -> int:
        """Hours with uncompacted files (still open, due, or being compacted)."""
        return len(self._hours)

    def dirty_rows(self) -> dict[int, int]:
        """Uncompacted rows per hour (rows restored after a restart are not known)."""
        return {hour: state.rows for hour, state in self._hours.items()}

    def watermarks(self) -> dict[PartitionKey, int]:
        return dict(self._watermarks)

    def watermark(self, key: PartitionKey) -> int | None:
        """``key``'s watermark (epoch ms), or None before its first commit."""
        return self._watermarks.get(key)

    def dirty(self) -> dict[PartitionKey, list[int]]:
        """Hours with uncompacted files, per partition: with ``watermarks``,
        what to persist for ``restore``."""
        found: dict[PartitionKey, list[int]] = {}
        for hour, state in sorted(self._hours.items()):
            for key in state.dirty:
                found.setdefault(key, []).append(hour)
        return found

    def restore(
        self,
        watermarks: Mapping[PartitionKey, int],
        dirty: Mapping[PartitionKey, Iterable[int]],
        now: float,
        compacted: Iterable[int] = (),
    ) -> None:
        """Rebuild from persisted facts after a restart, replacing all state.

        Every partition counts as having committed at ``now``, so none closes
        its hours by idleness before it had ``idle_s`` to commit again. Dirty
        hours also in ``compacted`` hold late files: recompacted
        ``recompact_delay_s`` after ``now``. Without ``compacted`` a later
        late file is recompacted without that delay (only the pacing is lost).
        """
        self._watermarks = dict(watermarks)
        self._last_commit = {key: now for key in {*watermarks, *dirty}}
        self._compacted = set(compacted)
        self._hours = {}
        for key, hours in dirty.items():
            for hour in hours:
                _check_hour(hour)
                state = self._hours.get(hour)
                if state is None:
                    state = self._hours[hour] = _Hour(compacted_once=hour in self._compacted)
                    if state.compacted_once:
                        state.late_since = now
                state.generation += 1
                state.dirty[key] = state.generation
        self._compacted -= self._hours.keys()

    # --- internals -------------------------------------------------------------------------

    def _closed(self, key: PartitionKey, hour: int, now: float) -> bool:
        last = self._last_commit.get(key)
        idle = last is None or now - last >= self._idle_s
        return idle or self._closed_by_watermark(key, hour)

    def _closed_by_watermark(self, key: PartitionKey, hour: int) -> bool:
        watermark = self._watermarks.get(key)
        return watermark is not None and watermark >= hour + HOUR_MS + self._lateness_ms


def _check_hour(hour: int) -> None:
    if hour % HOUR_MS:
        raise ValueError(f"{hour} is not the start of an hour (epoch ms)")
