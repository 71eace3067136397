"""Rows a store cannot read: set the column aside and say why, never fail the whole call.

A row may hold what this release cannot read: it was changed by hand, damaged, or
written by a newer release (a run status or an event type this one does not know).
One such row used to fail every call that met it: a claim, a listing, the inbox of a
worker's pass. So one bad run stopped every other run with it (issue 11). Every store
now reads rows the same way, here:

- a run, a step row, a step task or an inbox item is read column by column: a column that cannot
  be read gets a stand-in and a line in the record's ``malformed`` (column: why), and
  the record is returned like any other. A listing shows it flagged; the worker sets
  aside the run the row belongs to, and that run alone (`perdure._errors.RowFormatError`
  says which row and columns);
- an event that cannot be read raises `perdure._log.LogFormatError` naming the run,
  the event's seq and type, and the key (``data`` for a ``data`` column that is not a
  JSON object): only the replay of its own run meets it.

The stores keep their fast paths: they decode as before, and come here only when that
raised or a record fails `suspect`'s cheap checks. PostgreSQL's ``json`` columns refuse
text that is not JSON, but keep JSON nested deeper than Python's `json` reads (a
RecursionError), and any JSON where an object belongs.
"""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from perdure._log import LogFormatError, event_type
from perdure._records import (
    JSON,
    Event,
    EventType,
    InboxItem,
    RunRecord,
    RunStatus,
    StepOutcome,
    StepRecord,
    StepTask,
)

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping, Sequence

__all__ = [
    "CLAIMABLE",
    "UNREADABLE",
    "careful_event",
    "careful_inbox_item",
    "careful_run",
    "careful_step",
    "careful_task",
    "named",
    "suspect",
    "suspect_step",
]

UNREADABLE = (ValueError, TypeError, KeyError, RecursionError, OverflowError, AttributeError)
"""What decoding a bad column raises: json's errors (ValueError, RecursionError for JSON
nested too deep), an unknown status (ValueError, KeyError), a time that is not one."""

CLAIMABLE = "({})".format(", ".join(f"'{s.value}'" for s in RunStatus if not s.is_terminal))
"""The statuses a worker may claim a run in, as SQL (``('pending', 'running', ...)``):
this release's unended ones. A due run of a status it does not know (a newer
release's) is left alone rather than claimed and failed, and sets no wake-up timer."""

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_STATUSES = {status.value: status for status in RunStatus}


class _Columns:
    """One row's columns, read one at a time; each that cannot be read is noted."""

    __slots__ = ("problems", "read_time")

    def __init__(self, read_time: Callable[[Any], datetime]) -> None:
        self.read_time = read_time
        self.problems: dict[str, str] = {}

    def json(self, column: str, text: Any) -> JSON:
        if text is None:
            return None
        try:
            return json.loads(text)
        except RecursionError:
            self.problems[column] = "is JSON nested too deep to read"
        except (ValueError, TypeError) as exc:
            self.problems[column] = f"is not JSON ({exc})"
        return None

    def object(self, column: str, text: Any) -> dict[str, JSON] | None:
        value = self.json(column, text)
        if value is None or isinstance(value, dict):
            return value
        self.problems[column] = f"is not a JSON object: {_shown(value)}"
        return None

    def text(self, column: str, value: Any, *, optional: bool = False) -> str:
        """The text; ``""`` for SQL NULL where ``optional`` (callers turn it into None)."""
        if isinstance(value, str):
            return value
        if value is not None or not optional:
            self.problems[column] = f"is not text: {_shown(value)}"
        return ""

    def name(self, column: str, value: Any) -> str:
        """Text that names something (a token, a correlation id): never empty."""
        if isinstance(value, str) and value:
            return value
        self.problems[column] = f"is not a name: {_shown(value)}"
        return ""

    def integer(self, column: str, value: Any, *, least: int = 0) -> int:
        if isinstance(value, int) and not isinstance(value, bool) and value >= least:
            return value
        self.problems[column] = f"is not a whole number of at least {least}: {_shown(value)}"
        return least

    def time(self, column: str, value: Any) -> datetime:
        try:
            return self.read_time(value)
        except UNREADABLE:
            self.problems[column] = f"is not a time: {_shown(value)}"
            return _EPOCH

    def optional_time(self, column: str, value: Any) -> datetime | None:
        return None if value is None else self.time(column, value)

    def status(self, value: Any) -> RunStatus:
        status = _STATUSES.get(value) if isinstance(value, str) else None
        if status is None:
            self.problems["status"] = (
                f"{_shown(value)} is not a run status this version of perdure knows"
            )
            return RunStatus.RUNNING
        return status


