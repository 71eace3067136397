"""``perdure workers``: the live workers, and the workflow versions each defines.

Before and during a deploy, the question is which code is running where: each worker
records, with its heartbeat, the workflows it defines and their versions
(`perdure.stores.WorkerStore.live_workers`). The runs list and ``show`` say the same per
run (`perdure._worker_views.fleet_json`); this lists it per worker.
"""

from __future__ import annotations

from rich import box
from rich.table import Table

from perdure._cli._common import DatabaseUrl, JsonFlag, opened, resolve_url, run, shown_url, utcnow
from perdure._cli._output import out, print_json, when
from perdure._worker_views import worker_json

__all__ = ["workers"]


def workers(as_json: JsonFlag = False, database_url: DatabaseUrl = None) -> None:
    """List the live workers, and the workflows and versions each defines.

    Each with its id, host, pid and last heartbeat. A worker that stopped heartbeating
    for longer than the lease (SQLite: whose process is gone) is not listed.
    """
    url = resolve_url(database_url)

    async def main() -> None:
        async with opened(url) as store:
            found = await store.live_workers(utcnow())
        if as_json:
            print_json([worker_json(worker) for worker in found])
            return
        if not found:
            out().print(f"no live workers in {shown_url(url)}")
            return
        table = Table(
            header_style="bold", box=box.SIMPLE_HEAD, show_edge=False, padding=(0, 1, 0, 0)
        )
        table.add_column("id", no_wrap=True, min_width=max(len(w.id) for w in found))
        table.add_column("host")
        table.add_column("pid", justify="right", no_wrap=True)
        table.add_column("workflows (version)")
        table.add_column("heartbeat (UTC)", no_wrap=True)
        for worker in found:
            defined = ", ".join(f"{name} ({v})" for name, v in sorted(worker.workflows.items()))
            table.add_row(
                worker.id, worker.host, str(worker.pid), defined or "-", when(worker.heartbeat_at)
            )
        out().print(table)

    run(main())
