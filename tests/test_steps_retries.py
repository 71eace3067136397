"""Step failures: retries with backoff, FatalError, RetryableError, timeouts, error types."""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta

import pytest

import perdure
from helpers import of_type
from perdure import (
    Engine,
    EventType,
    FatalError,
    RetryableError,
    RunStatus,
    WorkflowFailed,
    step,
    workflow,
)

calls: dict[str, int] = {}


def count(name: str) -> int:
    """Count a call of ``name`` and return how many there were."""
    calls[name] = calls.get(name, 0) + 1
    return calls[name]


@pytest.fixture(autouse=True)
def _reset_calls() -> None:
    calls.clear()


@step
async def always_fails() -> str:
    """Fail on every attempt."""
    count("always_fails")
    raise ValueError("boom")


@step
async def fatal() -> str:
    """Fail in a way no retry can fix."""
    count("fatal")
    raise FatalError("bad input")


@step
async def retry_after_five() -> str:
    """Fail once, asking for the retry five seconds later."""
    if count("retry_after_five") == 1:
        raise RetryableError("try later", retry_after=5)
    return "ok"


@step(timeout=0.05, max_retries=0)
async def too_slow() -> str:
    """Take far longer than the step's timeout allows."""
    count("too_slow")
    await asyncio.Event().wait()
    return "never"


@step(max_retries=0)
async def unstorable() -> object:
    """Return something that cannot be serialized."""
    count("unstorable")
    return object()


@step(max_retries=1)
def sync_fails_once() -> str:
    """A def step that fails on its first attempt."""
    if count("sync_fails_once") == 1:
        raise ConnectionError("flaky")
    return "fine"


@workflow
async def uncaught() -> str:
    """Let a step's final failure escape."""
    return await always_fails()


@workflow
async def catches() -> list[str]:
    """Catch a step's final failure as its original type."""
    try:
        await always_fails()
    except ValueError as exc:
        return [type(exc).__name__, str(exc), *getattr(exc, "__notes__", [])]
    return []


@workflow
async def run_fatal() -> str:
    """Call the fatal step."""
    return await fatal()


@workflow
async def run_retry_after() -> str:
    """Call the step that asks for a five-second delay."""
    return await retry_after_five()


@workflow
async def run_too_slow() -> str:
    """Call the step that times out; report the error it surfaces as."""
    try:
        return await too_slow()
    except TimeoutError as exc:
        return f"timed out: {type(exc).__name__}"


@workflow
async def run_unstorable() -> str:
    """Call the step whose result cannot be stored."""
    try:
        await unstorable()
    except TypeError as exc:
        return str(exc)
    return "stored"


@workflow
async def run_sync_fails_once() -> str:
    """Call the flaky def step."""
    return await sync_fails_once()


async def test_default_retries_make_four_attempts_then_fail_the_run(engine: Engine) -> None:
    """A failing step is tried 4 times by default; uncaught, its error fails the run."""
    run = await engine.start(uncaught)

    with pytest.raises(WorkflowFailed) as caught:
        await run.result(timeout=5)

    assert 4 == calls["always_fails"]
    assert "builtins.ValueError" == caught.value.type
    assert "boom" == caught.value.message
    assert caught.value.traceback is not None
    assert 'raise ValueError("boom")' in caught.value.traceback
    assert run.id == caught.value.run_id
    assert RunStatus.FAILED == await run.status()
    events = await run.events()
    assert [1, 2, 3] == [e.data["attempt"] for e in of_type(events, EventType.STEP_RETRYING)]
    assert [4] == [e.data["attempt"] for e in of_type(events, EventType.STEP_FAILED)]
    assert [1, 2, 3, 4] == [e.data["attempt"] for e in of_type(events, EventType.STEP_STARTED)]


async def test_backoff_delays_grow_and_are_logged(engine: Engine) -> None:
    """Default backoff waits between 0.5-1 s, 1-2 s and 2-4 s before attempts 2, 3 and 4."""
    run = await engine.start(uncaught)
    with pytest.raises(WorkflowFailed):
        await run.result(timeout=5)

    events = await run.events()
    delays = [
        (datetime.fromisoformat(e.data["retry_at"]) - e.created_at).total_seconds()
        for e in of_type(events, EventType.STEP_RETRYING)
    ]
    assert [True, True, True] == [
        low <= delay <= high
        for delay, (low, high) in zip(delays, [(0.5, 1), (1, 2), (2, 4)], strict=True)
    ], delays
    restarts = [e.created_at for e in of_type(events, EventType.STEP_STARTED)][1:]
    retry_ats = [
        datetime.fromisoformat(e.data["retry_at"]) for e in of_type(events, EventType.STEP_RETRYING)
    ]
    assert retry_ats == restarts


