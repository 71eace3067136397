"""The parameters of the PostgreSQL store's write functions (see the migrations).

`append_arguments` turns one `append` into the arguments of ``perdure_append``: the
events as parallel arrays and, next to each, the index change `perdure.stores._index`
planned for it, so the database applies exactly what every other store applies. All
JSON is encoded here, before anything is sent: a value that is not JSON is a TypeError
and nothing is written. `append_many_arguments` lays many appends out for
``perdure_append_many``, which commits them together.
"""

from __future__ import annotations

from collections import Counter
from datetime import datetime
from typing import TYPE_CHECKING, Any, NamedTuple

from perdure._records import RunStatus
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
    fold_steps,
    plan,
)
from perdure.stores.postgres._rows import RUN_COLUMNS, dumps

if TYPE_CHECKING:
    from perdure._records import JSON, NewEvent

__all__ = [
    "APPEND",
    "APPEND_MANY",
    "APPEND_PLAIN",
    "BLOCK_RUN",
    "CREATE_RUN",
    "CREATE_RUNS",
    "FINISH_STEP_TASK",
    "HEARTBEAT",
    "REAP",
    "REGISTER",
    "RELEASE_RUN",
    "REQUEST_CANCEL",
    "RESUME_HOOK",
    "UNBLOCK_RUN",
    "UNREGISTER",
    "Append",
    "NewRunRow",
    "append_arguments",
    "append_many_arguments",
    "json_or_none",
]

CREATE_RUN = "SELECT perdure_create_run($1, $2, $3, $4, $5, $6)"
CREATE_RUNS = "SELECT created FROM perdure_create_runs($1, $2, $3, $4, $5, $6)"
APPEND = (
    "SELECT perdure_append($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, "
    "$16, $17, $18, $19)"
)
APPEND_MANY = (
    "SELECT seq, failure, detail FROM perdure_append_many($1, $2, $3, $4, $5, $6, $7, $8, $9, "
    "$10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $20, $21, $22)"
)
# A lone plain append (migration 0016): the step rows come folded, as for APPEND_MANY.
APPEND_PLAIN = (
    "SELECT perdure_append_plain($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, "
    "$15, $16)"
)
FINISH_STEP_TASK = "SELECT perdure_finish_step_task($1, $2, $3, $4, $5, $6, $7)"
RELEASE_RUN = "SELECT perdure_release_run($1, $2, $3)"
REQUEST_CANCEL = f"SELECT {RUN_COLUMNS} FROM perdure_request_cancel($1, $2)"  # noqa: S608
BLOCK_RUN = "SELECT perdure_block_run($1, $2, $3, $4, $5)"
UNBLOCK_RUN = f"SELECT {RUN_COLUMNS} FROM perdure_unblock_run($1, $2, $3)"  # noqa: S608
RESUME_HOOK = (  # the form of migration 0005, which checks the hook is the one expected
    "SELECT token, run_id, correlation_id, name, kind, created_at "
    "FROM perdure_resume_hook($1, $2, $3, $4, $5, $6)"
)
REAP = "SELECT perdure_reap($1, $2, $3)"
UNREGISTER = "SELECT perdure_unregister($1, $2)"
REGISTER = (
    "INSERT INTO workers (id, host, pid, started_at, heartbeat_at) VALUES ($1, $2, $3, $4, $4) "
    "ON CONFLICT (id) DO UPDATE SET host = excluded.host, pid = excluded.pid, "
    "heartbeat_at = excluded.heartbeat_at"
)
# Whether the row was there to renew (false: the worker was reaped); the row is put
# back either way. Both statements see one snapshot, so the insert runs only when the
# update found nothing (a reaper that deleted the row first has committed by then: the
# update waited for its lock).
HEARTBEAT = """
    WITH renewed AS (
        UPDATE workers SET heartbeat_at = $4 WHERE id = $1 RETURNING 1
    ), restored AS (
        INSERT INTO workers (id, host, pid, started_at, heartbeat_at, process)
        SELECT $1, $2, $3, $4, $4, $5 WHERE NOT EXISTS (SELECT 1 FROM renewed)
        ON CONFLICT (id) DO UPDATE SET heartbeat_at = excluded.heartbeat_at
        RETURNING 1
    )
    SELECT EXISTS (SELECT 1 FROM renewed)
"""


def json_or_none(value: JSON | None) -> str | None:
    """JSON text, or SQL NULL for None (a column with no value)."""
    return None if value is None else dumps(value)


class NewRunRow(NamedTuple):
    """The arguments of `CREATE_RUN`: a new run, its JSON encoded."""

    id: str
    workflow: str
    input: str
    version: str | None
    data: str
    at: datetime


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
        case AttributesChanged():
            return _Index()  # indexed by the events trigger of migration 0010
        case StreamChunkAdded():
            return _Index()  # added to its stream by the events trigger of migration 0014
        case RunEnded():
            completed = change.status is RunStatus.COMPLETED
            return _Index(
                "ended",
                status=change.status.value,
                output=dumps(change.output) if completed else None,
                error=json_or_none(change.error),
            )


def _is_plain(change: Change | None) -> bool:
    """Whether a change leaves an append plain (see ``perdure_append_many``).

    It changes a step (not queued), the run's start, an index the events triggers keep
    (attributes, streams), or nothing.
    """
    if isinstance(change, StepChanged):
        return change.queue is None
    return change is None or isinstance(change, RunStarted | AttributesChanged | StreamChunkAdded)


