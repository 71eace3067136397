"""A stored cancel request wins over whatever happens after it was stored (issue 10, §0).

`run.cancel()` returns once the request is stored. From then on the run takes no new
step and is never recorded as completed, nor failed by a later step, however the
request races with the run's steps: the step that finished meanwhile may keep its
result, but the workflow sees `asyncio.CancelledError` at its next await. The cancel
may come from this process or from another one on the same database (a second Engine
without a worker), on every store.

A worker hears of a cancel request in its next pass, but the guarantee cannot rest on
that: the pass may come after the step's result is logged and the next step begun. So
each test runs twice: as is, and with the worker's pass never reporting the request
(``deaf``), which makes the race the issue describes happen every time.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import TYPE_CHECKING

import pytest

from conftest import EngineFactory
from helpers import evicted, of_type, types, wait_for_hook, wait_until
from perdure import (
    Engine,
    EventType,
    FatalError,
    HookNotFoundError,
    RunStatus,
    Workflow,
    WorkflowCancelled,
    define_hook,
    step,
    workflow,
)

if TYPE_CHECKING:
    from collections.abc import Callable

ran: list[str] = []
"""The steps that began, and what the workflows saw, in order."""
gates: dict[str, asyncio.Event] = {}


@pytest.fixture(autouse=True)
def _reset() -> None:
    ran.clear()
    gates.clear()


@pytest.fixture(params=["heard", "deaf"])
def deaf(
    request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch
) -> Callable[[Engine], None]:
    """Makes an Engine's worker deaf to cancel requests in its passes (``deaf``), or not."""

    async def nothing(worker_id: str) -> list[str]:
        del worker_id
        return []

    def apply(engine: Engine) -> None:
        if request.param == "deaf":
            monkeypatch.setattr(engine.store, "cancel_requests", nothing)

    return apply


def gate(name: str) -> asyncio.Event:
    """The gate a step waits on, made on first use (an Event belongs to the test's loop)."""
    return gates.setdefault(name, asyncio.Event())


@step(max_retries=0)
async def wait_for_gate() -> None:
    """Stands for a reply from an outside service: returns once the test opens the gate."""
    ran.append("wait_for_gate")
    await gate("reply").wait()


@step(max_retries=0)
async def charge_card() -> None:
    """A side effect that must not happen once the run's cancel is stored."""
    ran.append("charge_card")


@step(max_retries=0)
async def refuse_card() -> None:
    """A step that fails the run, unless the run was cancelled before it."""
    ran.append("refuse_card")
    raise FatalError("card refused")


@workflow
async def order() -> str:
    """The issue's reproduction: wait on a step, then charge the card."""
    try:
        await wait_for_gate()
        await charge_card()
    except asyncio.CancelledError:
        ran.append("workflow saw CancelledError")
        raise
    return "completed"


@workflow
async def order_then_fail() -> str:
    """Wait on a step, then a step that fails the run."""
    await wait_for_gate()
    await refuse_card()
    return "completed"


@workflow
async def last_step() -> str:
    """Wait on a step and return at once after it: the run's final step."""
    try:
        await wait_for_gate()
    except asyncio.CancelledError:
        ran.append("workflow saw CancelledError")
        raise
    return "completed"


reply = define_hook(dict, name="cancel-races-reply")


@workflow
async def order_on_reply(token: str) -> str:
    """Wait on a hook, then charge the card."""
    await reply.create(token=token)
    await charge_card()
    return "completed"


async def began(what: str) -> None:
    """Wait until step ``what`` began (in this process: the test runs the worker)."""
    async with asyncio.timeout(5):
        while what not in ran:
            await asyncio.sleep(0.005)


async def cancel_then_open(canceller: Engine, run_id: str) -> None:
    """Store the cancel request, and only then let the waiting step finish."""
    await canceller.cancel(run_id)
    gate("reply").set()


async def assert_cancelled(engine: Engine, run_id: str) -> None:
    """The run ended cancelled, with no completed or failed run recorded in its log."""
    run = await engine.get_run(run_id)
    with pytest.raises(WorkflowCancelled):
        await run.result(timeout=10)
    assert RunStatus.CANCELLED == await run.status()
    events = await run.events()
    assert "run_cancelled" == types(events)[-1]
    assert not of_type(events, EventType.RUN_COMPLETED)
    assert not of_type(events, EventType.RUN_FAILED)


