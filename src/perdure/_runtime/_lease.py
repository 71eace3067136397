"""A worker's lease on the runs it holds, as far as the worker can know it by itself.

The store fences every write to a run in the write's own transaction: a worker that
lost a run cannot log anything for it. What no store can fence is what a worker does
outside it, and a step's side effects happen before its result is written. A worker
frozen past its lease (SIGSTOP, a VM paused, a long GC pause, a database it could not
reach) is taken for dead and its runs given to others; once it thaws, its memory still
shows them held, and a step it begins then runs beside the new holder's.

So a worker keeps its lease's expiry on the monotonic clock, which runs on through a
pause (the wall clock may jump, and a `FakeClock` is not time at all): the lease holds
until the moment the last heartbeat that the store accepted was *sent*, plus the
lease. A heartbeat is cheap and comes round three times per lease, so while all is
well the expiry is two thirds of a lease ahead and checking it costs one clock read.
Before it begins a step, or claims work, the worker checks it; once it may have
lapsed, the worker asks the store first (`Lease.confirm`): a heartbeat, which says
whether the worker was still registered. If it was reaped meanwhile, every run it held
was released then: it lets them all go (`on_lost`) and starts afresh. A heartbeat that
fails (the database down) confirms nothing, and the work waits for one that answers.

Stores without a lease (SQLite, whose dead workers are told by a file lock, and the
memory store) need no check; their heartbeats still report a reap (SQLite reaps a
worker whose heartbeat is older than ``stale_after``), and the worker lets go then too.

What remains is the pause that falls between the check and the step's first line: no
process can rule that out, and at-least-once covers it (the step runs again elsewhere).
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import TYPE_CHECKING

from perdure._runtime._outage import Outage

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable, Mapping

    from perdure._clock import Clock
    from perdure.stores._protocol import WorkerStore

__all__ = ["Lease"]

logger = logging.getLogger("perdure.worker")


class Lease:
    """When this worker's hold on its runs lapses, on the monotonic clock; and renewing it.

    Args:
        store: where the worker is registered.
        worker_id: the worker.
        clock: gives the times the store records (never the lease's expiry).
        on_lost: called when a heartbeat finds the worker reaped: it drops every run and
            step task it holds and hands back, in the store, whatever it still owns.
        monotonic: the monotonic clock, in seconds (a test makes time pass with it).
        describe: what the worker defines (workflow name -> code version), recorded
            with its registration for the views and other workers to see.
    """

    __slots__ = (
        "_clock",
        "_describe",
        "_monotonic",
        "_on_lost",
        "_renewing",
        "_store",
        "_until",
        "described",
        "lost",
        "seconds",
        "worker_id",
    )

    def __init__(
        self,
        store: WorkerStore,
        worker_id: str,
        clock: Clock,
        on_lost: Callable[[], Awaitable[None]],
        *,
        monotonic: Callable[[], float] = time.monotonic,
        describe: Callable[[], Mapping[str, str]] | None = None,
    ) -> None:
        lease = store.lease
        self.seconds = lease.total_seconds() if lease is not None else 0.0
        """The store's lease in seconds; 0 for stores that tell dead workers otherwise."""
        self.worker_id = worker_id
        self.lost = 0
        """How many times the worker found it had been reaped."""
        self._store = store
        self._clock = clock
        self._on_lost = on_lost
        self._monotonic = monotonic
        self._until = float("-inf")
        """The monotonic time the lease lapses at."""
        self._renewing: asyncio.Task[bool] | None = None
        self._describe = describe
        self.described: Mapping[str, str] | None = None
        """What the worker defined when it last registered."""

    @property
    def valid(self) -> bool:
        """Whether the lease is known to hold now (always, for a store without leases)."""
        return not self.seconds or self._monotonic() < self._until

    async def register(self) -> None:
        """Register the worker with the store: its lease starts."""
        sent = self._monotonic()
        if self._describe is None:
            await self._store.register_worker(self.worker_id, self._clock.now())
        else:
            described = self._describe()
            await self._store.register_worker(
                self.worker_id, self._clock.now(), workflows=described
            )
            self.described = described
        self._granted(sent)

    async def renew(self) -> bool:
        """Heartbeat; whether the worker was still registered (False: it was reaped).

        One heartbeat at a time: callers that come while one is on its way share it.
        When it finds the worker reaped, the worker lets go of everything and registers
        afresh before this returns. Raises what the store raises.
        """
        task = self._renewing
        if task is None or task.done():
            task = asyncio.get_running_loop().create_task(self._renew(), name="perdure lease")
            # Retrieved here too: a caller cancelled meanwhile leaves nobody to read it.
            task.add_done_callback(lambda done: done.cancelled() or done.exception())
            self._renewing = task
        # Shielded: a caller cancelled meanwhile (its run dropped by this very renewal)
        # must not cut a heartbeat, or a letting go, in half.
        return await asyncio.shield(task)

    async def confirm(self) -> None:
        """Return once the lease is known to hold, asking the store as often as needed.

        While the store cannot be reached, it keeps asking, with a pause that grows: the
        work waits, as its writes would fail anyway. A caller whose run this worker lost
        is cancelled meanwhile (the run is dropped), so it never begins.
        """
        outage: Outage | None = None
        while not self.valid:
            try:
                await self.renew()
            except Exception:
                if outage is None:
                    outage = Outage("could not confirm the worker's lease")
                await asyncio.sleep(outage.failed())
        if outage is not None:
            outage.ended()

    def close(self) -> None:
        """Stop a heartbeat on its way (the worker stops)."""
        if self._renewing is not None:
            self._renewing.cancel()

    async def _renew(self) -> bool:
        sent = self._monotonic()
        registered = await self._store.heartbeat(self.worker_id, self._clock.now())
        # `is False`: a custom store written before heartbeats said so returns None.
        if registered is False:
            self.lost += 1
            logger.warning(
                "worker %s was taken for dead (its lease lapsed, a pause or an outage): "
                "it lets go of every run it held, which other workers have taken",
                self.worker_id,
            )
            await self._on_lost()
            await self.register()
            return False
        self._granted(sent)
        return True

    def _granted(self, sent: float) -> None:
        # Never moved back: a heartbeat answered late was sent before a later one.
        self._until = max(self._until, sent + self.seconds)
