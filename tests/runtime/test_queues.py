"""Steps routed to queues: ``@step(queue=...)`` runs on the workers serving that queue.

Every Engine of a test shares one fake clock, so that time (heartbeats, leases, retry
backoffs, evictions) means the same to all of them. In one process every Engine knows
every workflow, so any of them may hold a run; only those serving a queue run its steps.
Which Engine ran a step is told by `where`, a context variable each Engine's worker
inherits from the code that entered it.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
from collections import Counter
from typing import TYPE_CHECKING, Any

import pytest

from conftest import EngineFactory
from helpers import of_type, wait_until
from perdure import (
    Engine,
    EventType,
    RunStatus,
    WorkflowCancelled,
    get_step_metadata,
    get_workflow_metadata,
    step,
    workflow,
)
from perdure._runtime._worker import WorkerStatistics
from perdure.testing import FakeClock

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

    from perdure import Run
    from perdure._records import StepTask

where: contextvars.ContextVar[str] = contextvars.ContextVar("where", default="nowhere")
calls: Counter[str] = Counter()
release = {"gate": asyncio.Event()}


class EmbeddingFailed(Exception):
    """A failure of the GPU step, which the workflow catches by its type."""


@pytest.fixture(autouse=True)
def _reset() -> None:
    calls.clear()
    release["gate"] = asyncio.Event()


@step(queue="gpu")
async def embed(text: str) -> str:
    """Record where it ran, and say so."""
    calls["embed"] += 1
    return f"{text} embedded on {where.get()}"


@step(queue="gpu", max_retries=3)
async def flaky_embed(text: str) -> str:
    """Fail twice, then succeed."""
    calls["flaky_embed"] += 1
    if calls["flaky_embed"] < 3:
        raise RuntimeError(f"out of GPU memory ({calls['flaky_embed']})")
    return text.upper()


@step(queue="gpu", max_retries=0)
async def broken_embed(text: str) -> str:
    """Fail for good with an error of the workflow's own type."""
    calls["broken_embed"] += 1
    raise EmbeddingFailed(f"cannot embed {text!r}")


@step(queue="gpu")
async def gated_embed(text: str) -> str:
    """Wait for the test to open the gate, then say where it ran."""
    calls["gated_embed"] += 1
    await release["gate"].wait()
    return f"{text} embedded on {where.get()}"


@step(queue="gpu")
async def held_once(text: str) -> str:
    """Block the first call until cancelled; return at once after that."""
    calls["held_once"] += 1
    if calls["held_once"] == 1:
        await asyncio.Event().wait()
    return f"{text} on attempt {get_step_metadata().attempt}"


@step(queue="gpu")
async def describe() -> list[str]:
    """What a queued step sees of itself and of its run."""
    meta = get_step_metadata()
    return [meta.step_id, str(meta.attempt), get_workflow_metadata().workflow_name]


@step
async def local(text: str) -> str:
    """A step without a queue: it runs wherever the run is held."""
    calls["local"] += 1
    return f"{text} locally on {where.get()}"


@workflow(name="queues-embed")
async def embed_flow(text: str) -> list[str]:
    """One local step and one GPU step."""
    return [await local(text), await embed(text)]


@workflow(name="queues-flaky")
async def flaky_flow(text: str) -> str:
    """A GPU step that needs three attempts."""
    return await flaky_embed(text)


@workflow(name="queues-broken")
async def broken_flow(text: str) -> str:
    """Catch the GPU step's failure by its own type."""
    try:
        return await broken_embed(text)
    except EmbeddingFailed as exc:
        return f"caught {type(exc).__name__}: {exc}"


@workflow(name="queues-gated")
async def gated_flow(text: str) -> str:
    """A GPU step that waits for the test."""
    return await gated_embed(text)


@workflow(name="queues-held-once")
async def held_once_flow(text: str) -> str:
    """A GPU step whose first attempt never ends by itself."""
    return await held_once(text)


@workflow(name="queues-describe")
async def describe_flow() -> list[str]:
    """Report the GPU step's metadata."""
    return await describe()


@contextlib.asynccontextmanager
async def running(make_engine: EngineFactory, name: str, **options: Any) -> AsyncIterator[Engine]:
    """An Engine entered with `where` set to ``name``, so its worker's steps see it."""
    token = where.set(name)
    try:
        engine = make_engine(**options)
        await engine.__aenter__()
    finally:
        where.reset(token)
    try:
        yield engine
    finally:
        await engine.__aexit__(None, None, None)


