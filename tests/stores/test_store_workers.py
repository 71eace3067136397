"""The store contract of the workers registry and poison runs (issue 12).

`register_worker` keeps what a worker defines, `live_workers` lists the workers alive,
a reap counts a recovery of each run it releases (`RunRecord.recoveries`), and a clean
hand back or an unblock starts the count afresh. Run on every store through the
``store`` fixture, like `test_store_contract.py`.
"""

from __future__ import annotations

import os
import socket
from datetime import timedelta

import pytest

from helpers import T0, at, hold
from perdure import _log
from perdure._records import EventType, NewEvent, NewRun
from perdure.stores import MemoryStore, PostgresStore, SQLiteStore

AnyStore = MemoryStore | SQLiteStore | PostgresStore

LATER = T0 + timedelta(hours=1)
"""Long past any store's lease or ``stale_after``."""


def step_started(attempt: int) -> NewEvent:
    return NewEvent(
        EventType.STEP_STARTED, "boom#1", {"name": "boom", "attempt": attempt, "input": None}
    )


async def test_a_registered_worker_is_live_with_what_it_defines(store: AnyStore) -> None:
    """live_workers lists a registered worker: id, host, pid, its workflows, heartbeat."""
    await store.register_worker("w1", T0, workflows={"checkout": "v1", "refund": "abc"})
    await store.heartbeat("w1", at(1))
    (worker,) = await store.live_workers(at(2))
    assert (worker.id, worker.host, worker.pid) == ("w1", socket.gethostname(), os.getpid())
    assert worker.workflows == {"checkout": "v1", "refund": "abc"}
    assert (worker.started_at, worker.heartbeat_at) == (T0, at(1))


async def test_registering_again_replaces_the_workflows_or_keeps_them(store: AnyStore) -> None:
    """A worker registered again with workflows has those; without, the ones it had."""
    await store.register_worker("w1", T0, workflows={"checkout": "v1"})
    await store.register_worker("w1", at(1))
    assert [w.workflows for w in await store.live_workers(at(1))] == [{"checkout": "v1"}]
    await store.register_worker("w1", at(2), workflows={"checkout": "v2"})
    assert [w.workflows for w in await store.live_workers(at(2))] == [{"checkout": "v2"}]
    await store.register_worker("w2", at(3))
    assert [(w.id, w.workflows) for w in await store.live_workers(at(3))] == [
        ("w1", {"checkout": "v2"}),
        ("w2", {}),
    ]


async def test_an_unregistered_worker_is_not_live(store: AnyStore) -> None:
    """A worker that left is gone from live_workers."""
    await store.register_worker("w1", T0, workflows={"a": "1"})
    await store.register_worker("w2", T0, workflows={"b": "1"})
    await store.unregister_worker("w1", at(1))
    assert [w.id for w in await store.live_workers(at(1))] == ["w2"]


async def test_a_worker_that_stopped_heartbeating_is_not_live(store: AnyStore) -> None:
    """Past the lease (or stale_after), a silent worker is not live, reaped or not."""
    if isinstance(store, MemoryStore):
        pytest.skip("a memory store's workers live in its process: none can die alone")
    await store.register_worker("w1", T0, workflows={"a": "1"})
    await store.register_worker("w2", T0, workflows={"b": "1"})
    await store.heartbeat("w2", LATER)
    assert [w.id for w in await store.live_workers(LATER)] == ["w2"]
    assert [w.id for w in await store.live_workers(T0)] == ["w1", "w2"]


async def test_each_reap_without_progress_counts_one_recovery_more(store: AnyStore) -> None:
    """A run taken from dead workers again and again, its log growing only by
    step_started, counts each time; a new run's first reap counts 1."""
    if isinstance(store, MemoryStore):
        pytest.skip("a memory store's workers live in its process: none can die alone")
    now = T0
    await store.register_worker("w0", now)
    await hold(store, "r1", worker="w0", now=now)
    await store.append("w0", "r1", [_log.run_started(worker="w0"), step_started(1)], now)
    for n in range(1, 4):
        now += timedelta(hours=1)
        await store.register_worker("reaper", now)
        assert await store.reap_dead_workers("reaper", now) == 1
        run = await store.get_run("r1")
        assert run is not None
        assert (run.recoveries, run.owner) == (n, None)
        (claimed,) = await store.claim_runs(f"w{n}", now, 1)
        assert claimed.recoveries == n
        await store.register_worker(f"w{n}", now)
        await store.append(f"w{n}", "r1", [step_started(n + 1)], now)


