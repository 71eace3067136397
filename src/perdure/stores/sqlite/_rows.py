"""Between SQLite rows and perdure's records: times, JSON, and the read queries.

Times are stored as integer microseconds since the Unix epoch (UTC): exact, sortable by
the database, and turned back into timezone-aware UTC datetimes here. JSON is stored as
compact text. Every function that takes a connection runs on one of the store's
threads, never on the event loop.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from perdure._log import event_type
from perdure._records import (
    JSON,
    Event,
    EventType,
    HookRecord,
    InboxItem,
    RunRecord,
    RunStatus,
    StepRecord,
    StepTask,
)
from perdure.stores._common import utc
from perdure.stores._unreadable import (
    CLAIMABLE,
    UNREADABLE,
    careful_event,
    careful_inbox_item,
    careful_run,
    careful_step,
    careful_task,
    named,
    suspect,
    suspect_step,
)
from perdure.stores.sqlite._flow_sql import ROOM

if TYPE_CHECKING:
    import sqlite3
    from collections.abc import Mapping

__all__ = [
    "HOOK_COLUMNS",
    "RUN_COLUMNS",
    "TASK_COLUMNS",
    "cancel_requests",
    "dumps",
    "events",
    "from_us",
    "get_hook",
    "get_run",
    "hook_event",
    "hook_from_row",
    "inbox",
    "list_hooks",
    "list_runs",
    "loads",
    "next_wake_at",
    "run_from_row",
    "step_results",
    "step_tasks",
    "steps",
    "task_from_row",
    "timers",
    "to_us",
    "workflow_filter",
]

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)

RUN_COLUMNS = (
    "id, workflow, status, input, output, error, version, created_at, updated_at, "
    "started_at, completed_at, owner, wake_at, cancel_requested_at, blocked_reason, "
    "forked_from, recoveries, deadline_at, attributes, parent_id, root_id"
)
HOOK_COLUMNS = "token, run_id, correlation_id, name, kind, created_at"
_INBOX_COLUMNS = "i.id, i.run_id, i.token, i.correlation_id, i.payload, i.created_at"
TASK_COLUMNS = (
    "id, run_id, correlation_id, queue, name, input, attempt, status, owner, output, error, "
    "retries, created_at, updated_at"
)


def to_us(moment: datetime) -> int:
    """Microseconds since the epoch; exact for every datetime, FAR_FUTURE included."""
    return (utc(moment) - _EPOCH) // _MICROSECOND


def from_us(value: int) -> datetime:
    """The timezone-aware UTC datetime of a stored time."""
    return _EPOCH + timedelta(microseconds=value)


def _from_us_or_none(value: int | None) -> datetime | None:
    return None if value is None else from_us(value)


_ENCODE = json.JSONEncoder(separators=(",", ":")).encode
"""Made once: `json.dumps` with any option builds a new encoder at every call."""


def dumps(value: JSON) -> str:
    """Compact JSON text; raises TypeError for a value that is not JSON."""
    return _ENCODE(value)


def loads(text: str | None) -> JSON:
    """The value of a JSON column; SQL NULL reads as None."""
    return None if text is None else json.loads(text)


def run_from_row(row: tuple[Any, ...]) -> RunRecord:
    """A `RunRecord` from a row selected with `RUN_COLUMNS`, flagged where unreadable.

    A column this release cannot read does not fail the read: the record comes back
    with it in ``malformed`` (`perdure.stores._unreadable`).
    """
    try:
        record = _run_record(row)
    except UNREADABLE:
        return careful_run(dict(zip(_RUN_NAMES, row, strict=True)), from_us)
    if suspect(record):
        return careful_run(dict(zip(_RUN_NAMES, row, strict=True)), from_us)
    return record


_RUN_NAMES = tuple(column.strip() for column in RUN_COLUMNS.split(","))


def _run_record(row: tuple[Any, ...]) -> RunRecord:
    """The fast path of `run_from_row`: it raises on a column it cannot read."""
    (run_id, workflow, status, run_input, output, error, version, created_at, updated_at,
     started_at, completed_at, owner, wake_at, cancel_requested_at,
     blocked_reason, forked_from, recoveries, deadline_at, attributes,
     parent_id, root_id) = row  # fmt: skip
    return RunRecord(
        id=run_id,
        workflow=workflow,
        status=RunStatus(status),
        input=loads(run_input),
        output=loads(output),
        error=loads(error),
        version=version,
        created_at=from_us(created_at),
        updated_at=from_us(updated_at),
        started_at=_from_us_or_none(started_at),
        completed_at=_from_us_or_none(completed_at),
        owner=owner,
        wake_at=_from_us_or_none(wake_at),
        cancel_requested=cancel_requested_at is not None,
        blocked_reason=blocked_reason,
        forked_from=forked_from,
        recoveries=recoveries,
        deadline_at=_from_us_or_none(deadline_at),
        attributes=loads(attributes),
        parent_id=parent_id,
        root_id=root_id,
    )


def task_from_row(row: tuple[Any, ...]) -> StepTask:
    """A `StepTask` from a row selected with `TASK_COLUMNS`, flagged where unreadable."""
    return careful_task(row, from_us)


def hook_from_row(row: tuple[Any, ...]) -> HookRecord:
    """A `HookRecord` from a row selected with `HOOK_COLUMNS`."""
    token, run_id, correlation_id, name, kind, created_at = row
    return HookRecord(token, run_id, correlation_id, name, kind, from_us(created_at))


# -- reads ----------------------------------------------------------------------------


def get_run(conn: sqlite3.Connection, run_id: str) -> RunRecord | None:
    """The run's record, or None."""
    row = conn.execute(f"SELECT {RUN_COLUMNS} FROM runs WHERE id = ?", (run_id,)).fetchone()  # noqa: S608 - constant columns
    return None if row is None else run_from_row(row)


