"""The JSON shapes of runs, events, steps and hooks, shared by the CLI and the HTTP API.

Each is plain JSON (ISO 8601 times, enum values as strings) with the same keys every
time, so scripts may rely on them. Each shape is a `TypedDict`: mypy checks every
place that builds one, and the HTTP API's OpenAPI document generates its schemas from
these same classes (`perdure.http._openapi`), so the document cannot say one thing
while the API returns another. Field metadata (``Annotated[..., Field(...)]``) is for
that document; it costs nothing at run time.

A run's *timeline* is also built here from its log (`spans`), for ``perdure show`` and
the dashboard alike: one span per step attempt (started until it completed, failed or
was retried), one per sleep, one per hook (created until disposed, with the payloads it
received), in the order they began.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Annotated, Any, Literal, TypeVar

from pydantic import Field, WithJsonSchema
from typing_extensions import TypedDict  # pydantic reads only this one's fields on 3.11

from perdure._flow_views import RunWaiting
from perdure._log import (
    ChildCompleted,
    ChildStarted,
    HookCreated,
    HookDisposed,
    HookReceived,
    LogFormatError,
    PatchMarked,
    SleepCompleted,
    SleepStarted,
    StepCancelled,
    StepCompleted,
    StepFailed,
    StepRetrying,
    StepStarted,
    parse,
)
from perdure._records import JSON, EventType, RunStatus
from perdure._worker_views import RunFleet, fleet_json

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence
    from datetime import datetime

    from perdure._fleet import Fleet
    from perdure._records import Event, HookRecord, RunRecord, StepRecord

__all__ = [
    "UNREADABLE",
    "EventList",
    "Hook",
    "HookDetail",
    "HookList",
    "LogEvent",
    "ReceivedPayload",
    "RunDetail",
    "RunFull",
    "RunList",
    "RunSummary",
    "ShownRun",
    "Span",
    "StepRow",
    "Timeline",
    "TimelineSpan",
    "event_json",
    "hook_detail_json",
    "hook_json",
    "iso",
    "json_text",
    "malformed_text",
    "problems_text",
    "run_detail_json",
    "run_full_json",
    "run_json",
    "shown_run_json",
    "span_json",
    "spans",
    "step_json",
    "timeline_json",
    "with_fleet",
]

# -- the types of single values -----------------------------------------------------

Timestamp = Annotated[str, WithJsonSchema({"type": "string", "format": "date-time"})]
"""An ISO 8601 time with its UTC offset."""

UNREADABLE = "unreadable"
"""The status shown for a run whose row holds a status this release does not know."""

RunStatusName = Annotated[
    str,
    WithJsonSchema(
        {"type": "string", "enum": [*(status.value for status in RunStatus), UNREADABLE]}
    ),
]
EventTypeName = Annotated[
    str, WithJsonSchema({"type": "string", "enum": [kind.value for kind in EventType]})
]
Encoded = Annotated[JSON, Field(description="A value as perdure stores it (JSON).")]
ErrorJson = Annotated[
    dict[str, JSON] | None,
    Field(description="The error, when there is one: its type, message and traceback."),
]

SpanKind = Literal["step", "sleep", "hook", "patch", "child"]
SpanOutcome = Literal[
    "running",
    "completed",
    "retrying",
    "failed",
    "sleeping",
    "cancelled",
    "waiting",
    "received",
    "disposed",
    "conflict",
    "marked",
]
"""``running``, ``completed``, ``retrying``, ``failed`` or ``cancelled`` (steps: the
attempt ran when the run was cancelled); ``sleeping``, ``completed`` or ``cancelled``
(sleeps); ``waiting``, ``received``, ``disposed`` or ``conflict`` (hooks); ``marked`` (a
patch whose new branch the run took); ``running``, ``completed``, ``failed`` or
``cancelled`` (child runs)."""


def iso(moment: datetime | None) -> str | None:
    """ISO 8601 text, or None."""
    return moment.isoformat() if moment is not None else None


def json_text(value: Any, *, indent: int | None = None, ascii_only: bool = True) -> str:
    """``value`` as JSON text that every JSON parser reads, for the HTTP API and ``--json``.

    Nothing perdure writes today holds NaN or an infinity, but a log written by an older
    release, or by hand, may: Python's `json` would print them as bare ``NaN`` and
    ``Infinity``, which are not JSON, and a browser's ``JSON.parse`` would refuse the
    whole answer (the dashboard could not show that run at all). They are written as
    the strings ``"NaN"``, ``"Infinity"`` and ``"-Infinity"`` instead. Values that are
    not JSON (a datetime) are written as their ``str``.
    """
    separators = (",", ": ") if indent is not None else (",", ":")
    options: dict[str, Any] = {
        "indent": indent,
        "ensure_ascii": ascii_only,
        "separators": separators,
        "default": str,
        "allow_nan": False,
    }
    try:
        return json.dumps(value, **options)
    except ValueError:  # a non-finite number somewhere: the rare case pays for a copy
        return json.dumps(_finite(value), **options)


def _finite(value: Any) -> Any:
    """``value`` with each non-finite float replaced by its name, as a string."""
    if isinstance(value, float) and not math.isfinite(value):
        return "NaN" if math.isnan(value) else ("Infinity" if value > 0 else "-Infinity")
    if isinstance(value, dict):
        return {key: _finite(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(item) for item in value]
    return value


# -- runs -------------------------------------------------------------------------------


class RunSummary(RunFleet, RunWaiting):
    """A run as listed: ``GET /runs``, ``perdure runs --json``.

    With the live workers read too, it has `RunFleet`'s keys (the versions of its
    workflow they define, and why none can take it, if so).
    """

    id: str
    workflow: str
    status: RunStatusName
    created_at: Timestamp
    updated_at: Timestamp
    started_at: Timestamp | None
    completed_at: Timestamp | None
    version: Annotated[str | None, Field(description="The workflow's code version.")]
    forked_from: Annotated[
        str | None, Field(description="The run this one was forked from (null if none).")
    ]
    parent_id: Annotated[
        str | None,
        Field(description="The run that started this one as its child (null if none)."),
    ]
    root_id: Annotated[
        str | None,
        Field(description="The top of a child run's tree of runs (null for a top-level run)."),
    ]
    deadline_at: Annotated[
        Timestamp | None,
        Field(
            description="When the run is cancelled if it has not ended (timeout=); null for none."
        ),
    ]
    attributes: Annotated[
        dict[str, str | int | float | bool],
        Field(
            description="The run's searchable attributes (perdure.set_attributes), key to "
            "value; empty for none."
        ),
    ]
    cancel_requested: bool
    blocked_reason: Annotated[
        str | None,
        Field(
            description="Why a blocked run is blocked (null otherwise): what its log holds "
            "and what the code called, or the traceback of the workflow's error, with the "
            "code version of each side."
        ),
    ]
    error: Annotated[
        dict[str, JSON] | None,
        Field(
            description="A failed run's error: its type and message (a run's full form "
            "has its traceback too)."
        ),
    ]
    malformed: Annotated[
        str | None,
        Field(
            description="What this release cannot read in the run's row (damaged, or "
            "written by a newer release), column by column; null when it reads all of "
            "it. The fields it names are stand-ins; a status it names shows as "
            "'unreadable'."
        ),
    ]


class RunFull(RunSummary):
    """Every field of a run's row."""

    input: Annotated[JSON, Field(description="The encoded call: the arguments by name.")]
    output: Annotated[JSON, Field(description="The encoded return value, once completed.")]
    owner: Annotated[str | None, Field(description="The worker holding the run, if any.")]
    wake_at: Annotated[
        Timestamp | None, Field(description="When an unheld run becomes claimable again.")
    ]


