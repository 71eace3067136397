"""The Engine and Run API: idempotent starts, finding and listing runs, statuses, options."""

from __future__ import annotations

import asyncio

import pytest

import perdure
from conftest import EngineFactory
from helpers import fake_clock, wait_for_hook
from perdure import Engine, RunNotFoundError, RunStatus, define_hook, step, workflow

executions: list[str] = []
gate = define_hook(dict, name="gate")


@step
async def note(text: str) -> str:
    """Note that the workflow body ran."""
    executions.append(text)
    return text


@workflow
async def once(text: str) -> str:
    """Note one execution."""
    return await note(text)


@workflow
async def gated(token: str) -> str:
    """Wait at a gate."""
    await gate.create(token=token)
    return "through"


@workflow
async def fails() -> None:
    """Fail."""
    raise ValueError("no")


@pytest.fixture(autouse=True)
def _reset() -> None:
    executions.clear()


async def test_starting_with_the_same_run_id_is_idempotent(engine: Engine) -> None:
    """A second start with the same run_id returns the same run and runs nothing more."""
    first = await engine.start(once, "x", run_id="order-42")
    second = await engine.start(once, "x", run_id="order-42")

    assert "order-42" == first.id == second.id
    assert "x" == await first.result(timeout=5)
    third = await engine.start(once, "x", run_id="order-42")
    assert "x" == await third.result(timeout=5)
    assert ["x"] == executions
    assert ["order-42"] == [r.id for r in await engine.list_runs()]


async def test_a_run_id_of_another_workflow_is_refused(engine: Engine) -> None:
    """Starting a workflow under a run id another workflow's run holds is a ValueError."""
    await engine.start(once, "x", run_id="taken")

    with pytest.raises(ValueError, match="taken"):
        await engine.start(gated, "t", run_id="taken")


@pytest.mark.parametrize("bad", ["", "   "])
async def test_a_blank_run_id_is_refused(engine: Engine, bad: str) -> None:
    """A run id must be a non-empty string."""
    with pytest.raises(ValueError, match="run_id"):
        await engine.start(once, "x", run_id=bad)


async def test_get_run_finds_a_run_and_refuses_unknown_ids(engine: Engine) -> None:
    """get_run returns a handle on an existing run, and RunNotFoundError for an unknown id."""
    run = await engine.start(once, "y")

    found = await engine.get_run(run.id)
    assert (run.id, "once") == (found.id, found.workflow)
    assert "y" == await found.result(timeout=5)
    with pytest.raises(RunNotFoundError) as caught:
        await engine.get_run("nope")
    assert isinstance(caught.value, LookupError)


async def test_list_runs_is_newest_first_and_filters(engine: Engine) -> None:
    """list_runs returns runs newest first, filtered by status and by workflow."""
    clock = fake_clock(engine)
    done = await engine.start(once, "a")
    await done.result(timeout=5)
    clock.advance("1s")
    failed = await engine.start(fails)
    with pytest.raises(perdure.WorkflowFailed):
        await failed.result(timeout=5)
    clock.advance("1s")
    waiting = await engine.start(gated, "t-list")
    await wait_for_hook(engine, "t-list")

    assert [waiting.id, failed.id, done.id] == [r.id for r in await engine.list_runs()]
    assert [waiting.id] == [r.id for r in await engine.list_runs(status="running")]
    assert [failed.id] == [r.id for r in await engine.list_runs(status=RunStatus.FAILED)]
    assert [done.id] == [r.id for r in await engine.list_runs(status="completed")]
    assert [done.id] == [r.id for r in await engine.list_runs(workflow="once")]
    assert [] == await engine.list_runs(workflow="gated", status="completed")
    assert [waiting.id, failed.id] == [r.id for r in await engine.list_runs(limit=2)]


async def test_run_status_goes_through_its_values(make_engine: EngineFactory) -> None:
    """A run is pending until a worker takes it, running while it waits, then it ends."""
    async with make_engine(worker=False) as starter:
        run = await starter.start(gated, "t-status")
        assert RunStatus.PENDING == await run.status()
    async with make_engine() as engine:
        run = await engine.get_run(run.id)
        await wait_for_hook(engine, "t-status")
        assert RunStatus.RUNNING == await run.status()

        await gate.resume("t-status", {})

        assert "through" == await run.result(timeout=5)
        assert RunStatus.COMPLETED == await run.status()
        assert run.record.completed_at is not None


async def test_an_engine_without_a_worker_starts_runs_that_a_worker_finishes(
    make_engine: EngineFactory,
) -> None:
    """Engine(worker=False) only stores runs; an Engine with a worker on the store runs them."""
    async with make_engine(worker=False) as starter, make_engine() as worker_engine:
        assert starter.statistics() is None
        run = await starter.start(once, "remote")
        same = await worker_engine.get_run(run.id)

        assert "remote" == await same.result(timeout=5)
        assert "remote" == await run.result(timeout=5)


async def test_an_engine_is_used_only_while_entered(make_engine: EngineFactory) -> None:
    """Using an Engine before entering it is a RuntimeError, and so is entering it twice."""
    engine = make_engine()
    with pytest.raises(RuntimeError, match="not running"):
        await engine.start(once, "x")
    async with engine:
        with pytest.raises(RuntimeError, match="already running"):
            await engine.__aenter__()


async def test_leaving_an_engine_right_after_a_write_does_not_hang(
    make_engine: EngineFactory,
) -> None:
    """An Engine leaves promptly even when a change arrives just as it shuts down."""
    async with asyncio.timeout(5):
        async with make_engine() as outer:
            async with make_engine():
                pass
            await outer.start(once, "late")


async def test_rerun_starts_a_new_run_with_the_same_input_on_todays_code(engine: Engine) -> None:
    """engine.rerun makes a new run of the workflow with the stored input and the
    version this process defines; an unknown id is RunNotFoundError."""
    first = await engine.start(once, "again")
    assert "again" == await first.result(timeout=5)

    second = await engine.rerun(first.id)

    assert second.id != first.id
    assert "again" == await second.result(timeout=5)
    assert ["again", "again"] == executions
    assert (once.name, first.record.input) == (second.workflow, second.record.input)
    assert once.__perdure_workflow__.version == second.record.version
    with pytest.raises(RunNotFoundError, match="'no-such-run'"):
        await engine.rerun("no-such-run")


async def test_cancel_returns_the_run_as_it_now_stands(engine: Engine) -> None:
    """engine.cancel answers with the run's row after the request: a waiting run has the
    request noted, an ended one is left as it was."""
    waiting = await engine.start(gated, "cancel-gate")
    await wait_for_hook(engine, "cancel-gate")
    ended = await engine.start(once, "done")
    await ended.result(timeout=5)

    requested = await engine.cancel(waiting.id)
    untouched = await engine.cancel(ended.id)

    assert (waiting.id, True) == (requested.id, requested.cancel_requested)
    assert RunStatus.COMPLETED == untouched.status
    with pytest.raises(perdure.WorkflowCancelled):
        await waiting.result(timeout=5)


async def test_running_says_whether_the_engine_is_entered(make_engine: EngineFactory) -> None:
    """Engine.running is True between entering and leaving, False before and after."""
    engine = make_engine()
    seen = [engine.running]
    async with engine:
        seen.append(engine.running)
    seen.append(engine.running)

    assert [False, True, False] == seen
