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
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from perdure._records import JSON, EventType, NewEvent, RunStatus

if TYPE_CHECKING:
    from collections.abc import Callable

__all__ = [
    "Change",
    "HookAdded",
    "HookRemoved",
    "RunEnded",
    "RunStarted",
    "StepChanged",
    "StepRow",
    "TimerCleared",
    "TimerSet",
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


Change = RunStarted | StepChanged | TimerSet | TimerCleared | HookAdded | HookRemoved | RunEnded

_STEP_STATUS = {
    EventType.STEP_STARTED: "running",
    EventType.STEP_RETRYING: "retrying",
    EventType.STEP_COMPLETED: "completed",
    EventType.STEP_FAILED: "failed",
}

_TERMINAL_STATUS = {
    EventType.RUN_COMPLETED: RunStatus.COMPLETED,
    EventType.RUN_FAILED: RunStatus.FAILED,
    EventType.RUN_CANCELLED: RunStatus.CANCELLED,
}


def plan(events: list[NewEvent]) -> list[Change | None]:
    """The index change of each event (None for events that change no index).

    Raises:
        ValueError: an event lacks what its index needs (a correlation id, a token, a
            wake time), or an event follows a terminal event: an ended run never changes.
    """
    changes: list[Change | None] = []
    for position, event in enumerate(events):
        if position and isinstance(changes[-1], RunEnded):
            raise ValueError(
                f"{event.type.value} follows {events[position - 1].type.value} in one "
                "append: nothing may be logged after a run's terminal event"
            )
        changes.append(_change(event))
    return changes


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


def _change(event: NewEvent) -> Change | None:
    build = _BUILDERS.get(event.type)
    return None if build is None else build(event)


def _step(event: NewEvent) -> StepChanged:
    data = event.data
    return StepChanged(
        correlation_id=_correlation_id(event),
        name=str(data.get("name", "")),
        status=_STEP_STATUS[event.type],
        attempt=int(data.get("attempt", 1)),
        input=data.get("input"),
        output=data.get("output"),
        error=data.get("error"),
        queue=_queue(event) if event.type is EventType.STEP_STARTED else None,
    )


def _queue(event: NewEvent) -> str | None:
    queue = event.data.get("queue")
    if queue is None:
        return None
    if not isinstance(queue, str) or not queue:
        raise ValueError(f"a {event.type.value} event's 'queue' must be a non-empty string")
    return queue


def _hook_created(event: NewEvent) -> HookAdded | None:
    if "error" in event.data:  # the token was taken: the log says so, no hook is live
        return None
    return HookAdded(
        token=_token(event),
        correlation_id=_correlation_id(event),
        name=str(event.data.get("name", "")),
        kind=str(event.data.get("kind", "hook")),
    )


def _run_ended(event: NewEvent) -> RunEnded:
    return RunEnded(_TERMINAL_STATUS[event.type], event.data.get("output"), event.data.get("error"))


_BUILDERS: dict[EventType, Callable[[NewEvent], Change | None]] = {
    EventType.RUN_STARTED: lambda _: RunStarted(),
    **dict.fromkeys(_STEP_STATUS, _step),
    EventType.SLEEP_STARTED: lambda e: TimerSet(_correlation_id(e), _parse_time(e, "wake_at")),
    EventType.SLEEP_COMPLETED: lambda e: TimerCleared(_correlation_id(e)),
    EventType.HOOK_CREATED: _hook_created,
    EventType.HOOK_DISPOSED: lambda e: HookRemoved(_token(e)),
    **dict.fromkeys(_TERMINAL_STATUS, _run_ended),
}


def _correlation_id(event: NewEvent) -> str:
    if not event.correlation_id:
        raise ValueError(f"a {event.type.value} event needs a correlation id")
    return event.correlation_id


def _token(event: NewEvent) -> str:
    token = event.data.get("token")
    if not isinstance(token, str) or not token:
        raise ValueError(f"a {event.type.value} event needs a non-empty 'token' string")
    return token


def _parse_time(event: NewEvent, key: str) -> datetime:
    """An ISO 8601 time from the event's data; one without an offset is taken as UTC."""
    try:
        moment = datetime.fromisoformat(event.data[key])
    except (KeyError, TypeError, ValueError) as exc:
        raise ValueError(f"a {event.type.value} event needs {key!r} as an ISO 8601 string") from exc
    if moment.tzinfo is None:
        return moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC)
