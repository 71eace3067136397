"""Between PostgreSQL rows and perdure's records: JSON, the read queries, row decoding.

JSON columns are PostgreSQL ``json`` (text kept as written): values go in as compact
JSON text and come back through `json.loads`, so no codec is registered on connections
and a dict keeps its key order. asyncpg returns ``timestamptz`` as timezone-aware UTC
datetimes, which is what records hold.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import TYPE_CHECKING

from perdure._log import event_type
from perdure._records import (
    JSON,
    Event,
    HookRecord,
    InboxItem,
    RunRecord,
    RunStatus,
    StepRecord,
    StepTask,
)
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

if TYPE_CHECKING:
    from asyncpg import Record

__all__ = [
    "CANCEL_REQUESTS",
    "CLAIM_TASKS",
    "CLAIM_TASKS_OF",
    "EVENTS",
    "GET_HOOK",
    "GET_RUN",
    "GET_RUNS",
    "HOOK_COLUMNS",
    "HOOK_EVENT",
    "INBOX",
    "LIST_HOOKS",
    "LIST_HOOKS_OF",
    "NEXT_WAKE_AT",
    "NEXT_WAKE_AT_OF",
    "RUN_COLUMNS",
    "STEPS",
    "STEP_RESULTS",
    "STEP_TASKS",
    "TIMERS",
    "dumps",
    "event_from_row",
    "hook_from_row",
    "inbox_from_row",
    "list_runs_query",
    "loads",
    "run_from_row",
    "step_from_row",
    "task_from_row",
]

RUN_COLUMNS = (
    "id, workflow, status, input::text, output::text, error::text, version, created_at, "
    "updated_at, started_at, completed_at, owner, wake_at, cancel_requested_at, blocked_reason, "
    "forked_from, recoveries, deadline_at, attributes::text, parent_id, root_id"
)
HOOK_COLUMNS = "token, run_id, correlation_id, name, kind, created_at"

GET_RUN = f"SELECT {RUN_COLUMNS} FROM runs WHERE id = $1"  # noqa: S608 - constant columns
GET_RUNS = f"SELECT {RUN_COLUMNS} FROM runs WHERE id = ANY($1::text[])"  # noqa: S608

# As the claim sees them: a run of a status this release does not know sets no timer.
# A run waiting on a full limit (migration 0012) sets no timer: a holder's end wakes it.
_NEXT_WAKE_AT = (
    "WITH held AS MATERIALIZED (SELECT * FROM perdure_limits_held()) "  # noqa: S608
    "SELECT wake_at FROM runs WHERE owner IS NULL AND wake_at IS NOT NULL "
    f"AND status IN {CLAIMABLE} {{only}} AND (runs.limit_key IS NULL OR status <> 'pending' "
    "OR NOT EXISTS (SELECT 1 FROM held WHERE held.limit_key = runs.limit_key "
    "AND held.used >= runs.limit_n)) ORDER BY wake_at LIMIT 1"
)
NEXT_WAKE_AT = _NEXT_WAKE_AT.format(only="")
NEXT_WAKE_AT_OF = _NEXT_WAKE_AT.format(only="AND workflow = ANY($1::text[])")

EVENTS = (
    "SELECT run_id, seq, type, correlation_id, data::text, created_at FROM events "
    "WHERE run_id = $1 AND seq > $2 ORDER BY seq"
)
STEPS = (
    "SELECT run_id, correlation_id, name, status, attempt, input::text, output::text, "
    "error::text, started_at, updated_at FROM steps WHERE run_id = $1 ORDER BY first_seq"
)
TIMERS = "SELECT correlation_id, wake_at FROM timers WHERE run_id = $1 ORDER BY wake_at"
CANCEL_REQUESTS = (
    "SELECT id FROM runs WHERE owner = $1 AND cancel_requested_at IS NOT NULL ORDER BY id"
)
GET_HOOK = f"SELECT {HOOK_COLUMNS} FROM hooks WHERE token = $1"  # noqa: S608 - constant columns
# The hook_created event of a live hook: its row by key, then its run's log backwards.
HOOK_EVENT = (
    "SELECT e.run_id, e.seq, e.type, e.correlation_id, e.data::text, e.created_at "
    "FROM hooks AS h JOIN events AS e ON e.run_id = h.run_id "
    "AND e.correlation_id = h.correlation_id AND e.type = 'hook_created' "
    "WHERE h.token = $1 ORDER BY e.seq DESC LIMIT 1"
)
LIST_HOOKS = f"SELECT {HOOK_COLUMNS} FROM hooks ORDER BY created_at, position"  # noqa: S608
LIST_HOOKS_OF = f"SELECT {HOOK_COLUMNS} FROM hooks WHERE run_id = $1 ORDER BY created_at, position"  # noqa: S608
INBOX = (
    "SELECT i.id, i.run_id, i.token, i.correlation_id, i.payload::text, i.created_at "
    "FROM hook_inbox AS i JOIN runs AS r ON r.id = i.run_id WHERE r.owner = $1 ORDER BY i.id"
)

_TASK_COLUMNS = (
    "id", "run_id", "correlation_id", "queue", "name", "input::text AS input", "attempt",
    "status", "owner", "output::text AS output", "error::text AS error",
    "retries::text AS retries", "created_at", "updated_at",
)  # fmt: skip
_TASKS = ", ".join(f"t.{column}" for column in _TASK_COLUMNS)

# The queued tasks of the queues (and steps) asked for, oldest first, locked without
# waiting for rows another claimer is taking, then claimed. RETURNING has no order:
# the caller sorts by id.
_CLAIM_TASKS = """
    WITH due AS (
        SELECT id FROM step_tasks
         WHERE status = 'queued' AND queue = ANY($2::text[]) {only}
         ORDER BY id
         LIMIT $4
           FOR UPDATE SKIP LOCKED
    )
    UPDATE step_tasks AS t SET status = 'claimed', owner = $1, updated_at = $3
      FROM due WHERE t.id = due.id
    RETURNING {columns}
