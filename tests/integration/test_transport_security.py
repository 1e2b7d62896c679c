"""The secured transport against a real multiprocTCPBase actor system.

The system runs in a subprocess (``tests.support.secure_system``) that
installs the patches before it creates its ActorSystem, exactly as the
daemon does; this pytest process stays unpatched and plays the outsider:
raw sockets, no key (or the wrong one).
"""

from __future__ import annotations

import contextlib
import json
import os
import queue
import secrets
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import psutil
import pytest

from actorsys.cluster_key import KEY_ENV
from actorsys.netutil import free_port
from actorsys.procs import admin_process, group_members
from actorsys.transport_security import KeyCheck, check_key_with, rejected_peers
from tests.support.hostile import (
    marker_pickle,
    open_and_send,
    raw_frame,
    seconds_until_closed,
    send_and_time_close,
)
from tests.support.waiting import wait_for

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
MAX_FRAME_BYTES = 1 << 20
START_TIMEOUT_S = 60.0
STOP_TIMEOUT_S = 30.0
HUNDRED_GB = 100 * 10**9


@dataclass
class SecureSystem:
    """The helper process, its actor system's process group, and a line reader."""

    proc: subprocess.Popen[str]
    admin_port: int
    runtime_dir: Path
    key: bytes
    lines: queue.Queue[str]
    ready: dict[str, Any] = field(default_factory=dict)
    pgid: int | None = None

    def next_line(self, timeout_s: float) -> dict[str, Any]:
        try:
            line = self.lines.get(timeout=timeout_s)
        except queue.Empty:
            raise AssertionError(f"no answer from the helper within {timeout_s:.0f}s") from None
        doc: dict[str, Any] = json.loads(line)
        return doc

    def ask(self) -> float:
        """One round trip helper -> echo actor -> helper, in seconds."""
        assert self.proc.stdin is not None
        self.proc.stdin.write("ask\n")
        self.proc.stdin.flush()
        answer = self.next_line(30.0)
        assert answer["reply"] == "ping", answer
        return float(answer["rtt_s"])

    def processes(self) -> list[psutil.Process]:
        """The helper (the daemon's stand-in) and every process of its actor system."""
        assert self.pgid is not None
        return [psutil.Process(self.proc.pid), *group_members(self.pgid)]

    def listeners(self) -> list[tuple[int, str, int]]:
        """(pid, ip, port) of every listening TCP socket of those processes."""
        found = []
        for proc in self.processes():
            with contextlib.suppress(psutil.NoSuchProcess):
                for conn in proc.net_connections(kind="tcp"):
                    if conn.status == psutil.CONN_LISTEN:
                        found.append((proc.pid, conn.laddr.ip, conn.laddr.port))
        return found

    def actor_system_ports(self) -> list[int]:
        """Listening ports of the actor system proper, without the helper's own
        (its handle only reads that socket while it waits for an answer). A
        forked process keeps its parent's listening descriptors, so the
        helper's port shows up under the admin too: subtract it by port."""
        listeners = self.listeners()
        helper = {port for pid, _, port in listeners if pid == self.proc.pid}
        return sorted({port for _, _, port in listeners} - helper)


def _read_lines(stream: IO[str], lines: queue.Queue[str]) -> None:
    for line in stream:
        lines.put(line)


