"""How each event changes the tables that index a run's log, decided once for all stores.

`plan` turns the events of one `append` into the index changes they cause, checking
everything that can be checked without the store's state. A store then applies the
changes in order. Because every backend reads the same plan, the memory store and the
database stores agree on what a steps row or a timer looks like after each event.

The changes are plain dataclasses, not frozen ones: a frozen dataclass takes twice as
long to build, a plan is built for every append, and its changes live only as long as
the append; nothing changes them.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from perdure import _log
from perdure._records import JSON, EventType, NewEvent, RunStatus

__all__ = [
    "AttributesChanged",
    "Change",
    "HookAdded",
    "HookRemoved",
    "RunEnded",
    "RunStarted",
    "StepChanged",
    "StepRow",
    "StreamChunkAdded",
    "TimerCleared",
    "TimerSet",
    "cancel_reason",
    "ends_cancelled",
    "fold_steps",
    "plan",
]


@dataclass(slots=True)
class RunStarted:
    """``run_started``: the run is running; ``started_at`` is set the first time."""


@dataclass(slots=True)
class StepChanged:
    """A ``step_*`` event: the step's row now shows this event's state.

    ``input`` is only kept from the first event that carries one; ``output`` and
    ``error`` are those of this event (None when it has none), so a row never shows
    the error of an attempt that a later attempt superseded.

    ``queue`` is set for a ``step_started`` whose data names a queue: the step is run
    by that queue's workers, so the store also queues a step task for it (replacing
    any task of the same step), with this event's name, input and attempt.
    """

    correlation_id: str
    name: str
    status: str
    attempt: int
    input: JSON
    output: JSON | None
    error: dict[str, JSON] | None
    queue: str | None = None


@dataclass(slots=True)
class TimerSet:
    """``sleep_started``: a timer row that fires at ``wake_at``."""

    correlation_id: str
    wake_at: datetime


@dataclass(slots=True)
class TimerCleared:
    """``sleep_completed``: the timer row is gone."""

    correlation_id: str


@dataclass(slots=True)
class HookAdded:
    """``hook_created`` without ``error``: a live hook row, unique by token."""

    token: str
    correlation_id: str
    name: str
    kind: str


@dataclass(slots=True)
class HookRemoved:
    """``hook_disposed``: the run's hook with this token is no longer live."""

    token: str


@dataclass(slots=True)
class RunEnded:
    """A terminal event: the run's final status and result.

    The run is then unheld for good, and its timers, hooks and inbox items are deleted.
    """

    status: RunStatus
    output: JSON | None
    error: dict[str, JSON] | None


@dataclass(slots=True)
class AttributesChanged:
    """``attributes_set``: the run's attribute rows for these keys now hold these values.

    Each row keeps the value (JSON) and its search text (`perdure._attributes`).
    """

    values: dict[str, JSON]


@dataclass(slots=True)
class StreamChunkAdded:
    """``stream_written``: the workflow body's chunk joins its stream, numbered next.

    Keyed by the event's correlation id: a stream holds one row per key.
    """

    stream: str
    key: str
    value: JSON
    close: bool


Change = (
    RunStarted
    | StepChanged
    | TimerSet
    | TimerCleared
    | HookAdded
    | HookRemoved
    | RunEnded
    | AttributesChanged
    | StreamChunkAdded
)


def plan(events: list[NewEvent], run_id: str | None = None) -> list[Change | None]:
    """The index change of each event (None for events that change no index).

    Every event is parsed (`perdure._log`), so a store never logs an event that its
    readers would refuse; ``run_id`` names the run in that error.

    Raises:
        perdure._log.LogFormatError: (a ValueError) an event lacks a key its type
            requires, or has one of the wrong type.
        ValueError: an event follows a terminal event: an ended run never changes.
    """
    changes: list[Change | None] = []
    for position, event in enumerate(events):
        if position and isinstance(changes[-1], RunEnded):
            raise ValueError(
                f"{event.type.value} follows {events[position - 1].type.value} in one "
                "append: nothing may be logged after a run's terminal event"
            )
        if event.type in _OWN_CALLS:
            # They change who may hold the run, so each is written with that change in
            # a store call of its own, never by an append.
            raise ValueError(f"{event.type.value} is written by {_OWN_CALLS[event.type]}")
        changes.append(_change(event, run_id))
    return changes


