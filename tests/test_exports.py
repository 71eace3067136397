"""The public API: `perdure.__all__` is pinned, so a change to it is a deliberate one."""

from __future__ import annotations

import importlib.metadata
import inspect
import re
import tomllib
from pathlib import Path

import perdure

PYPROJECT = Path(__file__).resolve().parent.parent / "pyproject.toml"

EXPORTED = [
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


def test_all_is_pinned() -> None:
    """perdure.__all__ is exactly the public API listed here, sorted."""
    assert EXPORTED == perdure.__all__
    assert sorted(EXPORTED) == perdure.__all__


def test_every_exported_name_exists() -> None:
    """Each name in __all__ is an attribute of the package."""
    assert [] == [name for name in perdure.__all__ if not hasattr(perdure, name)]


def test_what_public_calls_return_is_exported() -> None:
    """Every perdure type that a public method of `Engine` or `Run` returns is exported,
    so users can annotate with it (``engine.schedules() -> list[perdure.ScheduleRecord]``)."""
    missing = {
        f"{cls.__name__}.{name} -> {type_name}"
        for cls, name, annotation in _public_returns()
        for type_name in re.findall(r"(?<![\w.])[A-Z]\w*", annotation)
        if type_name not in NOT_PERDURE and not hasattr(perdure, type_name)
    }
    assert set() == missing


def test_the_returns_check_can_fail() -> None:
    """The check above sees the return types: some are perdure's own, by name."""
    returned = {
        type_name
        for _, _, annotation in _public_returns()
        for type_name in re.findall(r"(?<![\w.])[A-Z]\w*", annotation)
    }
    assert {"Run", "RunRecord", "RunPage", "ScheduleRecord", "LimitUsage"} <= returned


NOT_PERDURE = {"Any", "AsyncIterator", "R", "None"}
"""Names in return annotations that are not perdure's: typing's, and type variables."""


def _public_returns() -> list[tuple[type, str, str]]:
    """(class, method, return annotation as written) of `Engine`'s and `Run`'s public
    methods and properties."""
    found: list[tuple[type, str, str]] = []
    for cls in (perdure.Engine, perdure.Run):
        for name, member in inspect.getmembers(cls):
            function = member.fget if isinstance(member, property) else member
            if name.startswith("_") or not callable(function):
                continue
            annotation = getattr(function, "__annotations__", {}).get("return")
            if isinstance(annotation, str):
                found.append((cls, name, annotation))
    return found


def test_errors_show_as_perdure_errors() -> None:
    """Exported exceptions name their module `perdure`, as tracebacks show them."""
    errors = [
        getattr(perdure, name)
        for name in perdure.__all__
        if isinstance(getattr(perdure, name), type)
        and issubclass(getattr(perdure, name), Exception)
    ]
    assert 13 == len(errors)
    assert {"perdure"} == {error.__module__ for error in errors}


def test_the_error_tree() -> None:
    """The exception hierarchy is the one drawn in perdure._errors."""
    assert [True] * 10 == [
        issubclass(error, perdure.PerdureError)
        for error in (
            perdure.WorkflowFailed,
            perdure.WorkflowCancelled,
            perdure.NonDeterminismError,
            perdure.LeaseLostError,
            perdure.RunNotFoundError,
            perdure.HookNotFoundError,
            perdure.HookConflictError,
            perdure.HookPayloadError,
            perdure.StepError,
            perdure.StoreError,
        )
    ]
    assert issubclass(perdure.RunNotFoundError, LookupError)
    assert issubclass(perdure.HookNotFoundError, LookupError)
    assert issubclass(perdure.HookPayloadError, TypeError)
    assert not issubclass(perdure.FatalError, perdure.PerdureError)
    assert not issubclass(perdure.RetryableError, perdure.PerdureError)


def test_the_version_is_written_once() -> None:
    """pyproject.toml holds no version of its own: it reads perdure.__version__, which is
    what the installed distribution reports."""
    project = tomllib.loads(PYPROJECT.read_text())["project"]
    assert "version" not in project
    assert "version" in project["dynamic"]
    assert importlib.metadata.version("perdure") == perdure.__version__
