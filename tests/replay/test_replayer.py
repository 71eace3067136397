"""The replayer on its own: a log in, the calls still to make out. No store, no worker."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from perdure import NonDeterminismError, sleep, step, workflow
from perdure._records import Event, EventType
from perdure._replay import ScheduleStep, StartTimer, WorkflowInstance, replay

T0 = datetime(2030, 1, 1, tzinfo=UTC)


@step(name="fetch")
async def fetch(key: str) -> str:
    return key


@step(name="store")
async def store(value: str) -> int:
    return len(value)


@workflow(name="replayer-pipeline")
async def pipeline(key: str) -> int:
    value = await fetch(key)
    await sleep("1h")
    return await store(value)


def log(*entries: tuple[EventType, str | None, dict[str, Any]]) -> list[Event]:
    """A run's log: run_created and run_started, then ``entries``, a second apart."""
    head = [
        (EventType.RUN_CREATED, None, {"workflow": "replayer-pipeline"}),
        (EventType.RUN_STARTED, None, {}),
    ]
    return [
        Event("r1", seq, kind, cid, data, T0 + timedelta(seconds=seq))
        for seq, (kind, cid, data) in enumerate([*head, *entries], start=1)
    ]


def instance() -> WorkflowInstance:
    spec = pipeline.__perdure_workflow__
    return WorkflowInstance(spec, "r1", ("k",), {}, started_at=T0)


def test_a_call_past_the_end_of_the_log_is_new_and_not_in_flight() -> None:
    """When the log ends on an outcome, the call the workflow makes next is handed back
    once, as a new command, and not also as a step in flight (it would run twice)."""
    result = replay(
        instance(),
        log(
            (EventType.STEP_STARTED, "fetch#1", {"name": "fetch", "attempt": 1}),
            (EventType.STEP_COMPLETED, "fetch#1", {"name": "fetch", "attempt": 1, "output": "k"}),
        ),
    )
    assert [] == result.steps
    assert {} == result.timers
    assert [StartTimer] == [type(c) for c in result.commands]


def test_a_logged_step_without_an_outcome_is_in_flight_with_its_next_attempt() -> None:
    """A step whose start is logged but not its end runs again, as its next attempt."""
    wake_at = (T0 + timedelta(seconds=5, hours=1)).isoformat()
    result = replay(
        instance(),
        log(
            (EventType.STEP_STARTED, "fetch#1", {"name": "fetch", "attempt": 1}),
            (EventType.STEP_COMPLETED, "fetch#1", {"name": "fetch", "attempt": 1, "output": "k"}),
            (EventType.SLEEP_STARTED, "sleep#1", {"wake_at": wake_at}),
            (EventType.SLEEP_COMPLETED, "sleep#1", {"cancelled": False}),
            (EventType.STEP_STARTED, "store#1", {"name": "store", "attempt": 1}),
        ),
    )
    assert [("store#1", 2)] == [(s.command.correlation_id, s.next_attempt) for s in result.steps]
    assert [] == result.commands


def test_a_sleep_in_flight_keeps_its_logged_wake_time() -> None:
    """A sleep begun before a crash is re-armed for the wake time in the log."""
    wake_at = T0 + timedelta(hours=1, seconds=4)
    result = replay(
        instance(),
        log(
            (EventType.STEP_STARTED, "fetch#1", {"name": "fetch", "attempt": 1}),
            (EventType.STEP_COMPLETED, "fetch#1", {"name": "fetch", "attempt": 1, "output": "k"}),
            (EventType.SLEEP_STARTED, "sleep#1", {"wake_at": wake_at.isoformat()}),
        ),
    )
    assert {"sleep#1": wake_at} == result.timers
    assert [] == result.steps
    assert [] == result.commands


def test_a_different_call_at_a_logged_position_is_a_non_determinism_error() -> None:
    """The error names the call made, its position, and what the log holds there."""
    with pytest.raises(NonDeterminismError) as caught:
        replay(
            instance(),
            log((EventType.STEP_STARTED, "charge#1", {"name": "charge", "attempt": 1})),
        )
    message = str(caught.value)
    assert "durable call #1 is step 'fetch' (fetch#1)" in message
    assert "the log holds step 'charge' (charge#1, event #3)" in message


def test_the_workflow_finishing_during_replay_is_reported_as_a_command() -> None:
    """A crash after the last step but before run_completed: replay finishes the run."""
    wake_at = (T0 + timedelta(seconds=5, hours=1)).isoformat()
    result = replay(
        instance(),
        log(
            (EventType.STEP_STARTED, "fetch#1", {"name": "fetch", "attempt": 1}),
            (EventType.STEP_COMPLETED, "fetch#1", {"name": "fetch", "attempt": 1, "output": "k"}),
            (EventType.SLEEP_STARTED, "sleep#1", {"wake_at": wake_at}),
            (EventType.SLEEP_COMPLETED, "sleep#1", {"cancelled": False}),
            (EventType.STEP_STARTED, "store#1", {"name": "store", "attempt": 1}),
            (EventType.STEP_COMPLETED, "store#1", {"name": "store", "attempt": 1, "output": 1}),
        ),
    )
    assert ["CompleteRun"] == [type(c).__name__ for c in result.commands]
    assert [] == result.steps
    assert not any(isinstance(c, ScheduleStep) for c in result.commands)
