"""A recording actor for actor-level tests: it stands in for a neighbour the
actor under test talks to, and reports what it received when asked."""

from __future__ import annotations

from typing import Any

from thespian.actors import ActorTypeDispatcher


class DumpReceived:
    """Ask a Recorder for everything it received so far (it replies with a list)."""


class Recorder(ActorTypeDispatcher):  # type: ignore[misc]  # Thespian ships no type hints
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.received: list[Any] = []

    def receiveMsg_DumpReceived(self, msg: DumpReceived, sender: Any) -> None:
        self.send(sender, list(self.received))

    def receiveUnrecognizedMessage(self, msg: Any, sender: Any) -> None:
        self.received.append(msg)