@contextlib.contextmanager
def secure_system(tmp_path: Path, key: bytes) -> Iterator[SecureSystem]:
    port = free_port()
    runtime_dir = tmp_path / "run"
    env = {
        **os.environ,
        KEY_ENV: key.hex(),
        "THESPLOG_FILE": str(tmp_path / "thespian.log"),
    }
    env.pop("THESPIAN_BASE_IPADDR", None)
    stderr_path = tmp_path / "helper.stderr"
    command = [
        sys.executable,
        "-m",
        "tests.support.secure_system",
        "--admin-port",
        str(port),
        "--runtime-dir",
        str(runtime_dir),
        "--key-file",
        str(tmp_path / "no-such.key"),  # the key comes from the environment
        "--max-frame-bytes",
        str(MAX_FRAME_BYTES),
    ]
    with stderr_path.open("w") as stderr:
        proc = subprocess.Popen(
            command,
            cwd=REPO,
            env=env,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=stderr,
            text=True,
        )
    lines: queue.Queue[str] = queue.Queue()
    assert proc.stdout is not None
    threading.Thread(target=_read_lines, args=(proc.stdout, lines), daemon=True).start()
    system = SecureSystem(proc, port, runtime_dir, key, lines)
    try:
        system.ready = system.next_line(START_TIMEOUT_S)
        assert system.ready.get("ready"), system.ready
        system.pgid = _admin_group(port)
        yield system
    finally:
        if system.pgid is None:
            with contextlib.suppress(Exception):
                system.pgid = _admin_group(port, timeout_s=1.0)
        _stop(system)
        print(f"--- helper stderr ---\n{stderr_path.read_text()[-3000:]}")


def _admin_group(port: int, timeout_s: float = 10.0) -> int:
    admin = wait_for(lambda: admin_process(port), timeout_s, f"the admin on port {port}")
    pgid = os.getpgid(admin.pid)
    assert pgid != os.getpgid(0), "the admin should run in a session of its own"
    return pgid


def _stop(system: SecureSystem) -> None:
    """Close stdin (the helper shuts its actor system down), then make sure:
    SIGTERM, SIGKILL, and SIGKILL for any actor process left, each by pid."""
    proc = system.proc
    with contextlib.suppress(OSError):
        assert proc.stdin is not None
        proc.stdin.close()
    for escalate in (None, proc.terminate, proc.kill):
        if escalate is not None:
            escalate()
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=STOP_TIMEOUT_S if escalate is None else 10.0)
            break
    if system.pgid is None:
        return
    left = group_members(system.pgid)
    _, alive = psutil.wait_procs(left, timeout=STOP_TIMEOUT_S)
    for each in alive:
        with contextlib.suppress(psutil.NoSuchProcess):
            os.kill(each.pid, signal.SIGKILL)
    _, still = psutil.wait_procs(alive, timeout=10.0)
    if alive:
        print(f"shutdown left actor processes behind, killed: {[p.pid for p in alive]}")
    assert not still, f"actor processes survived SIGKILL: {[p.pid for p in still]}"


@pytest.fixture
def cluster_key() -> bytes:
    return secrets.token_bytes(32)


def test_every_listener_binds_loopback_only(tmp_path: Path, cluster_key: bytes) -> None:
    with secure_system(tmp_path, cluster_key) as system:
        listeners = system.listeners()
        for pid, ip, port in listeners:
            print(f"pid {pid} listens on {ip}:{port}")
        pids = {pid for pid, _, _ in listeners}
        ports = {port for _, _, port in listeners}
        assert system.admin_port in ports
        assert set(system.ready["echo_pids"]) <= pids, "the echo actor should have a listener"
        assert system.proc.pid in pids, "the ActorSystem handle listens too"
        assert len(listeners) >= 3  # the handle, the admin, the logger, the echo actor...
        assert {ip for _, ip, _ in listeners} == {"127.0.0.1"}, listeners


def test_unsigned_pickle_is_never_loaded_and_others_keep_working(
    tmp_path: Path, cluster_key: bytes
) -> None:
    marker = tmp_path / "pwned"
    attack = raw_frame(marker_pickle(marker))
    with secure_system(tmp_path, cluster_key) as system:
        before = [system.ask() for _ in range(5)]
        ports = sorted({port for _, _, port in system.listeners()})

        # Given an unsigned pickle sent to every listening port of every process
        sockets = [open_and_send(port, attack) for port in ports]
        system.ask()  # the helper's handle reads its socket only while it waits
        closed = [seconds_until_closed(sock, 5.0) for sock in sockets]
        assert all(c is not None for c in closed), dict(zip(ports, closed, strict=True))

        # While an attacker keeps at it, the echo actor still answers promptly
        during, sent = _ask_under_attack(system, system.actor_system_ports(), attack, asks=20)
        after = [system.ask() for _ in range(5)]
        print(f"ask round trip (ms) before: {_ms(before)}")
        print(f"ask round trip (ms) during: {_ms(during)}")
        print(f"ask round trip (ms) after:  {_ms(after)}")
        print(f"attack frames closed after (ms): {_ms([c or 0.0 for c in closed])}")

        # Then nothing was unpickled, and every refusal is on record
        assert not marker.exists()
        assert max(during) < 1.0, during
        # (each process writes its table at most once a second: wait for the last write)
        rows = wait_for(
            lambda: _rows_for(system.runtime_dir, len(ports) + sent),
            10.0,
            f"{len(ports) + sent} refusals in the rejected-peer table",
        )
        print(f"rejected peers: {rows}")
        assert rows[0]["peer"] == "127.0.0.1"
        assert rows[0]["reason"] == "bad_mac"
        assert list(system.runtime_dir.glob("rejected-*.json"))
    assert not marker.exists()