class ChildRow(TypedDict):
    """A child run of a run, as its parent's detail lists it."""

    id: str
    workflow: str
    status: RunStatusName
    created_at: Timestamp
    completed_at: Timestamp | None


class RunDetail(RunFull):
    """One run, as the HTTP API returns it: every field, and its result once completed."""

    result: Annotated[
        JSON,
        Field(
            description="The return value (encoded as stored) when the run completed, else null."
        ),
    ]
    children: Annotated[
        list[ChildRow],
        Field(description="The child runs it started (perdure.start_child), oldest first."),
    ]


class RunList(TypedDict):
    """Runs, newest first, and the cursor of the next page."""

    runs: list[RunSummary]
    next: Annotated[
        str | None,
        Field(
            description="Pass it as `after` for the next page, the runs after these "
            "(stable while runs are created); null on the last page."
        ),
    ]


def _error_summary(error: dict[str, JSON] | None) -> dict[str, JSON] | None:
    if error is None:
        return None
    return {"type": error.get("type"), "message": error.get("message")}


def malformed_text(record: RunRecord) -> str | None:
    """What cannot be read in the run's row, one ``column problem`` after another; or None."""
    return problems_text(record.malformed)


def problems_text(malformed: Mapping[str, str] | None) -> str | None:
    """A row's unreadable columns, one ``column problem`` after another; or None."""
    if malformed is None:
        return None
    return "; ".join(f"{column} {problem}" for column, problem in malformed.items())


