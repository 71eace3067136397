"""The engine's sense of time: the system clock, or a fake one for tests.

Every time perdure stores or acts on (an event's time, a sleep's wake-up, a retry's
backoff) comes from the engine's clock, so a `FakeClock` makes a seven-day sleep take
no time at all while every stored time stays consistent.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Protocol

from perdure._replay import Duration, parse_duration

__all__ = ["Clock", "FakeClock", "SystemClock", "TimerHandle"]


class TimerHandle(Protocol):
    """A scheduled callback that can be called off."""

    def cancel(self) -> None:
        """Do not run the callback."""


class Clock(Protocol):
    """What the engine needs of a clock."""

    def now(self) -> datetime:
        """The current time, aware, in UTC."""

    def call_at(self, when: datetime, callback: Callable[[], None]) -> TimerHandle:
        """Run ``callback`` on the running event loop once ``when`` has come."""

    async def sleep_until(self, when: datetime) -> None:
        """Return once ``when`` has come."""


class SystemClock:
    """The wall clock, with timers on the running event loop."""

    def now(self) -> datetime:
        """The current time, aware, in UTC."""
        return datetime.now(UTC)

    def call_at(self, when: datetime, callback: Callable[[], None]) -> TimerHandle:
        """Run ``callback`` once ``when`` has come (at once if it has)."""
        delay = max(0.0, (when - self.now()).total_seconds())
        return asyncio.get_running_loop().call_later(delay, callback)

    async def sleep_until(self, when: datetime) -> None:
        """Return once ``when`` has come."""
        delay = (when - self.now()).total_seconds()
        if delay > 0:
            await asyncio.sleep(delay)


class _FakeTimer:
    __slots__ = ("callback", "cancelled", "when")

    def __init__(self, when: datetime, callback: Callable[[], None]) -> None:
        self.when = when
        self.callback = callback
        self.cancelled = False

    def cancel(self) -> None:
        self.cancelled = True


class FakeClock:
    """A clock that moves only when told to, or by itself when nothing else can happen.

    With ``autojump=True`` (the default) an Engine using this clock jumps it straight
    to the next timer whenever its worker has nothing left to do but wait, so a
    workflow that sleeps seven days finishes in milliseconds. With ``autojump=False``
    time moves only by `advance`.

    Args:
        start: the time to start at (aware); defaults to 2030-01-01 UTC, so tests
            that accidentally read the wall clock stand out.
        autojump: whether an idle engine may move the clock forward itself.
    """

    def __init__(self, start: datetime | None = None, *, autojump: bool = True) -> None:
        if start is not None and start.tzinfo is None:
            raise ValueError("FakeClock(start=...) needs an aware datetime")
        self._now = (start or datetime(2030, 1, 1, tzinfo=UTC)).astimezone(UTC)
        self.autojump = autojump
        self._timers: list[tuple[datetime, int, _FakeTimer]] = []
        self._order = itertools.count()

    def now(self) -> datetime:
        """The fake current time."""
        return self._now

    def call_at(self, when: datetime, callback: Callable[[], None]) -> TimerHandle:
        """Run ``callback`` when the clock reaches ``when`` (soon, if it has)."""
        timer = _FakeTimer(when, callback)
        if when <= self._now:
            asyncio.get_running_loop().call_soon(self._fire, timer)
        else:
            heapq.heappush(self._timers, (when, next(self._order), timer))
        return timer

    async def sleep_until(self, when: datetime) -> None:
        """Return once the clock has been moved to ``when``."""
        if when <= self._now:
            return
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()

        def wake() -> None:
            if not future.done():
                future.set_result(None)

        timer = self.call_at(when, wake)
        try:
            await future
        finally:
            timer.cancel()

    def next_deadline(self) -> datetime | None:
        """When the earliest pending timer is due, or None."""
        while self._timers and self._timers[0][2].cancelled:
            heapq.heappop(self._timers)
        return self._timers[0][0] if self._timers else None

    def advance(self, duration: Duration) -> None:
        """Move the clock forward, running every timer that comes due, in order."""
        self.advance_to(self._now + parse_duration(duration, what="advance"))

    def advance_to(self, when: datetime) -> None:
        """Move the clock to ``when`` (never backwards), running due timers in order."""
        while self._timers and self._timers[0][0] <= when:
            due, _, timer = heapq.heappop(self._timers)
            self._now = max(self._now, due)
            self._fire(timer)
        self._now = max(self._now, when)

    def jump(self) -> bool:
        """Move to the next timer, if any; True when the clock moved."""
        deadline = self.next_deadline()
        if deadline is None:
            return False
        self.advance_to(deadline)
        return True

    @staticmethod
    def _fire(timer: _FakeTimer) -> None:
        if not timer.cancelled:
            timer.cancelled = True
            timer.callback()


def seconds_between(start: datetime, end: datetime) -> float:
    """``end - start`` in seconds."""
    return (end - start) / timedelta(seconds=1)
