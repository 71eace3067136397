"""The SQLite store's one writing connection, which commits concurrent writes together.

SQLite lets one connection write at a time, and a commit costs more than the few
statements of a typical write. So every write is a function ``fn(conn) -> result``
queued on the event loop; once per loop turn the writer takes everything queued (up to
``batch_limit``), runs each function inside one ``BEGIN IMMEDIATE`` transaction (each
in its own ``SAVEPOINT`` when there are several), commits once, and answers every
caller. A function that raises is rolled back alone and its caller gets the exception;
the rest of the batch commits. A hundred runs finishing steps in the same turn cost one
commit.

Where a batch runs is chosen per batch, because a hop to another thread and back costs
more than a typical batch itself (tens of µs against a commit of about 10 µs, measured
in BENCHMARKS.md):

- **On the event loop**, inline, when the write lock is free at once: the connection's
  busy timeout is 0, so ``BEGIN IMMEDIATE`` either takes the lock or fails at once, and
  the loop never waits on another process.
- **On the writer's thread** when another process holds the lock (the thread waits for
  it, up to `BUSY_TIMEOUT`), and for batches holding a durable write while syncs are
  slow: those commit with ``synchronous=FULL``, which syncs the log file to disk, and
  the loop keeps running meanwhile. While a sync takes less than `INLINE_SYNC` (a
  moving average of the last ones), a durable batch runs inline like any other: the
  two hops to the thread and back cost a lone run more than the loop's wait for the
  sync (issue 16: a one-step run's start and end are its two durable writes).

One batch is in flight at a time, wherever it runs, so writes commit in the order they
were submitted. Checkpoints, which copy the log into the database file and sync both,
run on the thread too, every `CHECKPOINT_EVERY` writes: the event loop never does that
I/O either.

The writer also notices other connections' commits: ``PRAGMA data_version`` on a
connection moves only when *another* connection commits, so reading it on the writing
connection every few milliseconds (while somebody waits) reports other processes'
runs, resumes and cancels, never this store's own steps.
"""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from time import perf_counter
from typing import TYPE_CHECKING, Any, TypeVar

from perdure._metrics import recorder
from perdure.stores.sqlite._schema import BUSY_TIMEOUT

if TYPE_CHECKING:
    from collections.abc import Callable

__all__ = ["CHECKPOINT_EVERY", "LOG_LIMIT", "Writer", "WriterStatistics"]

T = TypeVar("T")

CHECKPOINT_EVERY = 1000
"""Writes between two checkpoints (SQLite's own default is one per 1,000 log pages).

Counted in writes, not commits: a commit of 256 runs' appends adds far more pages to
the log than one of a single step."""

LOG_LIMIT = 4096
"""Pages (16 MiB of 4 KiB) the log may hold before a checkpoint empties it."""

INLINE_SYNC = 0.001
"""Seconds: a synced commit that usually takes less runs inline, on the event loop.

A sync took 41 µs (WAL, the recorded machine) to 190 µs (a slower disk): the loop waits
that long, against two thread hops of tens of µs each, more when the loop is busy and
the thread waits for the GIL. A disk whose sync takes milliseconds (network storage)
keeps durable batches on the thread, so the loop never stalls that long."""


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
    threaded_batches: int = 0
    """Batches run on the writer's thread: durable ones, and those that met a lock."""
    checkpoints: int = 0
    """Checkpoints done (each copies the log into the database file)."""


@dataclass(frozen=True, slots=True)
class _Job:
    fn: Callable[[sqlite3.Connection], Any]
    future: asyncio.Future[Any]
    durable: bool


# (succeeded, result or exception) for each job of a batch
_Outcome = tuple[bool, Any]


class _Locked(Exception):
    """Another connection holds the write lock: the batch must wait for it elsewhere."""


