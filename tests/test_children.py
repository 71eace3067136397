"""Child workflows: calling a workflow inside one starts a durable, idempotent child run."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import pytest

import perdure
from conftest import EngineFactory
from helpers import of_type, wait_for_hook, wait_until
from perdure import (
    Engine,
    EventType,
    RunStatus,
    WorkflowCancelled,
    WorkflowFailed,
    define_hook,
    step,
    workflow,
)

go = define_hook(str, name="children-go")


@step
async def double(n: int) -> int:
    """Twice ``n``: a step the children take."""
    return 2 * n


@workflow(name="children-child-double")
async def child_double(n: int) -> int:
    """A child that doubles ``n`` in a step."""
    return await double(n)


@workflow(name="children-fan-out")
async def fan_out(count: int) -> list[int]:
    """Gather ``count`` children at once."""
    return list(await asyncio.gather(*(child_double(i) for i in range(count))))


class ChildProblemError(Exception):
    """What the failing child raises."""


@workflow(name="children-failing-child")
async def failing_child(n: int) -> int:
    """A child that fails."""
    raise ChildProblemError(f"no good: {n}")


@workflow(name="children-catches-child")
async def catches_child() -> str:
    """Catches its child's failure."""
    try:
        await failing_child(7)
    except perdure.WorkflowFailed as exc:
        return (
            f"{exc.type}|{exc.message}|{exc.run_id}|{'ChildProblemError' in (exc.traceback or '')}"
        )
    return "not raised"


@workflow(name="children-lets-child-fail")
async def lets_child_fail() -> int:
    """Does not catch its child's failure."""
    return await failing_child(3)


@workflow(name="children-waits-on-hook")
async def waits_on_hook(token: str) -> str:
    """A child that waits on a hook (so it is running when its parent is cancelled)."""
    return await go.create(token=token)


@workflow(name="children-tree")
async def tree(token: str) -> str:
    """An attached child that has a child of its own, and a detached one."""
    await perdure.start_child(waits_on_hook, f"{token}-detached", detached=True)
    return await middle(token)


@workflow(name="children-middle")
async def middle(token: str) -> str:
    """The attached child in the middle of the tree."""
    return await waits_on_hook(f"{token}-leaf")


@workflow(name="children-handle-later")
async def handle_later(n: int) -> list[object]:
    """start_child now, result later; the handle carries the child's id."""
    handle = await perdure.start_child(child_double, n)
    mine = await double(1)
    return [handle.id, mine, await handle.result(), await handle.result()]


async def test_gather_over_fifty_children(engine: Engine) -> None:
    """A workflow gathers 50 child runs; each is a run of its own whose parent is it."""
    run = await engine.start(fan_out, 50)
    assert await run.result(timeout=60) == [2 * i for i in range(50)]
    children = await engine.list_runs(parent_id=run.id, limit=1000)
    assert len(children) == 50
    assert {child.record.parent_id for child in children} == {run.id}
    assert {child.record.root_id for child in children} == {run.id}
    assert all(child.record.status is RunStatus.COMPLETED for child in children)
    events = await run.events()
    started = of_type(events, EventType.CHILD_STARTED)
    completed = of_type(events, EventType.CHILD_COMPLETED)
    assert len(started) == len(completed) == 50
    assert {e.data["run_id"] for e in started} == {child.id for child in children}
    assert started[0].correlation_id == f"child.{child_double.name}#1"
    # Top-level runs name no parent.
    assert run.record.parent_id is None
    assert (await engine.get_run(run.id)).record.root_id is None


async def test_start_child_and_await_result_later(engine: Engine) -> None:
    """start_child returns a handle at once; result() gives the child's result, twice."""
    run = await engine.start(handle_later, 21)
    child_id, mine, first, again = await run.result(timeout=30)
    assert (mine, first, again) == (2, 42, 42)
    child = await engine.get_run(str(child_id))
    assert child.record.parent_id == run.id
    assert await child.result(timeout=5) == 42


async def test_failing_child_caught_in_the_parent(engine: Engine) -> None:
    """A child's failure is WorkflowFailed in the parent: type, message, traceback, id."""
    run = await engine.start(catches_child)
    kind, message, child_id, has_traceback = (await run.result(timeout=30)).split("|")
    assert kind.endswith("ChildProblemError")
    assert message == "no good: 7"
    assert has_traceback == "True"
    child = await engine.get_run(child_id)
    assert child.record.parent_id == run.id
    assert await child.status() is RunStatus.FAILED


async def test_uncaught_child_failure_fails_the_parent(engine: Engine) -> None:
    """A child's failure the parent does not catch fails the parent, naming the child."""
    run = await engine.start(lets_child_fail)
    with pytest.raises(WorkflowFailed) as caught:
        await run.result(timeout=30)
    assert caught.value.type == "perdure.WorkflowFailed"
    assert "no good: 3" in caught.value.message
    assert await run.status() is RunStatus.FAILED


