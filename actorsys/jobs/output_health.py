"""Transient output faults: a full disk, an I/O error, an unreachable broker.

Such a failure says nothing about the job's records, so it must not use up
the job's attempts (after ``max_attempts`` a batch of good records would be
dead-lettered). Instead the job is retried with backoff, and while the output
cannot be written the JobManager withholds ACKs, so consumption pauses
instead of piling up jobs that would fail the same way.

A plain object: the JobManager passes ``now`` (monotonic seconds).
"""

from __future__ import annotations

import errno
import random
from collections.abc import Iterator

# errno values that mean "the output cannot be written now", not "bad data".
TRANSIENT_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EIO, errno.EROFS, errno.ENOMEM})
# Text that some libraries (pyarrow, librdkafka) put in the message instead of an errno.
_TRANSIENT_TEXT = (
    "no space left on device",
    "disk quota exceeded",
    "input/output error",
    "read-only file system",
    "broker transport failure",
    "all broker connections are down",
    "message timed out",
    "queue full",
)


def _chain(exc: BaseException) -> Iterator[BaseException]:
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        yield current
        current = current.__cause__ or current.__context__


def is_transient(exc: BaseException) -> bool:
    """True when ``exc`` (or what caused it) is an environment fault that a
    retry later can get past, rather than something wrong with the records."""
    for link in _chain(exc):
        if isinstance(link, OSError) and link.errno in TRANSIENT_ERRNOS:
            return True
        if getattr(link, "transient", False) is True:  # e.g. a range Kafka could not serve
            return True
        # confluent-kafka: KafkaException(KafkaError), which knows if it is retriable.
        error = link.args[0] if link.args else None
        retriable = getattr(error, "retriable", None)
        if callable(retriable) and retriable():
            return True
        if any(text in str(link).lower() for text in _TRANSIENT_TEXT):
            return True
    return False


class OutputHealth:
    """Whether the output can be written, learnt from job outcomes.

    Unhealthy from the first transient failure until a job succeeds; the
    retry delay grows with the streak of transient failures (full jitter),
    from ``initial_s`` to ``max_s``.
    """

    def __init__(self, initial_s: float, max_s: float, rng: random.Random | None = None) -> None:
        self._initial_s = initial_s
        self._max_s = max_s
        self._rng = rng or random.Random()
        self.streak = 0
        self.last_error = ""
        self.unhealthy_since: float | None = None

    @property
    def healthy(self) -> bool:
        return self.streak == 0

    def transient_failure(self, error: str, now: float) -> float:
        """Record one; returns how long to wait before retrying that job."""
        self.streak += 1
        self.last_error = error
        if self.unhealthy_since is None:
            self.unhealthy_since = now
        ceiling: float = min(self._max_s, self._initial_s * 2 ** min(self.streak - 1, 32))
        return max(ceiling / 10, self._rng.uniform(0, ceiling))

    def succeeded(self) -> bool:
        """A job completed: the output works. True when it was unhealthy until now."""
        was_unhealthy = self.streak > 0
        self.streak = 0
        self.unhealthy_since = None
        return was_unhealthy
