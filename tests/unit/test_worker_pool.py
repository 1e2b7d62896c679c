"""The WorkerMaster's pool rules, with a fake clock (plain numbers): hosts that
join, drain, go silent and come back; workers that die or overrun their lease."""

from __future__ import annotations

from typing import Any

from thespian.actors import ActorExitRequest

from actorsys.convention import HOST, MEMBER_ID, VERSION, WORKER_SLOTS
from actorsys.messages import RetireWorker
from actorsys.timers import PlaceAgentAgain, ReapWorker, RefillHost
from actorsys.worker_pool import (
    REPLACE_DELAY_S,
    Decision,
    Later,
    Lost,
    PlaceAgent,
    Replaced,
    Send,
    Spawn,
    WorkerPool,
)

V = "1.0"


def caps(member: str = "b:1", slots: int = 2, version: str = V) -> dict[str, Any]:
    return {MEMBER_ID: member, HOST: "host-b", WORKER_SLOTS: slots, VERSION: version}


def perform(pool: WorkerPool, decisions: list[Decision]) -> list[Decision]:
    """What the actor does: create what is asked for (addresses are strings here)."""
    for decision in decisions:
        if isinstance(decision, Spawn):
            pool.add(
                f"addr-{len(pool.workers) + len(pool.retiring)}", decision.member, decision.host
            )
        elif isinstance(decision, PlaceAgent):
            pool.agent_placed(decision.member, f"agent-{decision.member}")
    return decisions


def joined(slots: int = 2, now: float = 0.0) -> WorkerPool:
    pool = WorkerPool(local_member="a:1", version=V)
    perform(pool, pool.convention_update(caps(slots=slots), added=True, now=now))
    return pool


def sent(decisions: list[Decision]) -> list[tuple[Any, Any]]:
    return [(d.to, type(d.message)) for d in decisions if isinstance(d, Send)]


# --- hosts joining ----------------------------------------------------------------------------


def test_a_joining_host_gets_an_agent_then_a_worker_per_slot() -> None:
    pool = WorkerPool(local_member="a:1", version=V)
    decisions = pool.convention_update(caps(slots=2), added=True, now=0.0)
    assert decisions == [
        PlaceAgent("b:1", "host-b"),
        Spawn("b:1", "host-b"),
        Spawn("b:1", "host-b"),
    ]


def test_the_leader_itself_and_foreign_systems_get_no_workers() -> None:
    pool = WorkerPool(local_member="a:1", version=V)
    assert pool.convention_update(caps(member="a:1"), added=True, now=0.0) == []
    assert pool.convention_update({}, added=True, now=0.0) == []
    assert pool.hosts == {}


def test_a_host_running_another_version_is_refused_until_it_matches() -> None:
    # Given a host with another actorsys version
    pool = WorkerPool(local_member="a:1", version=V)
    assert pool.convention_update(caps(version="0.9"), added=True, now=0.0) == []
    assert "0.9" in pool.refused["b:1"] and pool.hosts == {}
    # When it comes back with the same version, Then it gets workers
    assert pool.convention_update(caps(), added=True, now=1.0)
    assert pool.refused == {}


def test_a_host_raising_or_lowering_its_slots_gets_workers_spawned_or_retired() -> None:
    pool = joined(slots=2)
    assert perform(pool, pool.convention_update(caps(slots=3), added=True, now=1.0)) == [
        Spawn("b:1", "host-b")
    ]
    decisions = pool.convention_update(caps(slots=1), added=True, now=2.0)
    assert [m for _, m in sent(decisions)] == [RetireWorker, RetireWorker]
    assert len(pool.workers) == 1 and len(pool.retiring) == 2


def test_workers_are_numbered_in_creation_order() -> None:
    pool = joined(slots=2)
    assert sorted(pool.workers) == ["worker-1", "worker-2"]
    assert pool.by_host() == {"host-b": 2}


# --- silence and loss ---------------------------------------------------------------------------


def test_a_host_silent_past_the_timeout_is_lost_and_its_jobs_go_back() -> None:
    # Given a host that last answered at 0
    pool = joined(slots=2, now=0.0)
    # When checked within the timeout, Then it is only pinged
    assert sent(pool.check_hosts("ping", now=5.0, timeout_s=5.0)) == [("agent-b:1", str)]
    # When checked after it, Then its workers are gone, told to exit, their jobs back
    decisions = pool.check_hosts("ping", now=5.1, timeout_s=5.0)
    assert [d for d in decisions if isinstance(d, Lost)] == [Lost("worker-1"), Lost("worker-2")]
    assert pool.hosts["b:1"].lost and pool.workers == {}
    # And it is not lost a second time on the next check
    assert [d for d in pool.check_hosts("ping", 9.0, 5.0) if isinstance(d, Lost)] == []


def test_a_lost_host_that_answers_again_gets_its_workers_back() -> None:
    pool = joined(slots=2, now=0.0)
    pool.check_hosts("ping", now=10.0, timeout_s=5.0)
    assert pool.pong("b:1", now=11.0) == [Spawn("b:1", "host-b"), Spawn("b:1", "host-b")]
    assert not pool.hosts["b:1"].lost and pool.hosts["b:1"].last_pong == 11.0


def test_a_pong_from_a_host_that_was_never_lost_changes_no_workers() -> None:
    pool = joined(slots=2, now=0.0)
    assert pool.pong("b:1", now=3.0) == [] and pool.pong("unknown", now=3.0) == []
    # And the pong keeps it from being lost
    assert not [d for d in pool.check_hosts("ping", 7.0, 5.0) if isinstance(d, Lost)]


