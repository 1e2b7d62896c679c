"""StopSignals: a SIGTERM/SIGINT wakes the waiting loop, a second calls on_repeat,
and a storm of signals against a loop that waits in short slices never hangs it
(threading.Event.set() in a handler can: the handler meets the Event's lock held
by its own thread; the daemon hung so in CI)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time

import pytest

from actorsys.stop_signals import StopSignals
from tests.support.waiting import wait_for


def test_first_signal_wakes_the_wait_and_names_the_signal() -> None:
    repeats: list[int] = []
    with StopSignals(on_repeat=repeats.append) as stop:
        assert not stop.wait(0.01)
        assert stop.signal_name is None
        os.kill(os.getpid(), signal.SIGTERM)
        assert stop.wait(5)
        assert stop.is_set() and stop.signal_name == "SIGTERM"
        assert repeats == []
        os.kill(os.getpid(), signal.SIGINT)
        # The handler runs at the next bytecode boundary of the main thread.
        wait_for(lambda: repeats, 5, "the second signal to reach on_repeat", 0.01)
        assert repeats == [signal.SIGINT]
        assert stop.signal_name == "SIGTERM"  # still the first one


def test_previous_handlers_come_back() -> None:
    before = {sig: signal.getsignal(sig) for sig in (signal.SIGTERM, signal.SIGINT)}
    with StopSignals():
        assert signal.getsignal(signal.SIGTERM) != before[signal.SIGTERM]
    assert {sig: signal.getsignal(sig) for sig in before} == before


def test_a_signal_before_the_wait_is_not_lost() -> None:
    with StopSignals() as stop:
        os.kill(os.getpid(), signal.SIGTERM)
        started = time.monotonic()
        assert stop.wait(30)
        assert time.monotonic() - started < 5


_STORM_CHILD = textwrap.dedent(
    """
    import signal, sys
    from actorsys.stop_signals import StopSignals
    signal.signal(signal.SIGTERM, signal.SIG_IGN)  # what comes back after the loop
    repeats = []
    with StopSignals(on_repeat=repeats.append) as stop:
        print("ready", flush=True)
        # Wait in very short slices, as a loop that also does work between waits.
        while len(repeats) < int(sys.argv[1]):
            stop.wait(0.0001)
    print("stopped", len(repeats) + 1, flush=True)
    """
)


@pytest.mark.timeout(60)
def test_a_storm_of_signals_never_hangs_the_waiting_loop() -> None:
    wanted = 2000
    child = subprocess.Popen(
        [sys.executable, "-c", _STORM_CHILD, str(wanted)],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert child.stdout is not None
        assert child.stdout.readline().strip() == "ready"
        deadline = time.monotonic() + 30
        while child.poll() is None and time.monotonic() < deadline:
            child.send_signal(signal.SIGTERM)
            time.sleep(0.0005)  # pacing the sender, not synchronising with the child
        assert child.poll() is not None, "the child hung under a storm of signals"
        out = child.stdout.read()
        assert child.returncode == 0, out
        assert out.startswith("stopped"), out
    finally:
        if child.poll() is None:
            child.kill()
        child.wait(10)
