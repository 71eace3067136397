"""The system clock's timers: one asyncio timer serves them all, earliest first."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

from perdure._clock import SystemClock

WAIT = 5.0
"""Seconds a test waits for due timers to run before it fails."""


async def ran(done: asyncio.Event) -> None:
    """Wait until the last timer of a test has run."""
    async with asyncio.timeout(WAIT):
        await done.wait()


async def test_due_timers_run_earliest_first_with_their_arguments() -> None:
    """Timers already due run on the loop in the order of their times, each called with
    the arguments it was given, whatever the order they were set in."""
    clock = SystemClock()
    now = clock.now()
    fired: list[int] = []
    done = asyncio.Event()
    clock.call_at(now - timedelta(seconds=1), fired.append, 3)
    clock.call_at(now - timedelta(seconds=3), fired.append, 1)
    clock.call_at(now, done.set)
    clock.call_at(now - timedelta(seconds=2), fired.append, 2)

    await ran(done)

    assert [1, 2, 3] == fired


async def test_a_timer_knows_when_it_is_due() -> None:
    """The handle's ``when`` is the time it was set for (a worker evicts by it)."""
    clock = SystemClock()
    when = clock.now() + timedelta(hours=1)

    timer = clock.call_at(when, print)

    assert when == timer.when
    timer.cancel()


async def test_a_cancelled_timer_never_runs() -> None:
    """Cancelling a due timer before its turn means its callback is never called."""
    clock = SystemClock()
    now = clock.now()
    fired: list[str] = []
    done = asyncio.Event()
    timer = clock.call_at(now - timedelta(seconds=1), fired.append, "cancelled")
    clock.call_at(now, done.set)

    timer.cancel()
    await ran(done)

    assert [] == fired


async def test_an_earlier_timer_set_later_runs_first() -> None:
    """A timer due before every pending one runs at its time, not at theirs."""
    clock = SystemClock()
    now = clock.now()
    fired: list[str] = []
    done = asyncio.Event()
    later = clock.call_at(now + timedelta(hours=1), fired.append, "an hour later")

    clock.call_at(now - timedelta(seconds=1), done.set)
    await ran(done)

    assert [] == fired
    later.cancel()


async def test_a_failing_callback_is_reported_and_the_next_timers_still_run() -> None:
    """An exception in one callback goes to the loop's exception handler, as asyncio's
    own callbacks' do, and the timers after it run all the same."""
    loop = asyncio.get_running_loop()
    reported: list[BaseException | None] = []

    def report(_: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
        reported.append(context.get("exception"))

    loop.set_exception_handler(report)
    clock = SystemClock()
    now = clock.now()
    fired: list[str] = []
    done = asyncio.Event()

    def fail() -> None:
        raise ZeroDivisionError

    try:
        clock.call_at(now - timedelta(seconds=2), fail)
        clock.call_at(now - timedelta(seconds=1), fired.append, "next")
        clock.call_at(now, done.set)
        await ran(done)
    finally:
        loop.set_exception_handler(None)

    assert ["next"] == fired
    assert [ZeroDivisionError] == [type(error) for error in reported]


async def test_cancelled_timers_do_not_pile_up() -> None:
    """Once more than a hundred cancelled timers make half of those held, the clock
    drops them: a worker cancels a run's eviction timer at each step."""
    clock = SystemClock()
    later = clock.now() + timedelta(hours=1)
    timers = [clock.call_at(later, print, i) for i in range(300)]

    for timer in timers[:200]:
        timer.cancel()

    assert len(clock._timers) < 200
    for timer in timers[200:]:
        timer.cancel()