def _status(record: RunRecord) -> str:
    """The run's status, or ``unreadable`` when its row holds one this release does not know."""
    if record.malformed is not None and "status" in record.malformed:
        return UNREADABLE
    return record.status.value


def run_json(record: RunRecord) -> RunSummary:
    """A run as listed; its ``error`` is a summary (type and message).

    A row that cannot be read in full is listed all the same, flagged in ``malformed``.
    """
    return RunSummary(
        id=record.id,
        workflow=record.workflow,
        status=_status(record),
        created_at=record.created_at.isoformat(),
        updated_at=record.updated_at.isoformat(),
        started_at=iso(record.started_at),
        completed_at=iso(record.completed_at),
        version=record.version,
        forked_from=record.forked_from,
        parent_id=record.parent_id,
        root_id=record.root_id,
        deadline_at=iso(record.deadline_at),
        attributes=record.attributes or {},
        cancel_requested=record.cancel_requested,
        blocked_reason=record.blocked_reason,
        error=_error_summary(record.error),
        malformed=malformed_text(record),
    )


def run_full_json(record: RunRecord) -> RunFull:
    """Every field of a run's row (its ``error`` with the traceback)."""
    return RunFull(
        id=record.id,
        workflow=record.workflow,
        status=_status(record),
        created_at=record.created_at.isoformat(),
        updated_at=record.updated_at.isoformat(),
        started_at=iso(record.started_at),
        completed_at=iso(record.completed_at),
        version=record.version,
        forked_from=record.forked_from,
        parent_id=record.parent_id,
        root_id=record.root_id,
        deadline_at=iso(record.deadline_at),
        attributes=record.attributes or {},
        cancel_requested=record.cancel_requested,
        blocked_reason=record.blocked_reason,
        error=record.error,
        malformed=malformed_text(record),
        input=record.input,
        output=record.output,
        owner=record.owner,
        wake_at=iso(record.wake_at),
    )


def child_json(record: RunRecord) -> ChildRow:
    """A child run as its parent's detail lists it."""
    return ChildRow(
        id=record.id,
        workflow=record.workflow,
        status=_status(record),
        created_at=record.created_at.isoformat(),
        completed_at=iso(record.completed_at),
    )


RunView = TypeVar("RunView", bound=RunSummary)


def with_fleet(view: RunView, record: RunRecord, fleet: Fleet) -> RunView:
    """The run's view with what the live workers say of it (`RunFleet`'s keys)."""
    fleet_view = fleet_json(record, fleet)
    view["worker_version"] = fleet_view["worker_version"]
    view["live_versions"] = fleet_view["live_versions"]
    view["stranded"] = fleet_view["stranded"]
    return view


