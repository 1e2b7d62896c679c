"""Waiting for conditions with a deadline — never fixed sleeps.

Every test and scenario waits through :func:`wait_for`, so a timeout always
says what was awaited and what the condition last returned, and no test
guesses how long something takes on a loaded machine.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

import psutil

T = TypeVar("T")


def wait_for(condition: Callable[[], T], timeout_s: float, what: str, interval_s: float = 0.1) -> T:
    """Poll ``condition`` until it returns something truthy; fail after the deadline."""
    deadline = time.monotonic() + timeout_s
    last: T = condition()
    while not last:
        if time.monotonic() >= deadline:
            raise AssertionError(
                f"timed out after {timeout_s:.0f}s waiting for {what} (last value: {last!r})"
            )
        time.sleep(interval_s)
        last = condition()
    return last


def gone(pid: int) -> bool:
    """Whether process ``pid`` has exited: a zombie counts as gone, since only
    its parent's wait() is left and it holds no port, file or memory."""
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True
