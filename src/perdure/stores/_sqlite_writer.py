"""The SQLite store's one writer thread, which commits concurrent writes together.

SQLite lets one connection write at a time, and a commit costs far more than the few
statements of a typical write. So every write is a function ``fn(conn) -> result``
put on a queue; the writer thread takes everything queued (up to ``batch_limit``),
runs each function in its own ``SAVEPOINT`` inside one ``BEGIN IMMEDIATE`` transaction,
commits once, and hands all the results back to the event loop with one
``call_soon_threadsafe``. A function that raises is rolled back to its savepoint and
its caller gets the exception; the rest of the batch commits. A hundred runs finishing
steps at once cost one commit, and the event loop never waits on SQLite.

A batch holding a durable write (see `Store`) commits with ``synchronous=FULL``, which
in WAL mode syncs the log file, and with it every earlier unsynced commit.

The writer also notices other connections' commits: ``PRAGMA data_version`` on a
connection moves only when *another* connection commits, so reading it on the writer's
own connection every few milliseconds (while somebody waits) reports other processes'
runs, resumes and cancels, never this store's own steps.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import queue
import threading
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

if TYPE_CHECKING:
    import sqlite3
    from collections.abc import Callable

__all__ = ["Writer", "WriterStatistics"]

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class WriterStatistics:
    """A snapshot of the writer's counters."""

    queued: int
    """Writes submitted and not yet answered."""
    writes: int
    """Writes answered, successful or not."""
    failed_writes: int
    """Writes answered with an exception."""
    batches: int
    """Transactions the writer ran: each one commit for many writes."""
    synced_batches: int
    """Batches committed with ``synchronous=FULL`` because they held a durable write."""
    largest_batch: int
    """The most writes one transaction has held."""


@dataclass(frozen=True, slots=True)
class _Job:
    fn: Callable[[sqlite3.Connection], Any]
    future: asyncio.Future[Any]
    durable: bool


# (succeeded, result or exception) for each job of a batch
_Outcome = tuple[bool, Any]


