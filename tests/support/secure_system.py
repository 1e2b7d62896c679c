"""A real actor system with the secured transport, in a process of its own.

Run as ``python -m tests.support.secure_system --admin-port N --runtime-dir D
--key-file F [--max-frame-bytes B] [--bind-host H]`` (the key may come from
``$ACTORSYS_CLUSTER_KEY`` instead of the file). The pytest process never
installs the patches itself: they would leak into every later test.

Protocol on stdin/stdout, one JSON object per line:

- on start: ``{"ready": true, "admin_port": N, "pid": P, "echo_pids": [E]}``;
- each ``ask`` line read: ``{"reply": "ping", "rtt_s": 0.002}`` (reply None on
  timeout);
- stdin EOF or SIGTERM: the actor system is shut down and the process exits.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import time
from types import FrameType
from typing import Any

from thespian.actors import ActorSystem

from actorsys.cluster_key import load_key
from actorsys.transport_security import TransportSettings, install
from tests.support.echo_actor import PID_REQUEST, Echo

ASK_TIMEOUT_S = 10.0
LOG_DEFS = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"line": {"format": "%(asctime)s %(levelname)s [%(name)s] %(message)s"}},
    "handlers": {"stderr": {"class": "logging.StreamHandler", "formatter": "line"}},
    "root": {"handlers": ["stderr"], "level": "WARNING"},
}


def _parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="secure_system")
    parser.add_argument("--admin-port", type=int, required=True)
    parser.add_argument("--runtime-dir", required=True)
    parser.add_argument("--key-file", required=True)
    parser.add_argument("--max-frame-bytes", type=int, default=1 << 20)
    parser.add_argument("--bind-host", default="127.0.0.1")
    return parser.parse_args(argv)


def _say(doc: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(doc) + "\n")
    sys.stdout.flush()


def _on_sigterm(signum: int, frame: FrameType | None) -> None:
    raise SystemExit(0)


def _serve(asys: Any, echo: Any) -> None:
    """Answer ``ask`` lines until stdin closes."""
    for line in sys.stdin:
        if line.strip() != "ask":
            continue
        started = time.monotonic()
        reply = asys.ask(echo, "ping", ASK_TIMEOUT_S)
        _say({"reply": reply, "rtt_s": time.monotonic() - started})


def main(argv: list[str]) -> int:
    args = _parse(argv)
    signal.signal(signal.SIGTERM, _on_sigterm)
    key = load_key(args.key_file, create=False)
    install(TransportSettings(args.bind_host, key, args.max_frame_bytes, args.runtime_dir))
    asys = ActorSystem("multiprocTCPBase", {"Admin Port": args.admin_port}, logDefs=LOG_DEFS)
    try:
        echo = asys.createActor(Echo)
        pid = asys.ask(echo, PID_REQUEST, ASK_TIMEOUT_S)
        _say({"ready": True, "admin_port": args.admin_port, "pid": os.getpid(), "echo_pids": [pid]})
        _serve(asys, echo)
    finally:
        asys.shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
