"""A step's limits across all workers: ``@step(concurrency=n, rate="100/min")``.

An attempt of a limited step, once it has one of its worker's step slots, asks the
store (`FlowStore.take_step_slot`) for a slot of the step's concurrency and a start in
its rate's window, both or neither, and begins at once when granted; it gives the slot
back when it ends. Refused, it lets its worker's step slot go while it waits, so a
waiting step holds no slot others could use, and asks again.

- A full window says when it has room again: the attempt waits until then on the
  worker's clock (a fake clock jumps there, as for a retry's delay).
- All concurrency slots held: the attempt asks again when one is given back in this
  process (the oldest waiting here is woken, one per slot), and otherwise after a
  pause that grows from 10 ms to half a second (a slot given back by another process
  is noticed within that). Polling the store, not waiting on its change notification:
  a step's end notifies nobody, which is what keeps a step one append.
- A slot whose worker dies is not counted once the worker is no longer registered
  (reaped), so it comes back with the worker's lease.

The attempt's holder id (run, call and attempt) makes asking twice harmless.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from perdure._flow import StepGrant, StepLimits, key_value
from perdure._runtime._outage import until_the_store_answers

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Callable
    from contextlib import AbstractAsyncContextManager

    from perdure._clock import Clock
    from perdure._replay import StepSpec
    from perdure.stores._protocol import FlowStore

__all__ = ["StepGate", "limits_of"]

_FIRST_PAUSE = 0.01
_LONGEST_PAUSE = 0.5


def limits_of(spec: StepSpec, args: tuple[Any, ...], kwargs: dict[str, Any]) -> StepLimits | None:
    """The limits of one call of a step, or None when the step has none."""
    rate = spec.rate
    if spec.concurrency is None and rate is None:
        return None
    rate_key = None
    if rate is not None:
        key = key_value(rate.key, spec.fn, args, kwargs)
        rate_key = spec.name if key is None else f"{spec.name}:{key}"
    return StepLimits(
        concurrency_key=spec.name if spec.concurrency is not None else None,
        concurrency=spec.concurrency,
        rate_key=rate_key,
        rate_count=rate.count if rate is not None else None,
        rate_period=timedelta(seconds=rate.period) if rate is not None else None,
    )


class StepGate:
    """Takes and gives back a worker's attempts' places under their steps' limits."""

    __slots__ = ("_clock", "_leaving", "_store", "_waiting", "_worker_id", "waits")

    def __init__(self, store: FlowStore, worker_id: str, clock: Clock) -> None:
        self._store = store
        self._worker_id = worker_id
        self._clock = clock
        self._waiting: collections.deque[asyncio.Future[None]] = collections.deque()
        """This worker's attempts waiting for a slot, oldest first: a slot given back
        here wakes one of them, not all (all asking the store at once cost a writer
        transaction each per slot given back: a third of SQLite's throughput)."""
        self._leaving: set[asyncio.Task[None]] = set()
        """Slots being given back by attempts cancelled while they asked (kept alive)."""
        self.waits = 0
        """Times an attempt found its step's limit full and waited (`statistics`)."""

    @contextlib.asynccontextmanager
    async def around(
        self,
        slots: AbstractAsyncContextManager[None],
        spec: StepSpec,
        call: tuple[tuple[Any, ...], dict[str, Any]],
        holder: str,
        backing_off: Callable[..., None],
    ) -> AsyncIterator[None]:
        """A step slot of this worker, and the places of one attempt of a limited step.

        The places are asked for holding the worker's slot, so the attempt starts the
        moment they are granted (a rate counts starts, not grants followed by a wait for
        a slot); refused, the attempt lets its slot go while it waits, and asks again.
        """
        limits = limits_of(spec, *call)
        if limits is None:  # pragma: no cover - only limited steps come here
            async with slots:
                yield
            return
        pause, waited = _FIRST_PAUSE, False
        while True:
            await slots.__aenter__()
            try:
                grant = await self._take(limits, holder)
            except BaseException:
                await slots.__aexit__(None, None, None)
                # Cancelled (its run was) while asking: the store may have granted the
                # slot as the answer was lost. Giving back one not held is harmless.
                task = asyncio.get_running_loop().create_task(self.leave(holder))
                self._leaving.add(task)
                task.add_done_callback(self._leaving.discard)
                raise
            if grant.granted:
                break
            await slots.__aexit__(None, None, None)
            if not waited:
                self.waits += 1
                waited = True
            pause = await self._wait(grant, pause, backing_off)
        try:
            yield
        finally:
            try:
                await slots.__aexit__(None, None, None)
            finally:
                await self.leave(holder)

    async def _take(self, limits: StepLimits, holder: str) -> StepGrant:
        return await until_the_store_answers(
            lambda: self._store.take_step_slot(self._worker_id, holder, limits, self._clock.now()),
            f"could not ask for a place under {limits.concurrency_key or limits.rate_key}",
        )

    async def _wait(
        self, grant: StepGrant, pause: float, backing_off: Callable[..., None]
    ) -> float:
        """Wait to ask again after a refusal; the pause for the next wait on a slot."""
        if grant.retry_at is not None:  # a window: it has room again then
            backing_off(waiting=True)
            try:
                await self._clock.sleep_until(grant.retry_at)
            finally:
                backing_off(waiting=False)
            return pause
        woken: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiting.append(woken)
        try:
            async with asyncio.timeout(pause):
                await woken
        except TimeoutError:
            return min(pause * 2, _LONGEST_PAUSE)
        finally:
            if not woken.done():
                woken.cancel()
                self._waiting.remove(woken)
        return pause

    async def leave(self, holder: str) -> None:
        """Give ``holder``'s slot back, and wake this worker's attempts waiting for one."""
        try:
            await until_the_store_answers(
                lambda: self._store.release_step_slot(holder),
                "could not give back a step's slot",
            )
        finally:
            while self._waiting:
                woken = self._waiting.popleft()
                if not woken.done():
                    woken.set_result(None)
                    break
