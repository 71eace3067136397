"""``perdure worker``: import the user's workflows and queued steps, run them until stopped."""

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
from perdure._prometheus import serve as serve_metrics
from perdure._workflow import queued_steps, registered_workflows

__all__ = ["worker"]


def worker(
    modules: Annotated[
        list[str],
        typer.Argument(
            metavar="MODULE",
            show_default=False,
            help="Modules that define the workflows to run (and the steps of the queues "
            "served): dotted names (the current directory is on the path) or "
            "path/to/file.py.",
        ),
    ],
    queues: Annotated[
        list[str] | None,
        typer.Option(
            "--queue",
            "-q",
            metavar="QUEUE",
            show_default=False,
            help="A queue to serve (repeatable): this worker runs the steps marked "
            "@step(queue=QUEUE) that MODULE... define, for runs held by any worker.",
        ),
    ] = None,
    concurrency: Annotated[int, typer.Option(min=1, help="Steps this worker runs at once.")] = 100,
    lease: Annotated[
        float | None,
        typer.Option(
            min=0.1,
            metavar="SECONDS",
            show_default=False,
            help="PostgreSQL: how long the runs of a worker that stops heartbeating (dead, "
            "hung or cut off) stay held before other workers take them over. Give every "
            "worker the same value. Default: 10.",
        ),
    ] = None,
    grace: Annotated[
        float,
        typer.Option(
            min=0,
            metavar="SECONDS",
            help="On SIGTERM or Ctrl-C: how long steps already running may take to finish "
            "(no new ones start) before every run is handed back.",
        ),
    ] = 30.0,
    poison_after: Annotated[
        int,
        typer.Option(
            min=1,
            metavar="N",
            help="Block a run, as a poison run, once its recovery has found its worker "
            "dead N times in a row with no progress (a step that crashes the process), "
            "instead of running it again.",
        ),
    ] = 5,
    verbose: Annotated[
        bool, typer.Option("--verbose", "-v", help="Log what the worker does (INFO level).")
    ] = False,
    metrics_port: Annotated[
        int | None,
        typer.Option(
            min=0,
            max=65535,
            metavar="PORT",
            show_default=False,
            help="Serve this worker's OpenTelemetry metrics for Prometheus at "
            "http://HOST:PORT/metrics (the metrics extra). Unauthenticated: keep it on a "
            "private address.",
        ),
    ] = None,
    metrics_host: Annotated[
        str, typer.Option(metavar="HOST", help="The address --metrics-port listens on.")
    ] = "127.0.0.1",
    database_url: DatabaseUrl = None,
) -> None:
    """Run a worker for the workflows MODULE... define, until SIGTERM or Ctrl-C.

    With --queue, it also runs the steps of those queues (@step(queue=...)) for every
    run, whichever worker holds it; MODULE... may then define only such steps.

    On SIGTERM or Ctrl-C the worker stops claiming runs, lets the steps already running
    finish (up to --grace seconds), then hands every run it holds back, so another
    worker continues them at once. A second signal exits at once.
    """
    logging.basicConfig(
        level=logging.INFO if verbose else logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    url = resolve_url(database_url)
    with reporting():
        import_modules(modules)
        served = sorted(registered_workflows())
        if not served and not queued_steps(frozenset(queues or ())):
            on_queues = f" nor @step(queue=...) for {', '.join(queues)}" if queues else ""
            raise CliError(
                f"{', '.join(modules)} define no @workflow{on_queues}: nothing to serve", USAGE
            )
    if metrics_port is not None:
        _serve_metrics(metrics_host, metrics_port)
    run(_serve(url, served, sorted(set(queues or ())), concurrency, lease, grace, poison_after))


def _serve_metrics(host: str, port: int) -> None:
    """Serve ``/metrics`` on a thread of its own: the worker's loop never waits on a scrape."""
    try:
        server = serve_metrics(host, port)
    except RuntimeError as exc:  # the metrics extra is missing
        raise CliError(str(exc), USAGE) from None
    except OSError as exc:
        raise CliError(f"cannot serve metrics on {host}:{port}: {exc}", USAGE) from None
    address, bound = server.server_address[:2]
    out().print(f"metrics for Prometheus on http://{address}:{bound}/metrics", soft_wrap=True)


async def _serve(
    url: str,
    served: list[str],
    queues: list[str],
    concurrency: int,
    lease: float | None,
    grace: float,
    poison_after: int = 5,
) -> None:
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
            engine = await stack.enter_async_context(
                Engine(
                    url,
                    max_concurrent_steps=concurrency,
                    lease=lease,
                    shutdown_grace=grace,
                    poison_after=poison_after,
                    queues=queues,
                )
            )
        except Exception as exc:
            raise database_error(url, exc) from None
        worker_id = engine.worker.id if engine.worker is not None else "?"
        out().print(
            f"perdure worker {worker_id} ready on {shown_url(url)}; serving {len(served)} "
            f"workflow{'s' if len(served) != 1 else ''}: {', '.join(served)} "
            f"(queues: {', '.join(queues) or 'none'}; concurrency {concurrency}). "
            "Ctrl-C or SIGTERM stops it.",
            soft_wrap=True,
        )
        await stop.wait()
        statistics = engine.statistics()
        held = statistics.held_runs if statistics is not None else 0
        out().print(
            f"stopping: {held} run{'s' if held != 1 else ''} held; steps running may finish "
            f"within {grace:g}s, then every run is handed back",
            soft_wrap=True,
        )
    out().print(f"perdure worker {worker_id} stopped", soft_wrap=True)
