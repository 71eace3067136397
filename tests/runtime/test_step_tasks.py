"""Step tasks (`perdure._runtime._tasks`): eager on Python 3.12 and later, as before on 3.11.

A step still runs in a task of its own either way (``asyncio.current_task()`` and
``asyncio.timeout`` work inside it), and a step that ends at once is logged as any
other: its ``step_started`` first, then its ``step_completed``, in one append.
"""

from __future__ import annotations

import asyncio

from helpers import types
from perdure import Engine, step, workflow
from perdure._runtime._tasks import EAGER_TASKS, new_task


async def test_new_task_starts_its_coroutine_at_once_where_python_allows() -> None:
    """On 3.12+ the coroutine runs inside new_task; before, a loop turn later."""
    ran: list[str] = []

    async def body() -> None:
        ran.append("ran")

    task = new_task(body(), "a step")
    assert ran == (["ran"] if EAGER_TASKS else [])
    await task
    assert ran == ["ran"]
    assert task.get_name() == "a step"


@step(name="task-own")
async def own_task() -> str:
    """Names the task it runs in, from inside an asyncio.timeout."""
    async with asyncio.timeout(5):
        await asyncio.sleep(0)
    task = asyncio.current_task()
    assert task is not None
    return task.get_name()


@step(name="task-at-once")
async def at_once(x: int) -> int:
    """Ends without suspending: on 3.12 its task is done as soon as it is made."""
    return x * 2


@workflow(name="step-tasks")
async def step_tasks(x: int) -> tuple[str, int]:
    """A step that suspends, then one that does not."""
    return await own_task(), await at_once(x)


async def test_a_step_runs_in_its_own_task_and_is_logged_in_order(engine: Engine) -> None:
    """Each step has its own task; an at-once step logs step_started then step_completed."""
    run = await engine.start(step_tasks, 21)
    name, doubled = await run.result()
    assert name.startswith("step task-own#1 of run ")
    assert doubled == 42
    assert types(await run.events()) == [
        "run_created",
        "run_started",
        "step_started",
        "step_completed",
        "step_started",
        "step_completed",
        "run_completed",
    ]
