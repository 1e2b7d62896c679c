"""Run `actorsys join` as a real process for tests and benchmarks: a worker host
on this machine, with its own admin port and host name, in its own session
(see :mod:`tests.support.process` for stopping it and proving nothing is left)."""

from __future__ import annotations

import subprocess
from dataclasses import dataclass, field
from pathlib import Path

from actorsys.netutil import free_port_below_ephemeral
from tests.support.process import ACTORSYS, SessionProcess


@dataclass
class MemberProcess(SessionProcess):
    name: str  # its host name, as the leader's job records name it
    leader_admin_port: int
    log_path: Path
    slots: int = 1
    consume: bool = False
    admin_port: int = field(default_factory=free_port_below_ephemeral)
    key_file: Path | None = None  # the leader's cluster key
    drain_grace_s: float = 30
    env: dict[str, str] = field(default_factory=dict)
    program: list[str] = field(default_factory=lambda: list(ACTORSYS))
    proc: subprocess.Popen[bytes] | None = None

    def __post_init__(self) -> None:
        self._init_session()

    @property
    def what(self) -> str:
        return self.name

    def arguments(self) -> list[str]:
        args = [
            "join",
            "--convention",
            f"127.0.0.1:{self.leader_admin_port}",
            "--admin-port",
            str(self.admin_port),
            "--slots",
            str(self.slots),
            "--host-name",
            self.name,
            "--drain-grace-s",
            f"{self.drain_grace_s:g}",
        ]
        if self.consume:
            args.append("--consume")
        if self.key_file is not None:
            args += ["--key-file", str(self.key_file)]
        return args

    def start(self) -> MemberProcess:
        """Start `actorsys join` and wait for its actor system to exist
        (:meth:`start_process` does not wait: the host may refuse to start)."""
        self.start_process()
        self.wait_actor_system(30)
        return self

    @property
    def member_id(self) -> str:
        return f"{self.name}:{self.admin_port}"

    def pids(self) -> set[int]:
        return {p.pid for p in self.actor_system.alive()}