def list_runs(
    conn: sqlite3.Connection,
    status: RunStatus | None,
    workflow: str | None,
    limit: int,
    attributes: Mapping[str, str] | None = None,
    before: tuple[datetime, str] | None = None,
    parent_id: str | None = None,
) -> list[RunRecord]:
    """Runs, newest first; each filter matches one of the listing indexes.

    An attribute term is an ``IN`` over ``run_attributes_search``; ``before`` a row
    comparison the ``ORDER BY``'s index walks from.
    """
    where: list[str] = []
    params: list[Any] = []
    for key, text in (attributes or {}).items():
        where.append("id IN (SELECT run_id FROM run_attributes WHERE key = ? AND text = ?)")
        params.extend((key, text))
    if before is not None:
        where.append("(created_at, id) < (?, ?)")
        params.extend((to_us(before[0]), before[1]))
    if status is not None:
        where.append("status = ?")
        params.append(RunStatus(status).value)
    if workflow is not None:
        where.append("workflow = ?")
        params.append(workflow)
    if parent_id is not None:
        where.append("parent_id = ?")
        params.append(parent_id)
    condition = f"WHERE {' AND '.join(where)}" if where else ""
    query = (
        f"SELECT {RUN_COLUMNS} FROM runs {condition} "  # noqa: S608 - constant fragments only
        "ORDER BY created_at DESC, id DESC LIMIT ?"
    )
    return [run_from_row(row) for row in conn.execute(query, (*params, max(limit, 0)))]


def events(conn: sqlite3.Connection, run_id: str, after_seq: int) -> list[Event]:
    """The run's log after ``after_seq``, read along the primary key."""
    rows = conn.execute(
        "SELECT seq, type, correlation_id, data, created_at FROM events "
        "WHERE run_id = ? AND seq > ? ORDER BY seq",
        (run_id, after_seq),
    )
    return [_event(run_id, row) for row in rows]


def _event(run_id: str, row: tuple[Any, ...]) -> Event:
    """An event from its columns (seq, type, correlation_id, data, created_at).

    Raises:
        LogFormatError: a column cannot be read; it names the run, the event and the key.
    """
    seq, kind, correlation_id, data, created_at = row
    try:
        decoded: JSON = json.loads(data)
        if isinstance(decoded, dict):
            return Event(
                run_id,
                seq,
                event_type(kind, run_id=run_id, seq=seq),
                correlation_id,
                decoded,
                from_us(created_at),
            )
    except UNREADABLE:
        pass
    return careful_event(run_id, row, from_us)  # raises, naming what is wrong


def steps(conn: sqlite3.Connection, run_id: str) -> list[StepRecord]:
    """The run's step rows in the order their first event was logged."""
    rows = conn.execute(
        "SELECT correlation_id, name, status, attempt, input, output, error, started_at, "
        "updated_at FROM steps WHERE run_id = ? ORDER BY first_seq",
        (run_id,),
    )
    return [_step(run_id, row) for row in rows]


def _step(run_id: str, row: tuple[Any, ...]) -> StepRecord:
    """A step row; one that cannot be read in full comes back flagged (`careful_step`)."""
    correlation_id, name, status, attempt, step_input, output, error, started, updated = row
    try:
        step = StepRecord(
            run_id=run_id,
            correlation_id=correlation_id,
            name=name,
            status=status,
            attempt=attempt,
            input=loads(step_input),
            output=loads(output),
            error=loads(error),
            started_at=from_us(started),
            updated_at=from_us(updated),
        )
        if not suspect_step(step):
            return step
    except UNREADABLE:
        pass
    return careful_step(run_id, row, from_us)


def timers(conn: sqlite3.Connection, run_id: str) -> dict[str, datetime]:
    """The run's pending timers, correlation id to wake time, soonest first."""
    rows = conn.execute(
        "SELECT correlation_id, wake_at FROM timers WHERE run_id = ? ORDER BY wake_at",
        (run_id,),
    )
    return {correlation_id: from_us(wake_at) for correlation_id, wake_at in rows}


def workflow_filter(workflows: list[str] | None) -> tuple[str, list[str]]:
    """An ``AND workflow IN (...)`` clause and its parameters (empty for no filter)."""
    if workflows is None:
        return "", []
    return f"AND workflow IN ({', '.join('?' * len(workflows))})", workflows