async def test_cancel_cascades_to_attached_children_not_detached(engine: Engine) -> None:
    """Cancelling a run cancels its attached children recursively, not detached ones."""
    run = await engine.start(tree, "t1")
    await wait_for_hook(engine, "t1-leaf")
    await wait_for_hook(engine, "t1-detached")
    await run.cancel()
    with pytest.raises(WorkflowCancelled):
        await run.result(timeout=30)
    children = {child.workflow: child for child in await engine.list_runs(parent_id=run.id)}
    mid = children[middle.name]
    with pytest.raises(WorkflowCancelled):
        await mid.result(timeout=30)
    (leaf,) = await engine.list_runs(parent_id=mid.id)
    with pytest.raises(WorkflowCancelled):
        await leaf.result(timeout=30)
    assert leaf.record.root_id == run.id
    detached = children[waits_on_hook.name]
    assert await detached.status() is RunStatus.RUNNING
    await go.resume("t1-detached", "still here")
    assert await detached.result(timeout=30) == "still here"


async def test_parent_sleeping_released_is_woken_by_its_child(make_engine: EngineFactory) -> None:
    """A parent evicted while it waits is woken by its child's end, with no polling."""
    async with make_engine(evict_after="1s") as engine:
        run = await engine.start(middle, "w1")
        await wait_for_hook(engine, "w1-leaf")

        async def parent_released() -> bool:
            return (await engine.get_run(run.id)).record.owner is None

        await wait_until(engine, parent_released)
        await go.resume("w1-leaf", "done")
        assert await run.result(timeout=30) == "done"


seen_by_step: list[str] = []


@step(max_retries=0)
async def interruptible() -> str:
    """Runs until its run is cancelled; notes that it saw the cancel and cleaned up."""
    seen_by_step.append("began")
    try:
        await asyncio.Event().wait()
    except asyncio.CancelledError:
        seen_by_step.append("cancelled")
        raise
    finally:
        seen_by_step.append("cleaned up")
    return "never"


@workflow(name="children-runs-interruptible")
async def runs_interruptible() -> str:
    """One step that runs until cancelled."""
    return await interruptible()


async def test_a_running_async_step_sees_the_cancel(engine: Engine) -> None:
    """Cancelling a run raises CancelledError in its running async step, which cleans
    up; the attempt is logged as cancelled and its step row says so."""
    seen_by_step.clear()
    run = await engine.start(runs_interruptible)
    await wait_until(engine, lambda: asyncio.sleep(0, bool(seen_by_step)))
    await run.cancel()
    with pytest.raises(WorkflowCancelled):
        await run.result(timeout=30)
    await wait_until(engine, lambda: asyncio.sleep(0, "cleaned up" in seen_by_step))
    assert seen_by_step == ["began", "cancelled", "cleaned up"]
    events = await run.events()
    (cancelled,) = of_type(events, EventType.STEP_CANCELLED)
    assert cancelled.correlation_id == f"{interruptible.name}#1"
    assert cancelled.data["attempt"] == 1
    assert [e.type for e in events][-2:] == [EventType.STEP_CANCELLED, EventType.RUN_CANCELLED]
    (row,) = await engine.store.steps(run.id)
    assert row.status == "cancelled"


@workflow(name="children-bad-input")
async def bad_input() -> list[str]:
    """start_child with what it refuses: each refusal is an error the workflow catches."""
    seen = []
    calls: list[Callable[[], Awaitable[object]]] = [
        lambda: perdure.start_child(double, 1),  # type: ignore[arg-type]
        lambda: perdure.start_child(child_double, 1, run_id=""),
        lambda: perdure.start_child(child_double, object()),
    ]
    for call in calls:
        try:
            await call()
        except (TypeError, ValueError) as exc:
            seen.append(type(exc).__name__)
    return seen


@workflow(name="children-named-child")
async def named_child(run_id: str) -> list[object]:
    """A child under an id the workflow chose; again under an id another run holds."""
    mine = await perdure.start_child(child_double, 4, run_id=f"{run_id}-mine")
    taken = await perdure.start_child(child_double, 5, run_id="someone-elses")
    try:
        await taken.result()
    except perdure.WorkflowFailed as exc:
        return [mine.id, await mine.result(), exc.type, exc.run_id]
    return ["not raised"]


