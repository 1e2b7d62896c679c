"""SIGTERM and SIGINT as a stop request that a foreground loop waits on.

Why the handler takes no lock: CPython runs a signal handler in the main
thread between two bytecodes, possibly while that very thread is inside
``threading.Event.wait()`` and holds the Event's condition lock (a plain,
non-reentrant lock). ``Event.set()`` in the handler then waits for a lock its
own thread holds: for ever. The daemon hung exactly so on a SIGTERM in CI
(it logged "draining" and nothing after). So the handler only counts the
signal and writes one byte to a non-blocking pipe; ``wait()`` selects on the
pipe. Logging, too, belongs to the loop, not to the handler.
"""

from __future__ import annotations

import contextlib
import os
import select
import signal
from collections.abc import Callable
from types import FrameType, TracebackType
from typing import Protocol

STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)


class StopFlag(Protocol):
    """What a loop that may be asked to stop needs to know."""

    def is_set(self) -> bool: ...


class StopSignals:
    """The first SIGTERM/SIGINT asks the loop to stop; every later one calls
    ``on_repeat`` from the handler (typically: stop at once, or raise
    KeyboardInterrupt), which must itself take no lock the loop may hold.

    Use as a context manager around the loop: the previous handlers come back
    on exit, and the pipe is closed."""

    def __init__(
        self, on_repeat: Callable[[int], None] | None = None, notice: str | None = None
    ) -> None:
        self._on_repeat = on_repeat
        # Said on stderr at the first signal, by os.write: print() from a handler
        # can meet the loop inside the same buffered stream.
        self._notice = None if notice is None else (notice + "\n").encode()
        self._count = 0
        self._first: int | None = None
        self._read_fd = self._write_fd = -1
        self._previous: dict[int, object] = {}

    def __enter__(self) -> StopSignals:
        self._read_fd, self._write_fd = os.pipe()
        os.set_blocking(self._read_fd, False)
        os.set_blocking(self._write_fd, False)
        for signum in STOP_SIGNALS:
            self._previous[signum] = signal.signal(signum, self._on_signal)
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)  # type: ignore[arg-type]  # what signal() returned
        self._previous.clear()
        os.close(self._read_fd)
        os.close(self._write_fd)
        self._read_fd = self._write_fd = -1

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        self._count += 1
        if self._count == 1:
            self._first = signum
            # A full pipe already wakes the loop.
            with contextlib.suppress(BlockingIOError):
                os.write(self._write_fd, b"\0")
            if self._notice is not None:
                with contextlib.suppress(OSError):
                    os.write(2, self._notice)
        elif self._on_repeat is not None:
            self._on_repeat(signum)

    def is_set(self) -> bool:
        """Whether a stop was asked for."""
        return self._count > 0

    @property
    def signal_name(self) -> str | None:
        """The first signal's name (SIGTERM, SIGINT), once one came."""
        return None if self._first is None else signal.Signals(self._first).name

    def wait(self, timeout_s: float) -> bool:
        """Wait until a stop is asked for or ``timeout_s`` passes; whether one was."""
        if not self.is_set():
            with contextlib.suppress(InterruptedError):
                select.select([self._read_fd], [], [], timeout_s)
        return self.is_set()
