"""perdure: durable workflows for Python.

Write ordinary ``async`` functions; perdure records every step, sleep and hook in a
log, so a run resumes exactly where it stopped after a crash, a restart or a deploy.
"""

from perdure._engine import Engine, Run, get_run, start
from perdure._errors import (
    FatalError,
    HookConflictError,
    HookNotFoundError,
    HookPayloadError,
    LeaseLostError,
    NonDeterminismError,
    PerdureError,
    RetryableError,
    RunNotFoundError,
    StepError,
    StoreError,
    WorkflowCancelled,
    WorkflowFailed,
)
from perdure._flow import Limit, LimitUsage, LimitWait, Rate
from perdure._hooks import Hook, Webhook, WebhookRequest, create_webhook, define_hook
from perdure._listing import RunPage
from perdure._logging import RunContextFilter
from perdure._records import Event, EventType, HookRecord, RunRecord, RunStatus, WorkerRecord
from perdure._replay import HookStream, RetryPolicy
from perdure._runtime import WorkerStatistics
from perdure._schedules import ScheduleRecord
from perdure._streams import StreamItem, StreamRetracted, StreamWriter, get_writable
from perdure._workflow import (
    ChildRun,
    Step,
    StepMetadata,
    Workflow,
    WorkflowMetadata,
    deprecate_patch,
    get_step_metadata,
    get_workflow_metadata,
    now,
    patched,
    random,
    set_attributes,
    sleep,
    start_child,
    step,
    uuid4,
    workflow,
)

__all__ = [
    "ChildRun",
    "Engine",
    "Event",
    "EventType",
    "FatalError",
    "Hook",
    "HookConflictError",
    "HookNotFoundError",
    "HookPayloadError",
    "HookRecord",
    "HookStream",
    "LeaseLostError",
    "Limit",
    "LimitUsage",
    "LimitWait",
    "NonDeterminismError",
    "PerdureError",
    "Rate",
    "RetryPolicy",
    "RetryableError",
    "Run",
    "RunContextFilter",
    "RunNotFoundError",
    "RunPage",
    "RunRecord",
    "RunStatus",
    "ScheduleRecord",
    "Step",
    "StepError",
    "StepMetadata",
    "StoreError",
    "StreamItem",
    "StreamRetracted",
    "StreamWriter",
    "Webhook",
    "WebhookRequest",
    "WorkerRecord",
    "WorkerStatistics",
    "Workflow",
    "WorkflowCancelled",
    "WorkflowFailed",
    "WorkflowMetadata",
    "create_webhook",
    "define_hook",
    "deprecate_patch",
    "get_run",
    "get_step_metadata",
    "get_workflow_metadata",
    "get_writable",
    "now",
    "patched",
    "random",
    "set_attributes",
    "sleep",
    "start",
    "start_child",
    "step",
    "uuid4",
    "workflow",
]
__version__ = "0.1.0.dev0"
"""The one version string: pyproject.toml reads it from here (hatch's dynamic version)."""

for _name in __all__:
    _obj = globals()[_name]
    # Errors show as `perdure.FatalError` in tracebacks, not as the private module.
    if isinstance(_obj, type) and issubclass(_obj, Exception):
        _obj.__module__ = "perdure"
del _name, _obj
