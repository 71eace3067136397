"""``perdure check-replay`` and ``perdure export``: what to run before a deploy.

``check-replay`` imports the code about to be deployed and replays, in memory, every
run in flight (and with ``--include-finished`` a sample of ended ones) against it, as
a worker of that code would when it takes the run over (`perdure._check`). It only
reads the database: nothing is written, no step runs. A run that would not replay would
be blocked by the new workers; each is printed with both sides of the divergence and
the line of workflow code that made the call, and the exit status is 1, so a deploy
script can stop there.

``export`` writes a run's log in the golden-history layout, for
`perdure.testing.check_replay` in the user's own test suite.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer

from perdure._check import divergence, export_json
from perdure._cli._common import (
    DatabaseUrl,
    get_run,
    import_modules,
    opened,
    reporting,
    resolve_url,
    run,
)
from perdure._cli._output import note, out, print_json
from perdure._records import RunStatus

if TYPE_CHECKING:
    from perdure._check import Divergence
    from perdure._records import RunRecord
    from perdure.stores import Store

__all__ = ["check_replay", "export"]


async def _runs(store: Store, limit: int, *, include_finished: bool) -> list[RunRecord]:
    """The runs in flight, newest first, up to ``limit``; then as many ended ones."""
    chosen: list[RunRecord] = []
    for status in RunStatus:
        if not status.is_terminal:
            chosen += await store.list_runs(status=status, limit=limit)
    chosen.sort(key=lambda record: (record.created_at, record.id), reverse=True)
    chosen = chosen[:limit]
    if include_finished:
        ended: list[RunRecord] = []
        for status in RunStatus:
            if status.is_terminal:
                ended += await store.list_runs(status=status, limit=limit)
        ended.sort(key=lambda record: (record.created_at, record.id), reverse=True)
        chosen += ended[:limit]
    return chosen


def check_replay(
    modules: Annotated[
        list[str],
        typer.Option(
            "--module",
            "-m",
            metavar="MODULE",
            show_default=False,
            help="A module (dotted name or path/to/file.py) of the code to check: the "
            "code about to be deployed. Repeat for several.",
        ),
    ],
    database_url: DatabaseUrl = None,
    limit: Annotated[
        int, typer.Option("--limit", min=1, help="Check at most this many runs in flight.")
    ] = 1000,
    include_finished: Annotated[
        bool,
        typer.Option(
            "--include-finished",
            help="Also replay up to --limit of the newest ended runs (a sample of real "
            "logs, to catch a change that only some paths through the workflow make).",
        ),
    ] = False,
) -> None:
    """Replay the runs in flight against this code, in memory, writing nothing.

    Exit 0 when every run replays; 1 when a worker of this code would block any of
    them, printing for each what the log holds, what the code called, and the line of
    workflow code that called it.
    """
    url = resolve_url(database_url)
    with reporting():
        import_modules(modules)

    async def main() -> tuple[int, list[Divergence]]:
        async with opened(url) as store:
            records = await _runs(store, limit, include_finished=include_finished)
            found: list[Divergence] = []
            for record in records:
                events = await store.events(record.id)
                diverged = divergence(
                    record.id, record.workflow, record.input, events, run_version=record.version
                )
                if diverged is not None:
                    found.append(diverged)
        return len(records), found

    checked, found = run(main())
    for diverged in found:
        out().print(diverged.text, soft_wrap=True, markup=False)
        out().print()
    if found:
        note(
            f"{len(found)} of {checked} run{'' if checked == 1 else 's'} would block on "
            "this code; deploy it with "
            "perdure.patched() around the change, or let those runs finish first",
            label="check-replay",
        )
        raise typer.Exit(1)
    what = "the 1 run checked replays" if checked == 1 else f"all {checked} runs replay"
    note(f"{what} on this code", label="check-replay")


def export(
    run_id: Annotated[str, typer.Argument(metavar="RUN", help="The run to export.")],
    database_url: DatabaseUrl = None,
) -> None:
    """Print a run and its whole log as JSON, for perdure.testing.check_replay.

    The layout is that of perdure's own golden histories: check a few real runs into
    your tests, and replay them against every change.
    """
    url = resolve_url(database_url)

    async def main() -> None:
        async with opened(url) as store:
            record = await get_run(store, run_id)
            events = await store.events(run_id)
        print_json(export_json(record, events))

    run(main())
