"""Where each assigned partition's log ends, learnt without reading it.

The KafkaConsumerActor cuts jobs as offset intervals and never fetches the
records (workers do), so it needs each partition's end offset. Two sources:

- **End-offset queries** (ListOffsets "latest", one request for every
  partition): exact on Apache Kafka, which answers with the high watermark
  (or the last stable offset under ``read_committed``).
- **Probes**: a fetch of the partition's tail. Some brokers answer
  ListOffsets with less than the log end (the embedded broker, Tansu,
  answers with the base offset of the last record batch plus one, and after
  a freeze staler still), so the newest records would wait for the next
  ones to be produced, and the last records before a producer goes quiet
  would wait for ever. A partition whose queried end has not moved for
  ``probe_after_s`` is read from the furthest end known minus one until the
  consumer reports the end of the partition (``enable.partition.eof``): the
  exact end. On Kafka the probe returns one record and confirms the end; it
  happens once per quiet spell, never per record. A probe unanswered within
  ``probe_timeout_s`` ends, and another is made after the next quiet spell,
  from where the last one got to.

A record seen at offset ``o`` (from a probe, however late it arrives) only
ever proves that the log reaches ``o + 1``, so evidence is merged with ``max``
and a stale or reordered answer cannot move an end back.

A plain object: the caller passes ``now`` (monotonic seconds) and carries out
the probes it returns.
"""

from __future__ import annotations

from dataclasses import dataclass

from actorsys.offsets import PartitionKey


@dataclass(slots=True)
class _End:
    end: int | None = None  # the furthest end known (None: nothing learnt yet)
    queried: int | None = None  # the last answer of an end-offset query
    queried_since: float = 0.0  # when that answer was first given
    probed_at: int | None = None  # the queried end the last probe was made for
    probing_since: float | None = None


class LogEnds:
    def __init__(self, probe_after_s: float, probe_timeout_s: float) -> None:
        self._probe_after_s = probe_after_s
        self._probe_timeout_s = probe_timeout_s
        self._ends: dict[PartitionKey, _End] = {}
        # How many times a known end moved (any partition): the poll pace's cue.
        self.moves = 0

    def assign(self, tp: PartitionKey) -> None:
        self._ends.setdefault(tp, _End())

    def forget(self, tp: PartitionKey) -> None:
        self._ends.pop(tp, None)

    def partitions(self) -> list[PartitionKey]:
        return sorted(self._ends)

    def end(self, tp: PartitionKey) -> int | None:
        entry = self._ends.get(tp)
        return None if entry is None else entry.end

    def queried(self, tp: PartitionKey, end: int, now: float) -> None:
        """An end-offset query answered ``end`` for ``tp``."""
        entry = self._ends.get(tp)
        if entry is None or end < 0:
            return
        if end != entry.queried:
            entry.queried, entry.queried_since = end, now
        self._extend(entry, end)

    def reaches(self, tp: PartitionKey, end: int) -> None:
        """Evidence that the log of ``tp`` holds offsets up to ``end`` (exclusive):
        a record at ``end - 1`` was fetched, or a fetch reported that high watermark."""
        entry = self._ends.get(tp)
        if entry is not None:
            self._extend(entry, end)

    def probes_due(self, now: float) -> list[tuple[PartitionKey, int]]:
        """Partitions to fetch once, with the offset to fetch from; each is
        then probing until :meth:`probed` or its timeout."""
        due: list[tuple[PartitionKey, int]] = []
        for tp, entry in self._ends.items():
            if entry.probing_since is not None or entry.queried is None or entry.queried < 1:
                continue
            quiet = now - entry.queried_since >= self._probe_after_s
            if quiet and entry.probed_at != entry.queried:
                entry.probed_at, entry.probing_since = entry.queried, now
                due.append((tp, max(entry.queried, entry.end or 0) - 1))
        return due

    def probed(self, tp: PartitionKey) -> bool:
        """The probe of ``tp`` got its answer; True if one was in progress."""
        entry = self._ends.get(tp)
        if entry is None or entry.probing_since is None:
            return False
        entry.probing_since = None
        return True

    def probes_timed_out(self, now: float) -> list[PartitionKey]:
        """Probes that got no answer in time: they end now, and the partition is
        probed again after another quiet spell. (A probe of a healthy log is
        answered at once; one goes unanswered when the fetch could not start,
        e.g. just after a broker came back, and the end it would have found
        must not be lost for good.)"""
        late = [
            tp
            for tp, entry in self._ends.items()
            if entry.probing_since is not None
            and now - entry.probing_since >= self._probe_timeout_s
        ]
        for tp in late:
            entry = self._ends[tp]
            entry.probing_since, entry.probed_at, entry.queried_since = None, None, now
        return late

    def probing(self) -> list[PartitionKey]:
        return sorted(tp for tp, e in self._ends.items() if e.probing_since is not None)

    def _extend(self, entry: _End, end: int) -> None:
        if entry.end is None or end > entry.end:
            entry.end = end
            self.moves += 1
