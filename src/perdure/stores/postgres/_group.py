"""Group commit for the PostgreSQL store: appends, new runs and run reads, in batches.

`GroupCommit` holds a `Batcher` for each: what many runs ask for at about the same
moment goes to the server in one round trip, and appends and new runs in one
transaction, so a thousand runs stepping at once cost a few commits, not a thousand.
Each caller still gets its own answer: the batch functions (``perdure_append_many`` and
``perdure_create_runs``, see the migrations) report a lost lease or a hook conflict
for the one append it concerns, which writes nothing while the rest commit.

A batch of one is sent as the single write it is, so a lone run waits no longer than
before. A batch the server refuses as a whole wrote nothing; its items are sent again
one by one, each to meet its own fate. A batch whose connection broke may or may not
have committed: all its callers get the error, as a lone write's caller would.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from time import perf_counter
from typing import TYPE_CHECKING, TypeVar

import asyncpg

from perdure._metrics import recorder
from perdure.stores.postgres import _ops as ops
from perdure.stores.postgres import _rows as rows
from perdure.stores.postgres._batch import Batcher, BatchStatistics
from perdure.stores.postgres._connect import rolled_back, translated, write_failure
from perdure.stores.postgres._lane import Lane

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable, Sequence

    from asyncpg import Pool, Record

    from perdure._records import RunRecord

__all__ = ["GroupCommit", "PostgresStatistics"]

T = TypeVar("T")
R = TypeVar("R")

# Of the pool's connections, the share each kind of batch may hold at once (the rest
# serve claims and other reads); and the most items one batch takes. Two batches in
# flight let one be built while the server runs the other; more would only make each
# smaller, and small batches cost the server more per item.
_IN_FLIGHT_SHARE = 0.2
_WRITE_LIMIT = 500
_READ_LIMIT = 1000


@dataclass(frozen=True, slots=True)
class PostgresStatistics:
    """A snapshot of a `PostgresStore`'s batching: items asked for, and round trips."""

    appends: BatchStatistics
    """`PostgresStore.append` calls, and the batches that carried them."""
    creates: BatchStatistics
    """`PostgresStore.create_run` calls, and the batches that carried them."""
    run_reads: BatchStatistics
    """`PostgresStore.get_run` calls, and the queries that answered them."""
    split_batches: int
    """Batches of appends or new runs refused as a whole and sent again one by one."""