async def test_progress_between_reaps_starts_the_count_again(store: AnyStore) -> None:
    """An event other than step_started logged since the last reap is progress: 1."""
    if isinstance(store, MemoryStore):
        pytest.skip("a memory store's workers live in its process: none can die alone")
    await store.register_worker("w0", T0)
    await hold(store, "r1", worker="w0")
    for worker, now in (("w1", LATER), ("w2", LATER + timedelta(hours=1))):
        await store.register_worker("reaper", now)
        await store.reap_dead_workers("reaper", now)
        await store.claim_runs(worker, now, 1)
        await store.register_worker(worker, now)
    run = await store.get_run("r1")
    assert run is not None
    assert run.recoveries == 2
    done = NewEvent(EventType.STEP_COMPLETED, "boom#1", {"name": "boom", "attempt": 1})
    await store.append("w2", "r1", [step_started(1), done], LATER + timedelta(hours=1))
    now = LATER + timedelta(hours=2)
    await store.register_worker("reaper", now)
    await store.reap_dead_workers("reaper", now)
    run = await store.get_run("r1")
    assert run is not None
    assert run.recoveries == 1


async def test_a_clean_hand_back_or_an_unblock_resets_the_count(store: AnyStore) -> None:
    """release_run, unregister_worker and unblock_run leave no recovery counted."""
    if isinstance(store, MemoryStore):
        pytest.skip("a memory store's workers live in its process: none can die alone")
    await store.register_worker("w0", T0)
    await hold(store, "r1", worker="w0")
    await store.register_worker("reaper", LATER)
    await store.reap_dead_workers("reaper", LATER)

    async def recoveries() -> int:
        run = await store.get_run("r1")
        assert run is not None
        return run.recoveries

    assert await recoveries() == 1
    await store.claim_runs("w1", LATER, 1)
    await store.release_run("w1", "r1", LATER)
    assert await recoveries() == 0

    now = LATER + timedelta(hours=1)
    await store.register_worker("w2", now)  # and never heartbeats: reaped below
    await store.claim_runs("w2", now, 1)
    await store.register_worker("reaper", now + timedelta(hours=1))
    await store.reap_dead_workers("reaper", now + timedelta(hours=1))
    assert await recoveries() == 1
    now += timedelta(hours=1)
    await store.register_worker("w3", now)
    await store.claim_runs("w3", now, 1)
    await store.unregister_worker("w3", now)
    assert await recoveries() == 0

    await store.register_worker("w4", now)
    await store.claim_runs("w4", now, 1)
    await store.register_worker("reaper", now + timedelta(hours=1))
    await store.reap_dead_workers("reaper", now + timedelta(hours=1))
    now += timedelta(hours=1)
    await store.register_worker("w5", now)
    await store.claim_runs("w5", now, 1)
    blocked = _log.run_blocked(reason="poison", version=None, worker="w5")
    await store.block_run("w5", "r1", blocked, now)
    assert await recoveries() == 1
    await store.unblock_run("r1", now, by=None)
    assert await recoveries() == 0


async def test_a_fork_names_the_run_it_was_forked_from(store: AnyStore) -> None:
    """fork_run's record, and the run read back, carry forked_from; others have none."""
    await store.create_run(NewRun("orig", "wf", {"args": []}), T0)
    fork, created = await store.fork_run(NewRun("copy", "wf", {"args": []}), "orig", [], at(1))
    assert created
    assert fork.forked_from == "orig"
    for run_id, forked_from in (("copy", "orig"), ("orig", None)):
        run = await store.get_run(run_id)
        assert run is not None
        assert run.forked_from == forked_from
    assert {r.id: r.forked_from for r in await store.list_runs()} == {
        "copy": "orig",
        "orig": None,
    }
