"""A worker claims runs as far as its step slots have room for them (issue 10, section 3).

A burst used to queue on the first worker to see it: it claimed up to
``max_active_runs`` (10,000) runs while their steps waited for its
``max_concurrent_steps`` slots, and other workers found nothing left to claim. Now a
worker claims a run only while its slots have room, counting the step attempts in a
slot or waiting for one and the runs it claimed that have not begun, up to a quarter
of its slots more: runs it has no room for stay in the store, for any worker with room.
Runs that sleep or wait on a hook take no slot, so a worker still holds as many of
those as memory allows. The cluster test with real worker processes is
``test_scale_out.py``.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from typing import TYPE_CHECKING

import pydantic

from helpers import of_type, wait_until
from perdure import Engine, EventType, define_hook, step, workflow

if TYPE_CHECKING:
    from conftest import EngineFactory
    from perdure.stores import Store

began: list[int] = []
gate: list[asyncio.Event] = []


@step(name="claims-wait-for-gate")
async def wait_for_gate(n: int) -> int:
    """Record that the step began, then wait until the test opens the gate."""
    began.append(n)
    await gate[0].wait()
    return n


@workflow(name="claims-gated")
async def gated(n: int) -> int:
    """One step that waits for the gate."""
    return await wait_for_gate(n)


class Go(pydantic.BaseModel):
    """A hook's payload."""

    n: int


go = define_hook(Go, name="claims-go")


@step(name="claims-add-one")
async def add_one(n: int) -> int:
    """Add 1."""
    return n + 1


@workflow(name="claims-waits-then-steps")
async def waits_then_steps(n: int) -> int:
    """Wait on a hook, then run a step."""
    payload = await go.create(token=f"claims-{n}")
    return await add_one(payload.n)


async def held_by(store: Store) -> Counter[str | None]:
    """How many unended runs each worker holds (None: nobody)."""
    return Counter(r.owner for r in await store.list_runs(limit=1000) if not r.status.is_terminal)


async def test_a_worker_claims_only_the_runs_its_step_slots_have_room_for(
    make_engine: EngineFactory,
) -> None:
    """20 runs reach a worker of 4 step slots whose steps all wait: it holds 5 of them
    (4 in its slots, a quarter more waiting for one) and leaves 15 in the store, where a
    second worker that starts then takes 5 too. Once the steps may finish, the two
    workers run every run to completion between them."""
    began.clear()
    gate[:] = [asyncio.Event()]
    async with make_engine(max_concurrent_steps=4) as first:
        assert first.worker is not None
        runs = [await first.start(gated, n) for n in range(20)]

        async def steps_began(count: int) -> bool:
            return len(began) >= count

        await wait_until(first, lambda: steps_began(4))
        assert await held_by(first.store) == Counter({first.worker.id: 5, None: 15})

        async with make_engine(max_concurrent_steps=4) as second:
            assert second.worker is not None
            await wait_until(second, lambda: steps_began(8))
            assert await held_by(first.store) == Counter(
                {first.worker.id: 5, second.worker.id: 5, None: 10}
            )
            gate[0].set()
            assert [await run.result(timeout=30) for run in runs] == list(range(20))
            logs = [await run.events() for run in runs]
            workers = Counter(of_type(log, EventType.RUN_STARTED)[0].data["worker"] for log in logs)
            assert set(workers) == {first.worker.id, second.worker.id}, workers
    assert sorted(began) == list(range(20)), "a step ran twice, or not at all"


async def test_runs_that_wait_take_no_step_slot() -> None:
    """A worker of 2 step slots holds 30 runs at once while they wait on hooks: waiting
    runs do not count against its slots. Once resumed, all 30 complete on those 2
    slots."""
    async with Engine("memory://", max_concurrent_steps=2) as engine:
        assert engine.worker is not None
        runs = [await engine.start(waits_then_steps, n) for n in range(30)]

        async def all_wait() -> bool:
            statistics = engine.statistics()
            return statistics is not None and statistics.suspended_runs == 30

        await wait_until(engine, all_wait)
        statistics = engine.statistics()
        assert statistics is not None
        assert statistics.held_runs == 30
        for n in range(30):
            await go.resume(f"claims-{n}", {"n": n}, engine=engine)
        assert [await run.result(timeout=30) for run in runs] == [n + 1 for n in range(30)]
