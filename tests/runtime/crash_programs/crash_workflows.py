"""Workflows for the crash tests, imported by every life of a run (not collected).

Steps report what they do by appending a line to ``$CRASH_DIR/effects.log``, and may
wait at a gate: until the test creates ``$CRASH_DIR/gate-NAME``. So the test decides
when each step finishes, and counts how many times each one ran, across processes.
"""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

from perdure import sleep, step, workflow


def _dir() -> Path:
    return Path(os.environ["CRASH_DIR"])


def record(what: str) -> None:
    """Append one side-effect line, ``WHAT PID``, to the effects file."""
    fd = os.open(_dir() / "effects.log", os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, f"{what} {os.getpid()}\n".encode())
    finally:
        os.close(fd)


async def gate(name: str) -> None:
    """Wait until the test opens gate ``name``."""
    path = _dir() / f"gate-{name}"
    while not path.exists():
        await asyncio.sleep(0.005)


# -- a pipeline of steps, one of which may block ---------------------------------------


@step
async def work(i: int, block_at: int) -> int:
    """Step ``i`` of the pipeline; step ``block_at`` waits at gate ``work-i``."""
    record(f"work:{i}")
    if i == block_at:
        await gate(f"work-{i}")
    return i * i


@workflow(name="pipeline")
async def pipeline(n: int, block_at: int) -> list[int]:
    """``n`` steps, one after the other."""
    return [await work(i, block_at) for i in range(n)]


# -- a sleep between two steps ---------------------------------------------------------


@step
async def stamp(label: str) -> str:
    """Record ``label``."""
    record(f"stamp:{label}")
    return label


@workflow(name="nap")
async def nap(seconds: float) -> list[str]:
    """A step, a durable sleep of real time, a step."""
    before = await stamp("before")
    await sleep(seconds)
    after = await stamp("after")
    return [before, after]


# -- three steps in parallel -----------------------------------------------------------


@step(name="a")
async def step_a() -> str:
    """Parallel step A; waits at gate ``a``."""
    record("a")
    await gate("a")
    return "A"


@step(name="b")
async def step_b() -> str:
    """Parallel step B; waits at gate ``b``."""
    record("b")
    await gate("b")
    return "B"


@step(name="c")
async def step_c() -> str:
    """Parallel step C; waits at gate ``c``."""
    record("c")
    await gate("c")
    return "C"


@workflow(name="fan")
async def fan() -> list[str]:
    """A, B and C at once, with asyncio.gather."""
    return list(await asyncio.gather(step_a(), step_b(), step_c()))


# -- steps of the "changing" workflow (changing_v1.py, changing_v2.py) -----------------


@step
async def fetch(order: str) -> str:
    """Load an order."""
    record("fetch")
    return f"item-{order}"


@step
async def charge(item: str) -> str:
    """Charge for an item; waits at gate ``charge``."""
    record("charge")
    await gate("charge")
    return f"charged {item}"


@step
async def refund(item: str) -> str:
    """Refund an item."""
    record("refund")
    return f"refunded {item}"
