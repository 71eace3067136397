"""The replay core: durable calls, correlation ids, activations, replay, determinism.

``_instance`` is one run's workflow in memory, driven by activations on its own
deterministic loop (``_loop``); ``_commands`` what it emits and is given; ``_replayer``
brings a run back from its log; ``_specs`` what the decorators know of a workflow or a
step; ``_retry`` and ``_failures`` the arithmetic of retries and recorded errors.
Durations are read by `perdure._durations` (re-exported here), which the exceptions
users raise use too.

This package imports no store, worker, HTTP or CLI code (a test proves it), so it can
be read and tested on its own.
"""

from perdure._durations import Duration, parse_duration
from perdure._replay._commands import (
    BlockRun,
    CancelRun,
    CancelTimer,
    ChildDone,
    Command,
    CompleteRun,
    Completion,
    CreateHook,
    DisposeHook,
    FailRun,
    HookPayload,
    HookRejected,
    MarkPatch,
    ScheduleStep,
    SetAttributes,
    StartChild,
    StartTimer,
    StepDone,
    StepFailed,
    TimerFired,
    WriteStream,
)
from perdure._replay._failures import error_from_record, error_record
from perdure._replay._instance import (
    WEBHOOK,
    HookStream,
    WorkflowInstance,
    child_run_id,
    current_instance,
    surfaced,
)
from perdure._replay._replayer import InFlightChild, InFlightStep, ReplayResult, replay
from perdure._replay._retry import RetryPolicy
from perdure._replay._specs import StepSpec, WorkflowSpec

__all__ = [
    "WEBHOOK",
    "BlockRun",
    "CancelRun",
    "CancelTimer",
    "ChildDone",
    "Command",
    "CompleteRun",
    "Completion",
    "CreateHook",
    "DisposeHook",
    "Duration",
    "FailRun",
    "HookPayload",
    "HookRejected",
    "HookStream",
    "InFlightChild",
    "InFlightStep",
    "MarkPatch",
    "ReplayResult",
    "RetryPolicy",
    "ScheduleStep",
    "SetAttributes",
    "StartChild",
    "StartTimer",
    "StepDone",
    "StepFailed",
    "StepSpec",
    "TimerFired",
    "WorkflowInstance",
    "WorkflowSpec",
    "WriteStream",
    "child_run_id",
    "current_instance",
    "error_from_record",
    "error_record",
    "parse_duration",
    "replay",
    "surfaced",
]
