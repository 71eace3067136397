"""Test helpers for perdure users: an in-memory store and a fake clock.

A workflow that sleeps seven days finishes in milliseconds::

    from perdure.testing import FakeClock, memory_engine

    async def test_refine() -> None:
        async with memory_engine() as engine:
            run = await engine.start(ai_refine, "draft-1")
            assert (await run.result())["refined"]

`memory_engine` returns an Engine on a fresh `MemoryStore` with a `FakeClock` that
jumps to the next timer whenever the worker has nothing else to do.
"""

from __future__ import annotations

from typing import Any

from perdure._clock import FakeClock
from perdure._engine import Engine
from perdure.stores import MemoryStore

__all__ = ["FakeClock", "MemoryStore", "memory_engine"]


def memory_engine(*, clock: FakeClock | None = None, **options: Any) -> Engine:
    """An Engine on a new in-memory store and (by default) an autojumping fake clock.

    Keyword options are passed to `Engine`.
    """
    return Engine("memory://", store=MemoryStore(), clock=clock or FakeClock(), **options)