"""
CLAIM_TASKS = _CLAIM_TASKS.format(only="", columns=_TASKS)
CLAIM_TASKS_OF = _CLAIM_TASKS.format(only="AND name = ANY($5::text[])", columns=_TASKS)
STEP_RESULTS = (
    f"SELECT {_TASKS} FROM step_tasks AS t JOIN runs AS r ON r.id = t.run_id "  # noqa: S608
    "WHERE r.owner = $1 AND t.status = 'finished' ORDER BY t.updated_at, t.id"
)
STEP_TASKS = f"SELECT {_TASKS} FROM step_tasks AS t WHERE t.run_id = $1 ORDER BY t.id"  # noqa: S608


def list_runs_query(
    *, status: bool, workflow: bool, terms: int = 0, before: bool = False, parent: bool = False
) -> str:
    """The listing query for the filters given, numbered in this order.

    $1 is the limit, then status, workflow, a key and a text per attribute term, and
    the created_at and id of ``before``, then the parent's id.

    One constant statement per combination, so each is prepared once and its plan uses
    the matching index (an attribute term reads ``run_attributes_search``).
    """
    where = []
    if status:
        where.append("status = $2")
    if workflow:
        where.append(f"workflow = ${2 + status}")
    at = 2 + status + workflow
    for term in range(terms):
        key, text = at + 2 * term, at + 2 * term + 1
        where.append(
            f"id IN (SELECT run_id FROM run_attributes WHERE key = ${key} AND text = ${text})"  # noqa: S608 - placeholders only
        )
    if before:
        at += 2 * terms
        where.append(f"(created_at, id) < (${at}, ${at + 1})")
    if parent:
        where.append(f"parent_id = ${2 + status + workflow + 2 * terms + 2 * before}")
    condition = f"WHERE {' AND '.join(where)}" if where else ""
    return (
        f"SELECT {RUN_COLUMNS} FROM runs {condition} "  # noqa: S608 - constant fragments only
        "ORDER BY created_at DESC, id DESC LIMIT $1"
    )


def dumps(value: JSON) -> str:
    """Compact JSON text; raises TypeError for a value that is not JSON."""
    return _ENCODE(value)


# One encoder for every call: json.dumps builds a new one each time it is given options.
_ENCODE = json.JSONEncoder(separators=(",", ":")).encode


def loads(text: str | None) -> JSON:
    """The value of a JSON column; SQL NULL reads as None."""
    return None if text is None else json.loads(text)


# By value: a dict lookup costs a tenth of calling the enum, and every run read,
# claim and listing decodes one per row.
_STATUSES = {status.value: status for status in RunStatus}


def run_from_row(row: Record) -> RunRecord:
    """A `RunRecord` from a row selected with `RUN_COLUMNS`, flagged where unreadable.

    A column this release cannot read (a status it does not know, JSON nested deeper
    than Python reads) does not fail the read: the record comes back with it in
    ``malformed`` (`perdure.stores._unreadable`).
    """
    try:
        record = _run_record(row)
    except UNREADABLE:
        return careful_run({name: row[name] for name in _RUN_NAMES}, _time)
    if suspect(record):
        return careful_run({name: row[name] for name in _RUN_NAMES}, _time)
    return record


_RUN_NAMES = tuple(column.strip().partition("::")[0] for column in RUN_COLUMNS.split(","))


def _time(value: object) -> datetime:
    """A ``timestamptz`` as asyncpg returns it; anything else is not a time."""
    if not isinstance(value, datetime):
        raise TypeError(f"not a time: {value!r}")
    return value


def _run_record(row: Record) -> RunRecord:
    """The fast path of `run_from_row`: it raises on a column it cannot read."""
    return RunRecord(
        id=row["id"],
        workflow=row["workflow"],
        status=_STATUSES[row["status"]],
        input=loads(row["input"]),
        output=loads(row["output"]),
        error=loads(row["error"]),
        version=row["version"],
        created_at=row["created_at"],
        updated_at=row["updated_at"],
        started_at=row["started_at"],
        completed_at=row["completed_at"],
        owner=row["owner"],
        wake_at=row["wake_at"],
        cancel_requested=row["cancel_requested_at"] is not None,
        blocked_reason=row["blocked_reason"],
        forked_from=row["forked_from"],
        recoveries=row["recoveries"],
        deadline_at=row["deadline_at"],
        attributes=loads(row["attributes"]),
        parent_id=row["parent_id"],
        root_id=row["root_id"],
    )


def hook_from_row(row: Record) -> HookRecord:
    """A `HookRecord` from a row selected with `HOOK_COLUMNS`."""
    return HookRecord(
        row["token"], row["run_id"], row["correlation_id"], row["name"], row["kind"],
        row["created_at"],
    )  # fmt: skip


def event_from_row(row: Record) -> Event:
    """An `Event` from a row selected by `EVENTS`.

    Raises:
        LogFormatError: a column cannot be read; it names the run, the event and the key.
    """
    run_id = row["run_id"]
    try:
        data: JSON = json.loads(row["data"])
        if isinstance(data, dict):
            return Event(
                run_id, row["seq"],
                event_type(row["type"], run_id=run_id, seq=row["seq"]),
                row["correlation_id"], data, row["created_at"],
            )  # fmt: skip
    except UNREADABLE:
        pass
    columns = ("seq", "type", "correlation_id", "data", "created_at")
    return careful_event(run_id, [row[name] for name in columns], _time)  # raises


_STEP_NAMES = (
    "correlation_id", "name", "status", "attempt", "input", "output", "error",
    "started_at", "updated_at",
)  # fmt: skip
"""`careful_step`'s columns, in its order."""


