"""Blocked runs (issue 12): a bug in workflow code blocks its run, other errors fail it.

In one process on every store; `tests/runtime/test_deploys.py` does the same with a
real process per code version.
"""

from __future__ import annotations

from typing import Any

import pytest

from helpers import of_type, wait_until
from perdure import (
    Engine,
    EventType,
    FatalError,
    Run,
    RunNotFoundError,
    RunStatus,
    Workflow,
    WorkflowFailed,
    step,
    workflow,
)

fixed: list[bool] = []


@step(max_retries=0)
async def add_one(x: int) -> int:
    return x + 1


@step(max_retries=0)
async def broken_step(x: int) -> int:
    raise AttributeError(f"step bug {x}")


@workflow
async def has_a_bug(x: int) -> int:
    """Calls a step, then hits a bug (an AttributeError) until ``fixed`` says otherwise."""
    y = await add_one(x)
    if not fixed:
        return y.no_such_attribute  # type: ignore[attr-defined,no-any-return]
    return await add_one(y)


@workflow
async def refuses(x: int) -> int:
    """Raises a ValueError on purpose: the run fails."""
    await add_one(x)
    raise ValueError("no")


@workflow
async def fatal_type_error(x: int) -> int:
    """A FatalError is a decision, not a bug: it fails the run."""
    raise FatalError("fatal on purpose")


@workflow
async def step_error_surfaces(x: int) -> int:
    """A step's AttributeError surfaces in the workflow: it fails the run, as before."""
    return await broken_step(x)


@workflow(block_on=())
async def never_blocks(x: int) -> int:
    """block_on=() fails on every error, bugs included."""
    return x.nope  # type: ignore[attr-defined,no-any-return]


@pytest.fixture(autouse=True)
def _reset() -> None:
    fixed.clear()


async def blocked(engine: Engine, run_id: str) -> str:
    async def check() -> str | None:
        record = await engine.get_run(run_id)
        return record.record.blocked_reason if record.record.status is RunStatus.BLOCKED else None

    reason: str = await wait_until(engine, check)
    return reason


async def test_a_bug_in_workflow_code_blocks_and_the_fix_continues_it(engine: Engine) -> None:
    """An AttributeError of the workflow's own code blocks the run with its traceback;
    once fixed, unblock continues it from its log (the first step does not run again)."""
    run = await engine.start(has_a_bug, 1)
    reason = await blocked(engine, run.id)
    assert "AttributeError" in reason
    assert "no_such_attribute" in reason
    assert "code version" in reason
    record = await run.refresh()
    assert (record.status.is_terminal, record.owner, record.error) == (False, None, None)
    fixed.append(True)
    unblocked = await engine.unblock(run.id)
    assert (unblocked.status, unblocked.blocked_reason) == (RunStatus.RUNNING, None)
    assert await run.result(timeout=10) == 3
    events = await run.events()
    assert len(of_type(events, EventType.STEP_COMPLETED, "add_one#1")) == 1
    assert [e.type for e in events if e.type.value.startswith("run_")][-3:] == [
        EventType.RUN_BLOCKED,
        EventType.RUN_UNBLOCKED,
        EventType.RUN_COMPLETED,
    ]


@pytest.mark.parametrize(
    ("fn", "kind"),
    [
        (refuses, "ValueError"),
        (fatal_type_error, "FatalError"),
        (step_error_surfaces, "AttributeError"),
        (never_blocks, "AttributeError"),
    ],
)
async def test_other_errors_still_fail_the_run(
    engine: Engine, fn: Workflow[[int], int], kind: str
) -> None:
    """A ValueError, a FatalError, a step's error surfacing and anything with
    block_on=() fail the run as before."""
    run = await engine.start(fn, 1)
    with pytest.raises(WorkflowFailed) as caught:
        await run.result(timeout=10)
    assert caught.value.type.endswith(kind)
    assert (await run.status()) is RunStatus.FAILED


async def test_unblock_of_an_unknown_run_is_a_lookup_error(engine: Engine) -> None:
    """engine.unblock of an id no run has raises RunNotFoundError, a LookupError."""
    with pytest.raises(LookupError):
        await engine.unblock("nope")
    with pytest.raises(RunNotFoundError):
        await engine.unblock("nope")


async def test_unblock_of_a_run_that_is_not_blocked_changes_nothing(engine: Engine) -> None:
    """A completed run stays as it is."""
    run = await engine.start(add_one_twice, 1)
    assert await run.result(timeout=10) == 3
    before = await run.events()
    record = await engine.unblock(run.id)
    assert record.status is RunStatus.COMPLETED
    assert await run.events() == before


async def test_cancelling_a_blocked_run_cancels_it(engine: Engine) -> None:
    """A blocked run is not stuck: a cancel ends it cancelled."""
    run = await engine.start(has_a_bug, 1)
    await blocked(engine, run.id)
    await run.cancel()
    await wait_until(engine, lambda: _status_is(run, RunStatus.CANCELLED))


async def _status_is(run: Run[Any], status: RunStatus) -> bool:
    return await run.status() is status


@workflow
async def add_one_twice(x: int) -> int:
    return await add_one(await add_one(x))
