"""What each SQLiteStore write does, as plain functions of a connection.

Each runs in the writer's group-commit transaction, in a savepoint of its own when it
shares the transaction (`perdure.stores.sqlite._writer`): when one raises, everything
it wrote is rolled back and only its caller sees the error. So a function may check as
it goes and raise at any point, and still write nothing.

`append` is the hot path (one call per step): one fenced read of the run row, one
insert per event, one upsert per step row it changes (a step's start and end in one
append fold into one), the other index statements, and one update of the run row.
Python's sqlite3 caches prepared statements, so these SQL strings are compiled once.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from perdure._attributes import attribute_text
from perdure._log import RunBlocked, run_cancelled, run_created, run_unblocked
from perdure._records import NewEvent, RunStatus
from perdure.stores._common import (
    cancel_requested,
    child_end,
    hook_conflict,
    hook_not_found,
    lease_lost,
    same_hook,
    task_lost,
)
from perdure.stores._index import (
    AttributesChanged,
    Change,
    HookAdded,
    HookRemoved,
    RunEnded,
    RunStarted,
    StepChanged,
    StepRow,
    StreamChunkAdded,
    TimerCleared,
    TimerSet,
    ends_cancelled,
    fold_steps,
    plan,
)
from perdure.stores._unreadable import CLAIMABLE
from perdure.stores.sqlite._flow import has_room
from perdure.stores.sqlite._flow_sql import ROOM
from perdure.stores.sqlite._rows import (
    HOOK_COLUMNS,
    RUN_COLUMNS,
    TASK_COLUMNS,
    dumps,
    get_run,
    hook_from_row,
    run_from_row,
    task_from_row,
    to_us,
    workflow_filter,
)
from perdure.stores.sqlite._streams import body_chunk

if TYPE_CHECKING:
    import sqlite3
    from datetime import datetime

    from perdure._records import JSON, HookRecord, NewRun, RunRecord, StepOutcome, StepTask

__all__ = [
    "append",
    "claim_runs",
    "claim_step_tasks",
    "create_run",
    "finish_step_task",
    "release_run",
    "release_worker_runs",
    "request_cancel",
    "resume_hook",
]

_MORE = 32
"""Due runs a claim reads beyond its limit: some may be of a key its own claims fill."""

_INSERT_EVENT = (
    "INSERT INTO events (run_id, seq, type, correlation_id, data, created_at) "
    "VALUES (?, ?, ?, ?, ?, ?)"
)
_UPSERT_STEP = """
    INSERT INTO steps (run_id, correlation_id, name, status, attempt, input, output, error,
                       started_at, updated_at, first_seq)
    VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
    ON CONFLICT (run_id, correlation_id) DO UPDATE SET
        status = excluded.status,
        attempt = excluded.attempt,
        input = coalesce(steps.input, excluded.input),
        output = excluded.output,
        error = excluded.error,
        updated_at = excluded.updated_at
