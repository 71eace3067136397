"""Commands that read: ``runs``, ``show``, ``events``, ``hooks``."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich import box
from rich.table import Table
from rich.text import Text

from perdure._cli import _timeline
from perdure._cli._common import (
    USAGE,
    CliError,
    DatabaseUrl,
    JsonFlag,
    get_run,
    opened,
    reporting,
    resolve_url,
    run,
    shown_url,
    utcnow,
)
from perdure._cli._listing import attributes_text, list_filters, next_page, page_of
from perdure._cli._output import (
    duration,
    event_json,
    hook_json,
    note,
    out,
    print_json,
    run_duration,
    run_json,
    shown_run_json,
    status_text,
    when,
)
from perdure._cli._tree import MAX_CHILDREN, TreeRow, flatten, indented, read_tree, tree_json
from perdure._fleet import Fleet
from perdure._flow_views import waiting_json
from perdure._records import RunRecord, RunStatus
from perdure._replay import parse_duration
from perdure._views import UNREADABLE, malformed_text, problems_text
from perdure._worker_views import fleet_json

if TYPE_CHECKING:
    from perdure._flow import LimitWait
    from perdure.stores import Store

__all__ = ["events", "hooks", "runs", "show"]

_WIDE = 120
"""Terminal columns from which `runs` shows the updated time too."""

RunId = Annotated[str, typer.Argument(metavar="RUN", help="The run's id.", show_default=False)]


def _since(text: str, now: datetime) -> datetime:
    """The ``--since`` cutoff: an ISO 8601 time, or that long before ``now``."""
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        pass
    else:
        return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)
    try:
        return now - parse_duration(text, what="--since")
    except OverflowError:  # 99999999999d: more than a timedelta holds, or before year 1
        raise CliError(
            f"--since {text!r} reaches back before the year 1; give a shorter duration or a time",
            USAGE,
        ) from None
    except (TypeError, ValueError):
        raise CliError(
            f"--since {text!r} is neither an ISO 8601 time (2024-05-01T12:00) "
            "nor a duration (30m, 1h, 7d)",
            USAGE,
        ) from None


def runs(
    status: Annotated[
        RunStatus | None, typer.Option(help="Only runs with this status.", show_default=False)
    ] = None,
    workflow: Annotated[
        str | None, typer.Option(help="Only runs of this workflow.", show_default=False)
    ] = None,
    since: Annotated[
        str | None,
        typer.Option(
            metavar="TIME|DURATION",
            show_default=False,
            help="Only runs created since this ISO 8601 time (UTC unless it has an offset) "
            "or this long ago (30m, 1h, 7d).",
        ),
    ] = None,
    limit: Annotated[int, typer.Option(min=1, help="At most this many runs.")] = 100,
    attr: Annotated[
        list[str] | None,
        typer.Option(
            "--attr",
            metavar="KEY=VALUE",
            show_default=False,
            help="Only runs with this attribute (perdure.set_attributes); repeat it for "
            "several, all of which must match. Compared as text: items=3 finds 3 and '3'.",
        ),
    ] = None,
    after: Annotated[
        str | None,
        typer.Option(
            metavar="CURSOR",
            show_default=False,
            help="The runs after this cursor: the next page, as a listing prints it.",
        ),
    ] = None,
    parent: Annotated[
        str | None,
        typer.Option(
            "--parent",
            metavar="RUN",
            show_default=False,
            help="Only the child runs of this run (perdure.start_child).",
        ),
    ] = None,
    tree: Annotated[
        bool,
        typer.Option(
            "--tree",
            help="The listed runs that are not child runs (with --parent: its children), "
            "each followed by its child runs, indented, to any depth.",
        ),
    ] = False,
    as_json: JsonFlag = False,
    database_url: DatabaseUrl = None,
) -> None:
    """List runs, newest first, a page at a time.

    When more runs match than --limit, the cursor of the next page is printed (on
    stderr with --json, so stdout stays one JSON array): pass it as --after.
    With --tree and --json, each run has its ``children``, nested.
    """
    now = utcnow()
    with reporting():
        cutoff = _since(since, now) if since is not None else None
        terms, before = list_filters(attr or [], after)
    url = resolve_url(database_url)

    async def main() -> None:
        async with opened(url) as store:
            # Newest first, so the runs created after a cutoff are a prefix of the list.
            found = await store.list_runs(
                status=status,
                workflow=workflow,
                limit=limit + 1,
                attributes=terms,
                before=before,
                parent_id=parent,
            )
            found, following = page_of(found, limit, since=cutoff)
            rows = await read_tree(store, found, parent) if tree else [TreeRow(r) for r in found]
            fleet = Fleet(await store.live_workers(now))
            waits = await _limit_waits(store, [row.record for row in flatten(rows)])
        if as_json:

            def shape(r: RunRecord) -> dict[str, Any]:
                return {**run_json(r), **fleet_json(r, fleet), **waiting_json(waits.get(r.id))}

            print_json(tree_json(rows, shape) if tree else [shape(r) for r in found])
            next_page(following, to_stderr=True)
            return
        if not found:
            filtered = status or workflow or since or attr or after or parent
            out().print(f"no runs in {shown_url(url)}" + (" match" if filtered else ""))
            return
        if not rows:
            out().print("no top-level runs in this page (its runs are all child runs)")
        else:
            _print_runs(flatten(rows), fleet, now)
        next_page(following, to_stderr=False)
        _notes(flatten(rows), fleet, waits)

    run(main())


def _print_runs(rows: list[TreeRow], fleet: Fleet, now: datetime) -> None:
    """The runs as a table, a tree's ids indented by depth."""
    found = [row.record for row in rows]
    # Ids stay whole on a narrow terminal (people copy them); times wrap instead,
    # and the updated column goes.
    wide = out().width >= _WIDE
    table = Table(header_style="bold", box=box.SIMPLE_HEAD, show_edge=False, padding=(0, 1, 0, 0))
    ids = [indented(row) for row in rows]
    table.add_column("id", no_wrap=True, min_width=max(len(i) for i in ids))
    table.add_column("workflow", min_width=min(12, max(len(r.workflow) for r in found)))
    table.add_column("status", no_wrap=True, min_width=9)
    table.add_column("created (UTC)", min_width=10)
    if wide:
        table.add_column("updated (UTC)", min_width=10)
        table.add_column("version", no_wrap=True)
        table.add_column("workers' version", no_wrap=True)
    table.add_column("duration", justify="right", no_wrap=True)
    labelled = any(r.attributes for r in found)
    if labelled:
        table.add_column("attributes")
    for shown_id, r in zip(ids, found, strict=True):
        times = (
            [when(r.created_at), when(r.updated_at), r.version or "-", _workers_version(r, fleet)]
            if wide
            else [when(r.created_at)]
        )
        table.add_row(
            shown_id,
            r.workflow,
            _status_cell(r),
            *times,
            duration(run_duration(r, now)) + ("" if r.status.is_terminal else " …"),
            *([attributes_text(r.attributes or {})] if labelled else []),
        )
    out().print(table)


