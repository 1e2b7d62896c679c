"""What the JobManager lets in and hands out, and when a drain is answered.

New batches are persisted (and ACKed) only while the workers keep up, the
output can be written and no pending job is close to outliving its records'
retention in Kafka; otherwise their ACK is withheld, which pauses the
partitions (back-pressure, never a buffer). A draining daemon lifts that cap
(``AdmitHeldBatches``) so the batches it holds become jobs before it stops,
then asks for a quiesce (``QuiesceJobs``): no more jobs are handed out, and the
reply goes when nothing is running any more, or at the deadline.

A plain object: the JobManager passes ``now`` (monotonic seconds) and sends
what it returns.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from actorsys.messages import JobsQuiesced


@dataclass
class _Quiesce:
    deadline: float
    reply_to: Any  # None once answered


class Admission:
    def __init__(self, max_pending_jobs: int = 0) -> None:
        self.max_pending_jobs = max_pending_jobs
        self._admit_all = False  # draining: see admit_held
        self._quiesce: _Quiesce | None = None

    def accepting(self, unfinished: int, output_healthy: bool, retention_ok: bool = True) -> bool:
        """Whether a new batch is persisted now (``unfinished``: PENDING + RUNNING
        jobs; ``retention_ok``: no pending job is close to its topic's retention)."""
        if self._admit_all:
            return True
        return unfinished < self.max_pending_jobs and output_healthy and retention_ok

    def admit_held(self) -> None:
        """Draining: every batch is admitted from now on, whatever the cap and output."""
        self._admit_all = True

    @property
    def hands_out_jobs(self) -> bool:
        """False from the first quiesce request on (answered or not): for good."""
        return self._quiesce is None

    def quiesce(self, reply_to: Any, deadline_s: float, now: float) -> None:
        """A (new) quiesce request replaces the one before, deadline and all."""
        self._quiesce = _Quiesce(now + deadline_s, reply_to)

    def quiesce_reply(self, busy: int, now: float) -> tuple[Any, JobsQuiesced] | None:
        """(to, message) once the quiesce is due: nothing ``busy`` (attempts leased
        or awaiting their commit), or the deadline passed. Once per request."""
        q = self._quiesce
        if q is None or q.reply_to is None:
            return None
        if busy and now < q.deadline:
            return None
        reply_to, q.reply_to = q.reply_to, None
        return reply_to, JobsQuiesced(still_running=busy)
