"""Deadlines: ``engine.start(..., timeout=...)`` and ``@workflow(timeout=...)``.

A run not ended by its deadline is cancelled, durably, saying why; a run that ends in
time is left alone; the deadline is stored with the run, so it holds across an
eviction and a restart. Every test runs on memory, SQLite and PostgreSQL, each with a
fake clock.
"""

from __future__ import annotations

from datetime import timedelta

import pytest

import perdure
from conftest import EngineFactory
from helpers import fake_clock, of_type, wait_for_hook, wait_until
from perdure import Engine, EventType, RunStatus, WorkflowCancelled, define_hook, workflow
from perdure._log import RunCancelled
from perdure.testing import FakeClock

resume_me = define_hook(dict, name="deadline-go")


@workflow
async def slow(hours: float) -> str:
    """Sleep ``hours``, then return."""
    await perdure.sleep(timedelta(hours=hours))
    return "done"


@workflow(timeout="30m")
async def bounded(hours: float) -> str:
    """Sleep ``hours`` under a 30-minute deadline of its own."""
    await perdure.sleep(timedelta(hours=hours))
    return "done"


@workflow
async def waiting(token: str) -> str:
    """Wait on a hook (no timer of its own: only the deadline can wake it)."""
    await resume_me.create(token=token)
    return "resumed"


async def test_a_deadline_that_passes_cancels_the_run_saying_so(engine: Engine) -> None:
    """A run sleeping past its 1h deadline is cancelled at the deadline, with the reason
    in its log, its record and the error `result()` raises."""
    clock = fake_clock(engine)
    started = clock.now()
    run = await engine.start(slow, 2, timeout="1h")
    assert run.record.deadline_at == started + timedelta(hours=1)
    with pytest.raises(WorkflowCancelled, match="deadline of 1h passed") as raised:
        await run.result(timeout=10)
    assert raised.value.reason == "deadline of 1h passed"
    record = await run.refresh()
    assert record.status is RunStatus.CANCELLED
    assert record.completed_at == started + timedelta(hours=1)
    assert record.error is not None
    assert record.error["message"] == "deadline of 1h passed"
    (cancelled,) = of_type(await run.events(), EventType.RUN_CANCELLED)
    assert RunCancelled.of(cancelled).reason == "deadline of 1h passed"


async def test_a_run_that_ends_in_time_is_left_alone(engine: Engine) -> None:
    """A run that ends before its deadline completes; its deadline does nothing after."""
    clock = fake_clock(engine)
    run = await engine.start(slow, 0.5, timeout="1h")
    assert await run.result(timeout=10) == "done"
    clock.advance("2h")  # past the deadline: nothing may happen to the ended run
    record = await run.refresh()
    assert record.status is RunStatus.COMPLETED
    assert of_type(await run.events(), EventType.RUN_CANCELLED) == []


async def test_the_workflow_s_timeout_applies_and_start_overrides_it(engine: Engine) -> None:
    """``@workflow(timeout=...)`` bounds every run; ``start(timeout=...)`` replaces it."""
    with pytest.raises(WorkflowCancelled, match="deadline of 30m passed"):
        await (await engine.start(bounded, 1)).result(timeout=10)
    assert await (await engine.start(bounded, 1, timeout="2h")).result(timeout=10) == "done"


async def test_a_deadline_holds_across_an_eviction(make_engine: EngineFactory) -> None:
    """An evicted run is handed back due at its deadline, and cancelled then."""
    async with make_engine(evict_after="1s") as engine:
        run = await engine.start(waiting, "t-evicted", timeout="1h")
        with pytest.raises(WorkflowCancelled, match="deadline of 1h passed"):
            await run.result(timeout=10)
        statistics = engine.statistics()
        assert statistics is not None
        assert statistics.evictions >= 1


async def test_a_deadline_survives_a_restart(make_engine: EngineFactory) -> None:
    """The deadline is stored: an Engine that never saw the start, started after the
    deadline passed, cancels the run when it takes it over."""
    first_clock = FakeClock(autojump=False)
    async with make_engine(clock=first_clock) as first:
        run = await first.start(waiting, "t-restart", timeout="1h")
        await wait_for_hook(first, "t-restart")
    later = FakeClock(first_clock.now() + timedelta(hours=2), autojump=False)
    async with make_engine(clock=later) as second:
        taken = await second.get_run(run.id)
        with pytest.raises(WorkflowCancelled, match="deadline of 1h passed"):
            await taken.result(timeout=10)
        record = await taken.refresh()
        assert record.completed_at == later.now()


