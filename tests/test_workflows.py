"""Workflows and steps: async and plain-def steps, direct calls, decorators, many steps."""

from __future__ import annotations

import asyncio
import inspect
import threading

import pytest

import perdure
from helpers import of_type, types, wait_until
from perdure import Engine, EventType, RunStatus, step, workflow

step_threads: list[int] = []


@step
async def add_async(a: int, b: int) -> int:
    """An async step."""
    return a + b


@step
def multiply_sync(a: int, b: int) -> int:
    """A plain def step: it runs in a thread pool."""
    step_threads.append(threading.get_ident())
    return a * b


@step(name="renamed-step", max_retries=1, timeout="30s")
async def configured(text: str) -> str:
    """A step with every option of the decorator."""
    return text.upper()


@workflow
async def arithmetic(a: int, b: int) -> dict[str, int]:
    """Mix async and plain def steps."""
    total = await add_async(a, b)
    product = await multiply_sync(total, b)
    shout = await configured("x")
    return {"total": total, "product": product, "shout_len": len(shout)}


@workflow(name="named-workflow")
async def named(n: int) -> int:
    """A workflow stored under a name of its choosing."""
    return n + 1


@workflow
async def many_steps(n: int) -> int:
    """Await ``n`` steps one after another."""
    total = 0
    for i in range(n):
        total = await add_async(total, i)
    return total


async def test_async_and_def_steps_run_inside_a_workflow(engine: Engine) -> None:
    """Async steps and plain def steps both run and log their results in a workflow."""
    step_threads.clear()
    run = await engine.start(arithmetic, 2, 3)

    assert {"total": 5, "product": 15, "shout_len": 1} == await run.result(timeout=5)
    completed = of_type(await run.events(), EventType.STEP_COMPLETED)
    assert ["add_async#1", "multiply_sync#1", "renamed-step#1"] == [
        e.correlation_id for e in completed
    ]
    assert [5, 15, "X"] == [e.data["output"] for e in completed]
    assert [threading.get_ident()] != step_threads  # the def step ran off the event loop
    assert 1 == len(step_threads)


async def test_calling_a_step_outside_a_workflow_just_runs_it() -> None:
    """Outside a workflow, awaiting a step runs the function, def steps in a thread."""
    step_threads.clear()

    assert 7 == await add_async(3, 4)
    assert 12 == await multiply_sync(3, 4)
    assert "HI" == await configured("hi")
    assert [threading.get_ident()] != step_threads


async def test_calling_a_workflow_directly_runs_it_as_a_plain_coroutine() -> None:
    """A @workflow function called directly runs without durability (and without an Engine)."""
    assert {"total": 3, "product": 6, "shout_len": 1} == await arithmetic(1, 2)


def test_decorators_keep_names_signatures_and_docstrings() -> None:
    """@workflow and @step keep the function's name, signature and docstring."""
    assert "arithmetic" == arithmetic.__name__
    assert "Mix async and plain def steps." == arithmetic.__doc__
    assert ["a", "b"] == list(inspect.signature(arithmetic).parameters)
    assert ["a", "b"] == list(inspect.signature(multiply_sync).parameters)
    assert "multiply_sync" == multiply_sync.__name__
    assert "renamed-step" == configured.name
    assert "named-workflow" == named.name
    assert "arithmetic" == arithmetic.name


async def test_a_named_workflow_is_stored_under_its_name(engine: Engine) -> None:
    """@workflow(name=...) is the name the run is stored and listed under."""
    run = await engine.start(named, 1)

    assert 2 == await run.result(timeout=5)
    assert "named-workflow" == run.workflow
    assert [run.id] == [r.id for r in await engine.list_runs(workflow="named-workflow")]


def test_workflow_must_be_async() -> None:
    """@workflow refuses a plain def function, naming it."""
    with pytest.raises(TypeError, match="not_async"):

        @workflow  # type: ignore[arg-type]
        def not_async() -> None:
            """Not a coroutine function."""


