"""The JSON shapes of runs, events, steps and hooks, shared by the CLI and the HTTP API.

Each is plain JSON (ISO 8601 times, enum values as strings) with the same keys every
time, so scripts may rely on them.

A run's *timeline* is also built here from its log (`spans`), for ``perdure show`` and
the dashboard alike: one span per step attempt (started until it completed, failed or
was retried), one per sleep, one per hook (created until disposed, with the payloads it
received), in the order they began.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from perdure._records import EventType

if TYPE_CHECKING:
    from datetime import datetime

    from perdure._records import JSON, Event, HookRecord, RunRecord, StepRecord

__all__ = [
    "Span",
    "event_json",
    "hook_json",
    "iso",
    "run_json",
    "span_json",
    "spans",
    "step_json",
]


def iso(moment: datetime | None) -> str | None:
    """ISO 8601 text, or None."""
    return moment.isoformat() if moment is not None else None


def _error_summary(error: dict[str, JSON] | None) -> dict[str, JSON] | None:
    if error is None:
        return None
    return {"type": error.get("type"), "message": error.get("message")}


def run_json(record: RunRecord, *, full: bool = False) -> dict[str, JSON]:
    """A run as JSON: the listing's keys, or with ``full`` every field of the record.

    The listing's ``error`` is a summary (type and message); the full form's has the
    traceback too.
    """
    shape: dict[str, JSON] = {
        "id": record.id,
        "workflow": record.workflow,
        "status": record.status.value,
        "created_at": iso(record.created_at),
        "updated_at": iso(record.updated_at),
        "started_at": iso(record.started_at),
        "completed_at": iso(record.completed_at),
        "version": record.version,
        "cancel_requested": record.cancel_requested,
        "error": record.error if full else _error_summary(record.error),
    }
    if full:
        shape |= {
            "input": record.input,
            "output": record.output,
            "owner": record.owner,
            "wake_at": iso(record.wake_at),
        }
    return shape


def event_json(event: Event) -> dict[str, JSON]:
    """One log entry as JSON."""
    return {
        "seq": event.seq,
        "type": event.type.value,
        "correlation_id": event.correlation_id,
        "data": event.data,
        "created_at": iso(event.created_at),
    }


def step_json(step: StepRecord) -> dict[str, JSON]:
    """A step row as JSON."""
    return {
        "correlation_id": step.correlation_id,
        "name": step.name,
        "status": step.status,
        "attempt": step.attempt,
        "input": step.input,
        "output": step.output,
        "error": step.error,
        "started_at": iso(step.started_at),
        "updated_at": iso(step.updated_at),
    }


def hook_json(hook: HookRecord) -> dict[str, JSON]:
    """A live hook as JSON."""
    return {
        "token": hook.token,
        "name": hook.name,
        "kind": hook.kind,
        "run_id": hook.run_id,
        "correlation_id": hook.correlation_id,
        "created_at": iso(hook.created_at),
    }


# -- the timeline -------------------------------------------------------------------


@dataclass
class Span:
    """One step attempt, sleep or hook, from its first event to its last."""

    kind: str
    """``step``, ``sleep`` or ``hook``."""
    call: str
    """The correlation id (``summarize#2``)."""
    start: datetime
    end: datetime | None = None
    outcome: str = "running"
    """``running``, ``completed``, ``retrying`` or ``failed`` (steps); ``sleeping``,
    ``completed`` or ``cancelled`` (sleeps); ``waiting``, ``received``, ``disposed`` or
    ``conflict`` (hooks)."""
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


def _step_event(open_: dict[str, Span], event: Event, cid: str) -> Span | None:
    data = event.data
    if event.type is EventType.STEP_STARTED:
        span = Span("step", cid, event.created_at, attempt=data.get("attempt"))
        span.name = data.get("name")
        span.input = data.get("input")
        open_[cid] = span
        return span
    if cid not in open_:
        return None
    span = open_.pop(cid)
    span.end = event.created_at
    if event.type is EventType.STEP_COMPLETED:
        span.outcome, span.output, span.has_output = "completed", data.get("output"), True
    else:
        span.outcome = "retrying" if event.type is EventType.STEP_RETRYING else "failed"
        span.error = data.get("error")
        if data.get("retry_at"):
            span.detail = f"next attempt at {data['retry_at']}"
            span.wake_at = str(data["retry_at"])
    return None


def _other_event(open_: dict[str, Span], event: Event, cid: str) -> Span | None:
    data = event.data
    match event.type:
        case EventType.SLEEP_STARTED:
            span = Span("sleep", cid, event.created_at, outcome="sleeping")
            span.detail = f"until {data.get('wake_at')}"
            span.wake_at = data.get("wake_at")
            open_[cid] = span
            return span
        case EventType.SLEEP_COMPLETED if cid in open_:
            span = open_.pop(cid)
            span.end = event.created_at
            span.outcome = "cancelled" if data.get("cancelled") else "completed"
        case EventType.HOOK_CREATED:
            span = Span("hook", cid, event.created_at, outcome="waiting")
            span.name, span.token = data.get("name"), data.get("token")
            span.detail = f"{data.get('name')}, token {data.get('token')!r}"
            if data.get("error"):
                span.outcome, span.end, span.error = "conflict", event.created_at, data["error"]
            else:
                open_[cid] = span
            return span
        case EventType.HOOK_RECEIVED if cid in open_:
            open_[cid].payloads.append((event.created_at, data.get("payload")))
            open_[cid].outcome = "received"
        case EventType.HOOK_DISPOSED if cid in open_:
            span = open_.pop(cid)
            span.end = event.created_at
            span.outcome = "received" if span.payloads else "disposed"
        case _:
            pass
    return None


def spans(events: list[Event]) -> list[Span]:
    """The run's steps, sleeps and hooks, in the order they began."""
    found: list[Span] = []
    open_: dict[str, Span] = {}
    for event in events:
        cid = event.correlation_id or str(event.data.get("token") or event.seq)
        if event.type.value.startswith("step_"):
            span = _step_event(open_, event, cid)
        else:
            span = _other_event(open_, event, cid)
        if span is not None:
            found.append(span)
    return found


def span_json(span: Span) -> dict[str, JSON]:
    """One span of a run's timeline as JSON (``end`` is null while it lasts)."""
    return {
        "kind": span.kind,
        "call": span.call,
        "name": span.name,
        "start": iso(span.start),
        "end": iso(span.end),
        "outcome": span.outcome,
        "attempt": span.attempt,
        "detail": span.detail,
        "token": span.token,
        "wake_at": span.wake_at,
        "input": span.input,
        "output": span.output,
        "has_output": span.has_output,
        "error": span.error,
        "payloads": [{"at": iso(at), "payload": payload} for at, payload in span.payloads],
    }
