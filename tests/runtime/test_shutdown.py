"""Leaving an Engine: steps in flight may finish within a grace period, then every run
is handed back so another worker continues it at once."""

from __future__ import annotations

import asyncio
from collections import Counter

from conftest import EngineFactory
from helpers import of_type
from perdure import Engine, EventType, Workflow, step, workflow


def _pipeline(
    calls: Counter[str], started: asyncio.Event, release: asyncio.Event
) -> Workflow[[int], int]:
    @step(name="slow")
    async def slow(x: int) -> int:
        calls["slow"] += 1
        started.set()
        await release.wait()
        return x

    @step(name="after")
    async def after(x: int) -> int:
        calls["after"] += 1
        return x + 1

    @workflow(name="shutdown-pipeline")
    async def pipeline(x: int) -> int:
        return await after(await slow(x))

    return pipeline


async def _leave_while_running(engine: Engine, started: asyncio.Event) -> asyncio.Task[None]:
    await asyncio.wait_for(started.wait(), 5)
    leaving = asyncio.create_task(engine.__aexit__(None, None, None))
    async with asyncio.timeout(5):
        while engine.worker is None or not engine.worker.draining:
            await asyncio.sleep(0)
    return leaving


async def test_a_step_running_at_shutdown_finishes_within_the_grace_period(
    make_engine: EngineFactory,
) -> None:
    """With a grace period, a running step finishes and is logged, no new step starts,
    and the next worker continues from there without running the step again."""
    calls: Counter[str] = Counter()
    started, release = asyncio.Event(), asyncio.Event()
    pipeline = _pipeline(calls, started, release)
    first = make_engine(shutdown_grace=30)
    await first.__aenter__()
    run = await first.start(pipeline, 1)
    leaving = await _leave_while_running(first, started)
    release.set()
    await asyncio.wait_for(leaving, 10)

    async with make_engine(worker=False) as observer:
        record = await observer.store.get_run(run.id)
        assert record is not None
        assert record.owner is None
        events = await observer.store.events(run.id)
        assert ["slow#1"] == [e.correlation_id for e in of_type(events, EventType.STEP_COMPLETED)]
        assert ["slow#1"] == [e.correlation_id for e in of_type(events, EventType.STEP_STARTED)]

    async with make_engine() as second:
        assert 2 == await (await second.get_run(run.id)).result(timeout=10)
    assert Counter({"slow": 1, "after": 1}) == calls


async def test_a_step_still_running_after_the_grace_period_runs_again_elsewhere(
    make_engine: EngineFactory,
) -> None:
    """A step that outlives the grace period is abandoned: the run is handed back at the
    end of the period and the next worker runs the step again."""
    calls: Counter[str] = Counter()
    started, release = asyncio.Event(), asyncio.Event()
    pipeline = _pipeline(calls, started, release)
    first = make_engine(shutdown_grace=0.2)
    await first.__aenter__()
    run = await first.start(pipeline, 1)
    leaving = await _leave_while_running(first, started)
    await asyncio.wait_for(leaving, 10)

    release.set()
    async with make_engine() as second:
        assert 2 == await (await second.get_run(run.id)).result(timeout=10)
    assert Counter({"slow": 2, "after": 1}) == calls
