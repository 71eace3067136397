"""The replay core: durable calls, correlation ids, activations, replay, determinism.

This package imports no store, worker, HTTP or CLI code (a test proves it), so it can
be read and tested on its own.
"""

from perdure._replay._durations import Duration, parse_duration
from perdure._replay._failures import error_from_record, error_record
from perdure._replay._instance import (
    WEBHOOK,
    Completion,
    HookPayload,
    HookRejected,
    HookStream,
    StepDone,
    StepFailed,
    TimerFired,
    WorkflowInstance,
    current_instance,
)
from perdure._replay._replayer import InFlightStep, ReplayResult, replay
from perdure._replay._retry import RetryPolicy
from perdure._replay._specs import (
    CancelRun,
    CancelTimer,
    Command,
    CompleteRun,
    CreateHook,
    DisposeHook,
    FailRun,
    ScheduleStep,
    StartTimer,
    StepSpec,
    WorkflowSpec,
)

__all__ = [
    "WEBHOOK",
    "CancelRun",
    "CancelTimer",
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
    "InFlightStep",
    "ReplayResult",
    "RetryPolicy",
    "ScheduleStep",
    "StartTimer",
    "StepDone",
    "StepFailed",
    "StepSpec",
    "TimerFired",
    "WorkflowInstance",
    "WorkflowSpec",
    "current_instance",
    "error_from_record",
    "error_record",
    "parse_duration",
    "replay",
]
