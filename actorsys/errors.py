"""The error tree of actorsys.

Faults (something went wrong) are kept apart from control-flow signals.
At the CLI edge every ``ActorsysError`` becomes one line on stderr and a
non-zero exit code; anything else is a bug and keeps its traceback.
"""

from __future__ import annotations


class ActorsysError(Exception):
    """Base class of every error actorsys raises on purpose."""


class ConfigError(ActorsysError):
    """The configuration is wrong: unknown key, wrong type, bad value or path.

    The message is one line that names the key and says what is expected.
    """


class BrokerError(ActorsysError):
    """The embedded broker could not be started or reached."""


class JobStoreError(ActorsysError):
    """The job store could not persist or read; callers retry later."""


class InvalidTransition(JobStoreError):
    """A job was asked to move between two states the state machine forbids."""

    def __init__(self, job_id: int, current: str, target: str) -> None:
        super().__init__(f"job {job_id}: {current} -> {target} is not allowed")
        self.job_id = job_id
        self.current = current
        self.target = target


class HandlerError(ConfigError):
    """A job handler could not be loaded (bad ``module:callable`` reference)."""
