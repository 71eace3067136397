"""A deterministic asyncio event loop that workflow code runs on.

Why a loop of our own: replay must make the workflow see things in exactly the order
it saw them the first time. On the process's real event loop, whether a workflow racing
a step against a timer sees one or both done depends on scheduling accidents. Here the
workflow only ever moves when the worker *activates* it with one logged outcome; the
loop then runs every ready callback until nothing is ready, and the workflow is blocked
again on durable calls. Same log, same activations, same decisions: live and replay go
through this one path.

The loop implements what asyncio's tasks, futures, ``gather``, ``wait``, ``wait_for``,
``timeout`` and ``sleep`` need. Its clock is the run's logical time (the time of the
outcome being delivered), and a timer asked of it (``asyncio.sleep(5)`` or a
``wait_for`` timeout inside a workflow) becomes a durable timer, so those survive a
crash too. Anything that would do I/O raises: I/O belongs in a step.

The loop belongs to one `LoopOwner` (the workflow instance), which it asks for the time
and hands its timers to. It knows the owner only by that protocol, so this module
imports nothing else of perdure. It is also the one module that touches asyncio's
private members (handles, the running loop, the task registry): driving asyncio's own
tasks and futures on a loop of ours needs them, and keeping them here keeps them in
one place.
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
import sys
from collections.abc import Callable, Coroutine
from datetime import datetime
from typing import Any, Protocol, TypeVar, TypeVarTuple, Unpack

__all__ = ["LoopOwner", "WorkflowLoop", "running_owner"]

_T = TypeVar("_T")
_Ts = TypeVarTuple("_Ts")
logger = logging.getLogger("perdure.workflow")

_NO_IO = (
    "a workflow cannot do I/O or use threads (its code is replayed after a crash); "
    "move this into a @step"
)


_TASKS_REGISTERED_WEAKLY = sys.version_info < (3, 14)
"""Whether asyncio keeps a weak reference to each task (until 3.14, which links them)."""


class LoopOwner(Protocol):
    """What a `WorkflowLoop` needs of the workflow instance it runs."""

    @property
    def run_id(self) -> str:
        """The run, for error messages."""

    def now(self) -> datetime:
        """The run's logical time, which is the loop's clock."""

    def start_loop_timer(self, handle: asyncio.TimerHandle) -> None:
        """Make an asyncio timer durable; `WorkflowLoop.fire` runs it when it is due."""

    def cancel_loop_timer(self, handle: asyncio.TimerHandle) -> None:
        """Forget a durable timer whose asyncio handle was cancelled."""


def running_owner() -> LoopOwner | None:
    """The owner of the loop running in this thread: the instance whose code runs now.

    Only workflow code runs on a `WorkflowLoop`, so the running loop says which workflow
    is running, for free: no per-run context variable (and copy of the context) needed.
    """
    loop = asyncio.events._get_running_loop()
    return loop._owner if type(loop) is WorkflowLoop else None


class WorkflowLoop(asyncio.AbstractEventLoop):
    """The event loop of one workflow instance, stepped by `run_until_idle`."""

    __slots__ = ("_closed", "_owner", "_ready")

    def __init__(self, owner: LoopOwner) -> None:
        self._owner = owner
        # None while nothing is ready, which is how a suspended run spends its hours (an
        # empty deque is 760 bytes, an empty list 56): a list is made per activation.
        self._ready: list[asyncio.Handle] | None = None
        self._closed = False

    # -- stepping ------------------------------------------------------------------

    def run_until_idle(self) -> None:
        """Run callbacks until none is ready: the workflow then waits on durable calls."""
        outer = asyncio.events._get_running_loop()
        asyncio.events._set_running_loop(self)
        try:
            # First in, first out: callbacks scheduled while a batch runs form the next.
            while (ready := self._ready) is not None:
                self._ready = None
                for index, handle in enumerate(ready):
                    if handle._cancelled:
                        continue
                    try:
                        handle._run()  # reports an Exception itself, as asyncio's loops do
                    except BaseException:
                        # KeyboardInterrupt and the like: keep the callbacks not yet run.
                        self._ready = ready[index + 1 :] + (self._ready or [])
                        raise
        finally:
            asyncio.events._set_running_loop(outer)

    def _schedule(self, handle: asyncio.Handle) -> None:
        """Make ``handle`` ready: it runs in this or the next `run_until_idle`."""
        if self._ready is None:
            self._ready = [handle]
        else:
            self._ready.append(handle)

    def fire(self, handle: asyncio.TimerHandle) -> None:
        """An asyncio timer's durable timer fired: its callback runs, unless cancelled."""
        if not handle._cancelled:
            self._schedule(handle)

    def create_untracked_task(
        self, coro: Coroutine[Any, Any, _T], *, name: str
    ) -> asyncio.Task[_T]:
        """A task that `asyncio.all_tasks` does not list: the workflow's main task.

        asyncio lists every task in a weak set: a weak reference and a slot of its
        table, ~140 bytes per sleeping run, for a list nobody reads for the tasks of a
        workflow loop. (Python 3.14 threads tasks on a list inside them instead, at no
        cost.) The call is asyncio's, for third-party tasks.
        """
        task = self.create_task(coro, name=name)
        if _TASKS_REGISTERED_WEAKLY:
            asyncio._unregister_task(task)
        return task

    # -- what asyncio's tasks and futures use ---------------------------------------

    def call_soon(
        self,
        callback: Callable[[Unpack[_Ts]], object],
        *args: *_Ts,
        context: contextvars.Context | None = None,
    ) -> asyncio.Handle:
        handle = asyncio.Handle(callback, args, self, context)
        self._schedule(handle)
        return handle

    def call_soon_threadsafe(
        self,
        callback: Callable[[Unpack[_Ts]], object],  # noqa: ARG002 (asyncio's signature)
        *args: *_Ts,  # noqa: ARG002
        context: contextvars.Context | None = None,  # noqa: ARG002
    ) -> asyncio.Handle:
        raise RuntimeError(_NO_IO)

    def call_later(
        self,
        delay: float,
        callback: Callable[[Unpack[_Ts]], object],
        *args: *_Ts,
        context: contextvars.Context | None = None,
    ) -> asyncio.TimerHandle:
        return self.call_at(self.time() + delay, callback, *args, context=context)

    def call_at(
        self,
        when: float,
        callback: Callable[[Unpack[_Ts]], object],
        *args: *_Ts,
        context: contextvars.Context | None = None,
    ) -> asyncio.TimerHandle:
        handle = asyncio.TimerHandle(when, callback, args, self, context)
        self._owner.start_loop_timer(handle)
        return handle

    def _timer_handle_cancelled(self, handle: asyncio.TimerHandle) -> None:
        self._owner.cancel_loop_timer(handle)

    def time(self) -> float:
        return self._owner.now().timestamp()

    def create_future(self) -> asyncio.Future[Any]:
        return asyncio.Future(loop=self)

    def create_task(  # type: ignore[override]
        self,
        coro: Coroutine[Any, Any, _T],
        *,
        name: str | None = None,
        context: contextvars.Context | None = None,
    ) -> asyncio.Task[_T]:
        return asyncio.Task(coro, loop=self, name=name, context=context)

    def get_task_factory(self) -> None:
        """No factory: `create_task` makes plain tasks (anyio asks before spawning)."""
        return

    def get_debug(self) -> bool:
        return False

    def set_debug(self, enabled: bool) -> None:  # noqa: ARG002 (asyncio's signature)
        return

    def is_running(self) -> bool:
        return True

    def is_closed(self) -> bool:
        return self._closed

    def close(self) -> None:
        self._closed = True
        self._ready = None

    def get_exception_handler(self) -> None:
        return None

    def default_exception_handler(self, context: dict[str, Any]) -> None:
        self.call_exception_handler(context)

    def call_exception_handler(self, context: dict[str, Any]) -> None:
        if self._closed:
            # An evicted or ended run's coroutine is dropped while it waits; asyncio
            # then reports "Task was destroyed but it is pending", which is expected.
            return
        exception = context.get("exception")
        logger.error(
            "in workflow run %s: %s",
            self._owner.run_id,
            context.get("message", "unhandled error"),
            exc_info=exception if isinstance(exception, BaseException) else None,
        )

    # -- what a workflow must not do -------------------------------------------------

    def run_in_executor(
        self,
        executor: Any,  # noqa: ARG002 (asyncio's signature)
        func: Callable[[Unpack[_Ts]], _T],  # noqa: ARG002
        *args: *_Ts,  # noqa: ARG002
    ) -> asyncio.Future[_T]:
        raise RuntimeError(_NO_IO)

    def run_forever(self) -> None:
        raise RuntimeError("the workflow loop is stepped by perdure; it cannot be run")

    def run_until_complete(self, future: Any) -> Any:  # noqa: ARG002
        raise RuntimeError("the workflow loop is stepped by perdure; it cannot be run")
