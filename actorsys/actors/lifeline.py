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

import os


class ParentWatch:
    def __init__(self) -> None:
        self._parent_pid = os.getppid()

    def orphaned(self) -> bool:
        return os.getppid() != self._parent_pid