def _shown(value: Any) -> str:
    """A value for an error message, cut short: a damaged column may be huge."""
    text = repr(value)
    return text if len(text) <= 60 else f"{text[:57]}..."  # noqa: PLR2004


def named(*values: Any) -> bool:
    """Whether each value names something: a string, not empty (`_Columns.name`)."""
    return all(isinstance(value, str) and value for value in values)


def suspect(record: RunRecord) -> bool:
    """Whether a record decoded without error still holds what no run holds.

    Cheap checks, made on every run a store reads: SQLite keeps any value in any
    column, and an error that is not an object would fail whoever shows it.
    """
    return not (
        isinstance(record.id, str)
        and isinstance(record.workflow, str)
        and (record.error is None or isinstance(record.error, dict))
        and (record.version is None or isinstance(record.version, str))
        and (record.owner is None or isinstance(record.owner, str))
    )


def careful_run(columns: Mapping[str, Any], read_time: Callable[[Any], datetime]) -> RunRecord:
    """A run from its columns by name (the stores' ``RUN_COLUMNS``), flagged if need be.

    A column without a rule here is optional text (``version``, ``owner``, and those
    added since), so the column lists may grow without this changing.
    """
    read = _Columns(read_time)
    fields: dict[str, Any] = {}
    for column, value in columns.items():
        if column == "id":
            fields["id"] = value if isinstance(value, str) else str(value)
        elif column == "cancel_requested_at":
            fields["cancel_requested"] = value is not None
        elif column == "workflow":
            fields["workflow"] = read.text(column, value)
        elif column == "status":
            fields["status"] = read.status(value)
        elif column in {"input", "output"}:
            fields[column] = read.json(column, value)
        elif column == "error":
            fields["error"] = read.object(column, value)
        elif column in {"created_at", "updated_at"}:
            fields[column] = read.time(column, value)
        elif column == "attributes":
            fields[column] = read.object(column, value)
        elif column in {"started_at", "completed_at", "wake_at", "deadline_at"}:
            fields[column] = read.optional_time(column, value)
        elif column == "recoveries":
            fields[column] = read.integer(column, value)
        else:  # version, owner, and text columns added since
            fields[column] = read.text(column, value, optional=True) or None
    return RunRecord(**fields, malformed=read.problems or None)


def careful_event(
    run_id: str, values: Sequence[Any], read_time: Callable[[Any], datetime]
) -> Event:
    """An event from its columns (seq, type, correlation_id, data, created_at).

    Raises:
        LogFormatError: naming the run, the event's seq and type, and the column at
            fault (``data`` when it is not a JSON object).
    """
    seq, kind, correlation_id, data, created_at = values
    shown_kind = kind if isinstance(kind, str) else repr(kind)
    read = _Columns(read_time)
    number = read.integer("seq", seq, least=1)
    if isinstance(kind, str):
        known: EventType = event_type(kind, run_id=run_id, seq=number)
    else:
        read.problems["type"] = f"is not text: {_shown(kind)}"
        known = EventType.RUN_CREATED
    decoded = read.object("data", data)
    if data is None and "data" not in read.problems:
        read.problems["data"] = "is missing"
    read.text("correlation_id", correlation_id, optional=True)
    when = read.time("created_at", created_at)
    if read.problems:
        key, problem = next(iter(read.problems.items()))
        where = f"run {run_id!r}, event #{seq} ({shown_kind}"
        where += f" {correlation_id})" if isinstance(correlation_id, str) else ")"
        raise LogFormatError(
            f"{where}: {key!r} {problem}",
            run_id=run_id,
            seq=number,
            event_type=shown_kind,
            key=key,
        )
    return Event(run_id, number, known, correlation_id, decoded or {}, when)


