"""Starting this process's Thespian actor system, the same way everywhere."""

from __future__ import annotations

import signal
from collections.abc import Mapping
from typing import Any

from thespian.actors import ActorSystem

from actorsys.logs import thespian_log_defs


def start_actor_system(capabilities: Mapping[str, Any], log_level: str, log_format: str) -> Any:
    """A multiprocTCPBase actor system with these capabilities.

    Actor processes must not see the terminal's Ctrl-C: only the starting
    process handles it, by draining. They inherit SIG_IGN across fork.
    """
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        return ActorSystem(
            "multiprocTCPBase", dict(capabilities), logDefs=thespian_log_defs(log_level, log_format)
        )
    finally:
        signal.signal(signal.SIGINT, previous)
