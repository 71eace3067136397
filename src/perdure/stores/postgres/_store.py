"""`PostgresStore`: the store many workers on many machines share, on PostgreSQL.

Built on asyncpg, with a connection pool for reads and writes and one more connection
that LISTENs for changes (`perdure.stores.postgres._listener`).

- **Writes** are one round trip each: a PL/pgSQL function (migrations) that takes
  the run row's lock, checks the fence, writes the log and its indexes, and notifies,
  all in the statement's own transaction. The index changes come from the plan every
  store shares (`perdure.stores._index`), so the database applies exactly what the
  other stores apply. asyncpg prepares each statement once per connection.
- **Group commit**: appends made at about the same moment, by many runs, go together
  in one round trip and one transaction (`perdure.stores.postgres._group`); a lost lease or a
  hook conflict fails only its own append. New runs and run reads are gathered the
  same way. A thousand runs stepping at once so cost a few commits, not a thousand.
- **Claims** lock due runs, and queued step tasks, with ``FOR UPDATE SKIP LOCKED``:
  workers claiming at once take different ones and never wait for each other.
- **Leases**: a worker's lease is its row's ``heartbeat_at``. Once it is older than
  ``lease``, any other worker's `reap_dead_workers` releases the worker's runs (due at
  once) and deletes its row. A stale worker's next write to such a run waits for the
  reaper's lock, then finds it no longer holds the run: `LeaseLostError`, nothing written.
- **Durability**: `create_run`, `resume_hook`, `request_cancel` and durable appends
  commit with the server's ``synchronous_commit`` (on by default), and so does a batch
  of appends holding one; other appends and releases set it off for their transaction:
  committed and visible at once, synced with the next synced commit.
- **Change notification**: LISTEN/NOTIFY (`perdure.stores.postgres._listener`); every
  write others act on notifies at commit, a step's append does not.
- **Connections**: a broken connection makes the operation using it raise; the pool
  replaces it, so calls succeed again once the server is back. Nothing is retried here:
  a write whose connection broke may or may not have committed, and the worker's next
  pass reads the database again.

Times are never read from a clock: every write is given ``now``, and leases compare the
``now`` of the reaper with the ``now`` of the heartbeat, so workers' clocks should agree
to well within ``lease``.
"""

from __future__ import annotations

import asyncio
import json
from datetime import timedelta
from typing import TYPE_CHECKING, Any

import asyncpg

from perdure._chunks import check_stream_name
from perdure._log import RunBlocked, run_unblocked
from perdure._process import WorkerProcess, this_process
from perdure._records import RunRecord, RunStatus
from perdure.stores._common import hook_not_found, same_hook, utc
from perdure.stores._protocol import Store
from perdure.stores.postgres import _ops as ops
from perdure.stores.postgres import _rows as rows
from perdure.stores.postgres import _stats
from perdure.stores.postgres import _streams as streams
from perdure.stores.postgres import _workers as workers
from perdure.stores.postgres._connect import (
    connect_options_of,
    keep_session,
    redacted,
    translated,
    translated_task,
    with_defaults,
)
from perdure.stores.postgres._flow import PostgresFlow, new_run_row
from perdure.stores.postgres._fork import fork_run
from perdure.stores.postgres._group import GroupCommit, PostgresStatistics
from perdure.stores.postgres._listener import Listener
from perdure.stores.postgres._schedules import PostgresSchedules
from perdure.stores.postgres._schema import apply_migrations, migrations

if TYPE_CHECKING:
    from collections.abc import Collection, Mapping
    from datetime import datetime

    from asyncpg import Pool, Record

    from perdure._chunks import ChunkRow, NewChunk, StreamAttempt
    from perdure._records import (
        JSON,
        Event,
        HookRecord,
        InboxItem,
        NewEvent,
        NewRun,
        StepOutcome,
        StepRecord,
        StepTask,
        WorkerRecord,
    )
    from perdure._stats import RunStats, StatsWindow

__all__ = ["PostgresStatistics", "PostgresStore", "migrate"]

_CREATE_RUN_HELD = "SELECT perdure_create_run_held($1, $2, $3, $4, $5, $6, $7)"
"""A run created already held by a worker, in one statement (migration 0018)."""


async def migrate(url: str, **connect_options: Any) -> list[str]:
    """Bring the database at ``url`` to perdure's schema; the migrations applied.

    Safe to run while workers start: migrations hold an advisory lock. `PostgresStore`
    does the same on `open`; this is for running it on its own (a deploy step).
    """
    conn: asyncpg.Connection[Record] = await asyncpg.connect(
        url, **connect_options_of(with_defaults(connect_options))
    )
    try:
        return await apply_migrations(conn, migrations())
    finally:
        await conn.close()


