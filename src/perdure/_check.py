"""Will this code replay that run? Answered in memory, before a deploy, writing nothing.

A worker that takes over a run in flight replays its log into the workflow as this
process defines it (`perdure._replay.replay`); when the code makes other durable calls
than the log holds, the run is blocked until a worker with matching code takes it.
`divergence` does that same replay and nothing else: no store is written, no step
runs (a replay only *compares* the calls the workflow makes with the log, it never
carries them out), and the instance is unwound at once. So ``perdure check-replay``
can ask it of every run in flight against the code about to be deployed, and
``perdure.testing.check_replay`` of a run's log exported into a user's test suite.

What it says is meant for a person reading a deploy's output: the run, the two code
versions, the replayer's account of both sides (what the log holds, what the code
called, and at which durable call), and the line of workflow code that made the call.

Exported logs use the golden-history layout of ``tests/golden/`` (`export_json`).
"""

from __future__ import annotations

import inspect
import json
import linecache
import sys
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import perdure
from perdure._errors import NonDeterminismError, PerdureError
from perdure._log import LogFormatError
from perdure._records import Event, EventType, RunRecord, RunStatus
from perdure._replay import WorkflowInstance, WorkflowSpec, replay
from perdure._workflow import lookup_workflow

if TYPE_CHECKING:
    from types import FrameType

    from perdure._records import JSON

__all__ = [
    "EXPORT_FORMAT",
    "Divergence",
    "ReplayDivergence",
    "check_file",
    "divergence",
    "export_json",
    "load_export",
]

EXPORT_FORMAT = 1
"""The layout of an exported run (that of ``tests/golden/*.json``)."""

_PACKAGE = str(Path(__file__).resolve().parent)
_ASYNCIO = str(Path(sys.modules["asyncio"].__file__ or "asyncio").resolve().parent)


class ReplayDivergence(PerdureError, AssertionError):
    """Today's code would not replay a run's log: a worker running it would block the run.

    An AssertionError, so that a test suite's ``check_replay`` failing reads as a test
    failure. The message is the readable divergence (`Divergence.text`).
    """


@dataclass(frozen=True, slots=True)
class Divergence:
    """Why a run would not replay on this code."""

    run_id: str
    workflow: str
    detail: str
    """The replayer's words: the durable call, its position, what the log holds."""
    code_line: str | None
    """Where the workflow made its last durable call before the replay stopped."""
    run_version: str | None
    code_version: str | None

    @property
    def text(self) -> str:
        """The divergence as lines for a person to read."""
        head = (
            f"run {self.run_id} of workflow {self.workflow!r} would block "
            f"(started on version {self.run_version or 'unknown'}; "
            f"this code is version {self.code_version or '(not defined)'}):"
        )
        lines = [head, f"  {self.detail}"]
        if self.code_line is not None:
            lines.append(f"  the workflow's last durable call: {self.code_line}")
        return "\n".join(lines)


class _SitedInstance(WorkflowInstance):
    """A workflow instance that remembers where the workflow's code made each call.

    Only for checks: a worker's instances keep no such thing (a frame walk per call).
    """

    __slots__ = ("last_site",)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.last_site: str | None = None

    def _next_id(self, name: str) -> str:
        cid = super()._next_id(name)
        self.last_site = f"{cid} at {_user_site()}"
        return cid


def _user_site() -> str:
    """``file:line in function: source`` of the innermost frame outside perdure and asyncio."""
    frame: FrameType | None = inspect.currentframe()
    while frame is not None:
        filename = str(Path(frame.f_code.co_filename).resolve())
        if not filename.startswith((_PACKAGE, _ASYNCIO)):
            source = linecache.getline(frame.f_code.co_filename, frame.f_lineno).strip()
            where = f"{frame.f_code.co_filename}:{frame.f_lineno} in {frame.f_code.co_name}"
            return f"{where}: {source}" if source else where
        frame = frame.f_back
    return "(unknown)"