async def test_start_child_refuses_bad_input_before_logging_anything(engine: Engine) -> None:
    """A step instead of a workflow, an empty run id, an argument that cannot be stored:
    TypeError or ValueError in the workflow, and no child run; outside a workflow,
    RuntimeError."""
    run = await engine.start(bad_input)
    assert await run.result(timeout=30) == ["TypeError", "ValueError", "TypeError"]
    assert await engine.list_runs(parent_id=run.id) == []
    assert of_type(await run.events(), EventType.CHILD_STARTED) == []
    with pytest.raises(RuntimeError, match="inside a workflow"):
        await perdure.start_child(child_double, 1)


async def test_a_child_under_a_chosen_id_and_one_another_run_holds(engine: Engine) -> None:
    """start_child(run_id=...) names the child; an id an unrelated run holds fails that
    child (ValueError, naming the id) rather than adopting the other run."""
    other = await engine.start(child_double, 9, run_id="someone-elses")
    assert await other.result(timeout=30) == 18
    run = await engine.start(named_child, "named")
    child_id, result, kind, failed_id = await run.result(timeout=30)
    assert (child_id, result) == ("named-mine", 8)
    assert (kind, failed_id) == ("builtins.ValueError", "someone-elses")
    assert (await engine.get_run("named-mine")).record.parent_id == run.id
    assert (await engine.get_run("someone-elses")).record.parent_id is None


@workflow(name="children-forkable")
async def forkable(token: str) -> list[object]:
    """A child that completes, one that waits on a hook, a step, then the latter's end."""
    first = await child_double(1)
    waiting = await perdure.start_child(waits_on_hook, token)
    marker = await double(5)
    try:
        second: object = await waiting.result()
    except perdure.WorkflowFailed as exc:
        second = f"failed: {exc.message}"
    return [first, marker, second]


async def test_a_fork_keeps_its_originals_children_apart(engine: Engine) -> None:
    """A fork replays the children its copied log completed, and a child still running
    at the fork point (its original's) fails in the fork instead of hanging it."""
    run = await engine.start(forkable, "fork-1")
    await wait_for_hook(engine, "fork-1")  # the child waits; the parent's step may still run

    async def step_logged() -> bool:
        completed = of_type(await run.events(), EventType.STEP_COMPLETED)
        return any(event.correlation_id == f"{double.name}#1" for event in completed)

    await wait_until(engine, step_logged)
    fork = await engine.fork(run.id, from_step=f"{double.name}#1")
    first, marker, second = await fork.result(timeout=30)
    assert (first, marker) == (2, 10)
    assert str(second).startswith("failed: child run ")
    assert "forked from" in str(second)
    assert await engine.list_runs(parent_id=fork.id) == []  # it started no child itself
    await go.resume("fork-1", "original's")
    assert await run.result(timeout=30) == [2, 10, "original's"]


_DIVERGE: list[bool] = []


@workflow(name="children-diverging")
async def diverging(token: str) -> str:
    """Starts a child; with ``_DIVERGE`` set its code makes another first call."""
    if _DIVERGE:
        await double(1)
    child = await perdure.start_child(waits_on_hook, token)
    return await child.result()


async def test_a_cancel_reaches_the_children_of_a_run_whose_replay_diverges(
    make_engine: EngineFactory,
) -> None:
    """A parent evicted while its child runs, then replayed on code that no longer
    matches its log, is cancelled all the same, and so is its child."""
    _DIVERGE.clear()
    async with make_engine(evict_after="1s") as engine:
        run = await engine.start(diverging, "diverge-1")
        await wait_for_hook(engine, "diverge-1")

        async def parent_released() -> bool:
            return (await engine.get_run(run.id)).record.owner is None

        await wait_until(engine, parent_released)
        _DIVERGE.append(True)
        try:
            await run.cancel()
            with pytest.raises(WorkflowCancelled):
                await run.result(timeout=30)
            (child,) = await engine.list_runs(parent_id=run.id)
            with pytest.raises(WorkflowCancelled):
                await child.result(timeout=30)
        finally:
            _DIVERGE.clear()


@workflow(name="children-leaves-early")
async def leaves_early(token: str) -> str:
    """Starts an attached child and returns without awaiting it."""
    child = await perdure.start_child(waits_on_hook, token)
    return child.id


async def test_a_parent_that_returns_leaves_its_child_running(engine: Engine) -> None:
    """A parent that ends without awaiting its child leaves it running; the child's end
    later tells nobody and harms nothing."""
    run = await engine.start(leaves_early, "early-1")
    child_id = await run.result(timeout=30)
    await wait_for_hook(engine, "early-1")
    child = await engine.get_run(child_id)
    assert await child.status() is RunStatus.RUNNING
    await go.resume("early-1", "done late")
    assert await child.result(timeout=30) == "done late"
    assert await run.status() is RunStatus.COMPLETED
    assert of_type(await run.events(), EventType.CHILD_COMPLETED) == []