def careful_inbox_item(values: Sequence[Any], read_time: Callable[[Any], datetime]) -> InboxItem:
    """An inbox item from its columns, flagged if need be (its payload is then None).

    The columns: id, run_id, token, correlation_id, payload, created_at.
    """
    item_id, run_id, token, correlation_id, payload, created_at = values
    read = _Columns(read_time)
    item = InboxItem(
        item_id,
        run_id,
        read.name("token", token),
        read.name("correlation_id", correlation_id),
        read.json("payload", payload),
        read.time("created_at", created_at),
    )
    if not read.problems:
        return item
    return replace(item, payload=None, malformed=read.problems)


def careful_step(
    run_id: str, values: Sequence[Any], read_time: Callable[[Any], datetime]
) -> StepRecord:
    """A step row from its columns, flagged if need be.

    The columns: correlation_id, name, status, attempt, input, output, error,
    started_at, updated_at. Only listings read step rows (the log is the truth), so a
    damaged one is shown flagged and changes nothing else.
    """
    (correlation_id, name, status, attempt, step_input, output, error, started_at,
     updated_at) = values  # fmt: skip
    read = _Columns(read_time)
    step = StepRecord(
        run_id=run_id,
        correlation_id=read.text("correlation_id", correlation_id),
        name=read.text("name", name),
        status=read.text("status", status),
        attempt=read.integer("attempt", attempt),
        input=read.json("input", step_input),
        output=read.json("output", output),
        error=read.object("error", error),
        started_at=read.time("started_at", started_at),
        updated_at=read.time("updated_at", updated_at),
    )
    return replace(step, malformed=read.problems) if read.problems else step


def suspect_step(step: StepRecord) -> bool:
    """Whether a step row decoded without error still holds what no step row holds."""
    return not (
        named(step.correlation_id, step.name, step.status)
        and isinstance(step.attempt, int)
        and (step.error is None or isinstance(step.error, dict))
    )


def careful_task(values: Sequence[Any], read_time: Callable[[Any], datetime]) -> StepTask:
    """A step task from its columns (in the stores' task column order), flagged if need be."""
    (task_id, run_id, correlation_id, queue, name, task_input, attempt, status, owner, output,
     error, retries, created_at, updated_at) = values  # fmt: skip
    read = _Columns(read_time)
    outcome = None
    if status == "finished":
        retried = read.json("retries", retries)
        if retried is not None and not (
            isinstance(retried, list) and all(isinstance(item, dict) for item in retried)
        ):
            read.problems["retries"] = f"is not a list of failed attempts: {_shown(retried)}"
            retried = None
        outcome = StepOutcome(
            attempt=read.integer("attempt", attempt, least=1),
            output=read.json("output", output),
            error=read.object("error", error),
            retries=tuple(retried or ()),
        )
    task = StepTask(
        id=task_id,
        run_id=run_id,
        correlation_id=read.text("correlation_id", correlation_id),
        queue=read.text("queue", queue),
        name=read.text("name", name),
        input=read.json("input", task_input),
        attempt=read.integer("attempt", attempt, least=1),
        status=read.text("status", status),
        owner=read.text("owner", owner, optional=True) or None,
        created_at=read.time("created_at", created_at),
        updated_at=read.time("updated_at", updated_at),
        outcome=outcome,
    )
    if not read.problems:
        return task
    return replace(task, malformed=read.problems)
