"""Test helpers for perdure users: an in-memory store, a fake clock, and replay checks.

A workflow that sleeps seven days finishes in milliseconds::

    from perdure.testing import FakeClock, memory_engine

    async def test_refine() -> None:
        async with memory_engine() as engine:
            run = await engine.start(ai_refine, "draft-1")
            assert (await run.result())["refined"]

`memory_engine` returns an Engine on a fresh `MemoryStore` with a `FakeClock` that
jumps to the next timer whenever the worker has nothing else to do.

`check_replay` keeps today's code able to replay real runs: export a few with
``perdure export RUN > tests/runs/checkout-1.json``, check the files in, and test::

    def test_checkout_still_replays() -> None:
        check_replay(checkout, "tests/runs/checkout-1.json")
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from perdure._check import ReplayDivergence, check_file
from perdure._clock import FakeClock
from perdure._engine import Engine
from perdure.stores import MemoryStore

__all__ = ["FakeClock", "MemoryStore", "ReplayDivergence", "check_replay", "memory_engine"]


def memory_engine(*, clock: FakeClock | None = None, **options: Any) -> Engine:
    """An Engine on a new in-memory store and (by default) an autojumping fake clock.

    Keyword options are passed to `Engine`.
    """
    return Engine("memory://", store=MemoryStore(), clock=clock or FakeClock(), **options)


def check_replay(workflow: Any, path: str | Path) -> None:
    """Replay the run exported to ``path`` (``perdure export RUN``) on ``workflow``'s code.

    In memory: nothing is stored and no step runs. Passes when a worker with this code
    would continue the run; otherwise raises `ReplayDivergence` (an AssertionError)
    saying, as ``perdure check-replay`` does, what the log holds, what the code called,
    and the line of workflow code that called it.

    Raises:
        ReplayDivergence: this code would block the run.
        TypeError: ``workflow`` is not a @workflow.
        ValueError: the file is not an exported run.
    """
    spec = getattr(workflow, "__perdure_workflow__", None)
    if spec is None:
        raise TypeError(f"check_replay() needs a @workflow function, got {workflow!r}")
    check_file(spec, path)