class GroupCommit:
    """The store's batched writes and reads, over its pool.

    Args:
        pool: the store's pool (raises when the store is not open).
        max_size: the most connections the pool opens.
    """

    def __init__(self, pool: Callable[[], Pool[Record]], max_size: int) -> None:
        self._pool = pool
        self._lane = Lane(pool, max_size)  # the appends' own connection
        in_flight = max(1, int(max_size * _IN_FLIGHT_SHARE))
        self._appends = Batcher(self._send_appends, in_flight=in_flight, limit=_WRITE_LIMIT)
        self._creates = Batcher(self._send_creates, in_flight=in_flight, limit=_WRITE_LIMIT)
        self._run_reads = Batcher(self._read_runs, in_flight=in_flight, limit=_READ_LIMIT)
        self._split_batches = 0

    async def append(self, append: ops.Append) -> int:
        """Commit ``append`` with the others of its batch; its last seq.

        Raises:
            LeaseLostError: its worker does not hold its run.
            HookConflictError: a live hook holds a token it creates.
        """
        return await self._appends.submit(append)

    async def create_run(self, run: ops.NewRunRow) -> bool:
        """Create ``run`` with the others of its batch, synced; whether it is new."""
        return await self._creates.submit(run)

    async def get_run(self, run_id: str) -> RunRecord | None:
        """The run's record, read with the others asked for at that moment; or None."""
        return await self._run_reads.submit(run_id)

    async def wait_idle(self) -> None:
        """Return once everything asked for is answered, the kept connection given back.

        For closing: the pool's close waits for every connection.
        """
        for batcher in (self._creates, self._appends, self._run_reads):
            await batcher.wait_idle()
        await self._lane.close()

    def statistics(self) -> PostgresStatistics:
        """The counters as they stand."""
        return PostgresStatistics(
            appends=self._appends.statistics(),
            creates=self._creates.statistics(),
            run_reads=self._run_reads.statistics(),
            split_batches=self._split_batches,
        )

    # -- sending ------------------------------------------------------------------

    async def _together(
        self,
        items: list[T],
        alone: Callable[[T], Awaitable[R]],
        many: Callable[[list[T]], Awaitable[list[R | BaseException]]],
    ) -> Sequence[R | BaseException]:
        """Send a batch with ``many``, or its one item with ``alone``; each item's outcome.

        Timed as one store commit (`perdure._metrics`) while metrics are recorded.
        """
        metrics = recorder()
        if metrics is None:
            return await self._send(items, alone, many)
        began = perf_counter()
        try:
            return await self._send(items, alone, many)
        finally:
            metrics.commit("postgres", perf_counter() - began, len(items))

    async def _send(
        self,
        items: list[T],
        alone: Callable[[T], Awaitable[R]],
        many: Callable[[list[T]], Awaitable[list[R | BaseException]]],
    ) -> Sequence[R | BaseException]:
        if len(items) == 1:
            return [await alone(items[0])]
        try:
            return await many(items)
        except asyncpg.PostgresError as exc:
            if not rolled_back(exc):
                raise
        self._split_batches += 1
        return await asyncio.gather(*(alone(item) for item in items), return_exceptions=True)

    async def _send_appends(self, appends: list[ops.Append]) -> Sequence[int | BaseException]:
        return await self._together(appends, self._append_alone, self._append_many)

    async def _append_alone(self, append: ops.Append) -> int:
        # A plain append (a step's, most often) takes the function of fewer statements.
        with translated(append.worker, append.run):
            if append.plain:
                seq = await self._lane.fetchval(ops.APPEND_PLAIN, *append.plain_arguments())
            else:
                seq = await self._lane.fetchval(ops.APPEND, *append.arguments())
        return int(seq)

    async def _append_many(self, appends: list[ops.Append]) -> list[int | BaseException]:
        # In run id order, the order every multi-run lock takes (see the migration).
        order = sorted(range(len(appends)), key=lambda i: appends[i].run)
        ranked = [appends[i] for i in order]
        arguments, answered = ops.append_many_arguments(ranked)
        found = await self._lane.fetch(ops.APPEND_MANY, *arguments)
        outcomes: list[int | BaseException] = [0] * len(appends)
        for rank, row in zip(answered, found, strict=True):
            outcomes[order[rank]] = _append_outcome(ranked[rank], row)
        return outcomes

    async def _send_creates(self, runs: list[ops.NewRunRow]) -> Sequence[bool | BaseException]:
        return await self._together(runs, self._create_alone, self._create_many)

    async def _create_alone(self, run: ops.NewRunRow) -> bool:
        return bool(await self._pool().fetchval(ops.CREATE_RUN, *run))

    async def _create_many(self, runs: list[ops.NewRunRow]) -> list[bool | BaseException]:
        # In id order: two batches creating the same ids wait for each other in one order.
        order = sorted(range(len(runs)), key=lambda i: runs[i].id)
        columns = zip(*(runs[i] for i in order), strict=True)
        found = await self._pool().fetch(ops.CREATE_RUNS, *columns)
        outcomes: list[bool | BaseException] = [False] * len(runs)
        for i, row in zip(order, found, strict=True):
            outcomes[i] = bool(row["created"])
        return outcomes

    async def _read_runs(self, run_ids: list[str]) -> list[RunRecord | None]:
        if len(run_ids) == 1:
            found = await self._pool().fetch(rows.GET_RUN, run_ids[0])
        else:
            found = await self._pool().fetch(rows.GET_RUNS, sorted(set(run_ids)))
        by_id = {row["id"]: row for row in found}
        # A record of its own for each caller: records hold mutable JSON values.
        return [
            None if (row := by_id.get(run_id)) is None else rows.run_from_row(row)
            for run_id in run_ids
        ]


def _append_outcome(append: ops.Append, row: Record) -> int | BaseException:
    """An append's last seq, or the error the batch reported for it."""
    if row["failure"] is None:
        return int(row["seq"])
    failure = write_failure(row["failure"], row["detail"], append.worker, append.run)
    return failure or RuntimeError(f"append to run {append.run!r} failed: {row['failure']}")
