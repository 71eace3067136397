"""Writes of many runs at once, on every store: each lands or fails on its own.

The database stores commit concurrent writes together (SQLite's writer thread,
PostgreSQL's batches), so a write that is refused must be refused alone, with the error
it would have had alone, and leave its neighbours committed. The memory store shows
what "alone" means.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

import pytest

from helpers import T0, hold
from perdure._errors import HookConflictError, LeaseLostError
from perdure._records import EventType, NewEvent, NewRun, RunRecord

from .test_store_contract import AnyStore, hook_created, snapshot, step

if TYPE_CHECKING:
    from collections.abc import Coroutine

RUNS = [f"r{index}" for index in range(10)]


async def hold_all(store: AnyStore, worker: str = "w1") -> None:
    for run_id in RUNS:
        await hold(store, run_id, worker)


def two_steps(cid: str = "fetch#1") -> list[NewEvent]:
    return [step(EventType.STEP_STARTED, cid), step(EventType.STEP_COMPLETED, cid, output=1)]


async def together(*writes: Coroutine[object, object, int]) -> list[int | BaseException]:
    return await asyncio.gather(*writes, return_exceptions=True)


async def test_a_lost_run_among_concurrent_appends_fails_alone(store: AnyStore) -> None:
    """A stale append to a run another worker took raises; the others commit."""
    await hold_all(store)
    await store.release_run("w1", "r5", T0)
    assert [run.id for run in await store.claim_runs("w2", T0, 10)] == ["r5"]
    before = await snapshot(store, "r5")
    results = await together(*(store.append("w1", run_id, two_steps(), T0) for run_id in RUNS))
    lost = results.pop(5)
    assert isinstance(lost, LeaseLostError)
    assert str(lost) == "worker 'w1' does not hold run 'r5': it is held by worker 'w2'"
    assert results == [3] * 9
    assert await snapshot(store, "r5") == before
    for run_id in RUNS[:5] + RUNS[6:]:
        assert [e.type for e in await store.events(run_id)][1:] == [
            EventType.STEP_STARTED,
            EventType.STEP_COMPLETED,
        ]


async def test_a_hook_conflict_among_concurrent_appends_fails_alone(store: AnyStore) -> None:
    """An append creating a token a live hook holds raises and writes nothing; the rest commit."""
    await hold_all(store)
    assert await store.append("w1", "r0", [hook_created("taken")], T0) == 2
    before = await snapshot(store, "r4")
    events = {run_id: two_steps() for run_id in RUNS[1:]}
    events["r4"].append(hook_created("taken"))
    results = await together(
        *(store.append("w1", run_id, batch, T0) for run_id, batch in events.items())
    )
    conflict = results.pop(3)
    assert isinstance(conflict, HookConflictError)
    assert (conflict.token, conflict.holder_run_id) == ("taken", "r0")
    assert results == [3] * 8
    assert await snapshot(store, "r4") == before
    assert [hook.run_id for hook in await store.list_hooks()] == ["r0"]


async def test_runs_creating_one_token_at_once_leave_it_to_one(store: AnyStore) -> None:
    """Of two appends creating the same token at once, exactly one gets it."""
    await hold_all(store)
    results = await together(
        *(store.append("w1", run_id, [hook_created("shared")], T0) for run_id in RUNS[:2])
    )
    conflicts = [result for result in results if isinstance(result, HookConflictError)]
    assert len(conflicts) == 1
    (hook,) = await store.list_hooks()
    winner = RUNS[results.index(2)]
    assert hook.run_id == winner
    assert conflicts[0].holder_run_id == winner
    loser = RUNS[1 - RUNS.index(winner)]
    assert len(await store.events(loser)) == 1


async def test_concurrent_creates_of_one_id_create_it_once(store: AnyStore) -> None:
    """Runs created at once each get their record; a repeated id is created only once."""
    starts = [NewRun(run_id, "wf", {"args": [run_id]}) for run_id in RUNS]
    starts.append(NewRun("r3", "wf", {"args": ["again"]}))
    results = await asyncio.gather(*(store.create_run(run, T0) for run in starts))
    assert [created for _, created in results[:3] + results[4:-1]] == [True] * 9
    first, again = results[3], results[-1]
    assert sorted([first[1], again[1]]) == [False, True]
    assert first[0] == again[0]
    assert [record.id for record, _ in results] == [*RUNS, "r3"]
    assert len(await store.events("r3")) == 1


async def test_concurrent_reads_each_get_their_run(store: AnyStore) -> None:
    """get_run of many ids at once answers each caller with its own run, or None."""
    await hold_all(store)
    asked = [*RUNS, "nope", "r3"]
    found = await asyncio.gather(*(store.get_run(run_id) for run_id in asked))
    assert [None if record is None else record.id for record in found] == [*RUNS, None, "r3"]
    assert all(isinstance(record, RunRecord) for record in found[:10])
    assert found[3] == found[-1]


@pytest.mark.parametrize("durable", [False, True])
async def test_concurrent_appends_of_mixed_durability_all_land(
    store: AnyStore, *, durable: bool
) -> None:
    """Durable and other appends made at once all commit and read back."""
    await hold_all(store)
    results = await together(
        *(
            store.append("w1", run_id, two_steps(), T0, durable=durable and index % 3 == 0)
            for index, run_id in enumerate(RUNS)
        )
    )
    assert results == [3] * 10
    for run_id in RUNS:
        assert len(await store.events(run_id)) == 3
