"""The plain values that cross the boundary between the engine and a store.

Everything here is immutable and holds only JSON-able data: the engine encodes user
values (with `perdure._serde`) before they reach a store, and a store never sees a
Python object it would have to pickle.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

__all__ = [
    "JSON",
    "Event",
    "EventType",
    "HookRecord",
    "InboxItem",
    "NewEvent",
    "NewRun",
    "RunRecord",
    "RunStatus",
    "StepOutcome",
    "StepRecord",
    "StepTask",
    "WorkerRecord",
]

JSON = Any
"""A value made only of dict, list, str, int, float, bool and None."""


class RunStatus(enum.StrEnum):
    """Where a run is in its life. A run that sleeps or waits on a hook is `running`."""

    PENDING = "pending"
    RUNNING = "running"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"
    BLOCKED = "blocked"
    """Not terminal, never failed: its replay diverged from the log, or the workflow's own
    code raised one of its ``block_on`` errors. A worker whose code differs, or
    ``engine.unblock``, tries it again; ``RunRecord.blocked_reason`` says why."""

    @property
    def is_terminal(self) -> bool:
        """Whether the run has ended and will never change again."""
        return self in _TERMINAL


_TERMINAL = frozenset({RunStatus.COMPLETED, RunStatus.FAILED, RunStatus.CANCELLED})


class EventType(enum.StrEnum):
    """The kinds of entry in a run's log. The log is the truth; tables index it.

    The ``data`` each type carries, its constructor and its parser, and the rule for
    changing any of them, are in `perdure._log`: build and read events there, never
    with ``data["..."]`` by hand.
    """

    RUN_CREATED = "run_created"
    RUN_STARTED = "run_started"
    STEP_STARTED = "step_started"
    STEP_COMPLETED = "step_completed"
    STEP_FAILED = "step_failed"
    STEP_RETRYING = "step_retrying"
    SLEEP_STARTED = "sleep_started"
    SLEEP_COMPLETED = "sleep_completed"
    HOOK_CREATED = "hook_created"
    HOOK_RECEIVED = "hook_received"
    HOOK_DISPOSED = "hook_disposed"
    RUN_COMPLETED = "run_completed"
    RUN_FAILED = "run_failed"
    RUN_CANCELLED = "run_cancelled"
    RUN_BLOCKED = "run_blocked"
    RUN_UNBLOCKED = "run_unblocked"
    PATCH_MARKED = "patch_marked"
    ATTRIBUTES_SET = "attributes_set"
    CHILD_STARTED = "child_started"
    CHILD_COMPLETED = "child_completed"
    STEP_CANCELLED = "step_cancelled"
    STREAM_WRITTEN = "stream_written"


@dataclass(frozen=True, slots=True)
class NewEvent:
    """An event to append; the store gives it its sequence number and time."""

    type: EventType
    correlation_id: str | None = None
    data: dict[str, JSON] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Event:
    """One entry of a run's log, as stored."""

    run_id: str
    seq: int
    type: EventType
    correlation_id: str | None
    data: dict[str, JSON]
    created_at: datetime


@dataclass(frozen=True, slots=True)
class NewRun:
    """A run to create. `input` is the encoded call (``{"args": [...], "kwargs": {...}}``)."""

    id: str
    workflow: str
    input: JSON
    version: str | None = None
    attributes: dict[str, JSON] | None = None
    """Searchable attributes the run starts with (``perdure.set_attributes`` adds more);
    the engine's own way to label a run when it creates it (a schedule's id and tick).
    Checked by `perdure._attributes.check_attributes` before it gets here."""
    deadline: datetime | None = None
    """When the run is cancelled if it has not ended (``timeout=``); None: never."""
    parent_id: str | None = None
    """The run that started this one as its child (`perdure.start_child`), or None."""
    root_id: str | None = None
    """The top of the parent's tree (the parent's own root, or the parent); None for a
    run nobody started as a child."""
    parent_call: str | None = None
    """The child's correlation id in its parent's log (``child.NAME#n``): the store
    tells the parent of the child's end under it, in the transaction that ends it."""


