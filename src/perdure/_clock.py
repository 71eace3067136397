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
from typing import Protocol, TypeVarTuple, Unpack

from perdure._replay import Duration, parse_duration

__all__ = ["Clock", "FakeClock", "SystemClock", "TimerHandle"]

_Ts = TypeVarTuple("_Ts")


class TimerHandle(Protocol):
    """A scheduled callback that can be called off."""

    @property
    def when(self) -> datetime:
        """When the callback is due."""

    def cancel(self) -> None:
        """Do not run the callback."""


class Clock(Protocol):
    """What the engine needs of a clock."""

    def now(self) -> datetime:
        """The current time, aware, in UTC."""

    def call_at(
        self, when: datetime, callback: Callable[[Unpack[_Ts]], None], *args: *_Ts
    ) -> TimerHandle:
        """Run ``callback(*args)`` on the running event loop once ``when`` has come.

        Arguments rather than a closure: a worker arms a timer per sleeping run, and a
        bound method with its arguments is half the size of a lambda over them.
        """

    async def sleep_until(self, when: datetime) -> None:
        """Return once ``when`` has come."""


class _Timer:
    """A clock's timer: 64 bytes, where asyncio's handle and its context take 200.

    Its callback and arguments are dropped once it has run or been cancelled, so that
    whatever they hold is freed at once, not when the timer leaves the heap.
    """

    __slots__ = ("args", "callback", "clock", "when")

    def __init__(
        self,
        clock: SystemClock | None,
        when: datetime,
        callback: Callable[[Unpack[_Ts]], None],
        args: tuple[*_Ts],
    ) -> None:
        self.clock = clock
        self.when = when
        self.callback: Callable[..., None] | None = callback
        self.args: tuple[object, ...] = args

    def __lt__(self, other: _Timer) -> bool:
        return self.when < other.when

    @property
    def cancelled(self) -> bool:
        """Whether the timer was cancelled or has run."""
        return self.callback is None

    def cancel(self) -> None:
        """Do not run the callback."""
        if self.callback is not None:
            self.callback = None
            self.args = ()
            if self.clock is not None:
                self.clock.timer_cancelled()

    def take(self) -> tuple[Callable[..., None], tuple[object, ...]] | None:
        """The callback and its arguments, once: None if it was cancelled or taken."""
        callback, args = self.callback, self.args
        if callback is None:
            return None
        self.callback = None
        self.args = ()
        return callback, args


_CLEANUP_AT = 100
"""Cancelled timers a heap may hold before it is rebuilt without them (asyncio's rule)."""


class SystemClock:
    """The wall clock, with timers on the running event loop.

    Its timers share one asyncio timer, set for the earliest of them: a worker holds a
    timer per sleeping run (and one to evict each suspended run), and asyncio's handle,
    with the copy of the context it takes, is three times the size of a `_Timer`. So the
    callbacks run in the context of that one asyncio timer rather than their caller's:
    they must not depend on context variables (the worker's do not).

    The timers belong to one event loop: if the clock is used from another (an Engine
    entered again under a new `asyncio.run`), timers left on the previous one are
    dropped, as asyncio's own would be with their loop.
    """

    def __init__(self) -> None:
        self._timers: list[_Timer] = []
        """A heap, earliest first; cancelled timers stay until popped or cleaned up."""
        self._cancelled = 0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._wakeup: asyncio.TimerHandle | None = None
        self._wakeup_at: datetime | None = None

    def now(self) -> datetime:
        """The current time, aware, in UTC."""
        return datetime.now(UTC)

    def call_at(
        self, when: datetime, callback: Callable[[Unpack[_Ts]], None], *args: *_Ts
    ) -> TimerHandle:
        """Run ``callback(*args)`` once ``when`` has come (soon, if it has)."""
        loop = asyncio.get_running_loop()
        if loop is not self._loop:
            self._use(loop)
        timer = _Timer(self, when, callback, args)
        heapq.heappush(self._timers, timer)
        if self._wakeup_at is None or when < self._wakeup_at:
            self._arm(loop, when)
        return timer

    async def sleep_until(self, when: datetime) -> None:
        """Return once ``when`` has come."""
        delay = (when - self.now()).total_seconds()
        if delay > 0:
            await asyncio.sleep(delay)

    def _use(self, loop: asyncio.AbstractEventLoop) -> None:
        if self._wakeup is not None:
            self._wakeup.cancel()
        for timer in self._timers:
            timer.clock = None  # cancelling it later is no concern of the new heap
        self._loop = loop
        self._timers = []
        self._cancelled = 0
        self._wakeup = self._wakeup_at = None

    def _arm(self, loop: asyncio.AbstractEventLoop, when: datetime) -> None:
        if self._wakeup is not None:
            self._wakeup.cancel()
        delay = max(0.0, (when - self.now()).total_seconds())
        self._wakeup = loop.call_later(delay, self._fire, loop)
        self._wakeup_at = when

    def _fire(self, loop: asyncio.AbstractEventLoop) -> None:
        self._wakeup = self._wakeup_at = None
        timers, now = self._timers, self.now()
        while timers and timers[0].when <= now:
            taken = heapq.heappop(timers).take()
            if taken is None:
                self._cancelled -= 1
                continue
            callback, args = taken
            try:
                callback(*args)
            except (SystemExit, KeyboardInterrupt):
                raise
            except BaseException as exc:  # reported as asyncio reports its own callbacks
                loop.call_exception_handler(
                    {"message": f"Exception in clock callback {callback!r}", "exception": exc}
                )
        while timers and timers[0].cancelled:
            heapq.heappop(timers)
            self._cancelled -= 1
        if timers and self._wakeup is None:  # a callback may have armed it already
            self._arm(loop, timers[0].when)

    def timer_cancelled(self) -> None:
        """One of its timers was cancelled: drop cancelled timers once most of the heap."""
        self._cancelled += 1
        if self._cancelled > _CLEANUP_AT and 2 * self._cancelled > len(self._timers):
            # In place: `_fire` may be walking this very heap (a callback cancels).
            self._timers[:] = [timer for timer in self._timers if not timer.cancelled]
            heapq.heapify(self._timers)
            self._cancelled = 0


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
        self._timers: list[tuple[datetime, int, _Timer]] = []
        self._order = itertools.count()

    def now(self) -> datetime:
        """The fake current time."""
        return self._now

    def call_at(
        self, when: datetime, callback: Callable[[Unpack[_Ts]], None], *args: *_Ts
    ) -> TimerHandle:
        """Run ``callback(*args)`` when the clock reaches ``when`` (soon, if it has)."""
        timer = _Timer(None, when, callback, args)
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
    def _fire(timer: _Timer) -> None:
        taken = timer.take()
        if taken is not None:
            callback, args = taken
            callback(*args)


def seconds_between(start: datetime, end: datetime) -> float:
    """``end - start`` in seconds."""
    return (end - start) / timedelta(seconds=1)
