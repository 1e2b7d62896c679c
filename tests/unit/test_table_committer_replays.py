"""A replayed job (FAILED, then `actorsys jobs retry`) lands in the raw table
once: the raw table's ``TableCommitter`` (a plain object) on a real Delta
table in a temporary directory, fed the messages the JobManager sends."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from actorsys.actors.committer import TableCommitter
from actorsys.config import build_config
from actorsys.messages import CommitFiles, JobsCommitted
from actorsys.offsets import OffsetInterval
from tests.support.waiting import wait_for
from tests.unit.test_delta_table import offsets, store_at, write

GROUP, TOPIC = "g", "telemetry"


class Committer:
    """A TableCommitter and what it sent, ticked until its queue is empty."""

    def __init__(self, out: Path) -> None:
        self.sent: list[Any] = []
        self.table = TableCommitter("raw", lambda _to, message: self.sent.append(message))
        config = build_config(
            {
                "output": {"dir": str(out), "metrics": ["temperature"]},
                "tables": {"commit_interval_ms": 1},
            }
        )
        assert self.table.open(config) is None

    def offer(self, message: CommitFiles) -> None:
        self.table.commit_files(message, sender="job-manager")

    def settle(self) -> None:
        def drained() -> bool:
            self.table.tick()  # commits once the commit interval (1 ms) has passed
            return self.table.status().queued_jobs == 0

        wait_for(drained, 10, "the commit queue to drain", interval_s=0.005)

    def committed_jobs(self) -> list[int]:
        return [job for m in self.sent if isinstance(m, JobsCommitted) for job, _token in m.jobs]


def files_of(out: Path, stem: str, start: int, count: int) -> tuple[str, ...]:
    """An attempt's data files (DataFile JSON), ``count`` rows from ``start``."""
    return tuple(f.to_json() for f in write(store_at(out / "raw"), stem, start, count))


def commit(
    job_id: int, start: int, end: int, files: tuple[str, ...] = (), token: int = 1, **flags: Any
) -> CommitFiles:
    chain_start = None if start == 0 else start
    interval = OffsetInterval(TOPIC, 0, start, end)
    return CommitFiles(job_id, token, GROUP, interval, chain_start, files, **flags)


@pytest.fixture
def out(tmp_path: Path) -> Path:
    return tmp_path / "out"


def test_a_replay_the_chain_is_past_lands_once_and_its_offer_again_is_a_duplicate(
    out: Path,
) -> None:
    # Given a table whose chain went past job 2's offsets by its skip (it FAILED)
    committer = Committer(out)
    committer.offer(commit(1, 0, 10, files_of(out, "j1", 0, 10)))
    committer.offer(commit(2, 10, 20, failed=True))
    committer.offer(commit(3, 20, 30, files_of(out, "j3", 20, 10)))
    committer.settle()
    assert offsets(out / "raw") == list(range(10)) + list(range(20, 30))
    # When job 2 is replayed and its files are offered
    committer.offer(commit(2, 10, 20, files_of(out, "j2", 10, 10), replay=True))
    committer.settle()
    # Then its rows are in the table, once, and the job is committed
    assert offsets(out / "raw") == list(range(30))
    assert committer.committed_jobs().count(2) == 1
    # And offered again (a restart before the job store said DONE), by a new committer
    again = Committer(out)
    again.offer(commit(2, 10, 20, files_of(out, "j2b", 10, 10), token=2, replay=True))
    again.settle()
    # Then nothing is added: it is a duplicate, answered as committed, its files gone
    assert offsets(out / "raw") == list(range(30))
    assert again.committed_jobs() == [2]
    assert not list((out / "raw").rglob("j2b*"))


def test_a_replay_behind_its_own_queued_skip_is_published_not_dropped(out: Path) -> None:
    # Given job 2's skip queued behind job 1, which is not written yet
    committer = Committer(out)
    committer.offer(commit(2, 10, 20, failed=True))
    # When job 2's replay arrives, then job 1
    committer.offer(commit(2, 10, 20, files_of(out, "j2", 10, 10), replay=True))
    committer.offer(commit(1, 0, 10, files_of(out, "j1", 0, 10)))
    committer.settle()
    # Then both are in the table, each offset once
    assert offsets(out / "raw") == list(range(20))
    assert sorted(committer.committed_jobs()) == [1, 2]


def test_a_job_that_is_not_a_replay_is_still_a_duplicate_past_the_chain(out: Path) -> None:
    committer = Committer(out)
    committer.offer(commit(1, 0, 10, files_of(out, "j1", 0, 10)))
    committer.settle()
    # A second attempt after a crash between the table commit and the job store's update
    committer.offer(commit(1, 0, 10, files_of(out, "j1b", 0, 10), token=2))
    committer.settle()
    assert offsets(out / "raw") == list(range(10))
    assert not list((out / "raw").rglob("j1b*"))
