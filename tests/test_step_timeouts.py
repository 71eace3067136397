"""A step attempt that passed its timeout is a timed-out attempt, whatever its body did
then (issue 10, "Also"): a body that catches the timeout's `asyncio.CancelledError`
and returns a value, or raises something else, is recorded with the `TimeoutError` of
an ordinary timeout, and retried or failed as one; inline and on a queue alike.
"""

from __future__ import annotations

import asyncio

import pytest

from conftest import EngineFactory
from helpers import of_type
from perdure import EventType, Workflow, get_step_metadata, step, workflow

calls: dict[str, int] = {}


@pytest.fixture(autouse=True)
def _reset() -> None:
    calls.clear()


async def swallow_the_timeout(name: str, *, then_raise: bool = False) -> str:
    """Take far longer than the timeout, catch the cancellation, and return (or raise).

    Later attempts return at once.
    """
    calls[name] = calls.get(name, 0) + 1
    if get_step_metadata().attempt > 1:
        return "on time"
    try:
        await asyncio.sleep(30)
    except asyncio.CancelledError:
        if then_raise:
            raise ValueError("gave up") from None
        return "late"
    return "never"


@step(timeout=0.05, max_retries=0)
async def stubborn() -> str:
    """Swallows its timeout; no retries."""
    return await swallow_the_timeout("stubborn")


@step(timeout=0.05, max_retries=1)
async def stubborn_once() -> str:
    """Swallows its timeout on the first attempt; one retry."""
    return await swallow_the_timeout("stubborn_once")


@step(timeout=0.05, max_retries=0)
async def raises_late() -> str:
    """Catches its timeout and raises another error."""
    return await swallow_the_timeout("raises_late", then_raise=True)


@step(timeout=0.05, max_retries=0, queue="timeouts", name="timeouts-stubborn")
async def queued_stubborn() -> str:
    """As `stubborn`, on a queue."""
    return await swallow_the_timeout("queued_stubborn")


@step(timeout=0.05, max_retries=1, queue="timeouts", name="timeouts-stubborn-once")
async def queued_stubborn_once() -> str:
    """As `stubborn_once`, on a queue."""
    return await swallow_the_timeout("queued_stubborn_once")


@workflow
async def once_inline() -> str:
    """Call `stubborn`; say how it ended."""
    try:
        return await stubborn()
    except TimeoutError as exc:
        return f"timed out: {type(exc).__name__}"


@workflow
async def raising_inline() -> str:
    """Call `raises_late`; say how it ended."""
    try:
        return await raises_late()
    except TimeoutError as exc:
        return f"timed out: {type(exc).__name__}"


@workflow
async def once_queued() -> str:
    """Call `queued_stubborn`; say how it ended."""
    try:
        return await queued_stubborn()
    except TimeoutError as exc:
        return f"timed out: {type(exc).__name__}"


@workflow
async def retried_inline() -> str:
    """Call `stubborn_once`."""
    return await stubborn_once()


@workflow
async def retried_queued() -> str:
    """Call `queued_stubborn_once`."""
    return await queued_stubborn_once()


@pytest.mark.parametrize(
    "wf", [once_inline, raising_inline, once_queued], ids=["inline", "raising", "queued"]
)
async def test_a_body_that_swallows_its_timeout_still_times_out(
    make_engine: EngineFactory, wf: Workflow[[], str]
) -> None:
    """The step's value, returned after its deadline, is not its result: the attempt is
    recorded as timed out (builtins.TimeoutError), and the workflow gets TimeoutError."""
    async with make_engine(queues=("timeouts",)) as engine:
        run = await engine.start(wf)
        assert "timed out: TimeoutError" == await run.result(timeout=10)
        events = await run.events()

    assert [] == of_type(events, EventType.STEP_COMPLETED)
    (failed,) = of_type(events, EventType.STEP_FAILED)
    assert "builtins.TimeoutError" == failed.data["error"]["type"]
    assert 1 == sum(calls.values())


@pytest.mark.parametrize("wf", [retried_inline, retried_queued], ids=["inline", "queued"])
async def test_a_swallowed_timeout_is_retried_like_any_timeout(
    make_engine: EngineFactory, wf: Workflow[[], str]
) -> None:
    """The timed-out attempt is retried; the next one, in time, is the step's result."""
    async with make_engine(queues=("timeouts",)) as engine:
        run = await engine.start(wf)
        assert "on time" == await run.result(timeout=10)
        events = await run.events()

    (retrying,) = of_type(events, EventType.STEP_RETRYING)
    assert "builtins.TimeoutError" == retrying.data["error"]["type"]
    (completed,) = of_type(events, EventType.STEP_COMPLETED)
    assert (2, "on time") == (completed.data["attempt"], completed.data["output"])
    assert 2 == sum(calls.values())