def run_detail_json(record: RunRecord, children: Sequence[RunRecord] = ()) -> RunDetail:
    """A run as the HTTP API returns it: every field, its result, its children.

    ``children`` come newest first, as `list_runs` gives them; they are listed oldest
    first. The result is the output of a completed run, else null.
    """
    full = run_full_json(record)
    result = record.output if record.status is RunStatus.COMPLETED else None
    listed = [child_json(child) for child in reversed(children)]
    return RunDetail(**full, result=result, children=listed)


# -- events, steps and hooks ------------------------------------------------------------


class LogEvent(TypedDict):
    """One entry of a run's log."""

    seq: Annotated[int, Field(ge=1, description="Its position in the log, from 1.")]
    type: EventTypeName
    correlation_id: Annotated[
        str | None, Field(description="The durable call it belongs to (name#n); runs' own: null.")
    ]
    data: Annotated[dict[str, JSON], Field(description="What it records; keys depend on type.")]
    created_at: Timestamp


class EventList(TypedDict):
    """A run's log, oldest first."""

    run_id: str
    events: list[LogEvent]


class StepRow(TypedDict):
    """A step call's latest state."""

    correlation_id: str
    name: str
    status: str
    attempt: int
    input: Encoded
    output: Encoded
    error: ErrorJson
    started_at: Timestamp
    updated_at: Timestamp
    malformed: Annotated[
        str | None,
        Field(
            description="What this release cannot read in the step's row (damaged), "
            "column by column; null when it reads all of it. The fields it names are "
            "stand-ins."
        ),
    ]


class Hook(TypedDict):
    """A live hook: a token that a resume can deliver to."""

    token: str
    name: str
    kind: Annotated[str, WithJsonSchema({"type": "string", "enum": ["hook", "webhook"]})]
    run_id: str
    correlation_id: str
    created_at: Timestamp


class HookDetail(Hook):
    """A live hook, with the JSON Schema of its payload when this process defines it."""

    schema: Annotated[
        JSON,
        WithJsonSchema(
            {
                "type": ["object", "boolean", "null"],
                "description": "The payload's JSON Schema when this process defines the "
                "hook, else null.",
            }
        ),
    ]


class HookList(TypedDict):
    """Live hooks, oldest first."""

    hooks: list[HookDetail]


class ShownRun(RunFull):
    """A run with its log, steps, live hooks and children: ``perdure show RUN --json``."""

    events: list[LogEvent]
    steps: list[StepRow]
    hooks: list[Hook]
    children: list[ChildRow]


def event_json(event: Event) -> LogEvent:
    """One log entry as JSON."""
    return LogEvent(
        seq=event.seq,
        type=event.type.value,
        correlation_id=event.correlation_id,
        data=event.data,
        created_at=event.created_at.isoformat(),
    )


def step_json(step: StepRecord) -> StepRow:
    """A step row as JSON."""
    return StepRow(
        correlation_id=step.correlation_id,
        name=step.name,
        status=step.status,
        attempt=step.attempt,
        input=step.input,
        output=step.output,
        error=step.error,
        started_at=step.started_at.isoformat(),
        updated_at=step.updated_at.isoformat(),
        malformed=problems_text(step.malformed),
    )


def hook_json(hook: HookRecord) -> Hook:
    """A live hook as JSON."""
    return Hook(
        token=hook.token,
        name=hook.name,
        kind=hook.kind,
        run_id=hook.run_id,
        correlation_id=hook.correlation_id,
        created_at=hook.created_at.isoformat(),
    )


def hook_detail_json(hook: HookRecord, schema: JSON) -> HookDetail:
    """A live hook as JSON, with its payload's JSON Schema (or None)."""
    return HookDetail(**hook_json(hook), schema=schema)


