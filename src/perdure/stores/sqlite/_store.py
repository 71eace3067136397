"""`SQLiteStore`: perdure's default store, one SQLite file shared by local processes.

Two connections:

- the writer's commits every write, many at a time: on the event loop when the write
  lock is free at once (a commit costs less than a hop to a thread and back), on its
  own thread when another process holds the lock or the batch must be synced; while
  somebody waits, it also notices other connections' commits
  (`perdure.stores.sqlite._writer`);
- the reader's serves reads on a thread of its own, which WAL mode lets run while the
  writer writes.

Other processes may open the same file: a write that meets another's lock waits for it
on the writer's thread (``busy_timeout``), and a worker that dies leaves its file lock
free, so the next `reap_dead_workers` anywhere hands its runs to the living
(`perdure.stores.sqlite._workers`).
"""

from __future__ import annotations

import asyncio
import functools
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

from perdure._chunks import check_stream_name
from perdure.stores._protocol import Store
from perdure.stores.sqlite import _ops as ops
from perdure.stores.sqlite import _rows as rows
from perdure.stores.sqlite import _stats
from perdure.stores.sqlite import _streams as streams
from perdure.stores.sqlite._flow_store import SQLiteFlow
from perdure.stores.sqlite._fork import fork_run
from perdure.stores.sqlite._schedules import SQLiteSchedules
from perdure.stores.sqlite._schema import connect, migrate, migrations
from perdure.stores.sqlite._workers import WorkerLocks
from perdure.stores.sqlite._writer import Writer, WriterStatistics

if TYPE_CHECKING:
    import sqlite3
    from collections.abc import Callable, Collection, Mapping
    from datetime import datetime

    from perdure._chunks import ChunkRow, NewChunk, StreamAttempt
    from perdure._process import WorkerProcess
    from perdure._records import (
        JSON,
        Event,
        HookRecord,
        InboxItem,
        NewEvent,
        NewRun,
        RunRecord,
        RunStatus,
        StepOutcome,
        StepRecord,
        StepTask,
        WorkerRecord,
    )
    from perdure._stats import RunStats, StatsWindow

__all__ = ["SQLiteStore", "WriterStatistics"]

T = TypeVar("T")