def next_wake_at(conn: sqlite3.Connection, workflows: list[str] | None = None) -> datetime | None:
    """The earliest due time in the claim index (held and ended runs are not in it)."""
    only, names = workflow_filter(workflows)
    # The first in due order with room: a run waiting on a full limit is woken by the
    # end of a holder, and a timer for it would spin passes that claim nothing.
    found = conn.execute(
        "SELECT wake_at FROM runs WHERE owner IS NULL AND wake_at IS NOT NULL "  # noqa: S608 (placeholders only)
        f"AND +status IN {CLAIMABLE} {only} AND {ROOM} ORDER BY wake_at LIMIT 1",  # as claimed
        names,
    ).fetchone()
    return _from_us_or_none(found[0] if found is not None else None)


def cancel_requests(conn: sqlite3.Connection, worker_id: str) -> list[str]:
    """Ids of the runs ``worker_id`` holds that have a cancel request."""
    rows = conn.execute(
        "SELECT id FROM runs WHERE owner = ? AND cancel_requested_at IS NOT NULL ORDER BY id",
        (worker_id,),
    )
    return [run_id for (run_id,) in rows]


def get_hook(conn: sqlite3.Connection, token: str) -> HookRecord | None:
    """The live hook holding ``token``, or None."""
    row = conn.execute(f"SELECT {HOOK_COLUMNS} FROM hooks WHERE token = ?", (token,)).fetchone()  # noqa: S608 - constant columns
    return None if row is None else hook_from_row(row)


def hook_event(conn: sqlite3.Connection, token: str) -> Event | None:
    """The ``hook_created`` event of the live hook holding ``token``, or None.

    One query: the hook's row by its key, then its run's events along the primary key.
    """
    row = conn.execute(
        "SELECT e.run_id, e.seq, e.correlation_id, e.data, e.created_at "
        "FROM hooks AS h JOIN events AS e ON e.run_id = h.run_id "
        "AND e.correlation_id = h.correlation_id AND e.type = ? "
        "WHERE h.token = ? ORDER BY e.seq DESC LIMIT 1",
        (EventType.HOOK_CREATED.value, token),
    ).fetchone()
    if row is None:
        return None
    run_id, seq, correlation_id, data, created_at = row
    return _event(run_id, (seq, EventType.HOOK_CREATED.value, correlation_id, data, created_at))


def list_hooks(conn: sqlite3.Connection, run_id: str | None) -> list[HookRecord]:
    """Live hooks, oldest first; rowid breaks ties in creation order."""
    if run_id is None:
        rows = conn.execute(f"SELECT {HOOK_COLUMNS} FROM hooks ORDER BY created_at, rowid")  # noqa: S608 - constant columns
    else:
        rows = conn.execute(
            f"SELECT {HOOK_COLUMNS} FROM hooks WHERE run_id = ? ORDER BY created_at, rowid",  # noqa: S608 - constant columns
            (run_id,),
        )
    return [hook_from_row(row) for row in rows]


def inbox(conn: sqlite3.Connection, worker_id: str) -> list[InboxItem]:
    """Undelivered payloads of the runs ``worker_id`` holds, oldest first."""
    rows = conn.execute(
        # CROSS JOIN: read the inbox (few items), then each item's run. The planner
        # would start from runs_owner and visit every run the worker holds.
        f"SELECT {_INBOX_COLUMNS} FROM hook_inbox AS i CROSS JOIN runs AS r ON r.id = i.run_id "  # noqa: S608 - constant columns
        "WHERE r.owner = ? ORDER BY i.id",
        (worker_id,),
    )
    return [_inbox_item(row) for row in rows]


def _inbox_item(row: tuple[Any, ...]) -> InboxItem:
    """An inbox item; one whose payload cannot be read comes back flagged, not raised."""
    item_id, run_id, token, correlation_id, payload, created = row
    try:
        item = InboxItem(
            item_id, run_id, token, correlation_id, json.loads(payload), from_us(created)
        )
    except UNREADABLE:
        return careful_inbox_item(row, from_us)
    if not named(token, correlation_id):  # its append would be refused, again and again
        return careful_inbox_item(row, from_us)
    return item


def step_results(conn: sqlite3.Connection, worker_id: str) -> list[StepTask]:
    """Finished step tasks of the runs ``worker_id`` holds, in the order they finished."""
    columns = ", ".join(f"t.{column.strip()}" for column in TASK_COLUMNS.split(","))
    rows = conn.execute(
        # CROSS JOIN: finished tasks (few) first, then each one's run (see `inbox`).
        f"SELECT {columns} FROM step_tasks AS t CROSS JOIN runs AS r ON r.id = t.run_id "  # noqa: S608 - constant columns
        "WHERE r.owner = ? AND t.status = 'finished' ORDER BY t.updated_at, t.id",
        (worker_id,),
    )
    return [task_from_row(row) for row in rows]


def step_tasks(conn: sqlite3.Connection, run_id: str) -> list[StepTask]:
    """The run's step tasks, oldest first."""
    rows = conn.execute(
        f"SELECT {TASK_COLUMNS} FROM step_tasks WHERE run_id = ? ORDER BY id",  # noqa: S608 - constant columns
        (run_id,),
    )
    return [task_from_row(row) for row in rows]