def _notes(rows: list[TreeRow], fleet: Fleet, waits: dict[str, LimitWait]) -> None:
    """What the table cannot say of the runs listed, on stderr, one kind after another."""
    for row in rows:
        if row.truncated:
            note(
                f"run {row.record.id}: only its newest {MAX_CHILDREN} child runs are "
                f"shown (perdure runs --parent {row.record.id} pages through all)",
                label="tree",
            )
    found = [row.record for row in rows]
    for r in found:  # rows it cannot read in full: listed, and said what is wrong
        if r.malformed is not None:
            note(f"run {r.id}: {malformed_text(r)}", label="unreadable")
    for r in found:  # runs waiting for a worker that none of the live ones can be
        stranded = fleet.stranded(r)
        if stranded is not None and r.malformed is None:
            note(f"run {r.id}: {stranded}", label="stranded")
    for r in found:  # runs waiting on their workflow's concurrency limit
        wait = waits.get(r.id)
        if wait is not None:
            note(f"run {r.id}: {wait.reason}", label="waiting")


async def _limit_waits(store: Store, found: list[RunRecord]) -> dict[str, LimitWait]:
    """Why each pending, unheld run listed waits on its workflow's limit (if it does)."""
    waits = {}
    for r in found:
        if r.status is RunStatus.PENDING and r.owner is None and r.malformed is None:
            wait = await store.limit_wait(r.id)
            if wait is not None:
                waits[r.id] = wait
    return waits


