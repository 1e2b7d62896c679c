"""Starting this process's Thespian actor system, the same way everywhere."""

from __future__ import annotations

import os
import signal
from collections.abc import Mapping
from typing import Any

from thespian.actors import ActorSystem

from actorsys.logs import thespian_log_defs
from actorsys.transport_security import TransportSettings, install


def start_actor_system(
    capabilities: Mapping[str, Any],
    log_level: str,
    log_format: str,
    transport: TransportSettings,
    advertised_host: str = "",
) -> Any:
    """A multiprocTCPBase actor system with these capabilities.

    Its transport is secured first (every listener on ``transport.bind_host``,
    every frame signed with the cluster key and checked before anything is
    unpickled): Thespian's admin and every actor process are forked from
    here, so they all inherit it.

    Actor processes must not see the terminal's Ctrl-C: only the starting
    process handles it, by draining. They inherit SIG_IGN across fork.
    """
    if advertised_host:
        # Thespian advertises the address of the interface that routes to the
        # internet, wherever it is bound; name the one other hosts must use.
        os.environ["THESPIAN_BASE_IPADDR"] = advertised_host
    install(transport)
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        return ActorSystem(
            "multiprocTCPBase", dict(capabilities), logDefs=thespian_log_defs(log_level, log_format)
        )
    finally:
        signal.signal(signal.SIGINT, previous)
