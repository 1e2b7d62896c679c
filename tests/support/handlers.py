"""A job handler with injectable faults, for fault-injection tests and
`scripts/chaos.py`. It wraps the real iot_parquet handler, so the output
check still applies; configure it through ``[output.options]``:

* ``delay_s``: sleep this long per job (a slow handler, to overload the pool);
* ``table_format``: ``"delta"`` wraps the Delta handler (default: plain Parquet);
* ``gate_file``: while this file exists (at most GATE_MAX_S), a job waits
  before it handles its records: a test holds a worker inside a job, its
  records already read, and lets it go by removing the file;
* ``pid_dir``: while a job runs, a file ``<pid>-<job id>`` exists there, so a
  test can find a worker that is in the middle of a job;
* ``state_dir`` + ``fail_first_attempt_every``: jobs whose id is a multiple of
  N fail their first attempt (a marker file remembers it across processes);
* ``poison_partition`` + ``poison_offset``: the job holding that record always
  raises (it must end FAILED and be dead-lettered);
* ``crash_partition`` + ``crash_offset``: the job holding that record kills its
  worker process every time (it must end FAILED, not loop);
* ``state_dir`` + ``overrun_then_fail_job`` + ``overrun_s``: the first attempt of
  that job id writes nothing for ``overrun_s`` (past its lease, so another
  worker runs the job meanwhile), then raises: a stale attempt that fails.

Use as ``handler = "tests.support.handlers:FaultyHandler"``.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

from actorsys.handlers.api import DeadLetterSink, HandlerResult, HandlerSettings, JobInput
from actorsys.handlers.iot_delta import IotDeltaHandler
from actorsys.handlers.iot_parquet import IotParquetHandler

OWN_OPTIONS = frozenset(
    {
        "delay_s",
        "gate_file",
        "table_format",
        "pid_dir",
        "state_dir",
        "fail_first_attempt_every",
        "poison_partition",
        "poison_offset",
        "crash_partition",
        "crash_offset",
        "overrun_then_fail_job",
        "overrun_s",
    }
)


GATE_MAX_S = 120.0


class InjectedFailure(RuntimeError):
    """Raised on purpose by FaultyHandler."""


class FaultyHandler:
    def __init__(self, settings: HandlerSettings) -> None:
        options = dict(settings.options)
        self._own: dict[str, Any] = {k: options.pop(k) for k in list(options) if k in OWN_OPTIONS}
        inner = IotDeltaHandler if self._own.get("table_format") == "delta" else IotParquetHandler
        self._inner: IotDeltaHandler | IotParquetHandler = inner(
            HandlerSettings(settings.output_dir, settings.metrics, options)
        )

    def discard(self, job: JobInput) -> None:
        self._inner.discard(job)

    def _covers(self, job: JobInput, kind: str) -> bool:
        partition = self._own.get(f"{kind}_partition")
        offset = self._own.get(f"{kind}_offset")
        return (
            partition is not None
            and offset is not None
            and job.partition == partition
            and job.start <= offset < job.end
        )

    def handle(self, job: JobInput, dead_letters: DeadLetterSink) -> HandlerResult:
        marker = None
        if pid_dir := self._own.get("pid_dir"):
            marker = Path(pid_dir) / f"{os.getpid()}-{job.job_id}"
            marker.parent.mkdir(parents=True, exist_ok=True)
            marker.touch()
        try:
            if self._covers(job, "crash"):
                os._exit(17)
            if self._covers(job, "poison"):
                raise InjectedFailure(
                    f"poison record at {job.partition}:{self._own['poison_offset']}"
                )
            overrun = self._own.get("overrun_then_fail_job")
            if overrun is not None and job.job_id == int(overrun):
                seen = Path(self._own["state_dir"]) / f"overran-{job.job_id}"
                if not seen.exists():
                    seen.parent.mkdir(parents=True, exist_ok=True)
                    seen.touch()
                    time.sleep(float(self._own["overrun_s"]))  # the stuck attempt itself
                    raise InjectedFailure(f"stale attempt of job {job.job_id} fails late")
            every = self._own.get("fail_first_attempt_every")
            if every and job.job_id % int(every) == 0:
                seen = Path(self._own["state_dir"]) / f"failed-once-{job.job_id}"
                if not seen.exists():
                    seen.parent.mkdir(parents=True, exist_ok=True)
                    seen.touch()
                    raise InjectedFailure(f"first attempt of job {job.job_id} fails")
            if gate := self._own.get("gate_file"):
                deadline = time.monotonic() + GATE_MAX_S
                while Path(gate).exists() and time.monotonic() < deadline:
                    time.sleep(0.05)  # the gate is the test's to open: poll it
            if delay := float(self._own.get("delay_s", 0)):
                time.sleep(delay)  # the simulated slow work itself, not synchronisation
            return self._inner.handle(job, dead_letters)
        finally:
            if marker is not None:
                marker.unlink(missing_ok=True)


class ThrottledHandler:
    """FaultyHandler whose ``delay_s`` applies only while the file ``slow_flag``
    exists. The ``overload`` scenario keeps the single worker slow for the
    whole overload window, then removes the flag so the backlog drains at full
    speed (at 0.3 s per job it would take minutes). It lives here, beside the
    handler it wraps, because worker processes import it: the memory they use
    is what ``overload`` measures, so they must import no scenario code.

    Use as ``handler = "tests.support.handlers:ThrottledHandler"``."""

    def __init__(self, settings: HandlerSettings) -> None:
        options = dict(settings.options)
        self._flag = Path(options.pop("slow_flag"))
        self._delay_s = float(options.pop("delay_s", 0))
        self._inner = FaultyHandler(HandlerSettings(settings.output_dir, settings.metrics, options))

    def handle(self, job: JobInput, dead_letters: DeadLetterSink) -> HandlerResult:
        if self._delay_s and self._flag.exists():
            time.sleep(self._delay_s)  # the simulated slow work, not synchronisation
        return self._inner.handle(job, dead_letters)