"""


def create_run(
    conn: sqlite3.Connection, run: NewRun, now: datetime, claim_for: str | None = None
) -> tuple[RunRecord, bool]:
    """Insert a pending run due now, with its ``run_created`` event; or find the existing one.

    With ``claim_for``, the run is held by that worker from its insert (the eager start).
    """
    at = to_us(now)
    inserted = conn.execute(
        "INSERT INTO runs (id, workflow, status, input, version, created_at, updated_at, "
        "owner, wake_at, last_seq) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, 1) "
        "ON CONFLICT (id) DO NOTHING",
        (
            run.id, run.workflow, RunStatus.PENDING.value, dumps(run.input), run.version, at,
            at, claim_for, at if claim_for is None else None,
        ),
    ).rowcount  # fmt: skip
    if inserted:
        created = run_created(
            workflow=run.workflow,
            input=run.input,
            version=run.version,
            attributes=run.attributes,
            deadline=run.deadline,
            parent_id=run.parent_id,
            root_id=run.root_id,
            parent_call=run.parent_call,
        )
        conn.execute(_INSERT_EVENT, (run.id, 1, created.type.value, None, dumps(created.data), at))
        if run.deadline is not None:
            conn.execute(
                "UPDATE runs SET deadline_at = ? WHERE id = ?", (to_us(run.deadline), run.id)
            )
        if run.attributes:
            _set_attributes(conn, run.id, run.attributes)
        if run.parent_id is not None:
            conn.execute(
                "UPDATE runs SET parent_id = ?, root_id = ?, parent_call = ? WHERE id = ?",
                (run.parent_id, run.root_id or run.parent_id, run.parent_call, run.id),
            )
    record = get_run(conn, run.id)
    assert record is not None  # noqa: S101 - inserted or found just above
    return record, bool(inserted)


def claim_runs(
    conn: sqlite3.Connection,
    worker_id: str,
    now: datetime,
    limit: int,
    workflows: list[str] | None = None,
) -> list[RunRecord]:
    """Hold up to ``limit`` due runs, oldest ``wake_at`` first, read off the claim index."""
    at = to_us(now)
    only, names = workflow_filter(workflows)
    # Only statuses this release knows (`CLAIMABLE`): a newer release's run is left to it.
    # ``+status``: the filter must not steer the planner off the claim index.
    # Highest priority first; a pending run whose limit is full is skipped (`ROOM`),
    # and the runs of one key this claim takes are counted as it goes (`has_room`).
    due = conn.execute(
        "SELECT id FROM runs WHERE owner IS NULL AND wake_at IS NOT NULL AND wake_at <= ? "  # noqa: S608 (placeholders only)
        f"AND +status IN {CLAIMABLE} {only} AND {ROOM} ORDER BY priority DESC, wake_at, id "
        "LIMIT ?",
        (at, *names, max(limit, 0) + _MORE),
    ).fetchall()
    taken: dict[str, int] = {}
    due = [row for row in due if has_room(conn, row[0], taken)][: max(limit, 0)]
    claim = (
        f"UPDATE runs SET owner = ?, wake_at = NULL, updated_at = ? WHERE id = ? "  # noqa: S608 - constant columns
        f"RETURNING {RUN_COLUMNS}"
    )
    return [
        run_from_row(conn.execute(claim, (worker_id, at, run_id)).fetchone()) for (run_id,) in due
    ]


def append(
    conn: sqlite3.Connection,
    worker_id: str,
    run_id: str,
    events: list[NewEvent],
    now: datetime,
    *,
    consume_inbox: list[int] | None,
    consume_tasks: list[int] | None = None,
) -> int:
    """Fence, log the events with their index changes, consume inbox items and tasks.

    Once the run's cancel is requested, only an append that ends it cancelled is taken
    (the writer serializes this with `request_cancel`).
    """
    last_seq, cancel_requested_at = _fence(conn, worker_id, run_id)
    changes = plan(events, run_id)
    if cancel_requested_at is not None and not ends_cancelled(changes):
        raise cancel_requested(run_id)
    seq = _log(conn, run_id, last_seq, events, changes, at=to_us(now))
    if consume_inbox:
        conn.executemany(
            "DELETE FROM hook_inbox WHERE id = ? AND run_id = ?",
            [(item_id, run_id) for item_id in consume_inbox],
        )
    if consume_tasks:
        conn.executemany(
            "DELETE FROM step_tasks WHERE id = ? AND run_id = ?",
            [(task_id, run_id) for task_id in consume_tasks],
        )
    return seq


def release_run(conn: sqlite3.Connection, worker_id: str, run_id: str, wake_at: datetime) -> None:
    """Unhold the run, due at ``wake_at`` or, if something waits for it, at once.

    No clock is given here, so "at once" is the time the first waiting inbox item, step
    result or the cancel request was stored: already past for the engine, and it keeps
    the run's place in the oldest-first claim order.
    """
    _, cancel_requested_at = _fence(conn, worker_id, run_id)
    (first_item,) = conn.execute(
        "SELECT min(created_at) FROM hook_inbox WHERE run_id = ?", (run_id,)
    ).fetchone()
    (first_result,) = conn.execute(
        "SELECT min(updated_at) FROM step_tasks WHERE run_id = ? AND status = 'finished'",
        (run_id,),
    ).fetchone()
    waiting = (to_us(wake_at), first_item, first_result, cancel_requested_at)
    due = min(x for x in waiting if x is not None)
    conn.execute(
        "UPDATE runs SET owner = NULL, wake_at = ?, recoveries = 0 WHERE id = ?", (due, run_id)
    )


def request_cancel(conn: sqlite3.Connection, run_id: str, now: datetime) -> RunRecord | None:
    """Cancel a pending unheld run now; flag any other unended run (and wake it if unheld)."""
    run = get_run(conn, run_id)
    if run is None or run.status.is_terminal:
        return run
    at = to_us(now)
    conn.execute(
        "UPDATE runs SET cancel_requested_at = coalesce(cancel_requested_at, :at), "
        "updated_at = :at, wake_at = CASE WHEN owner IS NULL THEN min(coalesce(wake_at, :at), :at) "
        "END WHERE id = :id",
        {"at": at, "id": run_id},
    )
    if run.owner is None and run.status is RunStatus.PENDING:
        (last_seq,) = conn.execute("SELECT last_seq FROM runs WHERE id = ?", (run_id,)).fetchone()
        cancelled = [run_cancelled()]
        _log(conn, run_id, last_seq, cancelled, plan(cancelled, run_id), at=at)
    return get_run(conn, run_id)


def block_run(
    conn: sqlite3.Connection, worker_id: str, run_id: str, event: NewEvent, now: datetime
) -> None:
    """Log ``run_blocked`` and set the held run aside: unheld, due only if cancelled."""
    last_seq, cancel_requested_at = _fence(conn, worker_id, run_id)
    reason = RunBlocked.of(event, run_id=run_id).reason
    at = to_us(now)
    conn.execute(
        _INSERT_EVENT, (run_id, last_seq + 1, event.type.value, None, dumps(event.data), at)
    )
    conn.execute(
        "UPDATE runs SET status = 'blocked', blocked_reason = ?, owner = NULL, wake_at = ?, "
        "last_seq = ?, updated_at = ? WHERE id = ?",
        (reason, None if cancel_requested_at is None else at, last_seq + 1, at, run_id),
    )


def unblock_run(
    conn: sqlite3.Connection, run_id: str, now: datetime, by: str | None
) -> RunRecord | None:
    """Make a blocked run due again with ``run_unblocked``; any other run is left be."""
    run = get_run(conn, run_id)
    if run is None or run.status is not RunStatus.BLOCKED:
        return run
    (last_seq,) = conn.execute("SELECT last_seq FROM runs WHERE id = ?", (run_id,)).fetchone()
    at = to_us(now)
    event = run_unblocked(by=by)
    conn.execute(
        _INSERT_EVENT, (run_id, last_seq + 1, event.type.value, None, dumps(event.data), at)
    )
    conn.execute(
        "UPDATE runs SET status = 'running', blocked_reason = NULL, last_seq = ?, updated_at = ?, "
        "recoveries = 0, wake_at = CASE WHEN owner IS NULL THEN ? ELSE wake_at END WHERE id = ?",
        (last_seq + 1, at, at, run_id),
    )
    return get_run(conn, run_id)


def resume_hook(
    conn: sqlite3.Connection,
    token: str,
    payload: JSON,
    now: datetime,
    name: str | None,
    created_by: tuple[str, str] | None,
) -> HookRecord:
    """Store the payload in the inbox of the hook's run; wake the run if nobody holds it."""
    row = conn.execute(f"SELECT {HOOK_COLUMNS} FROM hooks WHERE token = ?", (token,)).fetchone()  # noqa: S608 - constant columns
    if row is None:
        raise hook_not_found(token)
    hook = hook_from_row(row)
    if not same_hook(hook, created_by):
        raise hook_not_found(token)
    if name is not None and hook.name != name:
        raise hook_not_found(token, name=name, actual=hook.name)
    at = to_us(now)
    conn.execute(
        "INSERT INTO hook_inbox (run_id, token, correlation_id, payload, created_at) "
        "VALUES (?, ?, ?, ?, ?)",
        (hook.run_id, token, hook.correlation_id, dumps(payload), at),
    )
    conn.execute(
        "UPDATE runs SET wake_at = min(wake_at, ?), updated_at = ? "
        "WHERE id = ? AND owner IS NULL AND wake_at IS NOT NULL",
        (at, at, hook.run_id),
    )
    return hook


