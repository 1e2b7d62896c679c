"""One ``actorsys`` command as a real process in a session of its own, for the
tests, the fault scenarios and the benchmarks alike.

``actorsys run`` and ``actorsys join`` each start an actor system whose
processes Thespian forks into a process group of their own: killing the
command alone would leave them behind. :class:`SessionProcess` knows both
groups (the command's session and its actor system's), so a caller can stop
it and prove that no process is left, or kill everything of it at once.
:class:`tests.support.daemon.DaemonProcess` and
:class:`tests.support.member.MemberProcess` add what their command takes.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from contextlib import suppress
from pathlib import Path
from typing import Any

import psutil

from actorsys.procs import ActorSystemProcesses, group_members, kill_group
from tests.support.waiting import wait_for

REPO_ROOT = Path(__file__).resolve().parents[2]
# How the tests start actorsys: this interpreter, whatever is on PATH.
ACTORSYS = [sys.executable, "-m", "actorsys"]


def repo_pythonpath() -> str:
    """A PYTHONPATH with the repository first, the caller's own kept after it:
    the handlers the tests configure live under ``tests/``, and the daemon's
    actor processes must import them whatever their working directory."""
    return os.pathsep.join([str(REPO_ROOT), *filter(None, [os.environ.get("PYTHONPATH")])])


class SessionProcess:
    """The process-group bookkeeping shared by a daemon and a worker host.

    A subclass (a dataclass) has the fields ``log_path``, ``admin_port``,
    ``env``, ``program`` and ``proc``, calls :meth:`_init_session` from its
    ``__post_init__`` and says what command it runs in :meth:`arguments`.
    """

    log_path: Path
    admin_port: int
    env: dict[str, str]
    program: list[str]
    proc: subprocess.Popen[bytes] | None

    def _init_session(self) -> None:
        self.actor_system = ActorSystemProcesses(self.admin_port)
        self.spawned_at = 0.0  # wall clock, for the benchmarks' start-up figures
        self._psproc: psutil.Process | None = None
        self._term_sent_at: float | None = None

    # --- what it runs -------------------------------------------------------------------

    @property
    def what(self) -> str:
        """How failure messages name it."""
        return self.log_path.stem

    def arguments(self) -> list[str]:
        """The actorsys subcommand and its options."""
        raise NotImplementedError

    @property
    def command(self) -> list[str]:
        return [*self.program, *self.arguments()]

    # --- starting -----------------------------------------------------------------------

    def start_process(self) -> SessionProcess:
        """Start the command in a session of its own, without waiting for anything."""
        self.actor_system = ActorSystemProcesses(self.admin_port)
        self._term_sent_at = None
        with self.log_path.open("ab") as log:
            self.proc = subprocess.Popen(
                self.command,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                env={**os.environ, **self.env},
            )
        self.spawned_at = time.time()
        self._psproc = psutil.Process(self.proc.pid)
        return self

    def wait_actor_system(self, timeout_s: float = 30, interval_s: float = 0.1) -> None:
        """Until its actor system's admin listens (so that its group is known)."""

        def known() -> bool:
            self.check_alive()
            return self.actor_system.refresh() is not None

        wait_for(known, timeout_s, f"{self.what}'s actor system to start", interval_s)

    # --- looking at it ------------------------------------------------------------------

    @property
    def pid(self) -> int:
        assert self.proc is not None, f"{self.what} was never started"
        return self.proc.pid

    @property
    def pgid(self) -> int:
        return self.pid  # a session leader's pid is its group's id

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def check_alive(self) -> None:
        """Fail at once, with its log, if the command has exited."""
        assert self.proc is not None, f"{self.what} was never started"
        if self.proc.poll() is not None:
            raise AssertionError(
                f"{self.what} exited with {self.proc.returncode}:\n{self.log_tail()}"
            )

    def live_processes(self) -> list[psutil.Process]:
        """The command's own process and every live process of its actor system:
        what a memory or CPU sampler measures."""
        found: list[psutil.Process] = []
        if self._psproc is not None and self.alive():
            found.append(self._psproc)
        self.actor_system.refresh()
        return found + self.actor_system.alive()

    def group_processes(self) -> list[psutil.Process]:
        """Every live process of both groups: the command's session (the command,
        a broker it may start) and its actor system's."""
        self.actor_system.refresh()
        found = group_members(self.pgid) if self.proc is not None else []
        return found + self.actor_system.alive()

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def log_tail(self, lines: int = 40) -> str:
        return "\n".join(self.log_text().splitlines()[-lines:])

    def log_size(self) -> int:
        """The log's length in bytes now: a mark for :meth:`log_lines`."""
        return self.log_path.stat().st_size if self.log_path.exists() else 0

    def log_lines(self, start: int = 0, end: int | None = None) -> list[str]:
        """The log's lines written between two byte offsets (marks of :meth:`log_size`)."""
        if not self.log_path.exists():
            return []
        with self.log_path.open("rb") as fh:
            fh.seek(start)
            data = fh.read() if end is None else fh.read(max(0, end - start))
        return data.decode(errors="replace").splitlines()

    def assert_no_actor_crash(self) -> None:
        """Thespian logs "... exception on message ..." when an actor raises while
        handling a message: a bug whatever the output looks like."""
        lines = self.log_lines()
        for i, line in enumerate(lines):
            if "exception on message" in line:
                context = "\n".join(lines[i : i + 25])
                raise AssertionError(f"an actor raised in {self.log_path}:\n{context}")

    # --- stopping -----------------------------------------------------------------------

    def send_stop(self) -> None:
        """SIGTERM (once), without waiting: several processes can drain side by side."""
        if self.proc is None or self._term_sent_at is not None:
            return
        self.actor_system.refresh()
        self._term_sent_at = time.monotonic()
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)

    def terminate(self, timeout_s: float = 60) -> int:
        """SIGTERM and wait for the exit; returns the exit code. A command still
        running at the deadline is killed (-9, everything of it) and fails."""
        assert self.proc is not None, f"{self.what} was never started"
        self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout_s)
        except subprocess.TimeoutExpired:
            self.kill9()
            raise AssertionError(
                f"{self.what} did not exit within {timeout_s:.0f}s:\n{self.log_tail()}"
            ) from None

    def stop(self, timeout_s: float = 90.0) -> dict[str, Any]:
        """For a measurement: SIGTERM (unless :meth:`send_stop` sent it), wait for
        the drain, then make sure nothing is left; returns what happened (exit
        code, None at the deadline; seconds; processes that had to be killed)
        instead of failing, so that a run still reports its figures."""
        if self.proc is None:
            return {}
        self.send_stop()
        assert self._term_sent_at is not None
        code: int | None
        try:
            code = self.proc.wait(max(0.0, timeout_s - (time.monotonic() - self._term_sent_at)))
        except subprocess.TimeoutExpired:
            code = None
        took = time.monotonic() - self._term_sent_at
        # The command ends its actor system on exit: give the stragglers a moment.
        with suppress(AssertionError):
            self.assert_nothing_left(15)
        left = len(self.group_processes())
        killed = self.kill9() if (left or code is None) else 0
        return {"exit_code": code, "stop_s": round(took, 2), "leftover_processes_killed": killed}

    def kill9(self) -> int:
        """kill -9 every process of it (both groups); returns how many there were."""
        if self.proc is None:
            return 0
        self.actor_system.refresh()
        killed = kill_group(self.pgid) + self.actor_system.kill_all()
        with suppress(subprocess.TimeoutExpired):
            self.proc.wait(10)
        return killed

    def assert_nothing_left(self, timeout_s: float = 15) -> None:
        wait_for(
            lambda: not self.group_processes(),
            timeout_s,
            f"every process of {self.what} to exit",
            0.2,
        )

    def cleanup(self) -> None:
        """For ``finally``: whatever happened, leave no process behind."""
        if self.proc is not None and (self.alive() or self.group_processes()):
            self.kill9()