def shown_run_json(
    record: RunRecord,
    events: list[Event],
    steps: list[StepRecord],
    hooks: list[HookRecord],
    children: Sequence[RunRecord] = (),
) -> ShownRun:
    """A run with its log, steps, live hooks and children (newest first, as listed)."""
    return ShownRun(
        **run_full_json(record),
        events=[event_json(event) for event in events],
        steps=[step_json(step) for step in steps],
        hooks=[hook_json(hook) for hook in hooks],
        children=[child_json(child) for child in reversed(children)],
    )


# -- the timeline -------------------------------------------------------------------


@dataclass
class Span:
    """One step attempt, sleep or hook from its first event to its last, or a patch marker."""

    kind: SpanKind
    call: str
    """The correlation id (``summarize#2``)."""
    start: datetime
    end: datetime | None = None
    outcome: SpanOutcome = "running"
    attempt: int | None = None
    detail: str = ""
    name: str | None = None
    """The step's or the hook's name."""
    token: str | None = None
    """A hook's token."""
    wake_at: str | None = None
    """When a sleep ends (ISO 8601), or when a retried step's next attempt starts."""
    input: JSON = None
    output: JSON = None
    has_output: bool = False
    error: dict[str, JSON] | None = None
    payloads: list[tuple[datetime, JSON]] = field(default_factory=list)
    run_id: str | None = None
    """A child run's id (the run a ``child`` span links to)."""


_CHILD_OUTCOMES: dict[str, SpanOutcome] = {
    "completed": "completed",
    "failed": "failed",
    "cancelled": "cancelled",
}
_CONFLICT = "perdure.HookConflictError"
"""The error a workflow sees when it creates a hook whose token a live hook holds."""


def _step_event(open_: dict[str, Span], event: Event) -> Span | None:
    """Open or close a step's span; the span when one opens."""
    match parse(event):
        case StepStarted(correlation_id=cid, name=name, attempt=attempt, input=given):
            span = Span("step", cid, event.created_at, attempt=attempt, name=name, input=given)
            open_[cid] = span
            return span
        case StepCompleted(correlation_id=cid, output=output) if cid in open_:
            span = open_.pop(cid)
            span.end, span.outcome = event.created_at, "completed"
            span.output, span.has_output = output, True
        case StepRetrying(correlation_id=cid, error=error, retry_at=retry_at) if cid in open_:
            span = open_.pop(cid)
            span.end, span.outcome, span.error = event.created_at, "retrying", error
            span.wake_at = retry_at.isoformat()
            span.detail = f"next attempt at {span.wake_at}"
        case StepFailed(correlation_id=cid, error=error) if cid in open_:
            span = open_.pop(cid)
            span.end, span.outcome, span.error = event.created_at, "failed", error
        case StepCancelled(correlation_id=cid) if cid in open_:
            span = open_.pop(cid)
            span.end, span.outcome = event.created_at, "cancelled"
            span.detail = "the run was cancelled while it ran"
        case _:
            pass
    return None


def _other_event(open_: dict[str, Span], event: Event) -> Span | None:
    """Open or close a sleep's or a hook's span; the span when one opens."""
    match parse(event):
        case SleepStarted(correlation_id=cid, wake_at=wake_at):
            span = Span("sleep", cid, event.created_at, outcome="sleeping")
            span.wake_at = wake_at.isoformat()
            span.detail = f"until {span.wake_at}"
            open_[cid] = span
            return span
        case SleepCompleted(correlation_id=cid, cancelled=cancelled) if cid in open_:
            span = open_.pop(cid)
            span.end = event.created_at
            span.outcome = "cancelled" if cancelled else "completed"
        case HookCreated(correlation_id=cid, token=token, name=name, error=error):
            span = Span("hook", cid, event.created_at, outcome="waiting", name=name, token=token)
            span.detail = f"{name}, token {token!r}"
            if error:
                span.outcome, span.end = "conflict", event.created_at
                span.error = {"type": _CONFLICT, "message": error}
            else:
                open_[cid] = span
            return span
        case HookReceived(correlation_id=cid, payload=payload) if cid in open_:
            open_[cid].payloads.append((event.created_at, payload))
            open_[cid].outcome = "received"
        case HookDisposed(correlation_id=cid) if cid in open_:
            span = open_.pop(cid)
            span.end = event.created_at
            span.outcome = "received" if span.payloads else "disposed"
        case ChildStarted(correlation_id=cid, workflow=name, run_id=child, input=given):
            span = Span("child", cid, event.created_at, name=name, input=given, run_id=child)
            span.detail = f"run {child}" + (" (detached)" if event.data.get("detached") else "")
            open_[cid] = span
            return span
        case ChildCompleted(correlation_id=cid, status=status, output=output, error=error) if (
            cid in open_
        ):
            span = open_.pop(cid)
            span.end, span.outcome, span.error = event.created_at, _CHILD_OUTCOMES[status], error
            if status == "completed":
                span.output, span.has_output = output, True
        case PatchMarked(correlation_id=cid, patch=patch):
            span = Span("patch", cid, event.created_at, event.created_at, "marked", name=patch)
            span.detail = f"took the new branch of patch {patch!r}"
            return span
        case _:
            pass
    return None