_RECOVERED = """
    UPDATE runs SET owner = NULL, wake_at = min(?, created_at), updated_at = ?,
           recoveries = CASE WHEN EXISTS (
               SELECT 1 FROM events e
                WHERE e.run_id = runs.id AND e.seq > runs.recovered_seq
                  AND e.type <> 'step_started'
           ) THEN 1 ELSE recoveries + 1 END,
           recovered_seq = last_seq
     WHERE owner = ?
"""
"""A dead worker's runs: each counts one recovery more, or 1 after progress (any event
but a ``step_started``, which each attempt of a step that kills its worker logs)."""


def release_worker_runs(
    conn: sqlite3.Connection, worker_id: str, now: datetime, *, dead: bool = False
) -> int:
    """Unhold ``worker_id``'s runs, due at once, and requeue its tasks; how many of both.

    A released run is due since it was created (`Store.unregister_worker` says why). A
    requeued task's attempt is one higher: the attempt that was cut short counts. The
    runs of a ``dead`` worker count a recovery (`RunRecord.recoveries`); those handed
    back by a live one are reset to none.
    """
    at = to_us(now)
    if dead:
        runs = conn.execute(_RECOVERED, (at, at, worker_id)).rowcount
    else:
        runs = conn.execute(
            "UPDATE runs SET owner = NULL, wake_at = min(?, created_at), updated_at = ?, "
            "recoveries = 0 WHERE owner = ?",
            (at, at, worker_id),
        ).rowcount
    tasks = conn.execute(
        "UPDATE step_tasks SET status = 'queued', owner = NULL, attempt = attempt + 1, "
        "updated_at = ? WHERE owner = ? AND status = 'claimed'",
        (at, worker_id),
    ).rowcount
    return runs + tasks