async def test_a_cancel_stored_while_a_step_runs_stops_the_steps_after_it(
    engine: Engine, deaf: Callable[[Engine], None]
) -> None:
    """The issue's reproduction: cancel while the first step waits, then let it finish:
    the run ends cancelled, the second step never runs, the workflow saw CancelledError."""
    deaf(engine)
    run = await engine.start(order)
    await began("wait_for_gate")

    await cancel_then_open(engine, run.id)

    await assert_cancelled(engine, run.id)
    assert ["wait_for_gate", "workflow saw CancelledError"] == ran


async def test_a_run_cancelled_while_it_waits_on_its_final_step_ends_cancelled(
    engine: Engine, deaf: Callable[[Engine], None]
) -> None:
    """A run whose cancel is stored while its last step runs never ends completed."""
    deaf(engine)
    run = await engine.start(last_step)
    await began("wait_for_gate")

    await cancel_then_open(engine, run.id)

    await assert_cancelled(engine, run.id)
    assert ["wait_for_gate", "workflow saw CancelledError"] == ran


async def test_a_step_that_fails_after_the_cancel_does_not_fail_the_run(
    engine: Engine, deaf: Callable[[Engine], None]
) -> None:
    """A run cancelled before its failing step is cancelled, not failed, and that step
    never runs."""
    deaf(engine)
    run = await engine.start(order_then_fail)
    await began("wait_for_gate")

    await cancel_then_open(engine, run.id)

    await assert_cancelled(engine, run.id)
    assert ["wait_for_gate"] == ran


@pytest.mark.parametrize("workflow_fn", [order, last_step], ids=["next-step", "final-step"])
async def test_a_cancel_stored_by_another_process_wins_too(
    make_engine: EngineFactory, deaf: Callable[[Engine], None], workflow_fn: Workflow[[], str]
) -> None:
    """The same race with the cancel stored by another Engine (no worker) on the same
    database: the worker learns of it only through the store, and still never runs a
    step after it nor records the run completed."""
    async with make_engine() as worker, make_engine(worker=False) as other:
        deaf(worker)
        run = await worker.start(workflow_fn)
        await began("wait_for_gate")

        await cancel_then_open(other, run.id)

        await assert_cancelled(other, run.id)
        assert ["wait_for_gate", "workflow saw CancelledError"] == ran


async def test_the_step_that_finished_meanwhile_may_keep_its_result(
    engine: Engine, deaf: Callable[[Engine], None]
) -> None:
    """The log stays a consistent story: the waiting step's result, if recorded, comes
    before the cancellation, and no step starts after it."""
    deaf(engine)
    run = await engine.start(order)
    await began("wait_for_gate")

    await cancel_then_open(engine, run.id)

    await assert_cancelled(engine, run.id)
    events = await run.events()
    started = [e.correlation_id for e in of_type(events, EventType.STEP_STARTED)]
    assert ["wait_for_gate#1"] == started


async def test_a_run_claimed_with_its_cancel_stored_starts_nothing(
    engine: Engine, deaf: Callable[[Engine], None]
) -> None:
    """A run evicted while it waits on a hook, whose cancel and then a payload are
    stored, is claimed, replayed and cancelled: the payload is never delivered and the
    step after the hook never runs (the claim itself says the cancel is stored)."""
    deaf(engine)
    run = await engine.start(order_on_reply, "races-evicted")
    await wait_for_hook(engine, "races-evicted")
    await wait_until(engine, lambda: evicted(engine))

    await engine.cancel(run.id)
    # A worker that hears of the cancel may claim and end the run before this resume:
    # then no live hook holds the token, and nothing is stored either way.
    with contextlib.suppress(HookNotFoundError):
        await reply.resume("races-evicted", {})

    await assert_cancelled(engine, run.id)
    assert [] == ran
    assert not of_type(await run.events(), EventType.HOOK_RECEIVED)