def _workers_version(record: RunRecord, fleet: Fleet) -> str:
    """The version of the run's workflow on its worker, else those the live workers define."""
    holder = fleet.holder_version(record)
    if holder is not None:
        return holder
    if record.status.is_terminal:
        return "-"
    return ", ".join(fleet.versions(record.workflow)) or "none live"


def _status_cell(record: RunRecord) -> Text:
    """The run's status in its colour; ``unreadable`` for one this release does not know."""
    if record.malformed is not None and "status" in record.malformed:
        return Text(UNREADABLE, style="bold red")
    return status_text(record.status)


_MAX_CHILDREN = 1000
"""The child runs `show` lists at most (the newest)."""


def show(run_id: RunId, as_json: JsonFlag = False, database_url: DatabaseUrl = None) -> None:
    """Show a run: its steps, sleeps, hooks and child runs, inputs, outputs and errors.

    With --json: one object with the run's fields plus its events, steps, live hooks and
    child runs.
    """
    url = resolve_url(database_url)

    async def main() -> None:
        async with opened(url) as store:
            record = await get_run(store, run_id)
            log = await store.events(run_id)
            steps = await store.steps(run_id)
            live = await store.list_hooks(run_id=run_id)
            fleet = Fleet(await store.live_workers(utcnow()))
            wait = await store.limit_wait(run_id)
            children = await store.list_runs(parent_id=run_id, limit=_MAX_CHILDREN)
        if as_json:
            print_json(
                {
                    **shown_run_json(record, log, steps, live, children),
                    **fleet_json(record, fleet),
                    **waiting_json(wait),
                }
            )
            return
        _timeline.render(
            record,
            log,
            live,
            utcnow(),
            fleet=fleet,
            children=children,
            limit_wait=wait.reason if wait is not None else None,
        )
        for step in steps:  # the timeline is drawn from the log; a damaged row is named
            if step.malformed is not None:
                shown = problems_text(step.malformed)
                note(f"step {step.correlation_id or '?'}'s row: {shown}", label="unreadable")

    run(main())


def events(run_id: RunId, as_json: JsonFlag = False, database_url: DatabaseUrl = None) -> None:
    """Print a run's raw event log, in order."""
    url = resolve_url(database_url)

    async def main() -> None:
        async with opened(url) as store:
            await get_run(store, run_id)
            log = await store.events(run_id)
        if as_json:
            print_json([event_json(e) for e in log])
            return
        table = Table(
            header_style="bold", box=box.SIMPLE_HEAD, show_edge=False, padding=(0, 1, 0, 0)
        )
        for name in ("seq", "time (UTC)", "offset", "type", "call"):
            table.add_column(name, no_wrap=True, justify="right" if name == "seq" else "left")
        table.add_column("data", overflow="fold")
        origin = log[0].created_at if log else None
        for e in log:
            offset = (e.created_at - origin).total_seconds() if origin else 0.0
            table.add_row(
                str(e.seq),
                when(e.created_at),
                f"+{offset:.3f}s",
                e.type.value,
                e.correlation_id or "",
                Text(json.dumps(e.data, ensure_ascii=False, default=str)),
            )
        out().print(table)

    run(main())


def hooks(
    run_id: Annotated[
        str | None,
        typer.Option("--run", metavar="RUN", help="Only this run's hooks.", show_default=False),
    ] = None,
    as_json: JsonFlag = False,
    database_url: DatabaseUrl = None,
) -> None:
    """List live hooks (oldest first) and the tokens that resume them."""
    url = resolve_url(database_url)

    async def main() -> None:
        async with opened(url) as store:
            if run_id is not None:
                await get_run(store, run_id)
            live = await store.list_hooks(run_id=run_id)
        if as_json:
            print_json([hook_json(h) for h in live])
            return
        if not live:
            out().print(
                "no live hooks" + (f" for run {run_id}" if run_id else f" in {shown_url(url)}")
            )
            return
        table = Table(
            header_style="bold", box=box.SIMPLE_HEAD, show_edge=False, padding=(0, 1, 0, 0)
        )
        for name in ("token", "name", "kind", "run", "call", "created (UTC)"):
            table.add_column(name, no_wrap=name in {"token", "run"})
        for h in live:
            table.add_row(h.token, h.name, h.kind, h.run_id, h.correlation_id, when(h.created_at))
        out().print(table)

    run(main())
