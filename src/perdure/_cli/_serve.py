"""``perdure worker``: import the user's workflows and run them until told to stop."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
from typing import Annotated

import typer

from perdure._cli._common import (
    USAGE,
    CliError,
    DatabaseUrl,
    database_error,
    import_modules,
    reporting,
    resolve_url,
    run,
    shown_url,
)
from perdure._cli._output import err, out
from perdure._engine import Engine
from perdure._workflow import registered_workflows

__all__ = ["worker"]


def worker(
    modules: Annotated[
        list[str],
        typer.Argument(
            metavar="MODULE",
            show_default=False,
            help="Modules that define the workflows to run: dotted names (the current "
            "directory is on the path) or path/to/file.py.",
        ),
    ],
    queues: Annotated[
        list[str] | None,
        typer.Option(
            "--queue",
            "-q",
            metavar="QUEUE",
            show_default=False,
            help="A queue to serve (repeatable). Accepted and shown; queue routing is "
            "not implemented yet, so every step runs on the worker holding its run.",
        ),
    ] = None,
    concurrency: Annotated[int, typer.Option(min=1, help="Steps this worker runs at once.")] = 100,
    verbose: Annotated[
        bool, typer.Option("--verbose", "-v", help="Log what the worker does (INFO level).")
    ] = False,
    database_url: DatabaseUrl = None,
) -> None:
    """Run a worker for the workflows MODULE... define, until SIGTERM or Ctrl-C.

    On stop, the runs the worker holds are handed back at once, so another worker
    continues them without waiting.
    """
    logging.basicConfig(
        level=logging.INFO if verbose else logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    url = resolve_url(database_url)
    with reporting():
        import_modules(modules)
        served = sorted(registered_workflows())
        if not served:
            raise CliError(f"{', '.join(modules)} define no @workflow: nothing to serve", USAGE)
    run(_serve(url, served, queues or ["default"], concurrency))


async def _serve(url: str, served: list[str], queues: list[str], concurrency: int) -> None:
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()

    def on_signal(signum: int) -> None:
        if stop.is_set():  # a second Ctrl-C: leave now; a new worker reaps the runs
            err().print(f"{signal.Signals(signum).name} again: exiting at once", soft_wrap=True)
            os._exit(128 + signum)
        stop.set()

    for signum in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError):  # Windows: KeyboardInterrupt it is
            loop.add_signal_handler(signum, on_signal, signum)

    async with contextlib.AsyncExitStack() as stack:
        try:
            engine = await stack.enter_async_context(Engine(url, max_concurrent_steps=concurrency))
        except Exception as exc:
            raise database_error(url, exc) from None
        worker_id = engine.worker.id if engine.worker is not None else "?"
        out().print(
            f"perdure worker {worker_id} ready on {shown_url(url)}; serving {len(served)} "
            f"workflow{'s' if len(served) != 1 else ''}: {', '.join(served)} "
            f"(queues: {', '.join(queues)}; concurrency {concurrency}). "
            "Ctrl-C or SIGTERM stops it.",
            soft_wrap=True,
        )
        await stop.wait()
        statistics = engine.statistics()
        held = statistics.held_runs if statistics is not None else 0
        out().print(f"stopping: handing back {held} run{'s' if held != 1 else ''}", soft_wrap=True)
    out().print(f"perdure worker {worker_id} stopped", soft_wrap=True)