def test_oversize_and_malformed_headers_are_closed_at_once(
    tmp_path: Path, cluster_key: bytes
) -> None:
    with secure_system(tmp_path, cluster_key) as system:
        ports = system.actor_system_ports()
        huge = b"%d>" % HUNDRED_GB + b"x" * 4096
        for port in ports:
            took = send_and_time_close(port, huge, 5.0)
            print(f"port {port}: 100 GB header closed after {_ms([took or 99.0])} ms")
            assert took is not None and took < 1.0, (port, took)
        rows = wait_for(
            lambda: _rows_for(system.runtime_dir, len(ports)),
            10.0,
            "every too_large refusal in the rejected-peer table",
        )
        assert rows[0]["reason"] == "too_large", rows

        http = b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"
        took = send_and_time_close(system.admin_port, http, 5.0)
        assert took is not None and took < 1.0, took
        wait_for(
            lambda: rejected_peers(system.runtime_dir)[0]["reason"] == "malformed",
            10.0,
            "malformed in the rejected-peer table",
        )
        assert system.ask() < 1.0


def test_check_key_with_tells_right_wrong_and_absent(tmp_path: Path, cluster_key: bytes) -> None:
    with secure_system(tmp_path, cluster_key) as system:
        port = system.admin_port
        timings = {}
        for name, key, want in (
            ("right key", cluster_key, KeyCheck.ACCEPTED),
            ("wrong key", secrets.token_bytes(32), KeyCheck.REFUSED),
        ):
            started = time.monotonic()
            assert check_key_with("127.0.0.1", port, key, timeout_s=5.0) is want, name
            timings[name] = time.monotonic() - started
        started = time.monotonic()
        assert check_key_with("127.0.0.1", free_port(), cluster_key) is KeyCheck.UNREACHABLE
        timings["closed port"] = time.monotonic() - started
        print({name: f"{took * 1000:.1f} ms" for name, took in timings.items()})
        assert timings["wrong key"] < 2.0, "a wrong key is refused at once, not by timeout"
        assert system.ask() < 1.0


def _ask_under_attack(
    system: SecureSystem, ports: list[int], attack: bytes, asks: int
) -> tuple[list[float], int]:
    """Round trips measured while another thread sends unsigned frames nonstop;
    also how many frames it sent (each one closed by the server)."""
    stop = threading.Event()
    sent = [0]

    def attacker() -> None:
        while not stop.is_set():
            for port in ports:
                with contextlib.suppress(OSError):
                    if send_and_time_close(port, attack, 2.0) is not None:
                        sent[0] += 1

    thread = threading.Thread(target=attacker, daemon=True)
    thread.start()
    try:
        wait_for(lambda: sent[0] >= len(ports), 10.0, "the attacker to get going")
        rtts = [system.ask() for _ in range(asks)]
    finally:
        stop.set()
        thread.join(timeout=10.0)
    print(f"attack frames sent during the asks: {sent[0]}")
    return rtts, sent[0]


def _rows_for(runtime_dir: Path, at_least: int) -> list[Any]:
    rows = rejected_peers(runtime_dir)
    return rows if rows and rows[0]["count"] >= at_least else []


def _ms(values: list[float]) -> str:
    return ", ".join(f"{v * 1000:.1f}" for v in values)
