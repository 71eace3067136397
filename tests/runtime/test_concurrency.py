"""Concurrency inside a workflow: gather runs steps in parallel; wait and wait_for time out."""

from __future__ import annotations

import asyncio
import threading
from datetime import timedelta

import perdure
from conftest import EngineFactory
from helpers import fake_clock, of_type, wait_for_event
from perdure import Engine, EventType, step, workflow
from perdure.testing import FakeClock

# Each test sets these on its own event loop before starting a run.
meeting: dict[str, asyncio.Event] = {}
barrier: list[threading.Barrier] = []


@step(max_retries=0)
async def meet(me: str, other: str) -> str:
    """Arrive, then wait for ``other`` to arrive: only possible if both run at once."""
    meeting[me].set()
    await asyncio.wait_for(meeting[other].wait(), timeout=2)
    return me


@step(max_retries=0)
def meet_in_thread(me: str) -> str:
    """A def step that waits at a barrier for its sibling thread."""
    barrier[0].wait()
    return me


@step(max_retries=0)
async def never_returns() -> str:
    """A step that waits until the run no longer needs it."""
    await asyncio.Event().wait()
    return "done"


@step
async def quick(n: int) -> int:
    """Finish at once."""
    return n


@workflow
async def meet_up() -> list[str]:
    """Run two steps that each need the other running at the same time."""
    return list(await asyncio.gather(meet("a", "b"), meet("b", "a")))


@workflow
async def meet_up_in_threads() -> list[str]:
    """Run two def steps that each need the other running at the same time."""
    return list(await asyncio.gather(meet_in_thread("a"), meet_in_thread("b")))


@workflow
async def fan_out(n: int) -> list[int]:
    """Gather ``n`` calls of one step."""
    return list(await asyncio.gather(*(quick(i) for i in range(n))))


@workflow
async def race_step_against_sleep() -> str:
    """Race a step against a one-hour sleep; report the winner."""
    work = asyncio.ensure_future(never_returns())
    timer = asyncio.ensure_future(perdure.sleep("1h"))
    done, pending = await asyncio.wait({work, timer}, return_when=asyncio.FIRST_COMPLETED)
    for task in pending:
        task.cancel()
    return "step" if work in done else "sleep"


@workflow
async def step_with_timeout() -> str:
    """Give a step one minute with asyncio.wait_for."""
    try:
        return await asyncio.wait_for(never_returns(), timeout=60)
    except TimeoutError:
        return "timed out"


@workflow
async def quick_with_timeout() -> int:
    """Give a quick step a generous timeout: the step wins and the timer is cancelled."""
    return await asyncio.wait_for(quick(7), timeout=60)


async def test_gather_runs_steps_in_parallel(engine: Engine) -> None:
    """asyncio.gather over steps runs them at once (sequentially they would deadlock)."""
    meeting.update(a=asyncio.Event(), b=asyncio.Event())
    run = await engine.start(meet_up)

    assert ["a", "b"] == await run.result(timeout=5)
    started = of_type(await run.events(), EventType.STEP_STARTED)
    assert ["meet#1", "meet#2"] == [e.correlation_id for e in started]


async def test_gather_runs_def_steps_in_parallel_threads(engine: Engine) -> None:
    """asyncio.gather over def steps runs them in parallel threads."""
    barrier[:] = [threading.Barrier(2, timeout=2)]
    run = await engine.start(meet_up_in_threads)

    assert ["a", "b"] == await run.result(timeout=5)


async def test_gather_of_many_steps_keeps_order_and_ids(engine: Engine) -> None:
    """Gathered results come back in call order; correlation ids follow the call order."""
    run = await engine.start(fan_out, 25)

    assert list(range(25)) == await run.result(timeout=5)
    started = of_type(await run.events(), EventType.STEP_STARTED)
    assert [f"quick#{i + 1}" for i in range(25)] == [e.correlation_id for e in started]
    assert list(range(25)) == [e.data["input"]["n"] for e in started]


async def test_a_step_raced_against_sleep_loses_when_the_sleep_ends_first(
    make_engine: EngineFactory,
) -> None:
    """asyncio.wait(FIRST_COMPLETED) of a step and a sleep returns when the sleep ends."""
    async with make_engine(clock=FakeClock(autojump=False)) as engine:
        run = await engine.start(race_step_against_sleep)
        slept = await wait_for_event(engine, run, EventType.SLEEP_STARTED)

        fake_clock(engine).advance("1h")

        assert "sleep" == await run.result(timeout=5)
        (woke,) = of_type(await run.events(), EventType.SLEEP_COMPLETED)
        assert slept.created_at + timedelta(hours=1) == woke.created_at


async def test_wait_for_a_step_times_out(make_engine: EngineFactory) -> None:
    """asyncio.wait_for(step(), timeout) raises TimeoutError in the workflow when time is up."""
    async with make_engine(clock=FakeClock(autojump=False)) as engine:
        run = await engine.start(step_with_timeout)
        timer = await wait_for_event(engine, run, EventType.SLEEP_STARTED)
        assert "timer#1" == timer.correlation_id

        fake_clock(engine).advance("60s")

        assert "timed out" == await run.result(timeout=5)


async def test_wait_for_a_quick_step_cancels_its_timer(engine: Engine) -> None:
    """A step that beats its wait_for timeout returns, and the timer is logged cancelled."""
    run = await engine.start(quick_with_timeout)

    assert 7 == await run.result(timeout=5)
    (cancelled,) = of_type(await run.events(), EventType.SLEEP_COMPLETED)
    assert ("timer#1", {"cancelled": True}) == (cancelled.correlation_id, cancelled.data)