class PostgresStore(PostgresSchedules, PostgresFlow, Store):
    """A `Store` in a PostgreSQL database, shared by any number of workers.

    Args:
        url: a ``postgresql://`` or ``postgres://`` URL (libpq form, as asyncpg takes it).
        lease: how long a worker that stopped heartbeating keeps its runs (seconds or
            a timedelta) before other workers take them.
        min_size: connections the pool keeps open.
        max_size: the most connections the pool opens (plus one that listens).
        connect_options: passed to `asyncpg.create_pool` (and, but for pool-only ones,
            to `asyncpg.connect` for the listening connection), e.g.
            ``ssl``, ``command_timeout``, ``server_settings``, or
            ``statement_cache_size=0`` behind a pgbouncer in transaction mode.
    """

    def __init__(
        self,
        url: str,
        *,
        lease: float | timedelta = 10.0,
        min_size: int = 1,
        max_size: int = 10,
        **connect_options: Any,
    ) -> None:
        self.url = url
        self._lease = lease if isinstance(lease, timedelta) else timedelta(seconds=lease)
        if self._lease <= timedelta(0):
            raise ValueError(f"lease must be positive, got {lease!r}")
        self._min_size = min_size
        self._max_size = max_size
        self._options = with_defaults(connect_options)
        self._opening = asyncio.Lock()
        self._pool: Pool[Record] | None = None
        self._listener: Listener | None = None
        self._group = GroupCommit(lambda: self._db, max_size)

    def __repr__(self) -> str:
        return f"PostgresStore({redacted(self.url)!r})"

    # -- life cycle ---------------------------------------------------------------

    async def open(self) -> None:
        """Migrate the schema, open the pool and start listening. Idempotent."""
        async with self._opening:
            if self._pool is not None:
                return
            pool: Pool[Record] = await asyncpg.create_pool(
                self.url,
                min_size=self._min_size,
                max_size=self._max_size,
                **{"reset": keep_session, **self._options},
            )
            try:
                async with pool.acquire() as conn:
                    await apply_migrations(conn, migrations())
                listener = Listener(self.url, connect_options_of(self._options))
                await listener.start()
            except BaseException:
                await pool.close()
                raise
            self._pool, self._listener = pool, listener

    async def close(self) -> None:
        """Stop listening and close the pool once the operations under way are done."""
        async with self._opening:
            await self._group.wait_idle()
            pool, listener = self._pool, self._listener
            self._pool = self._listener = None
            if listener is not None:
                await listener.close()
            if pool is not None:
                await pool.close()

    # -- workers ------------------------------------------------------------------

    @property
    def lease(self) -> timedelta:
        """How long a worker that stopped heartbeating keeps its runs."""
        return self._lease

    async def register_worker(
        self, worker_id: str, now: datetime, *, workflows: Mapping[str, str] | None = None
    ) -> None:
        """Insert (or refresh) the worker's row, with what it defines: its lease starts now."""
        host, pid, tag = this_process()
        await self._db.execute(
            workers.REGISTER,
            worker_id,
            host,
            pid,
            utc(now),
            workers.workflows_json(workflows),
            tag,
        )

    async def live_workers(self, now: datetime) -> list[WorkerRecord]:
        """Workers whose heartbeat is within the lease, oldest registration first."""
        found = await self._db.fetch(workers.LIVE_WORKERS, utc(now) - self._lease)
        return [workers.worker_from_row(row) for row in found]

    async def reap_dead_workers(self, worker_id: str, now: datetime) -> int:
        """Release the runs of every other worker whose lease ran out; how many runs."""
        now = utc(now)
        released = await self._db.fetchval(ops.REAP, worker_id, now - self._lease, now)
        return int(released)

    async def heartbeat(self, worker_id: str, now: datetime) -> bool:
        """Renew the worker's lease; whether it still held one (False: it was reaped).

        A reaped worker gets its row back but not its runs: its writes to them are
        fenced off, and it lets them go.
        """
        host, pid, tag = this_process()
        renewed = await self._db.fetchval(ops.HEARTBEAT, worker_id, host, pid, utc(now), tag)
        return bool(renewed)

    async def host_workers(self, host: str) -> list[WorkerProcess]:
        """The workers registered on ``host``, heartbeating or not, with their tags."""
        found = await self._db.fetch(workers.HOST_WORKERS, host)
        return [WorkerProcess(row["id"], row["host"], row["pid"], row["process"]) for row in found]

    async def reap_gone_workers(
        self, worker_id: str, gone: Collection[WorkerProcess], now: datetime
    ) -> int:
        """Reap at once the workers found gone on their host, if their rows are as given."""
        if not gone:
            return 0
        released = await self._db.fetchval(
            workers.REAP_GONE, worker_id, *workers.reap_gone_args(gone), utc(now)
        )
        return int(released)

    async def unregister_worker(self, worker_id: str, now: datetime) -> None:
        """Release the worker's runs, due now, and delete its row."""
        await self._db.fetchval(ops.UNREGISTER, worker_id, utc(now))

    # -- runs ---------------------------------------------------------------------

    async def create_run(
        self, run: NewRun, now: datetime, *, claim_for: str | None = None
    ) -> tuple[RunRecord, bool]:
        """Create a pending run with its ``run_created`` event, durably; idempotent on id.

        Sent with the runs others create at about the same moment: one sync for them all.
        With ``claim_for`` (the eager start), on its own instead: one statement
        (``perdure_create_run_held``, one round trip) inserts the run already held, so
        no worker ever sees it unheld; an id that exists is neither written nor claimed.
        """
        now = utc(now)
        row = new_run_row(run, now)
        run_input = row.input
        if claim_for is None:
            created = await self._group.create_run(row)
        else:
            created = bool(await self._db.fetchval(_CREATE_RUN_HELD, *row, claim_for))
        if not created:
            existing = await self.get_run(run.id)
            if existing is None:  # pragma: no cover - runs are never deleted
                raise RuntimeError(f"run {run.id!r} exists and yet cannot be read")
            return existing, False
        record = RunRecord(
            id=run.id,
            workflow=run.workflow,
            status=RunStatus.PENDING,
            input=json.loads(run_input),
            output=None,
            error=None,
            version=run.version,
            created_at=now,
            updated_at=now,
            started_at=None,
            completed_at=None,
            owner=claim_for,
            wake_at=now if claim_for is None else None,
            cancel_requested=False,
            deadline_at=None if run.deadline is None else utc(run.deadline),
            attributes=json.loads(rows.dumps(run.attributes)) if run.attributes else None,
            parent_id=run.parent_id,
            root_id=None if run.parent_id is None else run.root_id or run.parent_id,
        )
        return record, True

    async def fork_run(
        self, run: NewRun, forked_from: str, events: list[NewEvent], now: datetime
    ) -> tuple[RunRecord, bool]:
        """Create a due, unheld run whose log goes on with ``events``, durably, at once."""
        created = await fork_run(self._db, run, forked_from, events, now)
        record = await self.get_run(run.id)
        if record is None:  # pragma: no cover - runs are never deleted
            raise RuntimeError(f"run {run.id!r} was forked and yet cannot be read")
        return record, created

    async def claim_runs(
        self,
        worker_id: str,
        now: datetime,
        limit: int,
        *,
        workflows: Collection[str] | None = None,
    ) -> list[RunRecord]:
        """Hold up to ``limit`` due, unheld runs (of ``workflows``), oldest ``wake_at`` first."""
        now = utc(now)
        if limit <= 0 or (workflows is not None and not workflows):
            return []
        # Highest priority first, then oldest; limits counted (`perdure._flow`, 0012).
        claimed = await self.claim_flow(worker_id, now, limit, workflows)
        return [rows.run_from_row(row) for row in claimed]

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
        """Append to a held run's log and update the indexes; the last seq.

        Sent with the appends other runs make at about the same moment, in one round trip
        and one transaction; fenced, and failing, each on its own.
        """
        append = ops.append_arguments(
            worker_id,
            run_id,
            events,
            utc(now),
            durable=durable,
            consume_inbox=consume_inbox,
            consume_tasks=consume_tasks,
        )
        return await self._group.append(append)

    async def release_run(self, worker_id: str, run_id: str, wake_at: datetime) -> None:
        """Stop holding a run; due at ``wake_at``, or at once if something waits for it."""
        with translated(worker_id, run_id):
            await self._db.fetchval(ops.RELEASE_RUN, worker_id, run_id, utc(wake_at))

    async def request_cancel(self, run_id: str, now: datetime) -> RunRecord | None:
        """Cancel a pending unheld run now, or flag the run for its worker; durably."""
        row = await self._db.fetchrow(ops.REQUEST_CANCEL, run_id, utc(now))
        return None if row is None else rows.run_from_row(row)

    async def block_run(self, worker_id: str, run_id: str, event: NewEvent, now: datetime) -> None:
        """Log ``run_blocked`` and set the held run aside: blocked, unheld, not due."""
        reason = RunBlocked.of(event, run_id=run_id).reason
        with translated(worker_id, run_id):
            await self._db.fetchval(
                ops.BLOCK_RUN, worker_id, run_id, rows.dumps(event.data), reason, utc(now)
            )

    async def unblock_run(self, run_id: str, now: datetime, *, by: str | None) -> RunRecord | None:
        """Make a blocked run due again with ``run_unblocked``; any other run is left be."""
        data = rows.dumps(run_unblocked(by=by).data)
        row = await self._db.fetchrow(ops.UNBLOCK_RUN, run_id, data, utc(now))
        return None if row is None else rows.run_from_row(row)

    async def get_run(self, run_id: str) -> RunRecord | None:
        """The run's record, or None; read with the other runs asked for at that moment."""
        return await self._group.get_run(run_id)

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
        terms = list((attributes or {}).items())
        query = rows.list_runs_query(
            status=status is not None,
            workflow=workflow is not None,
            terms=len(terms),
            before=before is not None,
            parent=parent_id is not None,
        )
        filters: list[object] = [value for value in (status, workflow) if value is not None]
        if status is not None:
            filters[0] = RunStatus(status).value
        for key, text in terms:
            filters.extend((key, text))
        if before is not None:
            filters.extend((utc(before[0]), before[1]))
        if parent_id is not None:
            filters.append(parent_id)
        found = await self._db.fetch(query, max(limit, 0), *filters)
        return [rows.run_from_row(row) for row in found]

    async def stats(self, window: StatsWindow, *, workflow: str | None = None) -> RunStats:
        """Aggregates of the runs over ``window`` (`perdure.stores.postgres._stats`)."""
        return await _stats.stats(self._db, window, workflow)

    async def events(self, run_id: str, *, after_seq: int = 0) -> list[Event]:
        """The run's log after ``after_seq``, in order."""
        return [
            rows.event_from_row(row) for row in await self._db.fetch(rows.EVENTS, run_id, after_seq)
        ]

    async def steps(self, run_id: str) -> list[StepRecord]:
        """The run's step rows, in the order the steps were first started."""
        return [rows.step_from_row(row) for row in await self._db.fetch(rows.STEPS, run_id)]

    async def timers(self, run_id: str) -> dict[str, datetime]:
        """The run's pending timers, correlation id to wake time, soonest first.

        Not part of `Store`: the timers table is an index nobody claims by, but a
        run's detail shows what it sleeps on.
        """
        found = await self._db.fetch(rows.TIMERS, run_id)
        return {row["correlation_id"]: row["wake_at"] for row in found}

    async def next_wake_at(self, *, workflows: Collection[str] | None = None) -> datetime | None:
        """The earliest ``wake_at`` of any unheld, unended run (of ``workflows``), or None."""
        if workflows is None:
            moment: datetime | None = await self._db.fetchval(rows.NEXT_WAKE_AT)
        elif not workflows:
            return None
        else:
            moment = await self._db.fetchval(rows.NEXT_WAKE_AT_OF, sorted(workflows))
        return moment

    async def cancel_requests(self, worker_id: str) -> list[str]:
        """Ids of unended runs held by ``worker_id`` that have a cancel request."""
        return [row["id"] for row in await self._db.fetch(rows.CANCEL_REQUESTS, worker_id)]

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
        run_id, correlation_id = created_by if created_by is not None else (None, None)
        row = await self._db.fetchrow(
            ops.RESUME_HOOK, token, rows.dumps(payload), utc(now), name, run_id, correlation_id
        )
        if row is None:
            raise hook_not_found(token)
        hook = rows.hook_from_row(row)
        if not same_hook(hook, created_by):
            raise hook_not_found(token)
        if name is not None and hook.name != name:
            raise hook_not_found(token, name=name, actual=hook.name)
        return hook

    async def get_hook(self, token: str) -> HookRecord | None:
        """The live hook holding ``token``, or None."""
        row = await self._db.fetchrow(rows.GET_HOOK, token)
        return None if row is None else rows.hook_from_row(row)

    async def hook_event(self, token: str) -> Event | None:
        """The ``hook_created`` event of the live hook holding ``token``, or None.

        A resume reads the hook's payload schema there, the HTTP app a webhook's response.
        """
        row = await self._db.fetchrow(rows.HOOK_EVENT, token)
        return None if row is None else rows.event_from_row(row)

    async def list_hooks(self, *, run_id: str | None = None) -> list[HookRecord]:
        """Live hooks, oldest first."""
        if run_id is None:
            found = await self._db.fetch(rows.LIST_HOOKS)
        else:
            found = await self._db.fetch(rows.LIST_HOOKS_OF, run_id)
        return [rows.hook_from_row(row) for row in found]

    async def inbox(self, worker_id: str) -> list[InboxItem]:
        """Undelivered payloads of the runs ``worker_id`` holds, oldest first."""
        return [rows.inbox_from_row(row) for row in await self._db.fetch(rows.INBOX, worker_id)]

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
        now = utc(now)
        if limit <= 0 or not queues or (names is not None and not names):
            return []
        if names is None:
            claimed = await self._db.fetch(rows.CLAIM_TASKS, worker_id, sorted(queues), now, limit)
        else:
            claimed = await self._db.fetch(
                rows.CLAIM_TASKS_OF, worker_id, sorted(queues), now, limit, sorted(names)
            )
        tasks = [rows.task_from_row(row) for row in claimed]
        tasks.sort(key=lambda task: task.id)
        return tasks

    async def finish_step_task(
        self, worker_id: str, task_id: int, outcome: StepOutcome, now: datetime
    ) -> None:
        """Store the outcome of a task ``worker_id`` claimed, in one round trip; wake its run."""
        failed = outcome.error is not None
        arguments = (
            worker_id,
            task_id,
            outcome.attempt,
            None if failed else rows.dumps(outcome.output),
            ops.json_or_none(outcome.error),
            rows.dumps(list(outcome.retries)),
            utc(now),
        )
        with translated_task(worker_id, task_id):
            await self._db.fetchval(ops.FINISH_STEP_TASK, *arguments)

    async def step_results(self, worker_id: str) -> list[StepTask]:
        """Finished step tasks of the runs ``worker_id`` holds, in the order they finished."""
        return [
            rows.task_from_row(row) for row in await self._db.fetch(rows.STEP_RESULTS, worker_id)
        ]

    async def step_tasks(self, run_id: str) -> list[StepTask]:
        """The run's step tasks, whatever their status, oldest first."""
        return [rows.task_from_row(row) for row in await self._db.fetch(rows.STEP_TASKS, run_id)]

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
        async with self._db.acquire() as conn:
            return await streams.append_chunks(
                conn, run_id, stream, chunks, encoded, now, attempt, supersede
            )

    async def retract_chunks(self, run_id: str, attempt: StreamAttempt, now: datetime) -> int:
        """Retract that execution's chunks; how many."""
        async with self._db.acquire() as conn:
            return await streams.retract_chunks(conn, run_id, attempt, now)

    async def read_chunks(
        self, run_id: str, stream: str, *, start: int = 0, limit: int = 1000
    ) -> list[ChunkRow]:
        """Up to ``limit`` rows from ``start`` on, with their states as they stand."""
        async with self._db.acquire() as conn:
            return await streams.read_chunks(conn, run_id, stream, start, limit)

    async def stream_lengths(self, run_id: str) -> dict[str, int]:
        """The run's streams and their lengths, by name."""
        async with self._db.acquire() as conn:
            return await streams.stream_lengths(conn, run_id)

    # -- change notification ------------------------------------------------------

    async def wait_for_change(self, timeout: float) -> bool:
        """Wait for a notification since the last call returned, or ``timeout`` seconds.

        Reported: new runs, resumes, cancel requests, releases, ended runs, reaped and
        leaving workers, queued and finished step tasks, this store's own included (see
        `perdure.stores.postgres._listener`); other steps' appends are not. After the
        listening connection broke, the next call reconnects and returns True, since
        notifications may have been missed.
        """
        listener = self._listener
        if listener is None:
            raise RuntimeError(f"{self!r} is not open; await its open() first")
        return await listener.wait(timeout)

    # -- batching -----------------------------------------------------------------

    def statistics(self) -> PostgresStatistics:
        """How many appends, new runs and run reads were asked for, in how many batches."""
        return self._group.statistics()

    # -- helpers ------------------------------------------------------------------

    @property
    def _db(self) -> Pool[Record]:
        if self._pool is None:
            raise RuntimeError(f"{self!r} is not open; await its open() first")
        return self._pool
