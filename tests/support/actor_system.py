"""A real multi-process Thespian actor system per test, on a fresh admin port,
always shut down — and its process group ended — afterwards."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from thespian.actors import ActorSystem

from actorsys.netutil import free_port
from actorsys.procs import ActorSystemProcesses

LOG_DEFS = {"version": 1, "root": {"level": "WARNING", "handlers": []}}


@contextmanager
def actor_system() -> Iterator[Any]:
    port = free_port()
    asys = ActorSystem("multiprocTCPBase", {"Admin Port": port}, logDefs=LOG_DEFS)
    procs = ActorSystemProcesses(port)
    procs.refresh()
    try:
        yield asys
    finally:
        procs.refresh()
        asys.shutdown()
        procs.kill_all()
