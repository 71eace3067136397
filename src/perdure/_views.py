"""The JSON shapes of runs, events, steps and hooks, shared by the CLI and the HTTP API.

Each is plain JSON (ISO 8601 times, enum values as strings) with the same keys every
time, so scripts may rely on them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from datetime import datetime

    from perdure._records import JSON, Event, HookRecord, RunRecord, StepRecord

__all__ = ["event_json", "hook_json", "iso", "run_json", "step_json"]


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
