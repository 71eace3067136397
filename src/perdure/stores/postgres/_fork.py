"""The PostgreSQL store's `fork_run`: a new run and the log it begins with, in one transaction.

Forks are rare, so they skip group commit: one transaction of their own on one
connection creates the run (``perdure_create_run``), holds it under a name no worker
has, logs the copied events with ``perdure_append`` (so they move the indexes exactly as
the original's appends did, hook conflicts included), and lets it go, due now. Nobody
sees the run before the commit, so no worker can claim it without its log.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from perdure._log import run_created
from perdure.stores._common import utc
from perdure.stores._index import RunEnded, plan
from perdure.stores.postgres import _ops as ops
from perdure.stores.postgres import _rows as rows
from perdure.stores.postgres._connect import translated

if TYPE_CHECKING:
    from datetime import datetime

    from asyncpg import Pool, Record

    from perdure._records import NewEvent, NewRun

__all__ = ["fork_run"]

_RELEASE = (
    "UPDATE runs SET owner = NULL, wake_at = $2, updated_at = $2, forked_from = $3 WHERE id = $1"
)


async def fork_run(
    pool: Pool[Record], run: NewRun, forked_from: str, events: list[NewEvent], now: datetime
) -> bool:
    """Create the fork with its log, synced; whether it is new (False: the id exists).

    Raises:
        HookConflictError: a copied event creates a hook whose token is live elsewhere
            (nothing is written).
        ValueError: an event would end the run.
    """
    now = utc(now)
    if any(isinstance(change, RunEnded) for change in plan(events, run.id)):
        raise ValueError(f"a fork's log cannot hold the end of a run ({run.id!r})")
    created_data = run_created(
        workflow=run.workflow,
        input=run.input,
        version=run.version,
        forked_from=forked_from,
        attributes=run.attributes,
        deadline=None if run.deadline is None else utc(run.deadline),
    ).data
    row = ops.NewRunRow(
        run.id, run.workflow, rows.dumps(run.input), run.version, rows.dumps(created_data), now
    )
    holder = f"perdure-fork:{run.id}"  # no worker has such an id
    append = ops.append_arguments(
        holder, run.id, events, now, durable=True, consume_inbox=None, consume_tasks=None
    )
    async with pool.acquire() as conn, conn.transaction():
        if not await conn.fetchval(ops.CREATE_RUN, *row):
            return False
        await conn.execute("UPDATE runs SET owner = $2 WHERE id = $1", run.id, holder)
        if events:
            with translated(holder, run.id):
                await conn.fetchval(ops.APPEND, *append.arguments())
        await conn.execute(_RELEASE, run.id, now, forked_from)
    return True