def test_a_host_leaving_the_convention_loses_its_workers_and_is_forgotten() -> None:
    pool = joined(slots=1)
    decisions = pool.convention_update(caps(), added=False, now=1.0)
    assert Lost("worker-1") in decisions and pool.hosts == {} and pool.workers == {}


def test_workers_retiring_on_a_lost_host_are_gone_with_it() -> None:
    # Given a host that lowered its slots, one worker still on its way out
    pool = joined(slots=2)
    pool.convention_update(caps(slots=1), added=True, now=1.0)
    # When the host is lost, Then both workers' jobs go back, none stays retiring
    decisions = pool.host_lost("b:1", "test")
    assert sorted(d.worker_id for d in decisions if isinstance(d, Lost)) == ["worker-1", "worker-2"]
    assert pool.retiring == []


# --- drain ----------------------------------------------------------------------------------------


def test_a_draining_host_retires_every_worker_and_its_agent_goes_last() -> None:
    # Given a host with two workers
    pool = joined(slots=2)
    # When it drains, Then its workers are retired (they finish their job)
    decisions = pool.drain("b:1")
    assert decisions is not None
    assert [m for _, m in sent(decisions)] == [RetireWorker, RetireWorker]
    assert pool.drain("b:1") is None  # once
    # And its slots stay 0 whatever it advertises meanwhile
    assert pool.convention_update(caps(slots=4), added=True, now=1.0) == []
    # When the first leaves, Then its job goes back; the host is not done yet
    assert pool.child_exited("addr-0") == [Lost("worker-1")]
    # When the last leaves, Then the agent is asked to exit and the host forgotten
    decisions = pool.child_exited("addr-1")
    assert decisions[0] == Lost("worker-2")
    assert sent(decisions) == [("agent-b:1", ActorExitRequest)] and pool.hosts == {}


def test_a_host_draining_with_no_workers_is_done_at_once() -> None:
    pool = joined(slots=0)
    decisions = pool.drain("b:1")
    assert decisions is not None and sent(decisions) == [("agent-b:1", ActorExitRequest)]
    assert pool.hosts == {}


def test_draining_an_unknown_host_does_nothing() -> None:
    assert WorkerPool(version=V).drain("b:1") is None


# --- dead workers and agents --------------------------------------------------------------------


def test_a_dead_local_worker_is_replaced_at_once() -> None:
    pool = WorkerPool(local_member="a:1", version=V)
    pool.add("local-0", "", "host-a")
    assert pool.child_exited("local-0") == [
        Replaced("worker-1"),
        Lost("worker-1"),
        Spawn("", "host-a"),
    ]
    assert pool.replaced == 1 and pool.workers == {}


def test_a_dead_remote_worker_is_replaced_after_a_pause() -> None:
    # Given a worker on a worker host that dies
    pool = joined(slots=1)
    decisions = pool.child_exited("addr-0")
    # Then its job goes back, and its slot is filled only after a pause
    assert decisions[-1] == Later(REPLACE_DELAY_S, RefillHost("b:1", "host-b"))
    assert pool.spawn_due("b:1") == [Spawn("b:1", "host-b")]


def test_no_worker_is_spawned_after_the_pause_on_a_lost_or_gone_host() -> None:
    pool = joined(slots=1)
    pool.child_exited("addr-0")
    pool.host_lost("b:1", "test")
    assert pool.spawn_due("b:1") == []
    assert pool.spawn_due("gone") == []


def test_a_dead_agent_is_placed_again_after_a_pause_unless_draining() -> None:
    pool = joined(slots=0)
    assert pool.child_exited("agent-b:1") == [Later(REPLACE_DELAY_S, PlaceAgentAgain("b:1"))]
    assert pool.agent_due("b:1") == [PlaceAgent("b:1", "host-b")]
    pool.hosts["b:1"].draining = True
    assert pool.agent_due("b:1") == [] and pool.child_exited("agent-b:1") == []


def test_an_unknown_child_changes_nothing() -> None:
    assert joined().child_exited("stranger") == []


# --- lease overrun --------------------------------------------------------------------------------


def test_a_worker_overrunning_its_lease_is_replaced_and_reaped_after_the_grace() -> None:
    # Given a local worker that reported its pid
    pool = WorkerPool(local_member="a:1", version=V)
    pool.add("local-0", "", "host-a")
    pool.hello("worker-1", pid=4242)
    # When it overruns its lease
    decisions = pool.replace("worker-1", grace_s=7.0)
    # Then it is asked to exit, a new one spawned, and a reap scheduled
    assert sent(decisions) == [("local-0", ActorExitRequest)]
    assert decisions[1:] == [
        Replaced("worker-1"),
        Spawn("", "host-a"),
        Later(7.0, ReapWorker("worker-1")),
    ]
    assert [w.pid for w in pool.to_kill("worker-1")] == [4242]
    # And once it exited it is no longer reaped; its late job goes back
    assert pool.child_exited("local-0") == [Lost("worker-1")]
    assert pool.to_kill("worker-1") == []


def test_a_remote_worker_is_never_killed_from_the_leader() -> None:
    pool = joined(slots=1)
    pool.hello("worker-1", pid=4242)
    pool.replace("worker-1", grace_s=1.0)
    assert pool.to_kill("worker-1") == []


def test_replacing_an_unknown_worker_does_nothing() -> None:
    assert WorkerPool(version=V).replace("worker-9", grace_s=1.0) == []
