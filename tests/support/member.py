"""Run `actorsys join` as a real process for tests: a worker host on this
machine, with its own admin port and host name, in its own session."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

from actorsys.netutil import free_port_below_ephemeral
from actorsys.procs import ActorSystemProcesses, group_members, kill_group
from tests.support.waiting import wait_for


@dataclass
class MemberProcess:
    name: str
    leader_admin_port: int
    log_path: Path
    slots: int = 1
    consume: bool = False
    admin_port: int = field(default_factory=free_port_below_ephemeral)
    key_file: Path | None = None  # the leader's cluster key
    proc: subprocess.Popen[bytes] | None = None

    def __post_init__(self) -> None:
        self.actor_system = ActorSystemProcesses(self.admin_port)

    def start(self) -> MemberProcess:
        """Start `actorsys join` and wait for its actor system to exist."""
        self.start_process()
        wait_for(
            lambda: self.actor_system.refresh() is not None,
            30,
            f"{self.name}'s actor system to start",
        )
        return self

    def start_process(self) -> MemberProcess:
        """Start `actorsys join` without waiting (it may refuse to start)."""
        args = [
            sys.executable,
            "-m",
            "actorsys",
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
            "30",
        ]
        if self.consume:
            args.append("--consume")
        if self.key_file is not None:
            args += ["--key-file", str(self.key_file)]
        with self.log_path.open("ab") as log:
            self.proc = subprocess.Popen(
                args,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                env=dict(os.environ),
            )
        return self

    @property
    def member_id(self) -> str:
        return f"{self.name}:{self.admin_port}"

    def pids(self) -> set[int]:
        return {p.pid for p in self.actor_system.alive()}

    def terminate(self, timeout_s: float = 60) -> int:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout_s)

    def kill9(self) -> None:
        """kill -9 the whole host: the join process and its actor system."""
        assert self.proc is not None
        self.actor_system.refresh()
        kill_group(self.proc.pid)
        self.actor_system.kill_all()
        self.proc.wait(10)

    def assert_nothing_left(self, timeout_s: float = 15) -> None:
        assert self.proc is not None
        wait_for(
            lambda: not group_members(self.proc.pid) and not self.actor_system.alive(),
            timeout_s,
            f"every process of {self.name} to exit",
            0.2,
        )

    def cleanup(self) -> None:
        if self.proc is None:
            return
        if self.proc.poll() is None or self.actor_system.alive():
            self.kill9()

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""