async def tasks_of(engine: Engine, run: Run[Any]) -> list[StepTask]:
    """The run's step tasks, as the store keeps them."""
    return await engine.store.step_tasks(run.id)


async def task_in(engine: Engine, run: Run[Any], status: str) -> StepTask | None:
    """The run's one step task, once it has ``status``."""
    tasks = await tasks_of(engine, run)
    return tasks[0] if len(tasks) == 1 and tasks[0].status == status else None


async def test_a_queued_step_runs_on_a_worker_serving_its_queue(
    make_engine: EngineFactory,
) -> None:
    """The GPU step runs on the Engine serving queue gpu; the local step where the run is
    held; the log says which step was routed where."""
    clock = FakeClock()
    async with (
        running(make_engine, "holder", clock=clock) as holder,
        running(make_engine, "gpu", clock=clock, queues=("gpu",)),
    ):
        run = await holder.start(embed_flow, "cat")
        local_result, remote_result = await run.result(timeout=10)
        assert remote_result == "cat embedded on gpu"
        assert local_result.startswith("cat locally on ")
        events = await run.events()
        started = {e.correlation_id: e.data for e in of_type(events, EventType.STEP_STARTED)}
        assert started["embed#1"]["queue"] == "gpu"
        assert "queue" not in started["local#1"]
        assert await tasks_of(holder, run) == []
    assert calls == Counter({"local": 1, "embed": 1})


async def test_a_queued_step_waits_until_a_worker_serves_its_queue(
    make_engine: EngineFactory,
) -> None:
    """With nobody serving its queue the step is not run inline: its task stays queued
    and the run running (and evicted, having nothing else to do) until a worker for the
    queue comes, and then the run completes."""
    clock = FakeClock()
    async with running(make_engine, "holder", clock=clock, evict_after="5s") as holder:
        run = await holder.start(embed_flow, "dog")
        await wait_until(holder, lambda: task_in(holder, run, "queued"))
        await wait_until(holder, lambda: _evictions(holder))
        assert await run.status() is RunStatus.RUNNING
        assert await task_in(holder, run, "queued") is not None
        completed = of_type(await run.events(), EventType.STEP_COMPLETED)
        assert [e.correlation_id for e in completed] == ["local#1"]
        assert calls == Counter({"local": 1})
        async with running(make_engine, "gpu", clock=clock, queues=("gpu",)):
            assert (await run.result(timeout=10))[1] == "dog embedded on gpu"
    assert calls == Counter({"local": 1, "embed": 1})


async def _evictions(*engines: Engine) -> int:
    """How many runs these Engines have evicted, together."""
    return sum(_statistics(engine).evictions for engine in engines)


def _statistics(engine: Engine) -> WorkerStatistics:
    statistics = engine.statistics()
    assert statistics is not None
    return statistics


async def test_a_worker_serving_its_own_queue_runs_the_step_as_a_task(
    make_engine: EngineFactory,
) -> None:
    """One Engine that serves gpu and holds the run still routes the step through a task
    (so a replay anywhere treats it the same), and finishes it."""
    async with running(make_engine, "solo", queues=("gpu",)) as solo:
        run = await solo.start(embed_flow, "owl")
        assert (await run.result(timeout=10))[1] == "owl embedded on solo"
        (started,) = [
            e for e in of_type(await run.events(), EventType.STEP_STARTED) if e.data.get("queue")
        ]
        assert started.correlation_id == "embed#1"


async def test_retries_of_a_queued_step_are_logged_by_the_holder(
    make_engine: EngineFactory,
) -> None:
    """Attempts that failed on the queue's worker appear in the run's log as
    step_retrying, in order and with their errors, before the step_completed."""
    clock = FakeClock()
    async with (
        running(make_engine, "holder", clock=clock) as holder,
        running(make_engine, "gpu", clock=clock, queues=("gpu",)),
    ):
        run = await holder.start(flaky_flow, "fox")
        assert await run.result(timeout=10) == "FOX"
        events = [e for e in await run.events() if e.correlation_id == "flaky_embed#1"]
    assert [(e.type, e.data["attempt"]) for e in events] == [
        (EventType.STEP_STARTED, 1),
        (EventType.STEP_RETRYING, 1),
        (EventType.STEP_RETRYING, 2),
        (EventType.STEP_COMPLETED, 3),
    ]
    for retrying, n in zip(events[1:3], (1, 2), strict=True):
        assert retrying.data["error"]["type"] == "builtins.RuntimeError"
        assert retrying.data["error"]["message"] == f"out of GPU memory ({n})"
        assert retrying.data["retry_at"]
    assert calls == Counter({"flaky_embed": 3})


