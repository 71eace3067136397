"""``perdure stats``: the aggregates the dashboard's Metrics page draws, as tables or JSON."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer
from rich import box
from rich.table import Table

from perdure._cli._common import (
    USAGE,
    CliError,
    DatabaseUrl,
    JsonFlag,
    opened,
    resolve_url,
    run,
    shown_url,
    utcnow,
)
from perdure._cli._output import duration, out, print_json
from perdure._stats import OUTCOMES
from perdure._stats_view import read_stats, stats_json

if TYPE_CHECKING:
    from perdure._stats import RunStats

__all__ = ["stats"]


def stats(
    since: Annotated[
        str,
        typer.Option(
            metavar="WINDOW",
            help="How far back: a whole number and s, m, h, d or w (30m, 1h, 24h, 7d).",
        ),
    ] = "1h",
    workflow: Annotated[
        str | None,
        typer.Option(metavar="NAME", help="Only this workflow's runs.", show_default=False),
    ] = None,
    as_json: JsonFlag = False,
    database_url: DatabaseUrl = None,
) -> None:
    """Runs started and ended, failure rates, the slowest steps and the backlog.

    Counted from the store, so they cover every worker (GET /stats and the dashboard's
    Metrics page show the same). Step durations are those of the step calls (retries
    included) of the most recently ended runs in the window.
    """
    url = resolve_url(database_url)

    async def main() -> None:
        async with opened(url) as store:
            try:
                found = await read_stats(store, utcnow(), since, workflow)
            except ValueError as exc:
                raise CliError(str(exc), USAGE) from None
        if as_json:
            print_json(stats_json(found))
            return
        _print(found, since, url)

    run(main())


def _table(*columns: str) -> Table:
    table = Table(header_style="bold", box=box.SIMPLE_HEAD, show_edge=False, padding=(0, 1, 0, 0))
    for name in columns:
        table.add_column(name, justify="left" if name in {"workflow", "step"} else "right")
    return table


def _print(found: RunStats, since: str, url: str) -> None:
    console = out()
    minutes = int(found.window.bucket.total_seconds() // 60)
    scope = f"workflow {found.workflow}" if found.workflow else "all workflows"
    console.print(
        f"runs of {scope} over the last {since} in {shown_url(url)} (per bucket of {minutes} min)",
        soft_wrap=True,
    )
    totals = _table("started", *OUTCOMES, "pending now", "blocked now")
    counts = found.totals
    totals.add_row(*(str(counts[key]) for key in ("started", *OUTCOMES, "pending", "blocked")))
    console.print(totals)
    if found.workflows:
        table = _table("workflow", *OUTCOMES, "failure rate")
        for each in found.workflows:
            table.add_row(
                each.workflow,
                str(each.completed),
                str(each.failed),
                str(each.cancelled),
                f"{each.failure_rate:.1%}",
            )
        console.print(table)
    else:
        console.print("no run ended in this window")
    if found.steps:
        console.print(f"slowest steps (the {found.sampled_runs} most recently ended runs):")
        table = _table("step", "calls", "p50", "p95", "p99", "retries", "failed")
        for step in found.steps:
            table.add_row(
                step.name,
                str(step.calls),
                duration(step.p50),
                duration(step.p95),
                duration(step.p99),
                str(step.retries),
                str(step.failed),
            )
        console.print(table)
    if found.backlog:
        table = _table("workflow", "pending", "blocked")
        for waiting in found.backlog:
            table.add_row(waiting.workflow, str(waiting.pending), str(waiting.blocked))
        console.print(table)
    else:
        console.print("backlog: nothing pending or blocked")
