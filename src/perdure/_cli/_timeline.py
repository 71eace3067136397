"""``perdure show``: a run's story, built from its log.

The log is grouped into *spans* (`perdure._views.spans`, shared with the dashboard):
one per step attempt, one per sleep, one per hook, in the order they began.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from rich.console import Group
from rich.padding import Padding
from rich.table import Table
from rich.text import Text

from perdure._cli._listing import attributes_text
from perdure._cli._output import duration, out, run_duration, status_text, when
from perdure._log import RunStarted
from perdure._records import EventType, RunStatus
from perdure._views import Span, spans

if TYPE_CHECKING:
    from collections.abc import Sequence
    from datetime import datetime

    from rich.console import RenderableType

    from perdure._fleet import Fleet
    from perdure._records import JSON, Event, HookRecord, RunRecord

__all__ = ["Span", "render", "spans"]

_MAX_LINES = 40
"""Lines of one pretty-printed value shown before the rest is elided (--json has it all)."""

_COMPACT_WIDTH = 100
"""Values whose JSON is at most this long are printed on one line."""

_OUTCOME_STYLES = {
    "completed": "green",
    "received": "green",
    "disposed": "green",
    "failed": "bold red",
    "conflict": "bold red",
    "retrying": "yellow",
    "running": "cyan",
    "sleeping": "cyan",
    "waiting": "cyan",
    "cancelled": "magenta",
}


# -- rendering ------------------------------------------------------------------------


def _pretty(value: JSON) -> Text:
    text = json.dumps(value, indent=2, ensure_ascii=False, default=str)
    lines = text.splitlines()
    if len(lines) > _MAX_LINES:
        more = len(lines) - _MAX_LINES
        text = "\n".join([*lines[:_MAX_LINES], f"… {more} more lines (see --json)"])
    return Text(text)


def _labelled(label: str, value: JSON) -> RenderableType:
    compact = json.dumps(value, ensure_ascii=False, default=str)
    if len(compact) <= _COMPACT_WIDTH:
        return Text.assemble((f"{label}: ", "bold"), compact)
    return Group(Text(f"{label}:", style="bold"), _indent(_pretty(value)))


def _indent(renderable: RenderableType, bottom: int = 0) -> Padding:
    return Padding(renderable, (0, 0, bottom, 2), expand=False)


def _error(error: dict[str, Any]) -> Group:
    parts: list[RenderableType] = [
        Text.assemble(("error: ", "bold red"), f"{error.get('type')}: {error.get('message')}")
    ]
    if error.get("traceback"):
        parts.append(_indent(Text(str(error["traceback"]).rstrip(), style="red")))
    return Group(*parts)


def _offset(span_start: datetime | None, origin: datetime) -> str:
    if span_start is None:
        return "-"
    return f"+{(span_start - origin).total_seconds():.3f}s"


def _timeline_table(found: list[Span], origin: datetime, now: datetime) -> Table:
    table = Table(title="timeline", title_justify="left", box=None, header_style="bold")
    for name in ("start", "end", "duration", "kind", "call", "attempt", "outcome", "detail"):
        table.add_column(name, no_wrap=name in {"start", "end", "call", "outcome"})
    for span in found:
        end = span.end or now
        table.add_row(
            _offset(span.start, origin),
            _offset(span.end, origin),
            duration((end - span.start).total_seconds()) + ("" if span.end else " …"),
            span.kind,
            span.call,
            str(span.attempt) if span.attempt is not None else "",
            Text(span.outcome, style=_OUTCOME_STYLES.get(span.outcome, "")),
            span.detail,
        )
    return table


def _details(span: Span) -> list[RenderableType]:
    attempt = f" (attempt {span.attempt})" if span.attempt is not None else ""
    head = Text.assemble(
        (f"{span.kind} {span.call}", "bold"),
        attempt,
        " ",
        (span.outcome, _OUTCOME_STYLES.get(span.outcome, "")),
        f"  {when(span.start)}",
    )
    body: list[RenderableType] = []
    if span.kind in ("step", "child"):
        body.append(_labelled("input", span.input))
    if span.has_output:
        body.append(_labelled("output", span.output))
    body.extend(_labelled(f"payload at {when(at)}", payload) for at, payload in span.payloads)
    if span.error is not None:
        body.append(_error(span.error))
    if not body:
        return []
    return [head, _indent(Group(*body), bottom=1)]


def _header(record: RunRecord, events: list[Event], now: datetime) -> Table:
    grid = Table.grid(padding=(0, 2))
    grid.add_column(style="bold")
    grid.add_column()
    grid.add_row("run", Text(record.id, style="bold"))
    grid.add_row("workflow", record.workflow)
    status = status_text(record.status)
    if record.cancel_requested and not record.status.is_terminal:
        status.append(" (cancel requested)", style="magenta")
    grid.add_row("status", status)
    grid.add_row("version", record.version or "-")
    if record.forked_from is not None:
        grid.add_row("forked from", record.forked_from)
    if record.parent_id is not None:
        grid.add_row("parent", record.parent_id)
    if record.root_id is not None and record.root_id != record.parent_id:
        grid.add_row("root", record.root_id)
    if record.blocked_reason is not None:
        grid.add_row("blocked", Text(record.blocked_reason, style="yellow"))
    if record.attributes:
        grid.add_row("attributes", attributes_text(record.attributes))
    grid.add_row("created", when(record.created_at) + " UTC")
    if record.deadline_at is not None:
        grid.add_row("deadline", when(record.deadline_at) + " UTC")
    grid.add_row("started", when(record.started_at))
    grid.add_row("ended", when(record.completed_at))
    grid.add_row("duration", duration(run_duration(record, now)))
    workers = [str(RunStarted.of(e).worker) for e in events if e.type is EventType.RUN_STARTED]
    if workers:
        starts = "" if len(workers) == 1 else f" (started {len(workers)} times)"
        grid.add_row("workers", ", ".join(dict.fromkeys(workers)) + starts)
    return grid


def _children_table(children: Sequence[RunRecord], now: datetime) -> Table:
    """The run's child runs, oldest first, with their status (``perdure show ID`` each)."""
    table = Table(
        title=f"children ({len(children)})", title_justify="left", box=None, header_style="bold"
    )
    for name in ("run", "workflow", "status", "duration"):
        table.add_column(name, no_wrap=True)
    for child in reversed(children):
        table.add_row(
            child.id,
            child.workflow,
            status_text(child.status),
            duration(run_duration(child, now)) + ("" if child.status.is_terminal else " …"),
        )
    return table