def step_from_row(row: Record) -> StepRecord:
    """A `StepRecord` from a row selected by `STEPS`; flagged, not raised, if unreadable."""
    try:
        step = StepRecord(
            run_id=row["run_id"],
            correlation_id=row["correlation_id"],
            name=row["name"],
            status=row["status"],
            attempt=row["attempt"],
            input=loads(row["input"]),
            output=loads(row["output"]),
            error=loads(row["error"]),
            started_at=row["started_at"],
            updated_at=row["updated_at"],
        )
        if not suspect_step(step):
            return step
    except UNREADABLE:
        pass
    return careful_step(row["run_id"], [row[name] for name in _STEP_NAMES], _time)


def inbox_from_row(row: Record) -> InboxItem:
    """An `InboxItem` from a row selected by `INBOX`; flagged, not raised, if unreadable."""
    try:
        if named(row["token"], row["correlation_id"]):  # else its append would be refused
            return InboxItem(
                row["id"], row["run_id"], row["token"], row["correlation_id"],
                json.loads(row["payload"]), row["created_at"],
            )  # fmt: skip
    except UNREADABLE:
        pass
    columns = ("id", "run_id", "token", "correlation_id", "payload", "created_at")
    return careful_inbox_item([row[name] for name in columns], _time)


def task_from_row(row: Record) -> StepTask:
    """A `StepTask` from a row selected by `STEP_TASKS`, `STEP_RESULTS` or a claim.

    Flagged, not raised, where a column cannot be read (`perdure.stores._unreadable`).
    """
    return careful_task([row[name] for name in _TASK_NAMES], _time)


_TASK_NAMES = tuple(column.partition(" AS ")[2] or column for column in _TASK_COLUMNS)