async def test_a_queued_steps_final_error_surfaces_as_its_own_type(
    make_engine: EngineFactory,
) -> None:
    """The workflow catches the GPU step's failure as the exception type the step raised,
    and the log holds step_failed with that type."""
    clock = FakeClock()
    async with (
        running(make_engine, "holder", clock=clock) as holder,
        running(make_engine, "gpu", clock=clock, queues=("gpu",)),
    ):
        run = await holder.start(broken_flow, "yak")
        assert await run.result(timeout=10) == "caught EmbeddingFailed: cannot embed 'yak'"
        (failed,) = of_type(await run.events(), EventType.STEP_FAILED)
    assert failed.data["error"]["type"] == f"{EmbeddingFailed.__module__}.EmbeddingFailed"
    assert failed.data["attempt"] == 1
    assert calls == Counter({"broken_embed": 1})


async def test_a_run_evicted_while_its_queued_step_runs_completes(
    make_engine: EngineFactory,
) -> None:
    """A run waiting only on a GPU step is evicted; the step's end wakes it, the replay
    awaits the step's result rather than running it again, and the run completes."""
    clock = FakeClock()
    async with (
        running(make_engine, "holder", clock=clock, evict_after="1s") as holder,
        running(make_engine, "gpu", clock=clock, queues=("gpu",), evict_after="1s") as gpu,
    ):
        run = await holder.start(gated_flow, "elk")
        await wait_until(holder, lambda: task_in(holder, run, "claimed"))
        await wait_until(holder, lambda: _evictions(holder, gpu))
        record = await run.refresh()
        assert (record.status, record.owner) == (RunStatus.RUNNING, None)
        release["gate"].set()
        assert await run.result(timeout=10) == "elk embedded on gpu"
        replays = sum(_statistics(engine).replays for engine in (holder, gpu))
    assert replays >= 1
    assert calls == Counter({"gated_embed": 1})


async def test_a_run_handed_back_while_its_queued_step_runs_completes(
    make_engine: EngineFactory,
) -> None:
    """The holder leaves while the GPU step runs; the step's result waits in the store
    and the next Engine to take the run logs it without running the step again."""
    clock = FakeClock()
    async with running(make_engine, "gpu", clock=clock, queues=("gpu",)) as gpu:
        async with running(make_engine, "holder", clock=clock) as holder:
            run = await holder.start(gated_flow, "ant")
            await wait_until(holder, lambda: task_in(holder, run, "claimed"))
        release["gate"].set()
        again = await gpu.get_run(run.id)
        assert await again.result(timeout=10) == "ant embedded on gpu"
        events = await again.events()
    assert len(of_type(events, EventType.STEP_STARTED)) == 1
    assert calls == Counter({"gated_embed": 1})


async def _first_attempt_running() -> bool:
    return calls["held_once"] == 1


async def test_a_queue_worker_that_leaves_puts_its_step_back_for_another(
    make_engine: EngineFactory,
) -> None:
    """The step of a queue worker that leaves mid-step goes back to the queue; the next
    worker serving it runs it again as the next attempt."""
    clock = FakeClock()
    async with running(make_engine, "holder", clock=clock) as holder:
        async with running(make_engine, "gpu-1", clock=clock, queues=("gpu",)):
            run = await holder.start(held_once_flow, "bee")
            await wait_until(holder, _first_attempt_running)
        put_back = await task_in(holder, run, "queued")
        assert put_back is not None
        assert (put_back.owner, put_back.attempt) == (None, 2)
        async with running(make_engine, "gpu-2", clock=clock, queues=("gpu",)):
            assert await run.result(timeout=10) == "bee on attempt 2"
        (completed,) = of_type(await run.events(), EventType.STEP_COMPLETED)
    assert completed.data["attempt"] == 2
    assert calls == Counter({"held_once": 2})


