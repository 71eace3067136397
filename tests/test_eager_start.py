"""The eager start and the local end (issue 16).

A run started in a process whose own worker has room is created held by that worker
and begins there at once; `Run.result` in that process learns of an end committed there
without reading the store. Anything that claims respect (flow control, the worker's
step slots) sends a start down the ordinary path, and a run this worker lets go is
read from the store again.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

import pytest

from conftest import EngineFactory
from helpers import wait_until
from perdure import Engine, Limit, sleep, step, workflow

if TYPE_CHECKING:
    from collections.abc import Callable

gates: dict[str, asyncio.Event] = {}


@step
async def add_one(x: int) -> int:
    """A trivial step."""
    return x + 1


@workflow(name="eager-one-step")
async def one_step(x: int) -> int:
    """One step, as bench b runs."""
    return await add_one(x)


@workflow(name="eager-limited", concurrency=Limit(3))
async def limited(x: int) -> int:
    """A workflow with a concurrency limit: its starts are flow-controlled."""
    return await add_one(x)


@step
async def wait_at(gate: str) -> str:
    """Hold a step slot until the test opens the gate."""
    await gates[gate].wait()
    return gate


@workflow(name="eager-gated")
async def gated(gate: str) -> str:
    """One step that waits for its gate."""
    return await wait_at(gate)


@workflow(name="eager-sleeper")
async def sleeper(x: int) -> int:
    """Sleeps an hour (a fake one), so that it can be evicted meanwhile."""
    await sleep("1h")
    return await add_one(x)


def eager_creates(engine: Engine, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The ids of the runs created held by a worker from now on (the real store creates)."""
    claimed: list[str] = []
    real = engine.store.create_run

    async def create_run(run: Any, now: Any, *, claim_for: str | None = None) -> Any:
        if claim_for is not None:
            claimed.append(run.id)
        return await real(run, now, claim_for=claim_for)

    monkeypatch.setattr(engine.store, "create_run", create_run)
    return claimed


def count_reads(engine: Engine, monkeypatch: pytest.MonkeyPatch) -> Callable[[], int]:
    """Count the store's `get_run` calls from now on (the real store still answers)."""
    calls = 0
    real = engine.store.get_run

    async def get_run(run_id: str) -> Any:
        nonlocal calls
        calls += 1
        return await real(run_id)

    monkeypatch.setattr(engine.store, "get_run", get_run)
    return lambda: calls


async def test_a_run_started_here_is_created_held_by_this_worker(engine: Engine) -> None:
    """start() hands the run to the local worker: created held by it, no claim needed."""
    assert engine.worker is not None
    run = await engine.start(one_step, 41)
    assert run.record.owner == engine.worker.id
    assert run.record.wake_at is None
    assert await run.result() == 42
    stats = engine.worker.statistics()
    assert (stats.claimed, stats.finished) == (1, 1)


async def test_result_of_a_run_that_ends_here_reads_nothing(
    engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    """result() of a run whose end this process committed reads no row; a foreign one does."""
    reads = count_reads(engine, monkeypatch)
    run = await engine.start(one_step, 1)
    assert await run.result() == 2
    assert await run.result() == 2  # again: the end is remembered
    assert reads() == 0
    claimed = eager_creates(engine, monkeypatch)
    limited_run = await engine.start(limited, 1)  # the ordinary path: claimed by a pass
    assert claimed == []
    assert await limited_run.result() == 2
    assert reads() >= 1  # it was not held here when result() began


@pytest.mark.parametrize(
    ("fn", "options"),
    [
        (limited, {}),  # its workflow's concurrency limit
        (one_step, {"priority": 5}),
        (one_step, {"dedupe_key": "k"}),
    ],
    ids=["limit", "priority", "dedupe"],
)
async def test_flow_control_takes_the_ordinary_path(
    engine: Engine, fn: Any, options: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A start with flow control is created unheld, for the claim to weigh it."""
    claimed = eager_creates(engine, monkeypatch)
    run = await engine.start(fn, 5, **options)
    assert claimed == []
    assert await run.result() == 6
    plain = await engine.start(one_step, 5)  # the same check sees an eager start
    assert claimed == [plain.id]
    assert await plain.result() == 6


async def test_a_worker_without_room_leaves_the_start_to_the_claim(
    make_engine: EngineFactory,
) -> None:
    """With its step slots taken, the worker does not take a new run eagerly."""
    async with make_engine(max_concurrent_steps=1) as engine:
        assert engine.worker is not None
        worker = engine.worker
        gates.update({"a": asyncio.Event(), "b": asyncio.Event(), "c": asyncio.Event()})
        first = await engine.start(gated, "a")
        # One slot, and a quarter more (at least one): two runs want a slot at most.
        await wait_until(engine, lambda: _async(worker.statistics().running_steps == 1))
        second = await engine.start(gated, "b")
        await wait_until(engine, lambda: _async(worker.attempts.slots.wanted == 2))
        third = await engine.start(gated, "c")
        assert first.record.owner == worker.id
        assert second.record.owner == worker.id
        assert third.record.owner is None
        for gate in gates.values():
            gate.set()
        assert [await run.result() for run in (first, second, third)] == ["a", "b", "c"]


async def test_starting_a_held_run_again_begins_nothing(engine: Engine) -> None:
    """An idempotent start of a run this worker holds returns it, and claims nothing more."""
    assert engine.worker is not None
    gates["again"] = asyncio.Event()
    run = await engine.start(gated, "again", run_id="same-id")
    again = await engine.start(gated, "again", run_id="same-id")
    assert again.id == run.id
    assert engine.worker.statistics().claimed == 1
    gates["again"].set()
    assert await again.result() == "again"
    assert engine.worker.statistics().finished == 1


async def test_result_reads_the_store_once_the_run_is_let_go(make_engine: EngineFactory) -> None:
    """A run evicted while result() waits on its local end still returns its result."""
    async with make_engine(evict_after=0) as engine:
        assert engine.worker is not None
        run = await engine.start(sleeper, 1)
        assert run.record.owner == engine.worker.id
        assert await run.result() == 2
        assert engine.worker.statistics().evictions >= 1


async def test_a_process_without_a_worker_starts_runs_as_before(
    make_engine: EngineFactory,
) -> None:
    """Without a worker here, the run is created unheld and another process's worker runs it."""
    async with make_engine() as worker_engine, make_engine(worker=False) as starter:
        run = await starter.start(one_step, 10)
        assert run.record.owner is None
        assert await run.result() == 11
        assert worker_engine.worker is not None


async def _async(value: bool) -> bool:
    return value


async def test_a_run_left_for_want_of_memory_starts_when_one_ends_here(
    make_engine: EngineFactory,
) -> None:
    """With max_active_runs reached, a start waits in the store; an end here claims it."""
    async with make_engine(max_active_runs=1) as engine:
        assert engine.worker is not None
        gates["memory"] = asyncio.Event()
        first = await engine.start(gated, "memory")
        second = await engine.start(one_step, 7)
        assert first.record.owner == engine.worker.id
        assert second.record.owner is None
        gates["memory"].set()
        assert await first.result() == "memory"
        assert await second.result() == 8