def ends_cancelled(changes: list[Change | None]) -> bool:
    """Whether an append with these changes ends its run cancelled.

    Once a run's cancel is requested, that is the only append its worker may make
    (`perdure.stores.LogStore.append`).
    """
    if not changes:
        return False
    last = changes[-1]
    return isinstance(last, RunEnded) and last.status is RunStatus.CANCELLED


@dataclass(slots=True)
class StepRow:
    """The row one append leaves for a step, as applying its changes one by one would.

    Name and ``position`` (the index, in the append's events, of the step's first
    change: the row's first_seq if the row is new) come from the step's first change;
    ``input`` from the first change that has one (a row keeps the input it has); status,
    attempt, output and error from its last change.
    """

    position: int
    correlation_id: str
    name: str
    status: str
    attempt: int
    input: JSON
    output: JSON | None
    error: dict[str, JSON] | None


def fold_steps(changes: list[Change | None]) -> list[StepRow]:
    """One row per step the changes touch, in the order first touched.

    A database store writes these rather than each change: a trivial step's
    ``step_started`` and ``step_completed``, logged in one append, cost one upsert.
    """
    rows: dict[str, StepRow] = {}
    for position, change in enumerate(changes):
        if not isinstance(change, StepChanged):
            continue
        row = rows.get(change.correlation_id)
        if row is None:
            rows[change.correlation_id] = StepRow(
                position, change.correlation_id, change.name, change.status, change.attempt,
                change.input, change.output, change.error,
            )  # fmt: skip
            continue
        row.status, row.attempt = change.status, change.attempt
        row.output, row.error = change.output, change.error
        if row.input is None:
            row.input = change.input
    return list(rows.values())


def cancel_reason(reason: str | None) -> dict[str, JSON] | None:
    """The ``error`` a run cancelled for a reason (its deadline) shows; None by a caller."""
    if reason is None:
        return None
    return {"type": "perdure.WorkflowCancelled", "message": reason, "traceback": None}


_OWN_CALLS = {
    EventType.RUN_BLOCKED: "the store's block_run",
    EventType.RUN_UNBLOCKED: "the store's unblock_run",
}


def _change(event: NewEvent, run_id: str | None) -> Change | None:  # noqa: C901, PLR0911, PLR0912 (one per type)
    # The commonest first: a trivial step's append is a step_started and a step_completed.
    match _log.parse(event, run_id=run_id):
        case _log.StepStarted() as e:
            return StepChanged(
                e.correlation_id, e.name, "running", e.attempt, e.input, None, None, e.queue
            )
        case _log.StepCompleted() as e:
            return StepChanged(
                e.correlation_id, e.name, "completed", e.attempt, None, e.output, None
            )
        case _log.StepRetrying() as e:
            return StepChanged(e.correlation_id, e.name, "retrying", e.attempt, None, None, e.error)
        case _log.StepFailed() as e:
            return StepChanged(e.correlation_id, e.name, "failed", e.attempt, None, None, e.error)
        case _log.StepCancelled() as e:
            return StepChanged(e.correlation_id, e.name, "cancelled", e.attempt, None, None, None)
        case _log.RunStarted():
            return RunStarted()
        case _log.SleepStarted() as e:
            return TimerSet(e.correlation_id, e.wake_at)
        case _log.SleepCompleted() as e:
            return TimerCleared(e.correlation_id)
        case _log.HookCreated() as e if e.error is None:
            return HookAdded(e.token, e.correlation_id, e.name, e.kind)
        case _log.HookDisposed() as e:
            return HookRemoved(e.token)
        case _log.RunCompleted() as e:
            return RunEnded(RunStatus.COMPLETED, e.output, None)
        case _log.RunFailed() as e:
            return RunEnded(RunStatus.FAILED, None, e.error)
        case _log.RunCancelled() as e:
            return RunEnded(RunStatus.CANCELLED, None, cancel_reason(e.reason))
        case _log.AttributesSet() as e:
            return AttributesChanged(e.values)
        case _log.StreamWritten() as e:
            return StreamChunkAdded(e.stream, e.correlation_id, e.value, e.close)
    # run_created is written by create_run, hook_received by its append; a hook_created
    # with an error records a taken token: no hook is live.
    return None