async def test_a_queued_step_may_finish_within_the_grace_period(
    make_engine: EngineFactory,
) -> None:
    """A queue worker leaving with a grace period lets its running step finish and
    stores the result, so the step is not run again."""
    clock = FakeClock()
    async with running(make_engine, "holder", clock=clock) as holder:
        gpu = make_engine(clock=clock, queues=("gpu",), shutdown_grace=30)
        token = where.set("gpu")
        await gpu.__aenter__()
        where.reset(token)
        run = await holder.start(gated_flow, "cow")
        await wait_until(holder, lambda: task_in(holder, run, "claimed"))
        leaving = asyncio.create_task(gpu.__aexit__(None, None, None))
        async with asyncio.timeout(5):
            while gpu.worker is None or not gpu.worker.draining:
                await asyncio.sleep(0)
        release["gate"].set()
        await asyncio.wait_for(leaving, 10)
        assert await run.result(timeout=10) == "cow embedded on gpu"
        (completed,) = of_type(await run.events(), EventType.STEP_COMPLETED)
    assert completed.data["attempt"] == 1
    assert calls == Counter({"gated_embed": 1})


async def test_cancelling_a_run_drops_its_queued_steps(make_engine: EngineFactory) -> None:
    """A run cancelled while its GPU step runs ends cancelled and its task is gone; the
    step's late result is dropped and the queue worker carries on."""
    clock = FakeClock()
    async with (
        running(make_engine, "holder", clock=clock) as holder,
        running(make_engine, "gpu", clock=clock, queues=("gpu",)) as gpu,
    ):
        run = await holder.start(gated_flow, "rat")
        await wait_until(holder, lambda: task_in(holder, run, "claimed"))
        await run.cancel()
        with pytest.raises(WorkflowCancelled):
            await run.result(timeout=10)
        assert await tasks_of(holder, run) == []
        release["gate"].set()
        await wait_until(gpu, lambda: _no_steps_running(gpu))
        again = await holder.start(embed_flow, "pig")
        assert (await again.result(timeout=10))[1] == "pig embedded on gpu"
        assert of_type(await run.events(), EventType.STEP_COMPLETED) == []


async def _no_steps_running(engine: Engine) -> bool:
    return _statistics(engine).running_steps == 0


async def test_a_queued_step_sees_its_own_metadata(make_engine: EngineFactory) -> None:
    """get_step_metadata() and get_workflow_metadata() in a queued step name the run's
    step id, the attempt and the workflow, as in a step run inline."""
    clock = FakeClock()
    async with (
        running(make_engine, "holder", clock=clock) as holder,
        running(make_engine, "gpu", clock=clock, queues=("gpu",)),
    ):
        run = await holder.start(describe_flow)
        assert await run.result(timeout=10) == [f"{run.id}:describe#1", "1", "queues-describe"]


@workflow(name="queues-fan-out")
async def fan_out() -> list[str]:
    """Five GPU steps at once."""
    return list(await asyncio.gather(*(gated_embed(str(n)) for n in range(5))))


async def test_a_queue_worker_claims_no_more_than_its_step_slots(
    make_engine: EngineFactory,
) -> None:
    """A worker with two step slots runs two queued steps at a time and leaves the rest
    queued (for others, or for itself once a slot is free)."""
    clock = FakeClock()
    async with (
        running(make_engine, "holder", clock=clock) as holder,
        running(make_engine, "gpu", clock=clock, queues=("gpu",), max_concurrent_steps=2),
    ):
        run = await holder.start(fan_out)

        async def two_running() -> bool:
            found = Counter(task.status for task in await tasks_of(holder, run))
            return found == Counter({"claimed": 2, "queued": 3}) and calls["gated_embed"] == 2

        await wait_until(holder, two_running)
        release["gate"].set()
        assert await run.result(timeout=10) == [f"{n} embedded on gpu" for n in range(5)]
    assert calls == Counter({"gated_embed": 5})


def test_engine_queues_are_checked() -> None:
    """queues= takes a collection of non-empty names, and needs a worker to serve them."""
    with pytest.raises(TypeError, match=r"\('gpu',\)"):
        Engine("memory://", queues="gpu")
    with pytest.raises(ValueError, match="non-empty"):
        Engine("memory://", queues=("gpu", ""))
    with pytest.raises(ValueError, match="worker"):
        Engine("memory://", worker=False, queues=("gpu",))


def test_a_step_queue_must_be_a_name_and_queued_step_names_unique() -> None:
    """@step(queue=...) refuses an empty queue, and a second queued step of the same name
    defined elsewhere (a queue worker finds the code by name)."""
    with pytest.raises(ValueError, match="non-empty"):

        @step(queue=" ")
        async def nowhere() -> None: ...

    with pytest.raises(ValueError, match="taken by"):

        @step(queue="gpu", name="embed")
        async def impostor() -> None: ...
