"""The parameters of the PostgreSQL store's write functions (see the migrations).

`append_arguments` turns one `append` into the arguments of ``perdure_append``: the
events as parallel arrays and, next to each, the index change `perdure.stores._index`
planned for it, so the database applies exactly what every other store applies. All
JSON is encoded here, before anything is sent: a value that is not JSON is a TypeError
and nothing is written.
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any, NamedTuple

from perdure._records import RunStatus
from perdure.stores._index import (
    Change,
    HookAdded,
    HookRemoved,
    RunEnded,
    RunStarted,
    StepChanged,
    TimerCleared,
    TimerSet,
    plan,
)
from perdure.stores._pg_rows import RUN_COLUMNS, dumps

if TYPE_CHECKING:
    from perdure._records import JSON, NewEvent

__all__ = [
    "APPEND",
    "CREATE_RUN",
    "FINISH_STEP_TASK",
    "HEARTBEAT",
    "REAP",
    "REGISTER",
    "RELEASE_RUN",
    "REQUEST_CANCEL",
    "RESUME_HOOK",
    "UNREGISTER",
    "append_arguments",
    "json_or_none",
]

CREATE_RUN = "SELECT perdure_create_run($1, $2, $3, $4, $5, $6)"
APPEND = (
    "SELECT perdure_append($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, "
    "$16, $17, $18, $19)"
)
FINISH_STEP_TASK = "SELECT perdure_finish_step_task($1, $2, $3, $4, $5, $6, $7)"
RELEASE_RUN = "SELECT perdure_release_run($1, $2, $3)"
REQUEST_CANCEL = f"SELECT {RUN_COLUMNS} FROM perdure_request_cancel($1, $2)"  # noqa: S608
RESUME_HOOK = (
    "SELECT token, run_id, correlation_id, name, kind, created_at "
    "FROM perdure_resume_hook($1, $2, $3, $4)"
)
REAP = "SELECT perdure_reap($1, $2, $3)"
UNREGISTER = "SELECT perdure_unregister($1, $2)"
REGISTER = (
    "INSERT INTO workers (id, host, pid, started_at, heartbeat_at) VALUES ($1, $2, $3, $4, $4) "
    "ON CONFLICT (id) DO UPDATE SET host = excluded.host, pid = excluded.pid, "
    "heartbeat_at = excluded.heartbeat_at"
)
HEARTBEAT = (
    "INSERT INTO workers (id, host, pid, started_at, heartbeat_at) VALUES ($1, $2, $3, $4, $4) "
    "ON CONFLICT (id) DO UPDATE SET heartbeat_at = excluded.heartbeat_at"
)


def json_or_none(value: JSON | None) -> str | None:
    """JSON text, or SQL NULL for None (a column with no value)."""
    return None if value is None else dumps(value)


class _Index(NamedTuple):
    """The columns of ``perdure_append``'s change arrays for one event."""

    kind: str | None = None
    key: str | None = None
    name: str | None = None
    status: str | None = None
    attempt: int | None = None
    when: datetime | None = None
    input: str | None = None
    output: str | None = None
    error: str | None = None
    queue: str | None = None


def _index_columns(change: Change | None) -> _Index:  # noqa: PLR0911 - one return per kind
    match change:
        case None:
            return _Index()
        case RunStarted():
            return _Index("started")
        case StepChanged():
            return _Index(
                "step",
                change.correlation_id,
                change.name,
                change.status,
                change.attempt,
                input=json_or_none(change.input),
                output=json_or_none(change.output),
                error=json_or_none(change.error),
                queue=change.queue,
            )
        case TimerSet():
            return _Index("timer_set", change.correlation_id, when=change.wake_at)
        case TimerCleared():
            return _Index("timer_cleared", change.correlation_id)
        case HookAdded():
            return _Index("hook_added", change.token, change.name, change.kind)
        case HookRemoved():
            return _Index("hook_removed", change.token)
        case RunEnded():
            completed = change.status is RunStatus.COMPLETED
            return _Index(
                "ended",
                status=change.status.value,
                output=dumps(change.output) if completed else None,
                error=json_or_none(change.error),
            )


def append_arguments(
    worker_id: str,
    run_id: str,
    events: list[NewEvent],
    now: datetime,
    *,
    durable: bool,
    consume_inbox: list[int] | None,
    consume_tasks: list[int] | None = None,
) -> tuple[Any, ...]:
    """The arguments of `APPEND`, checked and encoded.

    Raises:
        ValueError: an event lacks what its index needs, or follows a terminal event.
        TypeError: event data that is not JSON.
    """
    changes = plan(events)
    data = [dumps(event.data) for event in events]
    index = [_index_columns(change) for change in changes]
    columns = (
        [list(column) for column in zip(*index, strict=True)]
        if index
        else [[]] * len(_Index._fields)
    )
    return (
        worker_id,
        run_id,
        now,
        durable,
        [event.type.value for event in events],
        [event.correlation_id for event in events],
        data,
        *columns,
        consume_inbox or None,
        consume_tasks or None,
    )