class Append(NamedTuple):
    """One `append`, checked and encoded: what ``perdure_append`` takes."""

    worker: str
    run: str
    at: datetime
    durable: bool
    events: tuple[list[str], list[str | None], list[str]]
    """The event arrays: type, correlation id, data (JSON text)."""
    changes: list[Change | None]
    """Each event's index change (`perdure.stores._index.plan`)."""
    consume_inbox: list[int] | None
    consume_tasks: list[int] | None
    steps: list[StepRow]
    """The step rows it leaves (`fold_steps`)."""
    plain: bool
    """Whether a batch may write it with its other plain appends (``perdure_append_many``),
    and, alone, ``perdure_append_plain``."""
    started: bool
    """Whether it logs the run's start."""

    def columns(self) -> tuple[list[Any], ...]:
        """The event arrays, then the `_Index` columns: what ``perdure_append`` takes.

        Made when asked for: a plain append, the commonest, is sent without them.
        """
        index = [_index_columns(change) for change in self.changes]
        if not index:
            return (*self.events, *([] for _ in _Index._fields))
        return (*self.events, *(list(column) for column in zip(*index, strict=True)))

    def item(self) -> tuple[Any, ...]:
        """The append as a ``perdure_append_item`` row, for `APPEND_MANY`."""
        return (
            self.worker,
            self.run,
            self.at,
            *self.columns(),
            self.consume_inbox,
            self.consume_tasks,
        )

    def arguments(self) -> tuple[Any, ...]:
        """The arguments of `APPEND`: the row, with ``durable`` after the time."""
        worker, run, at, *rest = self.item()
        return (worker, run, at, self.durable, *rest)

    def plain_arguments(self) -> tuple[Any, ...]:
        """The arguments of `APPEND_PLAIN`, for a plain append: its events, folded steps."""
        _, *steps = _plain_steps([self])  # but the column that says which append
        return (self.worker, self.run, self.at, self.durable, *self.events, self.started,
                *steps)  # fmt: skip


def append_arguments(
    worker_id: str,
    run_id: str,
    events: list[NewEvent],
    now: datetime,
    *,
    durable: bool,
    consume_inbox: list[int] | None,
    consume_tasks: list[int] | None = None,
) -> Append:
    """The append, checked and encoded, ready for `APPEND` or `APPEND_MANY`.

    Raises:
        ValueError: an event is malformed (`perdure._log.LogFormatError`), or follows a
            terminal event.
        TypeError: event data that is not JSON.
    """
    changes = plan(events, run_id)
    # All the JSON there is: the index columns (`Append.columns`) hold parts of it.
    data = [dumps(event.data) for event in events]
    types = [event.type.value for event in events]
    correlation_ids = [event.correlation_id for event in events]
    return Append(
        worker_id,
        run_id,
        now,
        durable,
        (types, correlation_ids, data),
        changes,
        consume_inbox or None,
        consume_tasks or None,
        fold_steps(changes),
        plain=all(map(_is_plain, changes)) and not consume_inbox and not consume_tasks,
        started=any(isinstance(change, RunStarted) for change in changes),
    )


def append_many_arguments(appends: list[Append]) -> tuple[tuple[Any, ...], list[int]]:
    """The arguments of `APPEND_MANY` for ``appends``, and which append each row answers.

    The plain appends go as arrays of columns, their events laid end to end, each with
    its append's 1-based position and its own within it; the others as rows of
    ``perdure_append_item`` (see ``perdure_append_many``). The batch is durable when one
    of its appends is. The rows come back plain appends first, so the second value
    lists, for each row in order, the position in ``appends`` of the append it answers.
    """
    repeated = {run for run, count in Counter(a.run for a in appends).items() if count > 1}
    plain = [i for i, a in enumerate(appends) if a.plain and a.run not in repeated]
    others = [i for i, a in enumerate(appends) if not (a.plain and a.run not in repeated)]
    arguments = (
        sorted({append.run for append in appends}),
        any(append.durable for append in appends),
        [appends[i].worker for i in plain],
        [appends[i].run for i in plain],
        [appends[i].at for i in plain],
        [len(appends[i].events[0]) for i in plain],
        [appends[i].started for i in plain],
        *_plain_events([appends[i] for i in plain]),
        *_plain_steps([appends[i] for i in plain]),
        [appends[i].item() for i in others],
    )
    return arguments, plain + others


def _plain_events(appends: list[Append]) -> list[list[Any]]:
    """The events of plain appends, laid end to end, as `APPEND_MANY` takes them.

    For each event: the 1-based position of its append and its own within it, type,
    correlation id, data.
    """
    items: list[int] = []
    positions: list[int] = []
    types: list[str] = []
    correlation_ids: list[str | None] = []
    data: list[str] = []
    for item, append in enumerate(appends, start=1):
        count = len(append.events[0])
        items.extend([item] * count)
        positions.extend(range(1, count + 1))
        types.extend(append.events[0])
        correlation_ids.extend(append.events[1])
        data.extend(append.events[2])
    return [items, positions, types, correlation_ids, data]


def _plain_steps(appends: list[Append]) -> list[list[Any]]:
    """The step rows plain appends leave, as `APPEND_MANY` takes them.

    For each row: the 1-based position of its append, then its own 1-based position
    among the append's events, correlation id, name, status, attempt, input, output
    and error (JSON text).
    """
    columns: list[list[Any]] = [[] for _ in range(9)]
    for item, append in enumerate(appends, start=1):
        for row in append.steps:
            values = (item, row.position + 1, row.correlation_id, row.name, row.status,
                      row.attempt, json_or_none(row.input), json_or_none(row.output),
                      json_or_none(row.error))  # fmt: skip
            for column, value in zip(columns, values, strict=True):
                column.append(value)
    return columns