class SQLiteStore(SQLiteSchedules, SQLiteFlow, Store):
    """A `Store` in one SQLite file (WAL mode), safe to share between processes.

    Args:
        path: the database file; it and its parent folders are created on `open`.
            Worker lock files live in ``<path>.workers/``.
        stale_after: a worker whose last heartbeat is older than this (seconds or a
            timedelta) is reaped even if its lock file looks held.
        batch_limit: the most writes one transaction commits together.
    """

    def __init__(
        self,
        path: str | Path,
        *,
        stale_after: float | timedelta = 60.0,
        batch_limit: int = 256,
    ) -> None:
        self.path = Path(path)
        self.stale_after = (
            stale_after if isinstance(stale_after, timedelta) else timedelta(seconds=stale_after)
        )
        self._batch_limit = batch_limit
        self._locks = WorkerLocks(self.path)
        self._opening = asyncio.Lock()
        self._writer: Writer | None = None
        self._reader: ThreadPoolExecutor | None = None
        self._reader_conn: sqlite3.Connection | None = None
        self._changed = asyncio.Event()
        self._waiting = 0

    def __repr__(self) -> str:
        return f"SQLiteStore({str(self.path)!r})"

    # -- life cycle ---------------------------------------------------------------

    async def open(self) -> None:
        """Create or migrate the schema and start the threads. Idempotent."""
        async with self._opening:
            if self._writer is not None and not self._writer.closed:
                return
            self._changed = asyncio.Event()
            writer = Writer(
                functools.partial(connect, self.path),
                on_foreign_commit=self._changed.set,
                batch_limit=self._batch_limit,
            )
            await writer.start(lambda conn: migrate(conn, migrations()))
            self._writer = writer
            self._reader = ThreadPoolExecutor(1, thread_name_prefix="perdure-sqlite-reader")
            self._reader_conn = await asyncio.get_running_loop().run_in_executor(
                self._reader, functools.partial(connect, self.path, query_only=True)
            )

    async def close(self) -> None:
        """Finish queued writes, stop the threads, close the connections.

        Worker locks this store holds are let go without unregistering: to other
        processes, those workers are now dead, and their runs are reaped.
        """
        async with self._opening:
            if self._writer is None or self._writer.closed:
                return
            await self._writer.stop()
            if self._reader is not None:
                if self._reader_conn is not None:
                    await asyncio.get_running_loop().run_in_executor(
                        self._reader, self._reader_conn.close
                    )
                await asyncio.to_thread(self._reader.shutdown)
            self._reader = self._reader_conn = None
            self._locks.close()
            self._changed.set()  # a waiter still pending returns rather than time out

    def statistics(self) -> WriterStatistics:
        """The writer's counters: writes, batches (commits), synced batches."""
        if self._writer is None:
            return WriterStatistics(0, 0, 0, 0, 0, 0)
        return self._writer.statistics()

    # -- workers ------------------------------------------------------------------

    @property
    def lease(self) -> None:
        """No lease: a dead worker's lock file is free the moment it dies (see `WorkerLocks`)."""

    async def register_worker(
        self, worker_id: str, now: datetime, *, workflows: Mapping[str, str] | None = None
    ) -> None:
        """Take the worker's lock file and insert its row, with what it defines."""
        await self._write(lambda conn: self._locks.register(conn, worker_id, now, workflows))

    async def live_workers(self, now: datetime) -> list[WorkerRecord]:
        """Workers whose heartbeat is within ``stale_after`` and whose lock is held."""
        return await self._read(lambda conn: self._locks.live(conn, now, self.stale_after))

    async def reap_dead_workers(self, worker_id: str, now: datetime) -> int:
        """Release the runs and requeue the tasks of dead workers; how many of both.

        A worker is dead when its lock is free or its heartbeat is stale.
        """
        return await self._write(
            lambda conn: self._locks.reap(conn, worker_id, now, self.stale_after)
        )

    async def host_workers(self, host: str) -> list[WorkerProcess]:
        """The workers registered on ``host``, heartbeating or not, with their tags."""
        return await self._read(lambda conn: self._locks.on_host(conn, host))

    async def reap_gone_workers(
        self, worker_id: str, gone: Collection[WorkerProcess], now: datetime
    ) -> int:
        """Reap those of ``gone`` still registered as given, if their locks are free."""
        return await self._write(lambda conn: self._locks.reap_gone(conn, worker_id, gone, now))

    async def heartbeat(self, worker_id: str, now: datetime) -> bool:
        """Record that the worker is alive; whether it was still registered."""
        return await self._write(lambda conn: self._locks.heartbeat(conn, worker_id, now))

    async def unregister_worker(self, worker_id: str, now: datetime) -> None:
        """Release the worker's runs, requeue its tasks, delete its row, drop its lock file."""
        await self._write(lambda conn: self._locks.unregister(conn, worker_id, now))
        await self._write(lambda _: self._locks.drop(worker_id))

    # -- runs ---------------------------------------------------------------------

    async def create_run(
        self, run: NewRun, now: datetime, *, claim_for: str | None = None
    ) -> tuple[RunRecord, bool]:
        """Create a pending run with its ``run_created`` event, durably; idempotent on id.

        With ``claim_for``, held by that worker from its insert (the eager start).
        """
        return await self._write(
            lambda conn: ops.create_run(conn, run, now, claim_for), durable=True
        )

    async def fork_run(
        self, run: NewRun, forked_from: str, events: list[NewEvent], now: datetime
    ) -> tuple[RunRecord, bool]:
        """Create a due, unheld run whose log goes on with ``events``, durably, at once."""
        return await self._write(
            lambda conn: fork_run(conn, run, forked_from, events, now), durable=True
        )

    async def claim_runs(
        self,
        worker_id: str,
        now: datetime,
        limit: int,
        *,
        workflows: Collection[str] | None = None,
    ) -> list[RunRecord]:
        """Hold up to ``limit`` due, unheld runs (of ``workflows``), oldest ``wake_at`` first."""
        if limit <= 0 or (workflows is not None and not workflows):
            return []
        names = sorted(workflows) if workflows is not None else None
        return await self._write(lambda conn: ops.claim_runs(conn, worker_id, now, limit, names))

    async def append(
        self,
        worker_id: str,
        run_id: str,
        events: list[NewEvent],
        now: datetime,
        *,
        durable: bool = False,
        consume_inbox: list[int] | None = None,
        consume_tasks: list[int] | None = None,
    ) -> int:
        """Append to a held run's log and update the indexes; the last seq."""
        return await self._write(
            lambda conn: ops.append(
                conn,
                worker_id,
                run_id,
                events,
                now,
                consume_inbox=consume_inbox,
                consume_tasks=consume_tasks,
            ),
            durable=durable,
        )

    async def release_run(self, worker_id: str, run_id: str, wake_at: datetime) -> None:
        """Stop holding a run; due at ``wake_at``, or at once if something waits for it."""
        await self._write(lambda conn: ops.release_run(conn, worker_id, run_id, wake_at))

    async def block_run(self, worker_id: str, run_id: str, event: NewEvent, now: datetime) -> None:
        """Log ``run_blocked`` and set the held run aside: blocked, unheld, not due; durably."""
        await self._write(
            lambda conn: ops.block_run(conn, worker_id, run_id, event, now), durable=True
        )

    async def unblock_run(self, run_id: str, now: datetime, *, by: str | None) -> RunRecord | None:
        """Make a blocked run due again with ``run_unblocked``; any other run is left be."""
        return await self._write(lambda conn: ops.unblock_run(conn, run_id, now, by), durable=True)

    async def request_cancel(self, run_id: str, now: datetime) -> RunRecord | None:
        """Cancel a pending unheld run now, or flag the run for its worker; durably."""
        return await self._write(lambda conn: ops.request_cancel(conn, run_id, now), durable=True)

    async def get_run(self, run_id: str) -> RunRecord | None:
        """The run's record, or None."""
        return await self._read(lambda conn: rows.get_run(conn, run_id))

    async def list_runs(
        self,
        *,
        status: RunStatus | None = None,
        workflow: str | None = None,
        limit: int = 100,
        attributes: Mapping[str, str] | None = None,
        before: tuple[datetime, str] | None = None,
        parent_id: str | None = None,
    ) -> list[RunRecord]:
        """Runs, newest first (by created_at, then id); see `RunStore.list_runs`."""
        return await self._read(
            lambda conn: rows.list_runs(
                conn, status, workflow, limit, attributes, before, parent_id
            )
        )

    async def stats(self, window: StatsWindow, *, workflow: str | None = None) -> RunStats:
        """Aggregates of the runs over ``window`` (`perdure.stores.sqlite._stats`)."""
        return await self._read(lambda conn: _stats.stats(conn, window, workflow))

    async def events(self, run_id: str, *, after_seq: int = 0) -> list[Event]:
        """The run's log after ``after_seq``, in order."""
        return await self._read(lambda conn: rows.events(conn, run_id, after_seq))

    async def steps(self, run_id: str) -> list[StepRecord]:
        """The run's step rows, in the order the steps were first started."""
        return await self._read(lambda conn: rows.steps(conn, run_id))

    async def timers(self, run_id: str) -> dict[str, datetime]:
        """The run's pending timers, correlation id to wake time, soonest first.

        Not part of `Store`: the timers table is an index nobody claims by, but a
        run's detail shows what it sleeps on.
        """
        return await self._read(lambda conn: rows.timers(conn, run_id))

    async def next_wake_at(self, *, workflows: Collection[str] | None = None) -> datetime | None:
        """The earliest ``wake_at`` of any unheld, unended run (of ``workflows``), or None."""
        if workflows is not None and not workflows:
            return None
        names = sorted(workflows) if workflows is not None else None
        return await self._read(lambda conn: rows.next_wake_at(conn, names))

    async def cancel_requests(self, worker_id: str) -> list[str]:
        """Ids of unended runs held by ``worker_id`` that have a cancel request."""
        return await self._read(lambda conn: rows.cancel_requests(conn, worker_id))

    # -- hooks --------------------------------------------------------------------

    async def resume_hook(
        self,
        token: str,
        payload: JSON,
        now: datetime,
        *,
        name: str | None = None,
        created_by: tuple[str, str] | None = None,
    ) -> HookRecord:
        """Store a payload for the live hook holding ``token``, durably; wake its run."""
        return await self._write(
            lambda conn: ops.resume_hook(conn, token, payload, now, name, created_by),
            durable=True,
        )

    async def get_hook(self, token: str) -> HookRecord | None:
        """The live hook holding ``token``, or None."""
        return await self._read(lambda conn: rows.get_hook(conn, token))

    async def hook_event(self, token: str) -> Event | None:
        """The ``hook_created`` event of the live hook holding ``token``, or None.

        A resume reads the hook's payload schema there, the HTTP app a webhook's response.
        """
        return await self._read(lambda conn: rows.hook_event(conn, token))

    async def list_hooks(self, *, run_id: str | None = None) -> list[HookRecord]:
        """Live hooks, oldest first."""
        return await self._read(lambda conn: rows.list_hooks(conn, run_id))

    async def inbox(self, worker_id: str) -> list[InboxItem]:
        """Undelivered payloads of the runs ``worker_id`` holds, oldest first."""
        return await self._read(lambda conn: rows.inbox(conn, worker_id))

    # -- step tasks ---------------------------------------------------------------

    async def claim_step_tasks(
        self,
        worker_id: str,
        queues: Collection[str],
        now: datetime,
        limit: int,
        *,
        names: Collection[str] | None = None,
    ) -> list[StepTask]:
        """Claim up to ``limit`` queued tasks of ``queues`` (and ``names``), oldest first."""
        if limit <= 0 or not queues or (names is not None and not names):
            return []
        wanted = sorted(queues)
        steps = sorted(names) if names is not None else None
        return await self._write(
            lambda conn: ops.claim_step_tasks(conn, worker_id, wanted, now, limit, steps)
        )

    async def finish_step_task(
        self, worker_id: str, task_id: int, outcome: StepOutcome, now: datetime
    ) -> None:
        """Store the outcome of a task ``worker_id`` claimed; wake its run if unheld."""
        await self._write(lambda conn: ops.finish_step_task(conn, worker_id, task_id, outcome, now))

    async def step_results(self, worker_id: str) -> list[StepTask]:
        """Finished step tasks of the runs ``worker_id`` holds, in the order they finished."""
        return await self._read(lambda conn: rows.step_results(conn, worker_id))

    async def step_tasks(self, run_id: str) -> list[StepTask]:
        """The run's step tasks, whatever their status, oldest first."""
        return await self._read(lambda conn: rows.step_tasks(conn, run_id))

    # -- durable streams ----------------------------------------------------------

    async def append_chunks(
        self,
        run_id: str,
        stream: str,
        chunks: list[NewChunk],
        now: datetime,
        *,
        attempt: StreamAttempt | None = None,
        supersede: bool = False,
    ) -> int:
        """Append rows to a stream (skipping keys held already); its new length."""
        check_stream_name(stream)
        encoded = [None if chunk.close else rows.dumps(chunk.value) for chunk in chunks]
        return await self._write(
            lambda conn: streams.append_chunks(
                conn, run_id, stream, chunks, encoded, now, attempt, supersede
            )
        )

    async def retract_chunks(self, run_id: str, attempt: StreamAttempt, now: datetime) -> int:
        """Retract that execution's chunks; how many."""
        return await self._write(lambda conn: streams.retract_chunks(conn, run_id, attempt, now))

    async def read_chunks(
        self, run_id: str, stream: str, *, start: int = 0, limit: int = 1000
    ) -> list[ChunkRow]:
        """Up to ``limit`` rows from ``start`` on, with their states as they stand."""
        return await self._read(
            lambda conn: streams.read_chunks(conn, run_id, stream, start, limit)
        )

    async def stream_lengths(self, run_id: str) -> dict[str, int]:
        """The run's streams and their lengths, by name."""
        return await self._read(lambda conn: streams.stream_lengths(conn, run_id))

    # -- change notification ------------------------------------------------------

    async def wait_for_change(self, timeout: float) -> bool:
        """Wait for a commit since the last call returned, or ``timeout`` seconds.

        Other connections' and processes' commits are seen within about 5 ms; this
        store's own commits are not reported (see `Store.wait_for_change`).
        """
        watcher = self._writer
        if watcher is None or watcher.closed:
            raise RuntimeError(f"{self!r} is not open")
        if not self._changed.is_set():
            self._waiting += 1
            watcher.watching = True
            try:
                async with asyncio.timeout(timeout):
                    await self._changed.wait()
            except TimeoutError:
                return False
            finally:
                self._waiting -= 1
                if not self._waiting:
                    watcher.watching = False
        self._changed.clear()
        return True

    # -- helpers ------------------------------------------------------------------

    async def _write(self, fn: Callable[[sqlite3.Connection], T], *, durable: bool = False) -> T:
        if self._writer is None:
            raise RuntimeError(f"{self!r} is not open; await its open() first")
        return await self._writer.submit(fn, durable=durable)

    async def _read(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        reader, conn = self._reader, self._reader_conn
        if reader is None or conn is None:
            raise RuntimeError(f"{self!r} is not open; await its open() first")
        return await asyncio.get_running_loop().run_in_executor(reader, fn, conn)