@pytest.mark.parametrize("name", ["sleep", "timer", "hook.x", "a#1"])
def test_reserved_step_names_are_refused(name: str) -> None:
    """A step may not take a name that correlation ids reserve."""
    with pytest.raises(ValueError, match="reserved"):
        step(name=name)(add_async.__wrapped__)  # type: ignore[attr-defined]


async def test_a_workflow_of_a_thousand_steps_completes(engine: Engine) -> None:
    """A run of 1,000 sequential steps completes with every step logged once."""
    run = await engine.start(many_steps, 1000)

    assert sum(range(1000)) == await run.result(timeout=30)
    events = await run.events()
    assert 1000 == len(of_type(events, EventType.STEP_COMPLETED))
    assert 1000 == len(of_type(events, EventType.STEP_STARTED))
    assert "run_completed" == types(events)[-1]


async def test_module_level_helpers_use_the_latest_engine() -> None:
    """perdure.start and perdure.get_run use the Engine entered most recently."""
    from perdure.testing import memory_engine  # noqa: PLC0415

    async with memory_engine() as outer:
        async with memory_engine() as inner:
            run = await perdure.start(named, 41)
            assert 42 == await run.result(timeout=5)
            assert run.id == (await perdure.get_run(run.id)).id
            assert [] == await outer.list_runs()
            assert [run.id] == [r.id for r in await inner.list_runs()]
        with pytest.raises(perdure.RunNotFoundError):
            await perdure.get_run(run.id)
        later = await perdure.start(named, 1)
        assert [later.id] == [r.id for r in await outer.list_runs()]
    with pytest.raises(RuntimeError, match="no perdure Engine is running"):
        await perdure.start(named, 1)


async def test_a_started_run_is_running_then_completed(engine: Engine) -> None:
    """A run's status goes from pending or running to completed."""
    run = await engine.start(named, 1)

    assert await run.status() in {RunStatus.PENDING, RunStatus.RUNNING}
    await run.result(timeout=5)
    assert RunStatus.COMPLETED == await run.status()
    status: str = RunStatus.COMPLETED  # a str enum: it compares equal to its value
    assert "completed" == status


async def test_run_result_times_out(engine: Engine) -> None:
    """run.result(timeout=...) raises TimeoutError when the run does not end in time."""
    hook = perdure.define_hook(dict)

    @workflow
    async def waits_forever() -> None:
        await hook.create()

    run = await engine.start(waits_forever)

    async def running() -> bool:
        return await run.status() is RunStatus.RUNNING

    await wait_until(engine, running)  # claimed: on a loaded machine that can take a while
    with pytest.raises(TimeoutError):
        await run.result(timeout=0.05)
    assert RunStatus.RUNNING == await run.status()


async def test_steps_of_concurrent_runs_do_not_mix(engine: Engine) -> None:
    """Many runs started together each get their own result."""
    runs = [await engine.start(many_steps, n) for n in range(20)]

    results = await asyncio.gather(*(run.result(timeout=10) for run in runs))

    assert [sum(range(n)) for n in range(20)] == results


@workflow
async def anyio_task_group(n: int) -> list[int]:
    """Steps started from an anyio task group, as libraries such as pydantic-ai do."""
    import anyio  # noqa: PLC0415 (only this workflow needs it)

    results: dict[int, int] = {}

    async def one(i: int) -> None:
        results[i] = await add_async(i, i)

    async with anyio.create_task_group() as group:
        for i in range(n):
            group.start_soon(one, i)
    return [results[i] for i in range(n)]


async def test_anyio_task_groups_run_in_workflow_code(engine: Engine) -> None:
    """Workflow code may use anyio's task groups: the workflow loop answers what anyio asks."""
    run = await engine.start(anyio_task_group, 3)

    assert [0, 2, 4] == await run.result(timeout=10)
