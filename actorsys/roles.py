"""The roles of actorsys's processes: one name each, for status, metrics and logs."""

from __future__ import annotations

from enum import StrEnum


class Role(StrEnum):
    """A process's role. A ``str``: it is the key of the status document and the
    ``role`` label of the metrics, and compares equal to its value."""

    DAEMON = "daemon"
    SUPERVISOR = "supervisor"
    KAFKA_CONSUMER = "kafka_consumer"
    CONSUMER = "consumer"
    JOB_MANAGER = "job_manager"
    WORKER_MASTER = "worker_master"
    WORKER = "worker"
    COMMITTER = "committer"
    HOST_AGENT = "host_agent"
    WATCHDOG = "watchdog"
