"""The SQLite store's `fork_run`: a new run and the log it begins with, in one write.

Kept apart from `_ops` (the hot path's writes): forks are rare, and this is the only
write that logs events into a run nobody holds. It reuses `_ops`'s logging, so the
copied events move the indexes (status, steps, timers, hooks, step tasks) exactly as
the original run's appends did.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from perdure._log import run_created
from perdure.stores._index import RunEnded, plan
from perdure.stores.sqlite import _ops as ops
from perdure.stores.sqlite._rows import dumps, get_run, to_us

if TYPE_CHECKING:
    import sqlite3
    from datetime import datetime

    from perdure._records import NewEvent, NewRun, RunRecord

__all__ = ["fork_run"]


def fork_run(
    conn: sqlite3.Connection,
    run: NewRun,
    forked_from: str,
    events: list[NewEvent],
    now: datetime,
) -> tuple[RunRecord, bool]:
    """Insert the run, due and unheld, its log and index changes; or find the existing one.

    Its ``run_created`` names ``forked_from``; ``events`` follow it.

    Runs inside the writer's transaction: a hook conflict raised while logging undoes
    the run's row too.
    """
    existing = get_run(conn, run.id)
    if existing is not None:
        return existing, False
    changes = plan(events, run.id)
    if any(isinstance(change, RunEnded) for change in changes):
        raise ValueError(f"a fork's log cannot hold the end of a run ({run.id!r})")
    ops.create_run(conn, run, now)
    created = run_created(
        workflow=run.workflow,
        input=run.input,
        version=run.version,
        forked_from=forked_from,
        attributes=run.attributes,
        deadline=run.deadline,
    )
    conn.execute(
        "UPDATE events SET data = ? WHERE run_id = ? AND seq = 1",
        (dumps(created.data), run.id),
    )
    conn.execute("UPDATE runs SET forked_from = ? WHERE id = ?", (forked_from, run.id))
    ops._log(conn, run.id, 1, events, changes, at=to_us(now))  # noqa: SLF001 - the same log write
    record = get_run(conn, run.id)
    assert record is not None  # noqa: S101 - inserted just above
    return record, True
