"""Process bookkeeping for the actor system this daemon starts.

Thespian's admin double-forks into a session of its own (its parent becomes
init), and every actor runs in its own process inside that session; a
SIGTERM to the admin leaves actor processes behind. The actor system's
process group therefore holds exactly its processes: the daemon remembers
it, and ends whatever of it outlives ``ActorSystem.shutdown()``.
"""

from __future__ import annotations

import contextlib
import os
import signal
from collections.abc import Collection
from dataclasses import dataclass

import psutil


def admin_process(admin_port: int) -> psutil.Process | None:
    """The process listening on the Thespian admin port, if any."""
    for conn in psutil.net_connections(kind="tcp"):
        listening = conn.status == psutil.CONN_LISTEN and conn.laddr
        if listening and conn.laddr.port == admin_port and conn.pid is not None:
            with contextlib.suppress(psutil.Error):
                return psutil.Process(conn.pid)
    return None


def port_in_use(port: int) -> bool:
    return any(
        c.status == psutil.CONN_LISTEN and c.laddr and c.laddr.port == port
        for c in psutil.net_connections(kind="tcp")
    )


def group_members(pgid: int) -> list[psutil.Process]:
    """Live (non-zombie) processes of a process group."""
    members = []
    for proc in psutil.process_iter():
        with contextlib.suppress(psutil.Error, OSError):
            if os.getpgid(proc.pid) == pgid and proc.status() != psutil.STATUS_ZOMBIE:
                members.append(proc)
    return members


def kill_group(pgid: int, timeout_s: float = 5.0) -> int:
    """SIGKILL a whole process group and wait for it; returns how many died."""
    return len(_kill_group(pgid, timeout_s))


def _kill_group(pgid: int, timeout_s: float) -> list[psutil.Process]:
    """SIGKILL a whole process group and wait for it; the processes it had."""
    members = group_members(pgid)
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, signal.SIGKILL)
    psutil.wait_procs(members, timeout=timeout_s)
    return members


@dataclass
class ActorSystemProcesses:
    """The process group of one actor system, learnt from its admin port."""

    admin_port: int
    pgid: int | None = None

    def refresh(self) -> int | None:
        if self.pgid is None:
            admin = admin_process(self.admin_port)
            if admin is not None:
                with contextlib.suppress(psutil.Error, OSError):
                    pgid = os.getpgid(admin.pid)
                    # Never adopt our own group: that would be the caller's terminal job.
                    if pgid != os.getpgid(0):
                        self.pgid = pgid
        return self.pgid

    def alive(self) -> list[psutil.Process]:
        return group_members(self.pgid) if self.pgid is not None else []

    def total_rss(self) -> int:
        total = 0
        for proc in self.alive():
            with contextlib.suppress(psutil.Error):
                total += proc.memory_info().rss
        return total

    def kill_all(self, timeout_s: float = 5.0, *, expected: Collection[int] = ()) -> int:
        """SIGKILL every process of the actor system still alive; returns how
        many, not counting the ``expected`` ones (Thespian's own, still ending
        themselves after a shutdown)."""
        if self.pgid is None:
            return 0
        killed = _kill_group(self.pgid, timeout_s)
        return sum(1 for proc in killed if proc.pid not in expected)


def thespian_processes(members: list[psutil.Process]) -> dict[int, str]:
    """Thespian's own processes in the actor system's group: the admin and its
    logger. Nothing restarts either, so the daemon watches both, and either
    may still be ending itself when ``ActorSystem.shutdown()`` returns.

    The admin double-forks: its short-lived first child (a child of this
    process) may still be in the group, so it is left out. The admin is then
    the member whose parent is not in the group; the logger is the admin's
    first child (it starts with the admin, before any actor; every process
    inherits the admin's listening socket, so listening tells nothing)."""
    own = os.getpid()
    parents: dict[int, int] = {}
    for proc in members:
        with contextlib.suppress(psutil.Error):
            parents[proc.pid] = proc.ppid()
    candidates = {pid for pid, parent in parents.items() if parent != own}
    admins = [pid for pid in candidates if parents[pid] not in candidates]
    if len(admins) != 1:
        return {}  # not what Thespian looks like: watch nothing rather than guess
    admin = admins[0]
    children = [p for p in members if p.pid in candidates and parents[p.pid] == admin]
    watched = {admin: "admin"}
    with contextlib.suppress(psutil.Error):
        if children:
            watched[min(children, key=lambda p: p.create_time()).pid] = "logger"
    return watched