@dataclass(frozen=True, slots=True)
class RunRecord:
    """A run as its row stands: an index over its log, kept in step with it."""

    id: str
    workflow: str
    status: RunStatus
    input: JSON
    output: JSON | None
    error: dict[str, JSON] | None
    version: str | None
    created_at: datetime
    updated_at: datetime
    started_at: datetime | None
    completed_at: datetime | None
    owner: str | None
    """The worker holding the run, or None when no worker holds it."""
    wake_at: datetime | None
    """When an unheld run becomes claimable again; None while held or ended."""
    cancel_requested: bool
    blocked_reason: str | None = None
    """Why the run is `RunStatus.BLOCKED` (None otherwise): what the log holds and what
    the code called, or the traceback of the workflow's error, with the code versions."""
    malformed: dict[str, str] | None = None
    """The columns of the row this release could not read, each with why (None: all
    read). Such a row is damaged, changed by hand, or written by a newer release (a
    status this one does not know); its record still lists, with each column named here
    holding a stand-in: None, the epoch for a time, `RunStatus.RUNNING` for a status (not
    ended, as far as this release can tell). See `perdure._errors.RowFormatError`."""
    deadline_at: datetime | None = None
    """When the run is cancelled if it has not ended by then (``timeout=``), or None."""
    attributes: dict[str, JSON] | None = None
    """The run's searchable attributes (`perdure.set_attributes`), key -> str, int,
    float or bool; None when it has none. Filled by `get_run` and `list_runs`."""
    forked_from: str | None = None
    """The run this one was forked from (`Engine.fork`), or None."""
    parent_id: str | None = None
    """The run that started this one as its child, or None (`perdure.start_child`)."""
    root_id: str | None = None
    """The top of its tree of runs when it is a child (None for a run with no parent)."""
    recoveries: int = 0
    """Times in a row the run was taken from a worker found dead (its lease lapsed) with
    no progress in between: a run whose recovery keeps killing its worker is blocked
    once this reaches the worker's ``poison_after``. A clean hand back resets it."""


@dataclass(frozen=True, slots=True)
class StepRecord:
    """A step call's row: its latest state, for listings (the log has the full story)."""

    run_id: str
    correlation_id: str
    name: str
    status: str
    """``running``, ``retrying``, ``completed``, ``failed`` or ``cancelled`` (its run was
    cancelled while an attempt ran)."""
    attempt: int
    input: JSON
    output: JSON | None
    error: dict[str, JSON] | None
    started_at: datetime
    updated_at: datetime
    malformed: dict[str, str] | None = None
    """The columns this release could not read, each with why (None: all read); each
    holds a stand-in (None, 0, the epoch, ``""``)."""


@dataclass(frozen=True, slots=True)
class HookRecord:
    """A live hook: a token that `resume` can deliver to."""

    token: str
    run_id: str
    correlation_id: str
    name: str
    kind: str
    created_at: datetime


@dataclass(frozen=True, slots=True)
class InboxItem:
    """A payload that `resume` stored and the run's worker has not yet logged."""

    id: int
    run_id: str
    token: str
    correlation_id: str
    payload: JSON
    created_at: datetime
    malformed: dict[str, str] | None = None
    """The columns this release could not read, each with why (None: all read); the
    payload is then None. The run's worker delivers it as an error at the hook's await."""


@dataclass(frozen=True, slots=True)
class StepOutcome:
    """How a step task ended, as the worker that ran it reports it.

    ``error`` is None when the step succeeded (``output`` is then its encoded value,
    which may be JSON null); otherwise it is the error record of the last attempt.
    ``retries`` are the attempts that failed before the last one, in order, each as
    ``{"attempt": n, "error": {...}, "retry_at": "<ISO 8601>"}``: the holder of the
    run logs one ``step_retrying`` event for each.
    """

    attempt: int
    """The last attempt made (1-based)."""
    output: JSON | None = None
    error: dict[str, JSON] | None = None
    retries: tuple[dict[str, JSON], ...] = ()

    @property
    def succeeded(self) -> bool:
        """Whether the step returned (rather than failed for good)."""
        return self.error is None


@dataclass(frozen=True, slots=True)
class StepTask:
    """A step call routed to a queue: the row a queue's workers claim and finish.

    Written by the ``step_started`` event that carries a ``queue``, in the same
    transaction; deleted when the run's holder logs the outcome (``append(...,
    consume_tasks=[id])``) or when the run ends.
    """

    id: int
    """Never reused, so consuming or finishing a stale id cannot touch a newer task."""
    run_id: str
    correlation_id: str
    queue: str
    name: str
    """The step's name: a queue worker finds the step's code by it."""
    input: JSON
    attempt: int
    """While queued or claimed, the attempt to start with; once finished, the last one made."""
    status: str
    """``queued`` (claimable), ``claimed`` (a worker runs it) or ``finished``."""
    owner: str | None
    """The worker that claimed it (and, once finished, the one that ran it)."""
    created_at: datetime
    updated_at: datetime
    outcome: StepOutcome | None = None
    """Set once finished."""
    malformed: dict[str, str] | None = None
    """The columns this release could not read, each with why (None: all read); they
    hold stand-ins (None, attempt 1). Such a task's step fails, naming them."""


@dataclass(frozen=True, slots=True)
class WorkerRecord:
    """A live worker as the store knows it: where it runs and what code it has."""

    id: str
    host: str
    pid: int
    started_at: datetime
    heartbeat_at: datetime
    workflows: dict[str, str]
    """The workflows the worker defines: name -> code version."""
