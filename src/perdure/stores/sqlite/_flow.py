"""Flow control in the SQLite store, as plain functions of a connection.

The writes run in the writer's transaction (`perdure.stores.sqlite._writer`), and
SQLite has one writer: a claim counts a key's holders and takes a slot with nobody
else counting meanwhile, in this process or any other. See `perdure._flow` for what
holding a slot means, and `FlowStore` for the contract.
"""

from __future__ import annotations

import json
from datetime import timedelta
from typing import TYPE_CHECKING

from perdure._flow import LimitUsage, LimitWait, RunFlow, StepGrant
from perdure.stores.sqlite._flow_sql import USED
from perdure.stores.sqlite._rows import dumps, from_us, get_run, to_us

if TYPE_CHECKING:
    import sqlite3
    from collections.abc import Callable
    from datetime import datetime

    from perdure._flow import StepLimits
    from perdure._records import NewRun, RunRecord

__all__ = [
    "create_flow_run",
    "has_room",
    "limit_wait",
    "limits",
    "release_step_slot",
    "run_flow",
    "take_step_slot",
]


def _used(conn: sqlite3.Connection, key: str) -> int:
    (used,) = conn.execute(f"SELECT {USED.format(key='?')}", (key, key)).fetchone()
    return int(used)


def has_room(conn: sqlite3.Connection, run_id: str, taken: dict[str, int]) -> bool:
    """Whether the due run may be claimed now, counting those this claim took (``taken``)."""
    row = conn.execute(
        "SELECT status, limit_key, limit_n FROM runs WHERE id = ?", (run_id,)
    ).fetchone()
    status, key, limit = row
    if key is None or limit is None or status != "pending":
        return True
    if key not in taken:
        taken[key] = _used(conn, key)
    if taken[key] >= limit:
        return False
    taken[key] += 1
    return True


def create_flow_run(
    conn: sqlite3.Connection,
    run: NewRun,
    flow: RunFlow,
    now: datetime,
    create: Callable[[sqlite3.Connection, NewRun, datetime], tuple[RunRecord, bool]],
) -> tuple[RunRecord, bool]:
    """`create` the run with ``flow`` on its row, or find the live run with its dedupe key."""
    if flow.dedupe_key is not None:
        live = conn.execute(
            "SELECT id, status, owner, last_seq FROM runs WHERE workflow = ? AND dedupe_key = ? "
            "AND status IN ('pending', 'running', 'blocked')",
            (run.workflow, flow.dedupe_key),
        ).fetchone()
        if live is not None:
            run_id, status, owner, last_seq = live
            if (
                flow.not_before is not None
                and status == "pending"
                and owner is None
                and last_seq == 1
            ):
                _debounce(conn, run_id, run, flow.not_before, now)
            record = get_run(conn, run_id)
            assert record is not None  # noqa: S101 - found just above
            return record, False
    record, created = create(conn, run, now)
    if not created:
        return record, False
    wake_at = to_us(flow.not_before) if flow.not_before is not None else None
    conn.execute(
        "UPDATE runs SET priority = ?, dedupe_key = ?, limit_key = ?, limit_n = ?, "
        "wake_at = coalesce(?, wake_at) WHERE id = ?",
        (flow.priority, flow.dedupe_key, flow.limit_key, flow.limit_n, wake_at, run.id),
    )
    found = get_run(conn, run.id)
    assert found is not None  # noqa: S101 - created just above
    return found, True


def _debounce(
    conn: sqlite3.Connection, run_id: str, run: NewRun, not_before: datetime, now: datetime
) -> None:
    """The waiting run takes the latest input, in its row and its unread ``run_created``."""
    (data,) = conn.execute(
        "SELECT data FROM events WHERE run_id = ? AND seq = 1", (run_id,)
    ).fetchone()
    created = json.loads(data)
    created["input"] = run.input
    conn.execute(
        "UPDATE events SET data = ? WHERE run_id = ? AND seq = 1", (dumps(created), run_id)
    )
    conn.execute(
        "UPDATE runs SET input = ?, wake_at = ?, updated_at = ? WHERE id = ?",
        (dumps(run.input), to_us(not_before), to_us(now), run_id),
    )


def run_flow(conn: sqlite3.Connection, run_id: str) -> RunFlow | None:
    """The run's flow control, or None when it has none."""
    row = conn.execute(
        "SELECT priority, dedupe_key, limit_key, limit_n FROM runs WHERE id = ?", (run_id,)
    ).fetchone()
    if row is None or (row[0] == 0 and row[1] is None and row[2] is None):
        return None
    priority, dedupe_key, limit_key, limit_n = row
    return RunFlow(priority, dedupe_key, None, limit_key, limit_n)


