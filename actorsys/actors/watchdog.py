"""Watchdog: the `actorsys join` process's actor in its member system.

It ends its actor system when the process that started it dies (the
daemon's Supervisor does the same job on the leader), so a kill -9 of the
command leaves no actor process behind on that host. It is created under a
Thespian global name, so the HostAgent the leader places on this system can
find it; on SIGTERM the join process asks it to drain, and it passes that on
to the agent, which tells the leader.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from thespian.actors import WakeupMessage

from actorsys.actors.base import ActorsysActor
from actorsys.actors.lifeline import end_actor_system_if_orphaned
from actorsys.messages import AgentHere, DrainHost
from actorsys.roles import Role

log = logging.getLogger("actorsys.watchdog")

TICK_S = 2.0
GLOBAL_NAME = "actorsys-member-watchdog"


@dataclass(frozen=True, slots=True)
class WatchProcess:
    pid: int
    pgid: int


class Watchdog(ActorsysActor):
    ROLE = Role.WATCHDOG

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._watched: WatchProcess | None = None
        self._agent: Any = None

    def receiveMsg_WatchProcess(self, msg: WatchProcess, sender: Any) -> None:
        self._watched = msg
        self.send(sender, True)
        self.wakeupAfter(timedelta(seconds=TICK_S))

    def receiveMsg_AgentHere(self, msg: AgentHere, sender: Any) -> None:
        self._agent = msg.agent

    def receiveMsg_DrainHost(self, msg: DrainHost, sender: Any) -> None:
        """Answers whether an agent was there to tell the leader."""
        if self._agent is not None:
            self.send(self._agent, msg)
        self.send(sender, self._agent is not None)

    def receiveMsg_WakeupMessage(self, msg: WakeupMessage, sender: Any) -> None:
        if self._watched is None:
            return
        log.debug("watching pid %d", self._watched.pid)
        end_actor_system_if_orphaned(self._watched.pid, self._watched.pgid)
        self.wakeupAfter(timedelta(seconds=TICK_S))
