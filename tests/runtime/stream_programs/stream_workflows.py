"""Workflows the stream process tests run, in a worker process (imported by name).

Their steps wait at gate files the test creates, and print what they do, so the test
knows where a run stands and can kill its worker at a chosen point.
"""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import perdure


async def gate(name: str) -> None:
    """Wait until the file ``name`` exists in the working folder (the test's)."""
    while not Path(name).exists():
        await asyncio.sleep(0.01)


@perdure.step
async def tokens(count: int, pause_at: int) -> int:
    """Write ``count`` chunks; at ``pause_at``, wait for the gate ``more``."""
    out = perdure.get_writable("tokens")
    for n in range(count):
        if n == pause_at:
            await gate("more")
        await out.write(f"token {n}")
    return count


@perdure.workflow(name="streams.many_tokens")
async def many_tokens(count: int, pause_at: int) -> int:
    return await tokens(count, pause_at)


@perdure.step
async def part(n: int) -> str:
    """Write one chunk; in the life told so, hang at ``$STREAM_HANG_AT`` for a kill."""
    out = perdure.get_writable("story")
    await out.write(f"step {n}")
    print("step", n, perdure.get_step_metadata().attempt, flush=True)
    if os.environ.get("STREAM_HANG_AT") == str(n):
        await asyncio.Event().wait()  # killed here
    return f"part {n}"


@perdure.workflow(name="streams.story")
async def story(parts: int) -> int:
    out = perdure.get_writable("story")
    for n in range(parts):
        await out.write(f"body {n}")
        await part(n)
    await out.write("the end")
    return parts


@perdure.step(max_retries=1)
async def shaky(key: str) -> str:
    """Attempt 1 writes two chunks, waits for the gate ``fail-KEY`` and fails; 2 writes one."""
    out = perdure.get_writable("tokens")
    attempt = perdure.get_step_metadata().attempt
    if attempt == 1:
        await out.write("draft a")
        await out.write("draft b")
        await gate(f"fail-{key}")
        raise RuntimeError("the model stopped mid-sentence")
    await out.write("final")
    return "final"


@perdure.workflow(name="streams.shaky_tokens")
async def shaky_tokens(key: str) -> str:
    return await shaky(key)
