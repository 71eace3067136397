"""``perdure limits``: each concurrency and rate limit in use, across all workers.

A workflow's limit shows its slots held and the runs waiting for one; a step's
concurrency, its attempts running; a step's rate, the starts in its current window.
Why one pending run waits is in ``perdure show RUN`` and ``perdure runs``.
"""

from __future__ import annotations

from rich import box
from rich.table import Table

from perdure._cli._common import DatabaseUrl, JsonFlag, opened, resolve_url, run, shown_url, utcnow
from perdure._cli._output import out, print_json
from perdure._flow_views import limit_json

__all__ = ["limits"]


def limits(as_json: JsonFlag = False, database_url: DatabaseUrl = None) -> None:
    """List the concurrency and rate limits in use: slots held, runs waiting, starts.

    Only limits with something in them are listed: unended runs of a limited workflow,
    attempts of a limited step, starts in a rate's window.
    """
    url = resolve_url(database_url)

    async def main() -> None:
        async with opened(url) as store:
            found = await store.limits(utcnow())
        if as_json:
            print_json([limit_json(usage) for usage in found])
            return
        if not found:
            out().print(f"no limits in use in {shown_url(url)}")
            return
        table = Table(
            header_style="bold", box=box.SIMPLE_HEAD, show_edge=False, padding=(0, 1, 0, 0)
        )
        table.add_column("kind", no_wrap=True)
        table.add_column("key", no_wrap=True, min_width=max(len(u.key) for u in found))
        table.add_column("in use", justify="right", no_wrap=True)
        table.add_column("waiting", justify="right", no_wrap=True)
        for usage in found:
            limit = f"{usage.in_use} of {usage.limit}"
            if usage.period is not None:
                limit += f" per {usage.period:g}s"
            waiting = str(usage.waiting) if usage.kind == "workflow" else "-"
            table.add_row(usage.kind, usage.key, limit, waiting)
        out().print(table)

    run(main())