class Writer:
    """One connection for every write of a store, used by one batch at a time.

    Args:
        connect: opens a connection to the database (called on the writer's threads).
        on_foreign_commit: called on the event loop when another connection committed,
            noticed while `watching` is on.
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
        self._conn: sqlite3.Connection | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: ThreadPoolExecutor | None = None
        self._pending: list[_Job] = []
        self._scheduled = False
        self._in_flight = False
        """A batch runs on the thread: the connection is not the loop's meanwhile."""
        self._idle: asyncio.Event | None = None
        self._watching = False
        self._look_handle: asyncio.TimerHandle | None = None
        self._closed = False
        self._since_checkpoint = 0
        self._submitted = 0
        self._answered = 0
        self._failed = 0
        self._batches = 0
        self._synced = 0
        self._threaded = 0
        self._largest = 0
        self._checkpoints = 0
        self._sync_seconds = 0.0
        """A moving average of a synced commit's time (`INLINE_SYNC`)."""

    async def start(self, setup: Callable[[sqlite3.Connection], object]) -> None:
        """Open the connection and run ``setup`` on it (migrations) before any write."""
        self._loop = asyncio.get_running_loop()
        self._idle = asyncio.Event()
        self._idle.set()
        self._thread = ThreadPoolExecutor(1, thread_name_prefix="perdure-sqlite-writer")
        try:
            self._conn = await self._loop.run_in_executor(self._thread, self._open, setup)
        except BaseException:
            await self._shut_threads()
            raise
        self._version = _data_version(self._conn)

    def _open(self, setup: Callable[[sqlite3.Connection], object]) -> sqlite3.Connection:
        conn = self._connect()
        try:
            setup(conn)
            # Never wait on the event loop; the writer's own thread checkpoints.
            conn.execute("PRAGMA busy_timeout = 0")
            conn.execute("PRAGMA wal_autocheckpoint = 0")
        except BaseException:
            conn.close()
            raise
        return conn

    @property
    def closed(self) -> bool:
        """Whether `stop` was called: no write is taken any more."""
        return self._closed

    @property
    def watching(self) -> bool:
        """Whether other connections' commits are looked for (every ``interval``)."""
        return self._watching

    @watching.setter
    def watching(self, on: bool) -> None:
        self._watching = on
        if on and self._look_handle is None and self._loop is not None and not self._closed:
            self._look_handle = self._loop.call_later(self._interval, self._look)

    async def submit(self, fn: Callable[[sqlite3.Connection], T], *, durable: bool = False) -> T:
        """Run ``fn`` in the next batch; its result, or the exception it raised."""
        loop = self._loop
        if self._closed or loop is None:
            raise RuntimeError("the SQLite store is closed")
        if asyncio.get_running_loop() is not loop:
            raise RuntimeError("a SQLite store is used from one event loop, the one that opened it")
        future: asyncio.Future[T] = loop.create_future()
        self._submitted += 1
        self._pending.append(_Job(fn, future, durable))
        self._schedule()
        return await future

    async def stop(self) -> None:
        """Finish every queued write, then close the connections and end the threads."""
        if self._closed:
            return
        self._closed = True
        self.watching = False
        if self._look_handle is not None:
            self._look_handle.cancel()
            self._look_handle = None
        assert self._idle is not None  # noqa: S101 - set by start()
        while self._pending or self._in_flight:
            self._idle.clear()
            self._schedule()
            await self._idle.wait()
        await self._shut_threads()

    def statistics(self) -> WriterStatistics:
        """The counters as they stand."""
        return WriterStatistics(
            queued=self._submitted - self._answered,
            writes=self._answered,
            failed_writes=self._failed,
            batches=self._batches,
            synced_batches=self._synced,
            largest_batch=self._largest,
            threaded_batches=self._threaded,
            checkpoints=self._checkpoints,
        )

    # -- batches ----------------------------------------------------------------------

    def _schedule(self) -> None:
        if not self._scheduled and not self._in_flight and self._pending:
            assert self._loop is not None  # noqa: S101 - set by start()
            self._scheduled = True
            self._loop.call_soon(self._drain)

    def _drain(self) -> None:
        """Run the next batch: inline when it can be, else on the thread."""
        self._scheduled = False
        conn, loop = self._conn, self._loop
        if self._in_flight or not self._pending or conn is None or loop is None:
            self._settle()
            return
        batch = self._pending[: self._batch_limit]
        del self._pending[: self._batch_limit]
        if self._sync_seconds < INLINE_SYNC or not any(job.durable for job in batch):
            try:
                outcomes = self._commit(conn, batch, wait=False)
            except _Locked:
                pass
            else:
                self._resolve(batch, outcomes)
                self._schedule()
                self._settle()
                return
        self._in_flight = True
        self._threaded += 1
        future = loop.run_in_executor(self._thread, self._commit_waiting, conn, batch)
        future.add_done_callback(lambda done: self._threaded_done(batch, done))

    def _threaded_done(self, batch: list[_Job], done: asyncio.Future[list[_Outcome]]) -> None:
        self._in_flight = False
        exc = done.exception() if not done.cancelled() else asyncio.CancelledError()
        outcomes = done.result() if exc is None else [(False, exc)] * len(batch)
        self._resolve(batch, outcomes)
        self._schedule()
        self._settle()

    def _settle(self) -> None:
        """Wake `stop` once nothing is queued or running."""
        if not (self._pending or self._in_flight):
            assert self._idle is not None  # noqa: S101 - set by start()
            self._idle.set()

    def _commit_waiting(self, conn: sqlite3.Connection, batch: list[_Job]) -> list[_Outcome]:
        """`_commit` on the writer's thread, waiting for other processes' write locks."""
        return self._commit(conn, batch, wait=True)

    def _commit(self, conn: sqlite3.Connection, batch: list[_Job], *, wait: bool) -> list[_Outcome]:
        """Run the batch in one transaction; each job's outcome.

        Raises:
            _Locked: ``wait`` is false and another connection holds the write lock.
        """
        durable = any(job.durable for job in batch)
        try:
            if wait:
                conn.execute(f"PRAGMA busy_timeout = {int(BUSY_TIMEOUT * 1000)}")
            if durable:
                conn.execute("PRAGMA synchronous = FULL")
            metrics = recorder()  # None, and no clock read, without metrics
            began = perf_counter() if metrics is not None or durable else 0.0
            try:
                outcomes = self._transaction(conn, batch)
                if metrics is not None:
                    metrics.commit("sqlite", perf_counter() - began, len(batch))
                if durable:  # on either side: a float's store is atomic under the GIL
                    self._sync_seconds += (perf_counter() - began - self._sync_seconds) / 4
            finally:
                if durable:
                    conn.execute("PRAGMA synchronous = NORMAL")
                if wait:
                    conn.execute("PRAGMA busy_timeout = 0")
        except _Locked as locked:
            if not wait:
                raise
            # Waited `BUSY_TIMEOUT` for another process's lock in vain: each caller gets
            # SQLite's own "database is locked", never this module's private signal.
            return [(False, locked.__cause__ or locked)] * len(batch)
        except Exception as exc:  # BEGIN, a savepoint or COMMIT failed: nothing is stored
            return [(False, exc)] * len(batch)
        self._batches += 1
        self._synced += durable
        self._largest = max(self._largest, len(batch))
        self._since_checkpoint += len(batch)
        return outcomes

    @staticmethod
    def _transaction(conn: sqlite3.Connection, batch: list[_Job]) -> list[_Outcome]:
        try:
            conn.execute("BEGIN IMMEDIATE")
        except sqlite3.OperationalError as exc:
            if exc.sqlite_errorcode & 0xFF == sqlite3.SQLITE_BUSY:
                raise _Locked from exc
            raise
        try:
            if len(batch) == 1:  # no savepoint needed: a failure rolls back the whole
                outcomes = [_outcome_alone(conn, batch[0])]
            else:
                outcomes = [_outcome_in_savepoint(conn, job) for job in batch]
            if conn.in_transaction:
                conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise
        return outcomes

    def _resolve(self, batch: list[_Job], outcomes: list[_Outcome]) -> None:
        """Answer each caller, and start a checkpoint when it is time for one."""
        self._answered += len(batch)
        for job, (ok, value) in zip(batch, outcomes, strict=True):
            if not ok:
                self._failed += 1
            if job.future.done():  # its caller was cancelled; the write stands
                continue
            if ok:
                job.future.set_result(value)
            else:
                job.future.set_exception(value)
        if self._since_checkpoint >= CHECKPOINT_EVERY and not self._in_flight:
            self._checkpoint()

    # -- checkpoints and other connections' commits -----------------------------------

    def _checkpoint(self) -> None:
        """Copy the log into the database file, on the writer's thread.

        Writes wait meanwhile (the event loop does not): once all of the log was copied,
        the next write starts it over from the beginning, which it cannot do if writes
        kept adding to it during the checkpoint. ``PASSIVE`` never waits for readers; it
        copies what none of them still needs, and the next checkpoint does the rest.

        But the log only starts over if no reader is inside it at that moment, and a
        worker reads all the time: measured, 30,000 runs started at once left a log of
        267 MiB. So once the log holds more than `LOG_LIMIT` pages after a passive
        checkpoint, a ``TRUNCATE`` checkpoint waits for the readers to step out (their
        reads are short) and empties it.
        """
        conn, loop = self._conn, self._loop
        if conn is None or loop is None:
            return
        self._since_checkpoint = 0
        self._in_flight = True
        future = loop.run_in_executor(self._thread, _passive_checkpoint, conn)
        future.add_done_callback(self._checkpointed)

    def _checkpointed(self, done: asyncio.Future[None]) -> None:
        self._in_flight = False
        if done.cancelled() or done.exception() is not None:
            self._since_checkpoint = CHECKPOINT_EVERY  # try again after the next commit
        else:
            self._checkpoints += 1
        self._schedule()
        self._settle()

    def _look(self) -> None:
        self._look_handle = None
        if not self._watching or self._closed or self._loop is None:
            return
        if not self._in_flight and self._conn is not None:
            try:
                version = _data_version(self._conn)
            except Exception:  # cannot tell: waking the waiter is always safe
                version = self._version + 1
            if version != self._version:
                self._version = version
                self._on_foreign_commit()
        self._look_handle = self._loop.call_later(self._interval, self._look)

    async def _shut_threads(self) -> None:
        executor, conn = self._thread, self._conn
        self._thread = self._conn = None
        if executor is None:
            return
        if conn is not None:
            with contextlib.suppress(Exception):
                await asyncio.get_running_loop().run_in_executor(executor, conn.close)
        await asyncio.to_thread(executor.shutdown)


def _outcome_alone(conn: sqlite3.Connection, job: _Job) -> _Outcome:
    try:
        return True, job.fn(conn)
    except Exception as exc:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        return False, exc


def _outcome_in_savepoint(conn: sqlite3.Connection, job: _Job) -> _Outcome:
    conn.execute("SAVEPOINT job")
    try:
        outcome: _Outcome = (True, job.fn(conn))
    except Exception as exc:
        conn.execute("ROLLBACK TO job")
        outcome = (False, exc)
    conn.execute("RELEASE job")
    return outcome


def _data_version(conn: sqlite3.Connection) -> int:
    (version,) = conn.execute("PRAGMA data_version").fetchone()
    return int(version)


def _passive_checkpoint(conn: sqlite3.Connection) -> None:
    _, pages, _ = conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
    if pages > LOG_LIMIT:
        conn.execute(f"PRAGMA busy_timeout = {int(BUSY_TIMEOUT * 1000)}")
        try:
            conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
        finally:
            conn.execute("PRAGMA busy_timeout = 0")