def divergence(
    run_id: str,
    workflow: str,
    run_input: JSON,
    events: list[Event],
    *,
    run_version: str | None = None,
    spec: WorkflowSpec | None = None,
) -> Divergence | None:
    """What diverges when ``events`` replay on this code of ``workflow``; None if nothing.

    The code is ``spec``, else the workflow this process defines under that name.
    Writes nothing and runs no step.

    A log with no ``run_started`` (a run not begun) replays trivially: a worker starts
    it fresh on today's code. A workflow this process does not define diverges.
    """
    spec = spec or lookup_workflow(workflow)

    def diverged(detail: str, site: str | None = None) -> Divergence:
        version = spec.version if spec is not None else None
        return Divergence(run_id, workflow, detail, site, run_version, version)

    if spec is None:
        return diverged(f"no workflow is named {workflow!r} in the code checked")
    started = next((e for e in events if e.type is EventType.RUN_STARTED), None)
    if started is None:
        return None
    try:
        args, kwargs = spec.codec.decode_args(run_input)
    except (TypeError, ValueError) as exc:
        return diverged(f"its input does not decode to the workflow's arguments: {exc}")
    instance = _SitedInstance(spec, run_id, args, kwargs, started_at=started.created_at)
    try:
        replay(instance, events)
    except (NonDeterminismError, LogFormatError) as exc:
        detail = str(exc).removeprefix(
            f"run {run_id} of workflow {spec.name!r} no longer matches its log: "
        )
        return diverged(detail, instance.last_site)
    finally:
        instance.discard()
    return None


# -- exported runs ----------------------------------------------------------------------


def export_json(record: RunRecord, events: list[Event]) -> dict[str, JSON]:
    """A run and its whole log in the golden-history layout (``tests/golden/*.json``)."""
    return {
        "format": EXPORT_FORMAT,
        "name": record.id,
        "description": f"run {record.id} of workflow {record.workflow!r}, exported",
        "recorded_with": f"perdure {perdure.__version__}",
        "workflow": record.workflow,
        "run_id": record.id,
        "input": record.input,
        "status": record.status.value,
        "output": record.output,
        "error": record.error,
        "version": record.version,
        "events": [
            {
                "seq": event.seq,
                "type": event.type.value,
                "correlation_id": event.correlation_id,
                "data": event.data,
                "created_at": event.created_at.isoformat(),
            }
            for event in events
        ],
    }


@dataclass(frozen=True, slots=True)
class Exported:
    """An exported run, read back."""

    run_id: str
    workflow: str
    input: JSON
    status: RunStatus
    version: str | None
    events: list[Event]


def check_file(spec: WorkflowSpec, path: str | Path) -> None:
    """Replay the run exported to ``path`` on ``spec``'s code; see `perdure.testing.check_replay`.

    Raises:
        ReplayDivergence: the code would not replay it (the readable divergence).
        ValueError: the file is not an exported run.
    """
    source = Path(path)
    try:
        raw = json.loads(source.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise ValueError(f"{source}: not JSON: {exc}") from None
    exported = load_export(raw, source=str(source))
    if exported.workflow != spec.name:
        found: Divergence | None = Divergence(
            exported.run_id,
            exported.workflow,
            f"the run is of workflow {exported.workflow!r}, but the code checked is workflow "
            f"{spec.name!r} (a worker finds a run's code by its workflow's name)",
            None,
            exported.version,
            spec.version,
        )
    else:
        found = divergence(
            exported.run_id,
            exported.workflow,
            exported.input,
            exported.events,
            run_version=exported.version,
            spec=spec,
        )
    if found is not None:
        raise ReplayDivergence(f"{source}: {found.text}")


def load_export(raw: dict[str, Any], *, source: str) -> Exported:
    """Read an exported run (a parsed JSON object); ``source`` names it in errors.

    Raises:
        ValueError: not an exported run, or one of a layout this release does not know.
    """
    if not isinstance(raw, dict) or raw.get("format") != EXPORT_FORMAT:
        raise ValueError(f"{source}: not an exported perdure run (format {EXPORT_FORMAT})")
    try:
        run_id = str(raw["run_id"])
        events = [
            Event(
                run_id,
                int(entry["seq"]),
                EventType(entry["type"]),
                entry.get("correlation_id"),
                entry.get("data") or {},
                datetime.fromisoformat(entry["created_at"]),
            )
            for entry in raw["events"]
        ]
        return Exported(
            run_id,
            str(raw["workflow"]),
            raw.get("input"),
            RunStatus(raw.get("status", "running")),
            raw.get("version"),
            events,
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise ValueError(f"{source}: not an exported perdure run: {exc!r}") from None