class Writer:
    """One thread, one connection, every write of a store.

    Args:
        connect: opens the writer's connection (called on the writer thread).
        on_foreign_commit: called on the event loop when another connection committed,
            noticed while `watching` is set.
        batch_limit: the most writes one transaction takes.
        interval: seconds between two looks at ``data_version`` while watching.
    """

    def __init__(
        self,
        connect: Callable[[], sqlite3.Connection],
        *,
        on_foreign_commit: Callable[[], None],
        batch_limit: int = 256,
        interval: float = 0.005,
    ) -> None:
        self._connect = connect
        self._on_foreign_commit = on_foreign_commit
        self._batch_limit = batch_limit
        self._interval = interval
        self._version = 0
        self.watching = threading.Event()
        """Set while somebody waits for other connections' commits."""
        self._queue: queue.SimpleQueue[_Job | None] = queue.SimpleQueue()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._closed = False
        self._submitted = 0
        self._answered = 0
        self._failed = 0
        self._batches = 0
        self._synced = 0
        self._largest = 0

    async def start(self, setup: Callable[[sqlite3.Connection], object]) -> None:
        """Open the connection and run ``setup`` on it (migrations) before any write."""
        self._loop = asyncio.get_running_loop()
        ready: concurrent.futures.Future[None] = concurrent.futures.Future()
        self._thread = threading.Thread(
            target=self._run, args=(ready, setup), name="perdure-sqlite-writer", daemon=True
        )
        self._thread.start()
        await asyncio.wrap_future(ready)

    @property
    def closed(self) -> bool:
        """Whether `stop` was called: no write is taken any more."""
        return self._closed

    async def submit(self, fn: Callable[[sqlite3.Connection], T], *, durable: bool = False) -> T:
        """Run ``fn`` in the next batch; its result, or the exception it raised."""
        if self._closed or self._loop is None:
            raise RuntimeError("the SQLite store is closed")
        if asyncio.get_running_loop() is not self._loop:
            raise RuntimeError("a SQLite store is used from one event loop, the one that opened it")
        future: asyncio.Future[T] = self._loop.create_future()
        self._submitted += 1
        self._queue.put(_Job(fn, future, durable))
        return await future

    async def stop(self) -> None:
        """Finish every queued write, then end the thread and close the connection."""
        if self._closed:
            return
        self._closed = True
        self._queue.put(None)
        if self._thread is not None:
            await asyncio.to_thread(self._thread.join)

    def statistics(self) -> WriterStatistics:
        """The counters as they stand."""
        return WriterStatistics(
            queued=self._submitted - self._answered,
            writes=self._answered,
            failed_writes=self._failed,
            batches=self._batches,
            synced_batches=self._synced,
            largest_batch=self._largest,
        )

    # -- the thread -------------------------------------------------------------------

    def _run(
        self,
        ready: concurrent.futures.Future[None],
        setup: Callable[[sqlite3.Connection], object],
    ) -> None:
        try:
            conn = self._connect()
        except BaseException as exc:
            ready.set_exception(exc)
            return
        try:
            setup(conn)
        except BaseException as exc:
            conn.close()
            ready.set_exception(exc)
            return
        self._version = self._data_version(conn)
        ready.set_result(None)
        try:
            stopping = False
            while not stopping:
                batch, stopping = self._take()
                if batch:
                    self._answer(batch, self._commit(conn, batch))
                if self.watching.is_set():
                    self._look(conn)
        finally:
            conn.close()

    @staticmethod
    def _data_version(conn: sqlite3.Connection) -> int:
        (version,) = conn.execute("PRAGMA data_version").fetchone()
        return int(version)

    def _look(self, conn: sqlite3.Connection) -> None:
        try:
            version = self._data_version(conn)
        except Exception:  # cannot tell: waking the waiter is always safe
            version = self._version + 1
        if version != self._version:
            self._version = version
            assert self._loop is not None  # noqa: S101 - set by start()
            with contextlib.suppress(RuntimeError):  # a closed loop: nobody waits any more
                self._loop.call_soon_threadsafe(self._on_foreign_commit)

    def _take(self) -> tuple[list[_Job], bool]:
        """Wait for a write (briefly, when watching), then take whatever else is queued."""
        try:
            job = self._queue.get(timeout=self._interval if self.watching.is_set() else 0.1)
        except queue.Empty:
            return [], False
        batch: list[_Job] = []
        while job is not None:
            batch.append(job)
            if len(batch) >= self._batch_limit:
                return batch, False
            try:
                job = self._queue.get_nowait()
            except queue.Empty:
                return batch, False
        return batch, True

    def _commit(self, conn: sqlite3.Connection, batch: list[_Job]) -> list[_Outcome]:
        """Run the batch in one transaction; each job's outcome."""
        durable = any(job.durable for job in batch)
        try:
            if durable:
                conn.execute("PRAGMA synchronous = FULL")
            try:
                outcomes = self._transaction(conn, batch)
            finally:
                if durable:
                    conn.execute("PRAGMA synchronous = NORMAL")
        except Exception as exc:  # BEGIN, a savepoint or COMMIT failed: nothing is stored
            return [(False, exc)] * len(batch)
        self._batches += 1
        self._synced += durable
        self._largest = max(self._largest, len(batch))
        return outcomes

    @staticmethod
    def _transaction(conn: sqlite3.Connection, batch: list[_Job]) -> list[_Outcome]:
        outcomes: list[_Outcome] = []
        conn.execute("BEGIN IMMEDIATE")
        try:
            for job in batch:
                conn.execute("SAVEPOINT job")
                try:
                    outcomes.append((True, job.fn(conn)))
                except Exception as exc:
                    conn.execute("ROLLBACK TO job")
                    outcomes.append((False, exc))
                conn.execute("RELEASE job")
            conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise
        return outcomes

    def _answer(self, batch: list[_Job], outcomes: list[_Outcome]) -> None:
        """Hand the batch's outcomes to the event loop in one call."""
        self._answered += len(batch)
        self._failed += sum(not ok for ok, _ in outcomes)
        assert self._loop is not None  # noqa: S101 - set by start()
        with contextlib.suppress(RuntimeError):  # a closed loop: nobody is waiting any more
            self._loop.call_soon_threadsafe(self._resolve, batch, outcomes)

    @staticmethod
    def _resolve(batch: list[_Job], outcomes: list[_Outcome]) -> None:
        for job, (ok, value) in zip(batch, outcomes, strict=True):
            if job.future.done():  # its caller was cancelled; the write stands
                continue
            if ok:
                job.future.set_result(value)
            else:
                job.future.set_exception(value)
