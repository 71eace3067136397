"""What the decorators know about a workflow or a step, and the commands a workflow emits.

A workflow never does anything itself: each durable call it makes becomes a command,
handed to whoever drives it (the worker, live; the replayer, after a crash).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from perdure._replay._retry import RetryPolicy
from perdure._serde import CallCodec

__all__ = [
    "SCHEDULING",
    "CancelRun",
    "CancelTimer",
    "Command",
    "CompleteRun",
    "CreateHook",
    "DisposeHook",
    "FailRun",
    "ScheduleStep",
    "StartTimer",
    "StepSpec",
    "WorkflowSpec",
]


@dataclass(frozen=True, slots=True, eq=False)
class StepSpec:
    """A step as `@step` made it."""

    fn: Callable[..., Any]
    name: str
    codec: CallCodec
    retry: RetryPolicy
    timeout: float | None
    queue: str | None
    is_async: bool


@dataclass(frozen=True, slots=True, eq=False)
class WorkflowSpec:
    """A workflow as `@workflow` made it."""

    fn: Callable[..., Any]
    name: str
    codec: CallCodec
    version: str


@dataclass(frozen=True, slots=True)
class ScheduleStep:
    """Run a step (logged as ``step_started``, attempt 1)."""

    correlation_id: str
    spec: StepSpec
    input: Any


@dataclass(frozen=True, slots=True)
class StartTimer:
    """Wake the workflow at ``wake_at`` (logged as ``sleep_started``)."""

    correlation_id: str
    wake_at: datetime


@dataclass(frozen=True, slots=True)
class CancelTimer:
    """Forget a timer the workflow no longer waits for (``sleep_completed``, cancelled)."""

    correlation_id: str


@dataclass(frozen=True, slots=True)
class CreateHook:
    """Make ``token`` resumable (``hook_created``).

    ``data`` is logged in the event too: a webhook keeps its response there.
    """

    correlation_id: str
    token: str
    name: str
    kind: str
    data: dict[str, Any] = field(default_factory=dict, compare=False)


@dataclass(frozen=True, slots=True)
class DisposeHook:
    """Stop accepting payloads for a hook (``hook_disposed``)."""

    correlation_id: str
    token: str


@dataclass(frozen=True, slots=True)
class CompleteRun:
    """The workflow returned; ``output`` is encoded."""

    output: Any


@dataclass(frozen=True, slots=True)
class FailRun:
    """The workflow raised; ``error`` is the error record."""

    error: dict[str, Any]


@dataclass(frozen=True, slots=True)
class CancelRun:
    """The workflow was cancelled and has unwound."""


Command = (
    ScheduleStep
    | StartTimer
    | CancelTimer
    | CreateHook
    | DisposeHook
    | CompleteRun
    | FailRun
    | CancelRun
)
SCHEDULING = (ScheduleStep, StartTimer, CreateHook)
"""Commands whose events the replayer matches one by one against the log."""
