"""Orphan detection for actor processes.

In Thespian's multiprocTCPBase every actor runs in a process forked by the
actor that created it. When a parent actor's process dies (kill -9, a crash)
its children live on, unsupervised: a Consumer would keep retransmitting for
a partition nobody polls, a Worker would keep pulling jobs for a pool that
was replaced. Each actor therefore checks on its periodic tick that its
parent process is still the one that created it, and exits when it is not;
the Supervisor's replacement creates fresh children.
"""

from __future__ import annotations

import logging
import os
import signal


class ParentWatch:
    def __init__(self) -> None:
        self._parent_pid = os.getppid()

    def orphaned(self) -> bool:
        return os.getppid() != self._parent_pid


def end_actor_system_if_orphaned(daemon_pid: int, daemon_pgid: int) -> bool:
    """Called on a tick by one actor of each actor system: when the process
    that started the actor system (`actorsys run` or `actorsys join`) is gone,
    nobody will drain or stop it, and a restarted one would race it. Thespian
    gives the actor system a process group of its own, so ending that group
    ends exactly this actor system. Returns False while the daemon lives."""
    try:
        os.kill(daemon_pid, 0)
        return False
    except ProcessLookupError:
        group = os.getpgid(0)
        if group == daemon_pgid:
            return False  # never our caller's group: that could be a shell's job
        logging.getLogger("actorsys.lifeline").error(
            "the process that started this actor system (pid %d) is gone; ending it", daemon_pid
        )
        os.killpg(group, signal.SIGKILL)
        return True