def claim_step_tasks(
    conn: sqlite3.Connection,
    worker_id: str,
    queues: list[str],
    now: datetime,
    limit: int,
    names: list[str] | None,
) -> list[StepTask]:
    """Claim up to ``limit`` queued tasks of ``queues`` (and ``names``), oldest first."""
    at = to_us(now)
    only = ""
    if names is not None:
        only = f"AND name IN ({', '.join('?' * len(names))})"
    due = conn.execute(
        f"SELECT id FROM step_tasks WHERE status = 'queued' "  # noqa: S608 - placeholders only
        f"AND queue IN ({', '.join('?' * len(queues))}) {only} ORDER BY id LIMIT ?",
        (*queues, *(names or ()), max(limit, 0)),
    ).fetchall()
    claim = (
        f"UPDATE step_tasks SET status = 'claimed', owner = ?, updated_at = ? WHERE id = ? "  # noqa: S608 - constant columns
        f"RETURNING {TASK_COLUMNS}"
    )
    return [
        task_from_row(conn.execute(claim, (worker_id, at, task_id)).fetchone())
        for (task_id,) in due
    ]


def finish_step_task(
    conn: sqlite3.Connection,
    worker_id: str,
    task_id: int,
    outcome: StepOutcome,
    now: datetime,
) -> None:
    """Fenced by the task: store its outcome, and wake its run if nobody holds it."""
    row = conn.execute(
        "SELECT run_id, status, owner FROM step_tasks WHERE id = ?", (task_id,)
    ).fetchone()
    if row is None or row[1] != "claimed" or row[2] != worker_id:
        raise task_lost(worker_id, task_id, row and row[2], row and row[1])
    at = to_us(now)
    conn.execute(
        "UPDATE step_tasks SET status = 'finished', attempt = ?, output = ?, error = ?, "
        "retries = ?, updated_at = ? WHERE id = ?",
        (
            outcome.attempt,
            dumps(outcome.output) if outcome.error is None else None,
            None if outcome.error is None else dumps(outcome.error),
            dumps(list(outcome.retries)),
            at,
            task_id,
        ),
    )
    conn.execute(
        "UPDATE runs SET wake_at = min(wake_at, ?), updated_at = ? "
        "WHERE id = ? AND owner IS NULL AND wake_at IS NOT NULL",
        (at, at, row[0]),
    )


