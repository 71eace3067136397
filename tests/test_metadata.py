"""get_step_metadata and get_workflow_metadata: what steps and workflows learn about a run."""

from __future__ import annotations

import pytest

import perdure
from helpers import of_type
from perdure import (
    Engine,
    EventType,
    RetryableError,
    StepMetadata,
    WorkflowMetadata,
    get_step_metadata,
    get_workflow_metadata,
    step,
    workflow,
)

attempts: list[StepMetadata] = []
seen_in_steps: list[WorkflowMetadata] = []


@pytest.fixture(autouse=True)
def _reset() -> None:
    attempts.clear()
    seen_in_steps.clear()


@step
async def flaky_twice() -> int:
    """Fail twice, ten seconds apart, noting the metadata of every attempt."""
    meta = get_step_metadata()
    attempts.append(meta)
    if meta.attempt < 3:
        raise RetryableError("not yet", retry_after=10)
    return meta.attempt


@step
def sync_meta() -> str:
    """A def step reads its metadata from its thread."""
    seen_in_steps.append(get_workflow_metadata())
    return get_step_metadata().step_id


@workflow(name="metadata-workflow")
async def metadata_workflow() -> list[str]:
    """Call the steps and report the metadata the workflow itself sees."""
    meta = get_workflow_metadata()
    attempt = await flaky_twice()
    step_id = await sync_meta()
    try:
        get_step_metadata()
    except RuntimeError:
        in_workflow = "no step metadata in workflow code"
    else:
        in_workflow = "step metadata in workflow code"
    return [
        meta.run_id,
        meta.workflow_name,
        meta.started_at.isoformat(),
        str(attempt),
        step_id,
        in_workflow,
    ]


async def test_step_metadata_keeps_its_id_across_retries(engine: Engine) -> None:
    """A step's id stays the same across attempts; attempt counts up; started_at is each start."""
    run = await engine.start(metadata_workflow)
    await run.result(timeout=5)

    assert [f"{run.id}:flaky_twice#1"] * 3 == [m.step_id for m in attempts]
    assert [1, 2, 3] == [m.attempt for m in attempts]
    assert [run.id] * 3 == [m.run_id for m in attempts]
    assert ["flaky_twice"] * 3 == [m.name for m in attempts]
    starts = [
        e.created_at
        for e in of_type(await run.events(), EventType.STEP_STARTED)
        if e.data["name"] == "flaky_twice"
    ]
    assert starts == [m.started_at for m in attempts]
    assert 10 == (attempts[1].started_at - attempts[0].started_at).total_seconds()


async def test_workflow_metadata_in_the_workflow_and_its_steps(engine: Engine) -> None:
    """Workflow code and its steps (def ones too) see the run id, name and start time."""
    run = await engine.start(metadata_workflow)

    run_id, name, started_at, attempt, step_id, in_workflow = await run.result(timeout=5)

    (started,) = of_type(await run.events(), EventType.RUN_STARTED)
    assert [run.id, "metadata-workflow", started.created_at.isoformat()] == [
        run_id,
        name,
        started_at,
    ]
    assert [WorkflowMetadata(run.id, "metadata-workflow", started.created_at)] == seen_in_steps
    assert "3" == attempt
    assert f"{run.id}:sync_meta#1" == step_id
    assert "no step metadata in workflow code" == in_workflow


def test_metadata_outside_a_workflow_is_a_runtime_error() -> None:
    """Both metadata functions raise RuntimeError outside a workflow and its steps."""
    with pytest.raises(RuntimeError, match="inside a step"):
        get_step_metadata()
    with pytest.raises(RuntimeError, match="inside a workflow"):
        get_workflow_metadata()


async def test_step_metadata_in_a_step_called_directly_is_a_runtime_error() -> None:
    """A step called outside a workflow runs, but has no step metadata."""
    with pytest.raises(RuntimeError, match="inside a step"):
        await flaky_twice()


def test_now_outside_a_workflow_is_aware_utc() -> None:
    """perdure.now() outside a workflow is the current time, timezone-aware in UTC."""
    now = perdure.now()

    assert now.utcoffset() is not None
    assert 0 == now.utcoffset().total_seconds()  # type: ignore[union-attr]
    assert 0.0 <= perdure.random() < 1.0
    assert 4 == perdure.uuid4().version
