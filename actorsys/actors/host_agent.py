"""HostAgent: the leader's eyes on one worker host.

Placed by the WorkerMaster on every member system that offers worker slots.
It never runs jobs, so it always answers the WorkerMaster's pings at once:
a host whose agent stops answering is lost (killed, cut off) within
``workers.host_timeout_s``, long before Thespian would say so (~22 min).
It exits by itself when the leader's pings stop for its lease period.
"""

from __future__ import annotations

import logging
import os
import time
from datetime import timedelta
from typing import Any

from thespian.actors import ActorExitRequest, WakeupMessage

from actorsys.actors.base import ActorsysActor
from actorsys.actors.watchdog import GLOBAL_NAME, Watchdog
from actorsys.messages import AgentHere, DrainHost, HostAgentStart, HostDraining, Ping, Pong
from actorsys.roles import Role

log = logging.getLogger("actorsys.host_agent")

TICK_S = 2.0


class HostAgent(ActorsysActor):
    ROLE = Role.HOST_AGENT

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._start: HostAgentStart | None = None
        self._last_ping = time.monotonic()
        self._master: Any = None

    def receiveMsg_HostAgentStart(self, msg: HostAgentStart, sender: Any) -> None:
        self._start = msg
        self._master = sender
        self._last_ping = time.monotonic()
        self.send(sender, Pong(msg.member_id, 0, os.getpid()))
        # The `actorsys join` process of this host drains through us.
        watchdog = self.createActor(Watchdog, globalName=GLOBAL_NAME)
        self.send(watchdog, AgentHere(self.myAddress))
        self.wakeupAfter(timedelta(seconds=TICK_S))

    def receiveMsg_Ping(self, msg: Ping, sender: Any) -> None:
        self._last_ping = time.monotonic()
        if self._start is not None:
            self.send(sender, Pong(self._start.member_id, msg.seq, os.getpid()))

    def receiveMsg_DrainHost(self, msg: DrainHost, sender: Any) -> None:
        if self._start is not None and self._master is not None:
            log.info("%s is draining: telling the leader", self._start.host)
            self.send(self._master, HostDraining(self._start.member_id))

    def receiveMsg_WakeupMessage(self, msg: WakeupMessage, sender: Any) -> None:
        if self._start is None:
            return
        if time.monotonic() - self._last_ping > self._start.lease_s:
            log.warning(
                "%s: no ping from the leader for %.0fs; leaving",
                self._start.host,
                self._start.lease_s,
            )
            self.send(self.myAddress, ActorExitRequest())
            return
        self.wakeupAfter(timedelta(seconds=TICK_S))