# -- helpers --------------------------------------------------------------------------


def _fence(conn: sqlite3.Connection, worker_id: str, run_id: str) -> tuple[int, int | None]:
    """The run's last seq and cancel request time, if ``worker_id`` holds it."""
    row = conn.execute(
        "SELECT owner, last_seq, cancel_requested_at FROM runs WHERE id = ?", (run_id,)
    ).fetchone()
    if row is None or row[0] != worker_id:
        raise lease_lost(worker_id, run_id, row and row[0], exists=row is not None)
    return row[1], row[2]


def _log(
    conn: sqlite3.Connection,
    run_id: str,
    last_seq: int,
    events: list[NewEvent],
    changes: list[Change | None],
    *,
    at: int,
) -> int:
    """Insert the events after ``last_seq`` and apply their changes; the new last seq."""
    seq = last_seq
    for event, change in zip(events, changes, strict=True):
        seq += 1
        conn.execute(
            _INSERT_EVENT,
            (run_id, seq, event.type.value, event.correlation_id, dumps(event.data), at),
        )
        if isinstance(change, StepChanged):
            if change.queue is not None:
                _queue_task(conn, run_id, change, at)
        elif change is not None:
            _apply(conn, run_id, change, at)
    for row in fold_steps(changes):
        _upsert_step(conn, run_id, row, first_seq=last_seq + 1 + row.position, at=at)
    conn.execute("UPDATE runs SET last_seq = ?, updated_at = ? WHERE id = ?", (seq, at, run_id))
    return seq


def _upsert_step(
    conn: sqlite3.Connection, run_id: str, row: StepRow, *, first_seq: int, at: int
) -> None:
    conn.execute(
        _UPSERT_STEP,
        (
            run_id,
            row.correlation_id,
            row.name,
            row.status,
            row.attempt,
            None if row.input is None else dumps(row.input),
            None if row.output is None else dumps(row.output),
            None if row.error is None else dumps(row.error),
            at,
            at,
            first_seq,
        ),
    )


def _apply(conn: sqlite3.Connection, run_id: str, change: Change, at: int) -> None:
    """Apply an index change other than a step's (those are folded, see `_fold_step`)."""
    match change:
        case RunStarted():
            conn.execute(
                "UPDATE runs SET status = ?, started_at = coalesce(started_at, ?) WHERE id = ?",
                (RunStatus.RUNNING.value, at, run_id),
            )
        case TimerSet():
            conn.execute(
                "INSERT OR REPLACE INTO timers (run_id, correlation_id, wake_at) VALUES (?, ?, ?)",
                (run_id, change.correlation_id, to_us(change.wake_at)),
            )
        case TimerCleared():
            conn.execute(
                "DELETE FROM timers WHERE run_id = ? AND correlation_id = ?",
                (run_id, change.correlation_id),
            )
        case HookAdded():
            _add_hook(conn, run_id, change, at)
        case HookRemoved():
            conn.execute("DELETE FROM hooks WHERE token = ? AND run_id = ?", (change.token, run_id))
        case RunEnded():
            _end(conn, run_id, change, at)
        case AttributesChanged():
            _set_attributes(conn, run_id, change.values)
        case StreamChunkAdded():
            body_chunk(conn, run_id, change, at)


