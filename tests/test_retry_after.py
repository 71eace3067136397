"""RetryableError(retry_after=...) takes every form a duration takes in perdure, or a
moment (issue 10, "Also"): text, seconds, a timedelta, or an aware datetime; anything
else is refused when the error is made, naming ``retry_after``."""

from __future__ import annotations

from datetime import date, datetime, timedelta
from typing import Any

import pytest

from helpers import of_type
from perdure import (
    Engine,
    EventType,
    RetryableError,
    get_step_metadata,
    step,
    workflow,
)

calls: dict[str, int] = {}
delays: list[Any] = []
"""What the next `throttled` step passes as retry_after; a `Moment` stands for a datetime
made from when the failing attempt began (the engine's clock, a fake one here)."""


class Moment:
    """The datetime ``offset`` after the failing attempt began."""

    def __init__(self, offset: timedelta) -> None:
        self.offset = offset


@pytest.fixture(autouse=True)
def _reset() -> None:
    calls.clear()
    delays.clear()


@step
async def throttled() -> str:
    """Fail once with a 429, asking to be retried as the test says; then succeed."""
    calls["throttled"] = calls.get("throttled", 0) + 1
    if calls["throttled"] == 1:
        (after,) = delays
        if isinstance(after, Moment):
            after = get_step_metadata().started_at + after.offset
        raise RetryableError("429 Too Many Requests", retry_after=after)
    return "ok"


@workflow
async def call_api() -> str:
    """One throttled call."""
    return await throttled()


async def retried_after(engine: Engine) -> tuple[timedelta, datetime]:
    """Run `call_api`; how long after the failure the retry was set for, and when."""
    run = await engine.start(call_api)
    assert "ok" == await run.result(timeout=5)
    events = await run.events()
    (retrying,) = of_type(events, EventType.STEP_RETRYING)
    retry_at = datetime.fromisoformat(retrying.data["retry_at"])
    second = of_type(events, EventType.STEP_STARTED)[1]
    assert (2, retry_at) == (second.data["attempt"], second.created_at)
    assert "perdure.RetryableError" == retrying.data["error"]["type"]
    return retry_at - retrying.created_at, retry_at


@pytest.mark.parametrize(
    "retry_after",
    ["5s", "5 seconds", " 5 s ", 5, 5.0, timedelta(seconds=5), "5000ms"],
    ids=repr,
)
async def test_retry_after_takes_any_form_of_duration(engine: Engine, retry_after: Any) -> None:
    """The issue's RetryableError("429", retry_after="5s") retries 5 s after the
    failure, as do 5, 5.0, a timedelta and other texts: every form sleep takes."""
    delays.append(retry_after)

    delay, _ = await retried_after(engine)

    assert timedelta(seconds=5) == delay
    assert 2 == calls["throttled"]


async def test_retry_after_a_datetime_retries_at_that_moment(engine: Engine) -> None:
    """A datetime is the moment of the next attempt, on the engine's clock."""
    delays.append(Moment(timedelta(seconds=7)))

    delay, _ = await retried_after(engine)

    assert timedelta(seconds=7) == delay


async def test_retry_after_a_moment_already_past_retries_at_once(engine: Engine) -> None:
    """A datetime that has passed when the attempt fails means: try again now."""
    delays.append(Moment(timedelta(seconds=-30)))

    delay, _ = await retried_after(engine)

    assert timedelta(0) == delay


def test_the_error_keeps_a_delay_in_seconds_or_a_moment_in_utc() -> None:
    """retry_after is kept as seconds; a datetime as retry_at, in UTC."""
    assert 5.0 == RetryableError("x", retry_after="5s").retry_after
    assert 5400.0 == RetryableError("x", retry_after="1h30m").retry_after
    moment = datetime.fromisoformat("2030-01-01T10:00:00+02:00")
    made = RetryableError("x", retry_after=moment)
    assert (made.retry_after, made.retry_at) == (None, moment)
    assert made.retry_at is not None
    assert "UTC" == made.retry_at.tzname()
    assert (None, None) == (RetryableError("x").retry_after, RetryableError("x").retry_at)


@pytest.mark.parametrize(
    ("retry_after", "error"),
    [
        ([5], TypeError),
        (True, TypeError),
        (date(2030, 1, 1), TypeError),
        ({"seconds": 5}, TypeError),
        ("soon", ValueError),
        ("5 fortnights", ValueError),
        (-1, ValueError),
        (timedelta(seconds=-1), ValueError),
        (datetime(2030, 1, 1), ValueError),  # naive: which zone was meant?  # noqa: DTZ001
    ],
    ids=repr,
)
def test_anything_else_is_refused_when_the_error_is_made(
    retry_after: Any, error: type[Exception]
) -> None:
    """A retry_after of no accepted form is refused at once, naming retry_after, rather
    than breaking the retry later."""
    with pytest.raises(error, match="retry_after"):
        RetryableError("x", retry_after=retry_after)
