"""Reading a golden file and replaying it against today's code, as a worker would.

Shared by ``test_golden.py`` and ``record.py`` (which checks each file it writes).
A worker that takes over a run in flight replays its log with
`perdure._replay.replay` into a fresh `WorkflowInstance` (``_runtime/_actor.py``,
``_resume_from_log``); `check` does the same, for the whole log and for every prefix of
it (a run in flight at that point), so a change to the workflows, the replayer, the
serialization or the log format that would break runs in flight fails here.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import golden.workflows  # noqa: F401 (defines the workflows the files name)
from perdure._check import EXPORT_FORMAT, load_export
from perdure._records import Event, EventType, RunStatus
from perdure._replay import (
    CancelRun,
    Command,
    CompleteRun,
    FailRun,
    ReplayResult,
    WorkflowInstance,
    WorkflowSpec,
    replay,
)
from perdure._workflow import lookup_workflow

__all__ = ["FOLDER", "GoldenDivergence", "GoldenRun", "check", "golden_files", "load"]

FOLDER = Path(__file__).resolve().parent
FORMAT = EXPORT_FORMAT
"""The version of the golden files' own layout (not of perdure's log): `perdure export`'s."""


class GoldenDivergence(AssertionError):
    """Today's code does not replay a golden history as it was recorded."""


@dataclass(frozen=True)
class GoldenRun:
    """A golden file, read."""

    path: Path
    name: str
    workflow: str
    run_id: str
    input: Any
    status: RunStatus
    output: Any
    error: dict[str, Any] | None
    events: list[Event]


def golden_files() -> list[Path]:
    """Every golden file in the folder, by name."""
    return sorted(FOLDER.glob("*.json"))


def load(path: Path) -> GoldenRun:
    """Read a golden file into the events a store would hand back."""
    raw = json.loads(path.read_text())
    if raw.get("format") != FORMAT:
        raise GoldenDivergence(f"{path.name}: unknown golden file format {raw.get('format')!r}")
    exported = load_export(raw, source=path.name)  # the layout `perdure export` writes
    return GoldenRun(
        path=path,
        name=raw["name"],
        workflow=exported.workflow,
        run_id=exported.run_id,
        input=exported.input,
        status=exported.status,
        output=raw.get("output"),
        error=raw.get("error"),
        events=exported.events,
    )


def _spec(history: GoldenRun) -> WorkflowSpec:

    spec = lookup_workflow(history.workflow)
    if spec is None:
        raise GoldenDivergence(
            f"{history.path.name}: no workflow is named {history.workflow!r} any more "
            "(golden workflows are never renamed or removed)"
        )
    return spec


def _replay(
    history: GoldenRun, spec: WorkflowSpec, events: list[Event]
) -> tuple[WorkflowInstance, ReplayResult]:
    """Replay ``events`` as `_runtime._actor` does after a crash, naming the file on failure."""
    started = next(e for e in history.events if e.type is EventType.RUN_STARTED)
    args, kwargs = spec.codec.decode_args(history.input)
    instance = WorkflowInstance(spec, history.run_id, args, kwargs, started_at=started.created_at)
    last = events[-1]
    try:
        return instance, replay(instance, events)
    except Exception as exc:
        instance.discard()
        raise GoldenDivergence(
            f"{history.path.name}: replaying the log up to event #{last.seq} "
            f"({last.type.value} {last.correlation_id or ''}) fails on today's code:\n"
            f"  {type(exc).__name__}: {exc}"
        ) from exc


def _terminal(commands: list[Command]) -> Command | None:
    return next((c for c in commands if isinstance(c, CompleteRun | FailRun | CancelRun)), None)


def _same_output(spec: WorkflowSpec, replayed: Any, recorded: Any) -> bool:
    """Whether two encoded results are the same value.

    Compared decoded: a set's encoding lists its items in iteration order, which
    depends on the process's hash seed, so equal values need not encode alike.
    """
    return bool(spec.codec.decode_result(replayed) == spec.codec.decode_result(recorded))


def _check_outcome(
    history: GoldenRun, spec: WorkflowSpec, instance: WorkflowInstance, result: ReplayResult
) -> None:
    """The replayed run ends as the recorded one did: same output, or same error."""
    if history.status is RunStatus.CANCELLED:
        # A cancel reaches a run from outside its log: deliver it as the worker did.
        cancelled_at = history.events[-1].created_at
        outcome = _terminal(result.commands) or _terminal(instance.cancel(cancelled_at))
    else:
        outcome = _terminal(result.commands)
    match history.status, outcome:
        case RunStatus.COMPLETED, CompleteRun(output=output) if _same_output(
            spec, output, history.output
        ):
            return
        case RunStatus.FAILED, FailRun(error=error) if history.error is not None and (
            error.get("type"),
            error.get("message"),
        ) == (history.error.get("type"), history.error.get("message")):
            return
        case RunStatus.CANCELLED, CancelRun():
            return
    recorded = {"completed": history.output, "failed": history.error}.get(history.status.value)
    raise GoldenDivergence(
        f"{history.path.name}: the recorded run ended {history.status.value} ({recorded!r}), "
        f"but replaying its log on today's code ends with {outcome!r}"
    )


def check(history: GoldenRun, spec: WorkflowSpec | None = None) -> None:
    """Replay the golden run on today's code: every prefix, then the whole log.

    ``spec`` replaces the workflow the file names (to show that a changed workflow is
    caught).

    Raises:
        GoldenDivergence: naming the file, the event the replay reached, and what the
            replayer said (for a divergence: the call, its position, what the log holds).
    """
    spec = spec or _spec(history)
    first = next(i for i, e in enumerate(history.events) if e.type is EventType.RUN_STARTED)
    for end in range(first + 1, len(history.events)):
        instance, _ = _replay(history, spec, history.events[:end])
        instance.discard()
    instance, result = _replay(history, spec, history.events)
    try:
        _check_outcome(history, spec, instance, result)
    finally:
        instance.discard()