def _set_attributes(conn: sqlite3.Connection, run_id: str, values: dict[str, JSON]) -> None:
    """Upsert the run's attribute rows, and its ``attributes`` column to match."""
    conn.executemany(
        "INSERT INTO run_attributes (run_id, key, value, text) VALUES (?, ?, ?, ?) "
        "ON CONFLICT (run_id, key) DO UPDATE SET value = excluded.value, text = excluded.text",
        [(run_id, key, dumps(value), attribute_text(value)) for key, value in values.items()],
    )
    conn.execute(
        "UPDATE runs SET attributes = (SELECT json_group_object(key, json(value)) FROM "
        "(SELECT key, value FROM run_attributes WHERE run_id = ? ORDER BY key)) WHERE id = ?",
        (run_id, run_id),
    )


def _queue_task(conn: sqlite3.Connection, run_id: str, change: StepChanged, at: int) -> None:
    """A queued task for a step routed to ``change.queue``, replacing any of that step."""
    conn.execute(
        "DELETE FROM step_tasks WHERE run_id = ? AND correlation_id = ?",
        (run_id, change.correlation_id),
    )
    conn.execute(
        "INSERT INTO step_tasks (run_id, correlation_id, queue, name, input, attempt, status, "
        "created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, 'queued', ?, ?)",
        (
            run_id,
            change.correlation_id,
            change.queue,
            change.name,
            None if change.input is None else dumps(change.input),
            change.attempt,
            at,
            at,
        ),
    )


def _add_hook(conn: sqlite3.Connection, run_id: str, hook: HookAdded, at: int) -> None:
    holder = conn.execute("SELECT run_id FROM hooks WHERE token = ?", (hook.token,)).fetchone()
    if holder is not None:
        raise hook_conflict(hook.token, holder[0])
    conn.execute(
        "INSERT INTO hooks (token, run_id, correlation_id, name, kind, created_at) "
        "VALUES (?, ?, ?, ?, ?, ?)",
        (hook.token, run_id, hook.correlation_id, hook.name, hook.kind, at),
    )


def _end(conn: sqlite3.Connection, run_id: str, end: RunEnded, at: int) -> None:
    """The run's final state; nothing of it waits any more."""
    conn.execute(
        "UPDATE runs SET status = ?, output = ?, error = ?, completed_at = ?, owner = NULL, "
        "wake_at = NULL WHERE id = ?",
        (
            end.status.value,
            dumps(end.output) if end.status is RunStatus.COMPLETED else None,
            None if end.error is None else dumps(end.error),
            at,
            run_id,
        ),
    )
    for table in ("timers", "hooks", "hook_inbox", "step_tasks"):
        conn.execute(f"DELETE FROM {table} WHERE run_id = ?", (run_id,))  # noqa: S608 - constant names
    _tell_parent(conn, run_id, end, at)


def _tell_parent(conn: sqlite3.Connection, run_id: str, end: RunEnded, at: int) -> None:
    """A child ended: its end goes into its parent's inbox, and wakes the parent.

    In the transaction that ends the child, so no crash loses it; nothing when the run
    is no child, or its parent has ended. See `RunStore.create_run`.
    """
    parent = conn.execute(
        "SELECT p.id, c.parent_call FROM runs AS c JOIN runs AS p ON p.id = c.parent_id "
        "WHERE c.id = ? AND c.parent_call IS NOT NULL "
        "AND p.status NOT IN ('completed', 'failed', 'cancelled')",
        (run_id,),
    ).fetchone()
    if parent is None:
        return
    payload = child_end(end.status, end.output, end.error)
    conn.execute(
        "INSERT INTO hook_inbox (run_id, token, correlation_id, payload, created_at) "
        "VALUES (?, ?, ?, ?, ?)",
        (parent[0], run_id, parent[1], dumps(payload), at),
    )
    conn.execute(
        "UPDATE runs SET wake_at = min(wake_at, ?), updated_at = ? "
        "WHERE id = ? AND owner IS NULL AND wake_at IS NOT NULL",
        (at, at, parent[0]),
    )
