"""Logging: one line per event, text or JSON, and rate-limited repeats.

Actor processes log through Thespian, which forwards records to its logging
process; ``thespian_log_defs`` configures that process (a minimum level, so a
flood of debug records cannot stall the actor system).
"""

from __future__ import annotations

import json
import logging
import logging.config
import socket
import time
from collections.abc import Callable
from typing import Any

TEXT_FORMAT = "%(asctime)s %(levelname)s [%(name)s %(host)s] %(message)s"


class _HostFilter(logging.Filter):
    host = socket.gethostname()

    def filter(self, record: logging.LogRecord) -> bool:
        record.host = self.host
        return True


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        doc = {
            "ts": self.formatTime(record, "%Y-%m-%dT%H:%M:%S%z"),
            "level": record.levelname,
            "role": record.name,
            "host": getattr(record, "host", _HostFilter.host),
            "msg": record.getMessage(),
        }
        if (fields := getattr(record, "fields", None)) is not None:
            doc["fields"] = fields  # structured figures (the progress event)
        if record.exc_info:
            doc["exc"] = self.formatException(record.exc_info)
        return json.dumps(doc)


def thespian_log_defs(level: str, log_format: str) -> dict[str, Any]:
    """``logDefs`` for ActorSystem: what every actor process logs, and how."""
    formatter: dict[str, Any] = (
        {"()": "actorsys.logs.JsonFormatter"} if log_format == "json" else {"format": TEXT_FORMAT}
    )
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "filters": {"host": {"()": "actorsys.logs._HostFilter"}},
        "formatters": {"main": formatter},
        "handlers": {
            "stderr": {
                "class": "logging.StreamHandler",
                "formatter": "main",
                "filters": ["host"],
                "level": level.upper(),
            }
        },
        "root": {"handlers": ["stderr"], "level": level.upper()},
        # librdkafka and Thespian internals are chatty below WARNING.
        "loggers": {"thespian": {"level": "WARNING"}},
    }


def configure_process_logging(level: str, log_format: str) -> None:
    """The same format for the daemon's own (non-actor) process."""
    logging.config.dictConfig(thespian_log_defs(level, log_format))


class RateLimitedLog:
    """Logs an event at most once per ``interval_s`` per key, then says how
    many repeats it held back (a dead broker must not flood the log)."""

    def __init__(
        self,
        logger: logging.Logger,
        interval_s: float = 10.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._logger = logger
        self._interval_s = interval_s
        self._clock = clock
        self._last: dict[str, float] = {}
        self._suppressed: dict[str, int] = {}

    def log(self, level: int, key: str, msg: str, *args: Any) -> bool:
        now = self._clock()
        last = self._last.get(key)
        if last is not None and now - last < self._interval_s:
            self._suppressed[key] = self._suppressed.get(key, 0) + 1
            return False
        held = self._suppressed.pop(key, 0)
        self._last[key] = now
        suffix = f" ({held} similar suppressed)" if held else ""
        self._logger.log(level, msg + suffix, *args)
        return True


class KafkaClientLog:
    """librdkafka's own log lines (``logger=`` of a confluent-kafka client),
    rate-limited per facility: a dead broker makes librdkafka report every
    reconnect attempt, several a second."""

    def __init__(self, name: str = "actorsys.kafka", interval_s: float = 10.0) -> None:
        self._limited = RateLimitedLog(logging.getLogger(name), interval_s)

    def log(self, level: int, fmt: str, *args: Any) -> None:
        facility = str(args[0]) if args else fmt
        self._limited.log(level, facility, fmt, *args)
