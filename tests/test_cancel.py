"""Cancellation: of sleeping, waiting, running and pending runs; cleanup code runs."""

from __future__ import annotations

import asyncio
import gc

import pytest

import perdure
from conftest import EngineFactory
from helpers import evicted, of_type, timers_of, types, wait_for_event, wait_for_hook, wait_until
from perdure import (
    Engine,
    EventType,
    RunNotFoundError,
    RunStatus,
    WorkflowCancelled,
    define_hook,
    step,
    workflow,
)
from perdure.testing import FakeClock

cleanup: list[str] = []
go_hook = define_hook(dict, name="go")


@pytest.fixture(autouse=True)
def _reset_cleanup() -> None:
    # Runs evicted in earlier tests leave coroutines whose finally blocks run when they
    # are collected (see test_eviction_replay): collect them before counting.
    gc.collect()
    cleanup.clear()


@workflow
async def long_sleeper() -> str:
    """Sleep a week, noting in ``cleanup`` how it ended."""
    try:
        await perdure.sleep("7 days")
    except asyncio.CancelledError:
        cleanup.append("cancelled")
        raise
    finally:
        cleanup.append("finally")
    return "woke"


@workflow
async def hook_waiter(token: str) -> str:
    """Wait on a hook, noting in ``cleanup`` that its finally ran."""
    try:
        await go_hook.create(token=token)
    finally:
        cleanup.append("finally")
    return "resumed"


@step(max_retries=0)
async def stuck() -> str:
    """A step that never finishes on its own."""
    try:
        await asyncio.Event().wait()
    finally:
        cleanup.append("step stopped")
    return "never"


@workflow
async def runs_stuck_step() -> str:
    """Wait on a step that never finishes."""
    return await stuck()


@workflow
async def quick_workflow() -> str:
    """Finish at once."""
    return "done"


async def test_cancelling_a_sleeping_run(make_engine: EngineFactory) -> None:
    """A sleeping run cancels: result raises WorkflowCancelled, its timers are gone."""
    async with make_engine(clock=FakeClock(autojump=False)) as engine:
        run = await engine.start(long_sleeper)
        await wait_for_event(engine, run, EventType.SLEEP_STARTED)
        assert ["sleep#1"] == list(await timers_of(engine, run.id))

        await run.cancel()

        with pytest.raises(WorkflowCancelled) as caught:
            await run.result(timeout=5)
        assert run.id == caught.value.run_id
        assert RunStatus.CANCELLED == await run.status()
        assert {} == await timers_of(engine, run.id)
        assert ["cancelled", "finally"] == cleanup
        events = await run.events()
        assert "run_cancelled" == types(events)[-1]
        (woke,) = of_type(events, EventType.SLEEP_COMPLETED)
        assert {"cancelled": True} == woke.data


async def test_cancelling_a_run_waiting_on_a_hook(make_engine: EngineFactory) -> None:
    """A run waiting on a hook cancels, its finally runs, and its hook is gone."""
    async with make_engine(clock=FakeClock(autojump=False)) as engine:
        run = await engine.start(hook_waiter, "t-cancel")
        await wait_for_hook(engine, "t-cancel")

        await run.cancel()

        with pytest.raises(WorkflowCancelled):
            await run.result(timeout=5)
        assert RunStatus.CANCELLED == await run.status()
        assert await engine.store.get_hook("t-cancel") is None
        assert ["finally"] == cleanup
        with pytest.raises(perdure.HookNotFoundError):
            await go_hook.resume("t-cancel", {})


async def test_cancelling_an_evicted_run(engine: Engine) -> None:
    """A run evicted from memory while it waits still cancels (it is replayed to unwind)."""
    run = await engine.start(hook_waiter, "t-evicted")
    await wait_for_hook(engine, "t-evicted")
    await wait_until(engine, lambda: evicted(engine))

    await run.cancel()

    with pytest.raises(WorkflowCancelled):
        await run.result(timeout=5)
    assert await engine.store.get_hook("t-evicted") is None


async def test_cancelling_a_run_stops_its_running_step(engine: Engine) -> None:
    """Cancelling a run whose step is running cancels the step's task too."""
    run = await engine.start(runs_stuck_step)
    await wait_for_event(engine, run, EventType.STEP_STARTED)

    await run.cancel()

    with pytest.raises(WorkflowCancelled):
        await run.result(timeout=5)
    assert ["step stopped"] == cleanup


async def test_cancelling_a_pending_run(make_engine: EngineFactory) -> None:
    """A run no worker has picked up yet is cancelled on the spot."""
    async with make_engine(worker=False) as engine:
        run = await engine.start(quick_workflow)
        assert RunStatus.PENDING == await run.status()

        await run.cancel()

        assert RunStatus.CANCELLED == await run.status()
        with pytest.raises(WorkflowCancelled):
            await run.result(timeout=5)
        assert ["run_created", "run_cancelled"] == types(await run.events())


async def test_cancelling_an_ended_run_changes_nothing(engine: Engine) -> None:
    """Cancelling a completed run leaves it completed with its result."""
    run = await engine.start(quick_workflow)
    assert "done" == await run.result(timeout=5)

    await run.cancel()

    assert RunStatus.COMPLETED == await run.status()
    assert "done" == await run.result(timeout=5)


async def test_cancelling_an_unknown_run_is_run_not_found(engine: Engine) -> None:
    """engine.cancel of an id no run has raises RunNotFoundError (a LookupError)."""
    with pytest.raises(RunNotFoundError) as caught:
        await engine.cancel("no-such-run")

    assert isinstance(caught.value, LookupError)
