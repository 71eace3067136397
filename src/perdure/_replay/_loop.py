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
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
from collections.abc import Callable, Coroutine
from typing import TYPE_CHECKING, Any, TypeVar, TypeVarTuple, Unpack

if TYPE_CHECKING:
    from perdure._replay._instance import WorkflowInstance

__all__ = ["WorkflowLoop", "running_instance"]

_T = TypeVar("_T")
_Ts = TypeVarTuple("_Ts")
logger = logging.getLogger("perdure.workflow")

_NO_IO = (
    "a workflow cannot do I/O or use threads (its code is replayed after a crash); "
    "move this into a @step"
)


def running_instance() -> WorkflowInstance | None:
    """The instance whose loop is running in this thread: the one whose code runs now.

    Only workflow code runs on a `WorkflowLoop`, so the running loop says which workflow
    is running, for free: no per-run context variable (and copy of the context) needed.
    """
    loop = asyncio.events._get_running_loop()
    return loop._instance if type(loop) is WorkflowLoop else None


class WorkflowLoop(asyncio.AbstractEventLoop):
    """The event loop of one workflow instance, stepped by `run_until_idle`."""

    __slots__ = ("_closed", "_instance", "_ready")

    def __init__(self, instance: WorkflowInstance) -> None:
        self._instance = instance
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
        self._instance._start_loop_timer(handle)
        return handle

    def _timer_handle_cancelled(self, handle: asyncio.TimerHandle) -> None:
        self._instance._cancel_loop_timer(handle)

    def time(self) -> float:
        return self._instance.now().timestamp()

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
            self._instance.run_id,
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