def spans(events: list[Event]) -> list[Span]:
    """The run's steps, sleeps and hooks, in the order they began.

    An event this release cannot read (a damaged log, or one a newer release wrote) is
    left out: the rest of the timeline still shows.
    """
    found: list[Span] = []
    open_: dict[str, Span] = {}
    for event in events:
        try:
            if event.type.value.startswith("step_"):
                span = _step_event(open_, event)
            else:
                span = _other_event(open_, event)
        except LogFormatError:
            continue
        if span is not None:
            found.append(span)
    return found


class ReceivedPayload(TypedDict):
    """A payload a hook received, and when."""

    at: Timestamp
    payload: Encoded


class TimelineSpan(TypedDict):
    """One step attempt, sleep or hook of a run, from its first event to its last."""

    kind: SpanKind
    call: Annotated[str, Field(description="The correlation id (name#n).")]
    name: Annotated[str | None, Field(description="The step's or the hook's name.")]
    start: Timestamp
    end: Annotated[Timestamp | None, Field(description="When it ended; null while it lasts.")]
    outcome: SpanOutcome
    attempt: Annotated[int | None, Field(description="A step's attempt, from 1.")]
    detail: str
    token: Annotated[str | None, Field(description="A hook's token.")]
    wake_at: Annotated[
        Timestamp | None,
        Field(description="When a sleep ends, or a retried step's next attempt starts."),
    ]
    input: Annotated[JSON, Field(description="A step's encoded call.")]
    output: Annotated[JSON, Field(description="A completed step's encoded value.")]
    has_output: bool
    error: ErrorJson
    payloads: list[ReceivedPayload]
    run_id: Annotated[str | None, Field(description="A child run's id (its span links to it).")]


class Timeline(TypedDict):
    """A run's steps, sleeps and hooks in time, built from its log."""

    run_id: str
    now: Annotated[Timestamp, Field(description="The server's time, the end of open spans.")]
    spans: list[TimelineSpan]


def span_json(span: Span) -> TimelineSpan:
    """One span of a run's timeline as JSON (``end`` is null while it lasts)."""
    return TimelineSpan(
        kind=span.kind,
        call=span.call,
        name=span.name,
        start=span.start.isoformat(),
        end=iso(span.end),
        outcome=span.outcome,
        attempt=span.attempt,
        detail=span.detail,
        token=span.token,
        wake_at=span.wake_at,
        input=span.input,
        output=span.output,
        has_output=span.has_output,
        error=span.error,
        payloads=[
            ReceivedPayload(at=at.isoformat(), payload=payload) for at, payload in span.payloads
        ],
        run_id=span.run_id,
    )


def timeline_json(run_id: str, events: list[Event], now: datetime) -> Timeline:
    """A run's timeline as JSON, its open spans lasting until ``now``."""
    return Timeline(
        run_id=run_id, now=now.isoformat(), spans=[span_json(span) for span in spans(events)]
    )
