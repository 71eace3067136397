"""Helpers shared by the behaviour tests: waiting on conditions, reading logs."""

from __future__ import annotations

import asyncio
import contextlib
import os
import subprocess
import sys
from typing import TYPE_CHECKING, Any, TypeVar

from perdure import Engine, Event, EventType
from perdure.testing import FakeClock

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable
    from datetime import datetime

    from perdure import Run
    from perdure._records import HookRecord

WAIT = 5.0
"""Seconds a test waits for a condition before it fails."""


T = TypeVar("T")


def run_fresh_python(source: str) -> str:
    """Run ``source`` in a new interpreter with no OpenTelemetry settings; its output.

    For what one process can only show once: whether tracing is installed yet, or how
    much memory objects take beside nothing else. Fails if the program fails.
    """
    environment = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
    done = subprocess.run(
        [sys.executable, "-c", source],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
        env=environment,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


async def eventually(
    condition: Callable[[], Awaitable[T | None]], what: str, timeout: float, *, every: float
) -> T:
    """Check ``condition`` every ``every`` seconds until it returns something truthy, and
    return that; fail naming ``what`` after ``timeout`` seconds.

    For what no Engine announces: other processes' output, their exit, their files.
    """
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        value = await condition()
        if value:
            return value
        if loop.time() > deadline:
            raise AssertionError(f"gave up after {timeout:g}s waiting for {what}")
        await asyncio.sleep(every)


async def wait_until(
    engine: Engine, condition: Callable[[], Awaitable[Any]], timeout: float = WAIT
) -> Any:
    """Wait until ``condition()`` returns something truthy, and return it.

    It is checked again at every change the Engine notices, and every 20 ms for the
    things it does not announce (a worker's counters, its own evictions).
    """
    async with asyncio.timeout(timeout):
        while True:
            changed = engine.changed()
            value = await condition()
            if value:
                return value
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(0.02):
                    await changed.wait()


async def wait_for_hook(engine: Engine, token: str, timeout: float = WAIT) -> HookRecord:
    """Wait until a live hook holds ``token``."""
    hook: HookRecord = await wait_until(engine, lambda: engine.store.get_hook(token), timeout)
    return hook


async def wait_for_event(
    engine: Engine, run: Run[Any], kind: EventType, timeout: float = WAIT
) -> Event:
    """Wait until the run's log holds an event of ``kind``; return the first one."""

    async def first() -> Event | None:
        return next((e for e in await run.events() if e.type is kind), None)

    event: Event = await wait_until(engine, first, timeout)
    return event


def of_type(events: list[Event], kind: EventType) -> list[Event]:
    """The events of one kind, in log order."""
    return [e for e in events if e.type is kind]


def types(events: list[Event]) -> list[str]:
    """The kinds of the events, in log order, as strings."""
    return [e.type.value for e in events]


def fake_clock(engine: Engine) -> FakeClock:
    """The engine's fake clock (every Engine in these tests has one)."""
    clock = engine.clock
    assert isinstance(clock, FakeClock)
    return clock


async def timers_of(engine: Engine, run_id: str) -> dict[str, datetime]:
    """The run's pending timers."""
    return await engine.store.timers(run_id)


async def evicted(engine: Engine) -> int:
    """How many runs the engine's worker has evicted so far."""
    statistics = engine.statistics()
    assert statistics is not None
    return statistics.evictions