def limit_wait(conn: sqlite3.Connection, run_id: str) -> LimitWait | None:
    """Why a pending unheld run waits on its limit: key, use, and runs ahead of it."""
    row = conn.execute(
        "SELECT limit_key, limit_n, priority, wake_at, created_at FROM runs "
        "WHERE id = ? AND status = 'pending' AND owner IS NULL AND limit_key IS NOT NULL",
        (run_id,),
    ).fetchone()
    if row is None:
        return None
    key, limit, priority, wake_at, created_at = row
    used = _used(conn, key)
    if used < limit:
        return None
    due = wake_at if wake_at is not None else created_at
    (ahead,) = conn.execute(
        "SELECT count(*) FROM runs WHERE limit_key = ? AND status = 'pending' "
        "AND owner IS NULL AND (priority > ? OR (priority = ? AND "
        "(coalesce(wake_at, created_at) < ? OR (coalesce(wake_at, created_at) = ? AND id < ?))))",
        (key, priority, priority, due, due, run_id),
    ).fetchone()
    return LimitWait(key, limit, used, ahead)


def limits(conn: sqlite3.Connection, now: datetime) -> list[LimitUsage]:
    """Every limit key in use, by kind then key."""
    found = [
        LimitUsage("workflow", key, limit, int(held), int(waiting))
        for key, limit, held, waiting in conn.execute(
            "SELECT limit_key, max(limit_n), "
            "sum(status IN ('running', 'blocked') OR (status = 'pending' AND owner IS NOT NULL)), "
            "sum(status = 'pending' AND owner IS NULL) FROM runs "
            "WHERE limit_key IS NOT NULL AND status IN ('pending', 'running', 'blocked') "
            "GROUP BY limit_key ORDER BY limit_key"
        )
    ]
    found += [
        LimitUsage("step", key, limit, held)
        for key, limit, held in conn.execute(
            "SELECT key, max(limit_n), count(*) FROM step_slots "
            "WHERE worker_id IN (SELECT id FROM workers) GROUP BY key ORDER BY key"
        )
    ]
    at = to_us(now)
    found += [
        LimitUsage("rate", key, count, started, period=period / 1e6)
        for key, count, period, started in conn.execute(
            "SELECT key, max(rate_count), max(period_us), count(*) FROM step_starts "
            "WHERE started_at > ? - period_us GROUP BY key ORDER BY key",
            (at,),
        )
    ]
    return found


def take_step_slot(
    conn: sqlite3.Connection, worker_id: str, holder: str, limits: StepLimits, now: datetime
) -> StepGrant:
    """A slot of the step's concurrency and a start in its window, both or neither."""
    at = to_us(now)
    key, n = limits.concurrency_key, limits.concurrency
    if key is not None and n is not None:
        if conn.execute("SELECT 1 FROM step_slots WHERE holder = ?", (holder,)).fetchone():
            return StepGrant(granted=True)
        conn.execute(
            "DELETE FROM step_slots WHERE key = ? AND worker_id NOT IN (SELECT id FROM workers)",
            (key,),
        )
        (used,) = conn.execute("SELECT count(*) FROM step_slots WHERE key = ?", (key,)).fetchone()
        if used >= n:
            return StepGrant(
                granted=False, retry_at=None, reason=f"{key}: {used} of {n} attempts running"
            )
    rate_key, count, period = limits.rate_key, limits.rate_count, limits.rate_period
    if rate_key is not None and count is not None and period is not None:
        span = period // timedelta(microseconds=1)
        conn.execute(
            "DELETE FROM step_starts WHERE key = ? AND started_at <= ?", (rate_key, at - span)
        )
        started, oldest = conn.execute(
            "SELECT count(*), min(started_at) FROM step_starts WHERE key = ?", (rate_key,)
        ).fetchone()
        if started >= count:
            reason = f"{rate_key}: {started} of {count} started in the window"
            return StepGrant(granted=False, retry_at=from_us(oldest + span), reason=reason)
        conn.execute(
            "INSERT INTO step_starts (key, started_at, holder, rate_count, period_us) "
            "VALUES (?, ?, ?, ?, ?)",
            (rate_key, at, holder, count, span),
        )
    if key is not None and n is not None:
        conn.execute(
            "INSERT INTO step_slots (holder, key, worker_id, limit_n, taken_at) "
            "VALUES (?, ?, ?, ?, ?)",
            (holder, key, worker_id, n, at),
        )
    return StepGrant(granted=True)


def release_step_slot(conn: sqlite3.Connection, holder: str) -> None:
    """Give the slot back."""
    conn.execute("DELETE FROM step_slots WHERE holder = ?", (holder,))
