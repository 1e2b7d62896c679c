"""A simulated IoT stream that runs until the test stops it.

A test that acts mid-stream (kills a process, then checks that nothing was
lost) must not find the stream already over when it acts. A stream of a
fixed length races the daemon's start-up, which on a loaded 2-core machine
took from 2 to 8 s (measured in CI); this one keeps producing until
``stop()``, and its report holds exactly what was delivered.
"""

from __future__ import annotations

import functools
import threading
from collections.abc import Callable
from types import TracebackType

from actorsys.simulator import ProduceReport, produce


class Feed:
    def __init__(
        self,
        bootstrap_servers: str,
        topic: str,
        *,
        partitions: int,
        rate: float,
        seed: int,
        devices: int = 100,
        malformed_ratio: float = 0.01,
    ) -> None:
        self._stop = threading.Event()
        self._report: ProduceReport | None = None
        self._error: BaseException | None = None
        produce_until_stopped = functools.partial(
            produce,
            bootstrap_servers,
            topic,
            devices=devices,
            rate=rate,
            count=0,  # until stopped
            malformed_ratio=malformed_ratio,
            partitions=partitions,
            seed=seed,
            stop=self._stop,
        )
        self._thread = threading.Thread(
            target=self._run, args=(produce_until_stopped,), name=f"feed-{topic}"
        )

    def _run(self, produce_until_stopped: Callable[[], ProduceReport]) -> None:
        try:
            self._report = produce_until_stopped()
        except BaseException as exc:  # re-raised by stop(), in the test's thread
            self._error = exc

    @property
    def running(self) -> bool:
        return self._thread.is_alive()

    def start(self) -> Feed:
        self._thread.start()
        return self

    def stop(self, timeout_s: float = 60.0) -> ProduceReport:
        """End the stream; what was delivered, once every delivery is reported."""
        self._stop.set()
        self._thread.join(timeout_s)
        if self._thread.is_alive():
            raise AssertionError(f"the feed did not stop within {timeout_s:.0f}s")
        if self._error is not None:
            raise AssertionError(f"the feed failed: {self._error}") from self._error
        assert self._report is not None
        return self._report

    def __enter__(self) -> Feed:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._stop.set()
        self._thread.join(60)
