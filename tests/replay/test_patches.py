"""`perdure.patched` and `perdure.deprecate_patch` in the replay core: logs in, branches out.

Each workflow below is one version of the same change (the log's workflow name is not
checked by the replayer): v1 reserves then charges; v2 asks ``patched("charge-first")``
and charges first when it answers True; v3 has dropped the old branch and calls
``deprecate_patch`` instead.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

import perdure
from perdure import NonDeterminismError, step, workflow
from perdure._records import Event, EventType
from perdure._replay import (
    CompleteRun,
    MarkPatch,
    ScheduleStep,
    StepDone,
    WorkflowInstance,
    WorkflowSpec,
    replay,
)

T0 = datetime(2030, 1, 1, tzinfo=UTC)


@step(name="patches.reserve")
async def reserve(order: str) -> str:
    return f"reserved {order}"


@step(name="patches.charge")
async def charge(order: str) -> str:
    return f"charged {order}"


@workflow(name="patches-v1")
async def v1(order: str) -> list[str]:
    return [await reserve(order), await charge(order)]


@workflow(name="patches-v2")
async def v2(order: str) -> list[str]:
    if perdure.patched("charge-first") and perdure.patched("charge-first"):  # asked twice
        return [await charge(order), await reserve(order)]
    return [await reserve(order), await charge(order)]


@workflow(name="patches-v3")
async def v3(order: str) -> list[str]:
    perdure.deprecate_patch("charge-first")
    return [await charge(order), await reserve(order)]


def spec_of(fn: Any) -> WorkflowSpec:
    spec: WorkflowSpec = fn.__perdure_workflow__
    return spec


def new(fn: Any) -> WorkflowInstance:
    return WorkflowInstance(spec_of(fn), "r1", ("o1",), {}, started_at=T0)


def log(*entries: tuple[EventType, str | None, dict[str, Any]]) -> list[Event]:
    head = [
        (EventType.RUN_CREATED, None, {"workflow": "patches"}),
        (EventType.RUN_STARTED, None, {}),
    ]
    return [
        Event("r1", seq, kind, cid, data, T0 + timedelta(seconds=seq))
        for seq, (kind, cid, data) in enumerate([*head, *entries], start=1)
    ]


def started(name: str) -> tuple[EventType, str, dict[str, Any]]:
    return (EventType.STEP_STARTED, f"patches.{name}#1", {"name": f"patches.{name}", "attempt": 1})


def output(name: str) -> str:
    return f"{'reserved' if name == 'reserve' else 'charged'} o1"


def done(name: str) -> tuple[EventType, str, dict[str, Any]]:
    data = {"name": f"patches.{name}", "attempt": 1, "output": output(name)}
    return (EventType.STEP_COMPLETED, f"patches.{name}#1", data)


MARKER = (EventType.PATCH_MARKED, "patch.charge-first#1", {"patch": "charge-first"})


def scheduled(commands: list[Any]) -> list[str]:
    return [c.correlation_id for c in commands if isinstance(c, ScheduleStep | MarkPatch)]


def test_a_live_run_marks_the_patch_once_and_takes_the_new_branch() -> None:
    commands = new(v2).start(T0)

    assert ["patch.charge-first#1", "patches.charge#1"] == scheduled(commands)
    assert MarkPatch("patch.charge-first#1", "charge-first") == commands[0]


def test_a_run_that_passed_the_point_without_a_marker_takes_the_old_branch() -> None:
    """Started on v1 (reserve logged, then the worker died): v2 replays it as v1 ran it."""
    result = replay(new(v2), log(started("reserve"), done("reserve")))

    assert ["patches.charge#1"] == scheduled(result.commands)  # the old branch, no marker


def test_a_run_that_recorded_the_marker_replays_the_new_branch_without_marking_again() -> None:
    result = replay(new(v2), log(MARKER, started("charge"), done("charge")))

    assert ["patches.reserve#1"] == scheduled(result.commands)


def test_a_run_whose_log_ends_before_the_point_is_live_there_and_marks_it() -> None:
    """A log with no durable call yet (the run was claimed, then its worker died)."""
    result = replay(new(v2), log())

    assert ["patch.charge-first#1", "patches.charge#1"] == scheduled(result.commands)


def test_a_deprecated_patch_replays_runs_that_recorded_it_and_marks_nothing_new() -> None:
    result = replay(new(v3), log(MARKER, started("charge"), done("charge")))
    assert ["patches.reserve#1"] == scheduled(result.commands)

    assert ["patches.charge#1"] == scheduled(new(v3).start(T0))


def test_a_deprecated_patch_does_not_replay_a_run_of_the_old_branch() -> None:
    """Deprecating is for when no run of the old branch is in flight: one that is still
    there no longer matches, as it should (it is not silently run down the new branch)."""
    with pytest.raises(NonDeterminismError, match=r"patches\.reserve"):
        replay(new(v3), log(started("reserve"), done("reserve")))


def test_a_run_replayed_down_the_old_branch_runs_it_to_the_end() -> None:
    instance = new(v2)
    replay(instance, log(started("reserve"), done("reserve")))
    commands = instance.deliver(StepDone("patches.charge#1", output("charge")), T0)
    assert [CompleteRun] == [type(c) for c in commands]
    assert ["reserved o1", "charged o1"] == commands[0].output  # type: ignore[union-attr]


def test_patched_outside_a_workflow_or_with_a_bad_id_is_refused() -> None:
    with pytest.raises(RuntimeError, match="inside a workflow"):
        perdure.patched("x")
    with pytest.raises(RuntimeError, match="inside a workflow"):
        perdure.deprecate_patch("x")
    with pytest.raises(ValueError, match="patch id"):
        perdure.patched("a#1")
