"""Many callers, one round trip: how the PostgreSQL store commits concurrent appends together.

A round trip to the server and a commit cost far more than the few statements of an
append, and a pooled connection serves one statement at a time: a thousand runs each
sending its own append keep ten connections busy and gain nothing from being
concurrent. So a `Batcher` gathers what its callers submit in one event-loop turn, and
whatever arrives while all the batches it allows in flight are busy, and hands it to
one call of ``send``, which answers each item: its result, or its own exception. When
the server is the bottleneck, batches grow by themselves; when nothing is under way, an
item goes at once, from its caller's task, as it would without a batcher.

This is the SQLite store's writer (`perdure.stores.sqlite._writer`) without the thread:
asyncpg already waits on the server without blocking the event loop.
"""

from __future__ import annotations

import asyncio
import copy
from dataclasses import dataclass
from typing import TYPE_CHECKING, Generic, TypeVar

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable, Sequence

__all__ = ["BatchStatistics", "Batcher"]

T = TypeVar("T")
R = TypeVar("R")


@dataclass(frozen=True, slots=True)
class BatchStatistics:
    """A snapshot of a batcher's counters."""

    submitted: int
    """Items submitted, answered or not."""
    batches: int
    """Calls of ``send``: round trips, one for many items."""
    largest_batch: int
    """The most items one call has carried."""


class Batcher(Generic[T, R]):
    """Sends the items its callers submit at about the same moment in one call.

    Args:
        send: sends a batch; returns one outcome per item, in order: the item's result,
            or the exception its caller gets. An exception ``send`` raises goes to every
            caller of the batch (each its own copy).
        in_flight: the most calls of ``send`` under way at once.
        limit: the most items one call takes.
    """

    def __init__(
        self,
        send: Callable[[list[T]], Awaitable[Sequence[R | BaseException]]],
        *,
        in_flight: int,
        limit: int,
    ) -> None:
        if in_flight < 1 or limit < 1:
            raise ValueError(f"in_flight and limit must be at least 1, got {in_flight}, {limit}")
        self._send = send
        self._in_flight = in_flight
        self._limit = limit
        self._pending: list[tuple[T, asyncio.Future[R]]] = []
        self._tasks: set[asyncio.Task[None]] = set()
        self._alone = 0  # items being sent in their callers' own tasks
        self._scheduled = False
        self._idle: asyncio.Event | None = None  # set when nothing is pending or under way
        self._submitted = 0
        self._batches = 0
        self._largest = 0

    async def submit(self, item: T) -> R:
        """Send ``item`` with the next batch; its result, or raise its exception.

        When nothing else is under way, the item goes at once, alone, from the caller's
        own task: a lone run's write waits for no loop turn and no task. Otherwise it
        waits for the end of the loop turn, or for a call to finish, and goes with
        whatever else is pending then. A caller cancelled while its item waits is left
        out; once the item is in a batch, it may take effect whether or not its caller
        still waits.
        """
        self._submitted += 1
        if not (self._pending or self._tasks or self._alone):
            return await self._send_alone(item)
        loop = asyncio.get_running_loop()
        future: asyncio.Future[R] = loop.create_future()
        self._pending.append((item, future))
        if not self._scheduled:
            # At the end of this loop turn, so that everyone woken with us joins in.
            self._scheduled = True
            loop.call_soon(self._dispatch)
        return await future

    async def wait_idle(self) -> None:
        """Return once every submitted item is answered (for closing)."""
        while self._pending or self._tasks or self._alone:
            self._idle = asyncio.Event()  # made here: an Event belongs to the loop it waits on
            await self._idle.wait()

    def statistics(self) -> BatchStatistics:
        """The counters as they stand."""
        return BatchStatistics(self._submitted, self._batches, self._largest)

    async def _send_alone(self, item: T) -> R:
        self._alone += 1
        self._batches += 1
        self._largest = max(self._largest, 1)
        try:
            (outcome,) = await self._send([item])
        finally:
            self._alone -= 1
            self._dispatch()  # what arrived meanwhile may go now
        if isinstance(outcome, BaseException):
            raise outcome
        return outcome

    def _dispatch(self) -> None:
        """Start batches of what is pending, as long as a call may start."""
        self._scheduled = False
        while self._pending and len(self._tasks) + self._alone < self._in_flight:
            taken, self._pending = self._pending[: self._limit], self._pending[self._limit :]
            batch = [(item, future) for item, future in taken if not future.done()]
            if not batch:
                continue
            self._batches += 1
            self._largest = max(self._largest, len(batch))
            task = asyncio.get_running_loop().create_task(self._run(batch))
            self._tasks.add(task)
            task.add_done_callback(self._finished)
        if self._idle is not None and not (self._pending or self._tasks or self._alone):
            self._idle.set()

    async def _run(self, batch: list[tuple[T, asyncio.Future[R]]]) -> None:
        try:
            outcomes: Sequence[R | BaseException] = await self._send([item for item, _ in batch])
        except asyncio.CancelledError:  # the loop is shutting down: nobody waits forever
            for _, future in batch:
                future.cancel()
            raise
        except Exception as exc:  # every caller of the batch gets it
            outcomes = [exc, *(_copy_of(exc) for _ in batch[1:])]
        for (_, future), outcome in zip(batch, outcomes, strict=True):
            if future.done():  # its caller was cancelled meanwhile
                continue
            if isinstance(outcome, BaseException):
                future.set_exception(outcome)
            else:
                future.set_result(outcome)

    def _finished(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        self._dispatch()


def _copy_of(exc: Exception) -> Exception:
    """Another instance of ``exc`` for another caller, caused by it.

    Raised by many tasks, one instance would gather all their tracebacks into one.
    """
    try:
        twin = copy.copy(exc)
    except Exception:  # one that cannot be copied is shared
        return exc
    twin.__cause__ = exc
    return twin
