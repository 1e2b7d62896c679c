"""An actor that answers: the one actor the secured-transport helper creates.

It lives in an importable module because Thespian starts actors from their
class path, and the helper itself runs as ``__main__``.
"""

from __future__ import annotations

import os
from typing import Any

from thespian.actors import Actor

PID_REQUEST = "pid"


class Echo(Actor):  # type: ignore[misc]  # Thespian is untyped
    """Replies to a string with the same string, and to ``"pid"`` with its pid."""

    def receiveMessage(self, msg: Any, sender: Any) -> None:
        if msg == PID_REQUEST:
            self.send(sender, os.getpid())
        elif isinstance(msg, str):
            self.send(sender, msg)
