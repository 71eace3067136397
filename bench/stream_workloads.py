"""The workflows `bench/streams.py` measures (a worker process serves this module)."""

from __future__ import annotations

import asyncio
import time

import perdure


@perdure.step(name="bench-stream-burst")
async def burst(count: int) -> float:
    """Write ``count`` short text chunks as fast as the writer takes them."""
    out = perdure.get_writable("tokens")
    began = time.perf_counter()
    for n in range(count):
        await out.write(f"tok{n} ")
    return time.perf_counter() - began


@perdure.workflow(name="bench-stream-burst")
async def stream_burst(count: int) -> float:
    return await burst(count)


@perdure.step(name="bench-stream-paced")
async def paced(count: int, rate: float) -> int:
    """Write ``count`` chunks at ``rate`` a second, each holding the time it was written."""
    out = perdure.get_writable("tokens")
    began = time.perf_counter()
    for n in range(count):
        delay = began + n / rate - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        await out.write({"n": n, "t": time.time()})
    return count


@perdure.workflow(name="bench-stream-paced")
async def stream_paced(count: int, rate: float) -> int:
    return await paced(count, rate)