def _fleet_rows(record: RunRecord, fleet: Fleet) -> Table:
    """The run's workflow on the live workers: its holder's version, the versions live."""
    grid = Table.grid(padding=(0, 2))
    grid.add_column(style="bold")
    grid.add_column()
    holder = fleet.holder_version(record)
    if holder is not None:
        grid.add_row("worker version", f"{holder} (on {record.owner})")
    live = fleet.versions(record.workflow)
    grid.add_row("live versions", ", ".join(live) if live else "none (no live worker defines it)")
    stranded = fleet.stranded(record)
    if stranded is not None:
        grid.add_row("stranded", Text(stranded, style="yellow"))
    return grid


def _waiting(record: RunRecord, found: list[Span], hooks: list[HookRecord]) -> Text | None:
    if record.status is not RunStatus.RUNNING:
        return None
    waits = [f"hook {h.name!r} (token {h.token!r})" for h in hooks]
    waits += [f"sleep {s.call} {s.detail}" for s in found if s.kind == "sleep" and s.end is None]
    if not waits:
        return None
    return Text.assemble(("waiting on: ", "bold cyan"), "; ".join(waits))


def render(
    record: RunRecord,
    events: list[Event],
    hooks: list[HookRecord],
    now: datetime,
    *,
    fleet: Fleet | None = None,
    children: Sequence[RunRecord] = (),
    limit_wait: str | None = None,
) -> None:
    """Print the run: its fields, what it waits on, its timeline, details and outcome.

    ``children``: its child runs (newest first, as listed), shown with their status.

    With ``fleet`` (the live workers), also the versions of its workflow they define,
    and why none can take it, if so. ``limit_wait``: why a pending run waits on its
    workflow's concurrency limit.
    """
    console = out()
    found = spans(events)
    console.print(_header(record, events, now))
    if fleet is not None:
        console.print(_fleet_rows(record, fleet))
    waiting = _waiting(record, found, hooks)
    if waiting is not None:
        console.print(waiting)
    if limit_wait is not None:
        console.print(Text.assemble(("waiting on: ", "bold cyan"), limit_wait))
    console.print()
    console.print(_labelled("input", record.input))
    console.print()
    if found:
        origin = events[0].created_at if events else record.created_at
        console.print(_timeline_table(found, origin, now))
        console.print()
    if children:
        console.print(_children_table(children, now))
        console.print()
        for span in found:
            for part in _details(span):
                console.print(part)
    if record.status is RunStatus.COMPLETED:
        console.print(_labelled("output", record.output))
    elif record.error is not None:
        console.print(_error(record.error))
    elif record.status is RunStatus.CANCELLED:
        console.print(Text("the run was cancelled", style="magenta"))
