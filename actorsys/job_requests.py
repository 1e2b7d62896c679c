"""When a worker asks the JobManager for a job.

One ``RequestJob`` is out at a time; one unanswered for ``ask_again_after_s``
is taken as lost and asked again. The JobManager answers with a job or with
"no job"; a ``JobAvailable`` (from the WorkerMaster, or the JobManager)
wakes an idle worker.

The lost wake-up: a ``JobAvailable`` for a job stored after the JobManager
answered "no job" to the request out can overtake that answer (they come
from different actors). Taken as "a request is out, nothing to do", then
followed by the "no job", it left the worker idle until the 5 s chores woke
it, with a job pending (seen: two workers waiting while the machine was 2/3
idle). So a wake-up during a request makes its "no job" ask again.

A plain object: the actor passes ``now`` (monotonic seconds) and sends a
``RequestJob`` when told to.
"""

from __future__ import annotations


class JobRequests:
    def __init__(self, ask_again_after_s: float) -> None:
        self._ask_again_after_s = ask_again_after_s
        self._asked_at: float | None = None
        self._woken_while_asking = False

    @property
    def outstanding(self) -> bool:
        """A request is out, not answered yet."""
        return self._asked_at is not None

    def ask(self, now: float) -> bool:
        """Whether to send a request now (it is then the one out): when none is
        out, or the one out went unanswered for ``ask_again_after_s``."""
        if self._asked_at is not None and now - self._asked_at < self._ask_again_after_s:
            return False
        self._asked_at = now
        return True

    def woken(self) -> None:
        """A JobAvailable came: with a request out, its "no job" (maybe on its
        way, overtaken by this) must not be the last word."""
        if self._asked_at is not None:
            self._woken_while_asking = True

    def no_job(self) -> bool:
        """The request was answered "no job": whether to ask again at once."""
        self._asked_at = None
        again, self._woken_while_asking = self._woken_while_asking, False
        return again

    def assigned(self) -> None:
        """The request was answered with a job; the next is asked once it is done."""
        self._asked_at = None
        self._woken_while_asking = False

    def forget(self) -> None:
        """The JobManager moved: the request out will never be answered."""
        self._asked_at = None