async def test_a_deadline_not_passed_at_a_restart_still_fires(make_engine: EngineFactory) -> None:
    """Taken over before its deadline, the run is cancelled at the deadline, not earlier."""
    first_clock = FakeClock(autojump=False)
    async with make_engine(clock=first_clock) as first:
        run = await first.start(waiting, "t-later", timeout="1h")
        await wait_for_hook(first, "t-later")
    later = FakeClock(first_clock.now() + timedelta(minutes=30), autojump=False)
    async with make_engine(clock=later) as second:
        taken = await second.get_run(run.id)
        await wait_until(second, lambda: _held_by(second, run.id))
        assert (await taken.refresh()).status is RunStatus.RUNNING
        later.advance("31m")
        with pytest.raises(WorkflowCancelled, match="deadline of 1h passed"):
            await taken.result(timeout=10)


async def _held_by(engine: Engine, run_id: str) -> bool:
    record = await engine.store.get_run(run_id)
    return record is not None and record.owner is not None


@pytest.mark.parametrize("timeout", [0, -5, "soon", "0s"])
async def test_a_bad_timeout_is_refused_and_nothing_stored(engine: Engine, timeout: object) -> None:
    """A timeout that is not a positive duration is a ValueError naming it; no run."""
    with pytest.raises(ValueError, match="timeout"):
        await engine.start(slow, 1, timeout=timeout)  # type: ignore[arg-type]
    assert await engine.list_runs() == []


def test_a_bad_workflow_timeout_is_refused() -> None:
    """``@workflow(timeout=...)`` is checked when the workflow is defined."""
    with pytest.raises(ValueError, match="timeout"):

        @workflow(name="deadline.bad", timeout="-1h")
        async def bad() -> None: ...


@workflow
async def parent_of_three(token: str) -> str:
    """Start an attached, a detached and a self-bounded child, then wait on a hook."""
    await perdure.start_child(slow, 2)
    await perdure.start_child(slow, 2, detached=True)
    await perdure.start_child(bounded, 2)
    await resume_me.create(token=token)
    return "resumed"


async def test_a_child_gets_at_most_its_parent_s_remaining_time(
    make_engine: EngineFactory,
) -> None:
    """An attached child's deadline is its parent's (or its own, if earlier); a detached
    child's is its own (none here)."""
    clock = FakeClock(autojump=False)
    async with make_engine(clock=clock) as engine:
        parent = await engine.start(parent_of_three, "t-children", timeout="1h")
        await wait_for_hook(engine, "t-children")
        children = {
            run.workflow + ("/detached" if run.record.deadline_at is None else ""): run.record
            for run in await engine.list_runs(parent_id=parent.id)
        }
        assert sorted(children) == ["bounded", "slow", "slow/detached"]
        assert children["slow"].deadline_at == parent.record.deadline_at
        assert children["bounded"].deadline_at == clock.now() + timedelta(minutes=30)
        await engine.cancel(parent.id)
        await engine.cancel(children["slow/detached"].id)


async def test_a_rerun_gets_the_original_s_timeout(engine: Engine) -> None:
    """A rerun of a run started with a timeout has a deadline as far from its own start;
    a rerun of a run without one gets the workflow's, if any."""
    first = await engine.start(slow, 2, timeout="1h")
    again = await engine.rerun(first.id)
    assert again.record.deadline_at is not None
    assert again.record.deadline_at - again.record.created_at == timedelta(hours=1)
    bounded_run = await engine.start(bounded, 0.1, timeout="2h")
    assert (await engine.rerun(bounded_run.id)).record.deadline_at is not None
    plain = await engine.start(slow, 0.1)
    assert (await engine.rerun(plain.id)).record.deadline_at is None
    for run in (first, again):
        with pytest.raises(WorkflowCancelled):
            await run.result(timeout=10)


async def test_a_run_never_started_before_its_deadline_never_runs(
    make_engine: EngineFactory,
) -> None:
    """A run created where no worker runs, and claimed after its deadline, is cancelled
    without its code running (no run_started), saying why."""
    first_clock = FakeClock(autojump=False)
    async with make_engine(clock=first_clock, worker=False) as starter:
        run = await starter.start(slow, 0.1, timeout="10m")
    later = FakeClock(first_clock.now() + timedelta(hours=1), autojump=False)
    async with make_engine(clock=later) as worker:
        taken = await worker.get_run(run.id)
        with pytest.raises(WorkflowCancelled, match="deadline of 10m passed"):
            await taken.result(timeout=10)
        kinds = [event.type for event in await taken.events()]
        assert kinds == [EventType.RUN_CREATED, EventType.RUN_CANCELLED]
