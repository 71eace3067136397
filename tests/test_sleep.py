"""perdure.sleep: every duration form, sleeping until a time, bad durations, exact wake-ups."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest

import perdure
from conftest import EngineFactory
from helpers import fake_clock, of_type, timers_of, wait_for_event
from perdure import Engine, EventType, RunStatus, workflow
from perdure.testing import FakeClock

START = datetime(2030, 1, 1, tzinfo=UTC)  # where every FakeClock in these tests starts


@workflow
async def sleeper(duration: Any) -> datetime:
    """Sleep for ``duration``; return the time the workflow sees on waking."""
    await perdure.sleep(duration)
    return perdure.now()


@workflow
async def sleeps_until(until: datetime) -> datetime:
    """Sleep until ``until``; return the time the workflow sees on waking."""
    await perdure.sleep(until=until)
    return perdure.now()


@workflow
async def bad_sleep(duration: Any) -> str:
    """Sleep for ``duration``, reporting the error it raises."""
    try:
        await perdure.sleep(duration)
    except (ValueError, TypeError) as exc:
        return f"{type(exc).__name__}: {exc}"
    return "slept"


@workflow
async def asyncio_sleeper() -> datetime:
    """Sleep with asyncio.sleep, which a workflow's loop makes durable too."""
    await asyncio.sleep(3600)
    return perdure.now()


@pytest.mark.parametrize(
    ("duration", "expected"),
    [
        ("7 days", timedelta(days=7)),
        ("30s", timedelta(seconds=30)),
        ("1h30m", timedelta(hours=1, minutes=30)),
        ("1 hour, 5 min", timedelta(hours=1, minutes=5)),
        ("250ms", timedelta(milliseconds=250)),
        ("2w", timedelta(weeks=2)),
        (90, timedelta(seconds=90)),
        (2.5, timedelta(seconds=2.5)),
        ("45", timedelta(seconds=45)),
        (timedelta(hours=3), timedelta(hours=3)),
    ],
)
async def test_a_sleep_wakes_exactly_its_duration_after_it_started(
    engine: Engine, duration: str | float | timedelta, expected: timedelta
) -> None:
    """Each duration form logs a wake time of start + duration, and wakes right then."""
    run = await engine.start(sleeper, duration)

    woke_at = await run.result(timeout=5)

    events = await run.events()
    (started,) = of_type(events, EventType.RUN_STARTED)
    (slept,) = of_type(events, EventType.SLEEP_STARTED)
    (completed,) = of_type(events, EventType.SLEEP_COMPLETED)
    assert started.created_at + expected == datetime.fromisoformat(slept.data["wake_at"])
    assert started.created_at + expected == completed.created_at
    assert started.created_at + expected == woke_at
    assert {"cancelled": False} == completed.data
    assert "sleep#1" == slept.correlation_id


async def test_sleep_until_a_datetime(engine: Engine) -> None:
    """sleep(until=...) wakes at that time; an offset-aware time is stored in UTC."""
    until = datetime(2030, 1, 4, 2, 0, tzinfo=UTC)
    run = await engine.start(sleeps_until, until.astimezone(timezone(timedelta(hours=2))))

    assert until == await run.result(timeout=5)
    (slept,) = of_type(await run.events(), EventType.SLEEP_STARTED)
    assert until == datetime.fromisoformat(slept.data["wake_at"])


async def test_sleep_until_a_past_time_returns_at_once(engine: Engine) -> None:
    """sleep(until=...) a time already passed wakes without waiting."""
    run = await engine.start(sleeps_until, START - timedelta(days=1))

    assert START == await run.result(timeout=5)


async def test_asyncio_sleep_in_a_workflow_is_a_durable_timer(engine: Engine) -> None:
    """asyncio.sleep inside a workflow is logged as a timer and wakes on the engine's clock."""
    run = await engine.start(asyncio_sleeper)

    assert START + timedelta(hours=1) == await run.result(timeout=5)
    (slept,) = of_type(await run.events(), EventType.SLEEP_STARTED)
    assert "timer#1" == slept.correlation_id


@pytest.mark.parametrize("duration", ["soon", "5 parsecs", "-5", "", "1h and a bit", -1])
async def test_an_invalid_duration_is_a_value_error_naming_it(
    engine: Engine, duration: str | float
) -> None:
    """A duration that is not one raises ValueError in the workflow, naming the value."""
    run = await engine.start(bad_sleep, duration)

    message = await run.result(timeout=5)

    assert message.startswith("ValueError: ")
    assert repr(duration) in message
    assert [] == of_type(await run.events(), EventType.SLEEP_STARTED)


async def test_an_invalid_duration_outside_a_workflow_is_a_value_error() -> None:
    """Outside a workflow, sleep parses its duration the same way before sleeping."""
    with pytest.raises(ValueError, match="'soon'"):
        await perdure.sleep("soon")


async def test_sleep_needs_a_duration_or_until_but_not_both() -> None:
    """sleep() with neither or both of duration and until is a TypeError."""
    with pytest.raises(TypeError):
        await perdure.sleep()
    with pytest.raises(TypeError):
        await perdure.sleep(1, until=START)


async def test_sleep_until_a_naive_datetime_is_refused() -> None:
    """sleep(until=...) refuses a naive datetime, which has no meaning across machines."""
    with pytest.raises(ValueError, match="aware"):
        await perdure.sleep(until=datetime(2030, 1, 1))  # noqa: DTZ001


async def test_a_sleeping_run_is_running_and_wakes_when_the_clock_gets_there(
    make_engine: EngineFactory,
) -> None:
    """While it sleeps a run is `running` with a timer row; it completes once time passes."""
    async with make_engine(clock=FakeClock(autojump=False)) as engine:
        run = await engine.start(sleeper, "1 day")
        await wait_for_event(engine, run, EventType.SLEEP_STARTED)

        assert RunStatus.RUNNING == await run.status()
        assert {"sleep#1": START + timedelta(days=1)} == await timers_of(engine, run.id)

        fake_clock(engine).advance("23h")
        with pytest.raises(TimeoutError):
            await run.result(timeout=0.05)
        assert RunStatus.RUNNING == await run.status()

        fake_clock(engine).advance("1h")
        assert START + timedelta(days=1) == await run.result(timeout=5)
        assert {} == await timers_of(engine, run.id)


async def test_a_seven_day_sleep_completes_in_no_wall_time(engine: Engine) -> None:
    """Under the autojumping fake clock a seven-day sleep completes at once."""
    run = await engine.start(sleeper, "7 days")

    assert START + timedelta(days=7) == await run.result(timeout=2)