async def test_a_workflow_catches_the_final_error_as_its_original_type(engine: Engine) -> None:
    """The last error surfaces in the workflow as its own type, the traceback in a note."""
    run = await engine.start(catches)

    kind, message, *notes = await run.result(timeout=5)

    assert ("ValueError", "boom") == (kind, message)
    assert 1 == len(notes)
    assert notes[0].startswith("Original traceback (step always_fails#1, attempt 4):")
    assert 'raise ValueError("boom")' in notes[0]
    assert RunStatus.COMPLETED == await run.status()


async def test_fatal_error_fails_at_once(engine: Engine) -> None:
    """A step raising FatalError is not retried, and the run fails with it."""
    run = await engine.start(run_fatal)

    with pytest.raises(WorkflowFailed) as caught:
        await run.result(timeout=5)

    assert 1 == calls["fatal"]
    assert "perdure.FatalError" == caught.value.type
    assert "bad input" == caught.value.message
    events = await run.events()
    assert [] == of_type(events, EventType.STEP_RETRYING)
    assert [1] == [e.data["attempt"] for e in of_type(events, EventType.STEP_FAILED)]


async def test_retryable_error_sets_the_retry_delay(engine: Engine) -> None:
    """RetryableError(retry_after=5) logs a retry_at exactly 5 s after the failure."""
    run = await engine.start(run_retry_after)

    assert "ok" == await run.result(timeout=5)

    events = await run.events()
    (retrying,) = of_type(events, EventType.STEP_RETRYING)
    retry_at = datetime.fromisoformat(retrying.data["retry_at"])
    assert timedelta(seconds=5) == retry_at - retrying.created_at
    assert "perdure.RetryableError" == retrying.data["error"]["type"]
    second_start = of_type(events, EventType.STEP_STARTED)[1]
    assert (2, retry_at) == (second_start.data["attempt"], second_start.created_at)


def test_retryable_error_accepts_a_timedelta_and_refuses_a_negative_delay() -> None:
    """retry_after may be a timedelta (kept as seconds); a negative one is a ValueError."""
    assert 90.0 == RetryableError("x", retry_after=timedelta(minutes=1.5)).retry_after
    assert RetryableError("x").retry_after is None
    with pytest.raises(ValueError, match="-1"):
        RetryableError("x", retry_after=-1)


async def test_a_step_attempt_longer_than_its_timeout_fails(engine: Engine) -> None:
    """A step over its timeout fails with TimeoutError (no retries with max_retries=0)."""
    run = await engine.start(run_too_slow)

    assert "timed out: TimeoutError" == await run.result(timeout=5)
    assert 1 == calls["too_slow"]
    (failed,) = of_type(await run.events(), EventType.STEP_FAILED)
    assert "builtins.TimeoutError" == failed.data["error"]["type"]


async def test_a_result_that_cannot_be_stored_fails_the_step_without_retries(
    engine: Engine,
) -> None:
    """A step whose return value cannot be serialized fails at once with a TypeError."""
    run = await engine.start(run_unstorable)

    message = await run.result(timeout=5)

    assert "unstorable" in message
    assert 1 == calls["unstorable"]
    events = await run.events()
    assert [] == of_type(events, EventType.STEP_RETRYING)
    (failed,) = of_type(events, EventType.STEP_FAILED)
    assert "builtins.TypeError" == failed.data["error"]["type"]


async def test_a_def_step_is_retried_too(engine: Engine) -> None:
    """A plain def step that fails is retried like an async one."""
    run = await engine.start(run_sync_fails_once)

    assert "fine" == await run.result(timeout=5)
    assert 2 == calls["sync_fails_once"]


async def test_a_step_error_whose_type_cannot_be_rebuilt_is_a_step_error(engine: Engine) -> None:
    """A failure of a type that cannot be rebuilt bare reaches the workflow as StepError."""

    class NeedsTwo(Exception):
        def __init__(self, a: str, b: str) -> None:
            super().__init__(f"{a}/{b}")

    @step(max_retries=0)
    async def odd() -> None:
        raise NeedsTwo("x", "y")

    @workflow
    async def run_odd() -> list[str]:
        try:
            await odd()
        except perdure.StepError as exc:
            return [exc.type, exc.message]
        return []

    run = await engine.start(run_odd)

    kind, message = await run.result(timeout=5)
    assert kind.endswith("NeedsTwo")
    assert "x/y" == message


def test_retry_policy_validates_its_numbers() -> None:
    """RetryPolicy refuses negative retries and delays and a multiplier below 1."""
    with pytest.raises(ValueError, match="max_retries"):
        perdure.RetryPolicy(max_retries=-1)
    with pytest.raises(ValueError, match="delays"):
        perdure.RetryPolicy(initial_delay=-1)
    with pytest.raises(ValueError, match="multiplier"):
        perdure.RetryPolicy(multiplier=0.5)
    assert 4 == perdure.RetryPolicy().max_attempts
