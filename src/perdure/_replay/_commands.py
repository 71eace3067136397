"""What a workflow instance and its driver tell each other: commands out, completions in.

A workflow never does anything itself. Each durable call it makes becomes a *command*
(run a step, start a timer, create a hook, ...) handed to whoever drives it: the worker
on a live run, which logs and carries it out; the replayer after a crash, which matches
it against the log. Each outcome comes back as a *completion* (a step's result, a timer,
a hook payload), delivered in log order. Every command and completion maps to one event
type of the log, named in its docstring.

These are plain values, shared by the instance, the replayer and the worker, which is
why they live apart from all three.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from perdure._replay._specs import StepSpec, WorkflowSpec

__all__ = [
    "SCHEDULING",
    "BlockRun",
    "CancelRun",
    "CancelTimer",
    "ChildDone",
    "Command",
    "CompleteRun",
    "Completion",
    "CreateHook",
    "DisposeHook",
    "FailRun",
    "HookPayload",
    "HookRejected",
    "MarkPatch",
    "ScheduleStep",
    "SetAttributes",
    "StartChild",
    "StartTimer",
    "StepDone",
    "StepFailed",
    "TimerFired",
    "WriteStream",
]


# -- commands: from the workflow to its driver ------------------------------------------


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
class StartChild:
    """Start a child run ``run_id`` of ``spec`` (logged as ``child_started``).

    Its driver creates the child run first (idempotent on ``run_id``, which derives from
    the parent's id and this call's correlation id unless the workflow named one), then
    logs the start: a crash between the two finds the same child on replay.
    """

    correlation_id: str
    spec: WorkflowSpec = field(compare=False)
    input: Any = field(compare=False)
    run_id: str
    detached: bool = False


@dataclass(frozen=True, slots=True)
class CancelTimer:
    """Forget a timer the workflow no longer waits for (``sleep_completed``, cancelled)."""

    correlation_id: str


@dataclass(frozen=True, slots=True)
class CreateHook:
    """Make ``token`` resumable (``hook_created``).

    A webhook's command carries what its requests are answered with (``respond_with``
    and ``body``), a hook's the JSON Schema every resume checks its payload against
    (``schema``, None when pydantic cannot describe the payload's type). They are
    logged, not compared: replay matches a hook by its name, kind and token.
    """

    correlation_id: str
    token: str
    name: str
    kind: str
    respond_with: int | None = field(default=None, compare=False)
    body: Any = field(default=None, compare=False)
    schema: dict[str, Any] | None = field(default=None, compare=False)


@dataclass(frozen=True, slots=True)
class DisposeHook:
    """Stop accepting payloads for a hook (``hook_disposed``)."""

    correlation_id: str
    token: str


@dataclass(frozen=True, slots=True)
class MarkPatch:
    """The run took a patch's new branch (``patch_marked``); see `perdure.patched`.

    Not a scheduling command: a replay does not match markers one by one, it reads the
    log's markers before it starts (`WorkflowInstance.use_logged_patches`), so that
    ``patched`` can answer at once, in the middle of an activation.
    """

    correlation_id: str
    patch_id: str


@dataclass(frozen=True, slots=True)
class WriteStream:
    """The workflow body wrote a chunk to a durable stream (``stream_written``).

    ``close``: it closed the stream. Not a scheduling command: the n-th write to a
    stream is ``stream:NAME#n``, and a replay finds the writes its log holds by that
    id and logs them no more, as it does attributes.
    """

    correlation_id: str
    stream: str
    value: Any
    close: bool = False


@dataclass(frozen=True, slots=True)
class SetAttributes:
    """The workflow set attributes on its run (``attributes_set``, `perdure.set_attributes`).

    Not a scheduling command, and nothing is delivered back: the workflow goes on at
    once. A replay skips the calls its log holds (by correlation id, ``attributes#n``),
    so they are logged once.
    """

    correlation_id: str
    values: dict[str, Any]


@dataclass(frozen=True, slots=True)
class CompleteRun:
    """The workflow returned; ``output`` is encoded."""

    output: Any


@dataclass(frozen=True, slots=True)
class FailRun:
    """The workflow raised; ``error`` is the error record."""

    error: dict[str, Any]


@dataclass(frozen=True, slots=True)
class BlockRun:
    """The workflow's own code raised one of its ``block_on`` errors: set the run aside.

    Such an error is a bug, which a deploy of the fix mends, so the run is not failed;
    ``reason`` holds the traceback.
    """

    reason: str


@dataclass(frozen=True, slots=True)
class CancelRun:
    """The workflow was cancelled and has unwound."""


Command = (
    ScheduleStep
    | StartChild
    | StartTimer
    | CancelTimer
    | CreateHook
    | DisposeHook
    | MarkPatch
    | SetAttributes
    | WriteStream
    | CompleteRun
    | FailRun
    | BlockRun
    | CancelRun
)
SCHEDULING = (ScheduleStep, StartTimer, CreateHook, StartChild)
"""Commands whose events the replayer matches one by one against the log."""


# -- completions: outcomes delivered to the workflow ------------------------------------


@dataclass(frozen=True, slots=True)
class StepDone:
    """A step returned (``step_completed``)."""

    correlation_id: str
    output: Any


@dataclass(frozen=True, slots=True)
class StepFailed:
    """A step failed for good (``step_failed``)."""

    correlation_id: str
    error: dict[str, Any]
    attempt: int


@dataclass(frozen=True, slots=True)
class TimerFired:
    """A timer's time came (``sleep_completed``)."""

    correlation_id: str


@dataclass(frozen=True, slots=True)
class HookPayload:
    """A hook received a payload (``hook_received``).

    ``error``: the stored payload could not be read back; the workflow's await raises
    `perdure.HookPayloadError` with it, as for a payload that does not decode.
    """

    correlation_id: str
    payload: Any
    error: str | None = None


@dataclass(frozen=True, slots=True)
class HookRejected:
    """A hook could not be created (``hook_created`` with an ``error``)."""

    correlation_id: str
    error: str


@dataclass(frozen=True, slots=True)
class ChildDone:
    """A child run ended (``child_completed``): ``status`` with its output or error."""

    correlation_id: str
    run_id: str
    status: str
    output: Any = None
    error: dict[str, Any] | None = None


Completion = StepDone | StepFailed | TimerFired | HookPayload | HookRejected | ChildDone
