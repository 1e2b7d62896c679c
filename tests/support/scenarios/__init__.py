"""The fault scenarios, one module per concern; importing this package
registers every one of them in :data:`tests.support.scenario.SCENARIOS`
(for `tests/integration/test_faults_*.py` and `scripts/chaos.py SCENARIO`).

Each scenario drives real ``actorsys run`` daemons against a real embedded
broker (through a :class:`tests.support.rig.Rig`), injects one fault for
real, waits (deadline-bounded polls, never fixed sleeps) until the committed
offsets reach the end offsets and no job is PENDING or RUNNING, stops the
daemons (no process left) and runs the exactly-once output check:

* :mod:`.overload`: a producer far faster than the one slow worker;
* :mod:`.shutdown`: SIGTERM under load, and a second SIGTERM during the drain;
* :mod:`.broker`: the broker frozen mid-stream, or not there yet at start-up;
* :mod:`.bad_records`: every kind of record the handler must reject;
* :mod:`.rebalance`: a second daemon joins, leaves, joins and is killed -9;
* :mod:`.workers`: a worker killed -9, or stopped past its lease, mid-job;
* :mod:`.failing_jobs`: jobs that fail once, always, or kill their worker;
* :mod:`.messages`: actor messages lost and duplicated.
"""

from tests.support.scenarios import (
    bad_records,
    broker,
    failing_jobs,
    messages,
    overload,
    rebalance,
    shutdown,
    workers,
)

__all__ = [
    "bad_records",
    "broker",
    "failing_jobs",
    "messages",
    "overload",
    "rebalance",
    "shutdown",
    "workers",
]
