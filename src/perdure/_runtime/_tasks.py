"""Step tasks, started eagerly where Python allows it (3.12 and later).

Every step runs in an asyncio task of its own: steps run concurrently with their
workflow and with each other, and a step's code may use ``asyncio.current_task()``
(``asyncio.timeout`` does). A task made by ``create_task`` first runs a loop turn later,
after the scheduling of a callback. Python 3.12's eager tasks (``eager_start=True``) run
the coroutine at once, inside the call, up to its first real suspension: a trivial step
then ends before its caller goes on, with no loop turn and no scheduled callback (issue
16: less Python per step). Before 3.12 the task is made as before.

An eager task may be done when `new_task` returns: its caller notes what it needs (the
attempt, the log's order) before, and keeps the task only if it is still running.
"""

from __future__ import annotations

import asyncio
import sys
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Coroutine

__all__ = ["EAGER_TASKS", "new_task"]

EAGER_TASKS = sys.version_info >= (3, 12)
"""Whether `new_task` starts its coroutine at once, inside the call."""


def new_task(coro: Coroutine[Any, Any, None], name: str) -> asyncio.Task[None]:
    """A task running ``coro`` on the running loop: eagerly on Python 3.12 and later."""
    loop = asyncio.get_running_loop()
    if sys.version_info >= (3, 12):
        return asyncio.Task(coro, loop=loop, name=name, eager_start=True)
    return loop.create_task(coro, name=name)
