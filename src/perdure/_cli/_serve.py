"""``perdure worker``: import the user's workflows and queued steps, run them until stopped."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import sys
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
from perdure._cli._supervisor import Supervisor, watch_supervisor
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
    processes: Annotated[
        int | None,
        typer.Option(
            min=1,
            metavar="N",
            show_default=False,
            envvar="PERDURE_WORKER_PROCESSES",
            help="Worker processes to run, under one supervisor that starts a crashed one "
            "again and stops them all on SIGTERM or Ctrl-C: one per core, each with an "
            "Engine of its own on the same database. 1 runs the worker in this process. "
            "Default: $PERDURE_WORKER_PROCESSES, else the number of cores (1 on memory://).",
        ),
    ] = None,
    supervised_by: Annotated[
        int | None, typer.Option(hidden=True, help="The supervisor's pid (its children's).")
    ] = None,
    database_url: DatabaseUrl = None,
) -> None:
    """Run a worker for the workflows MODULE... define, until SIGTERM or Ctrl-C.

    With --queue, it also runs the steps of those queues (@step(queue=...)) for every
    run, whichever worker holds it; MODULE... may then define only such steps.

    On SIGTERM or Ctrl-C the worker stops claiming runs, lets the steps already running
    finish (up to --grace seconds), then hands every run it holds back, so another
    worker continues them at once. A second signal exits at once.

    With --processes N (default: one per core), a supervisor runs N such workers as
    processes of their own, starts one again when it dies, and forwards the signal to
    all of them; --metrics-port P serves process i (from 0) on P + i.
    """
    logging.basicConfig(
        level=logging.INFO if verbose else logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    url = resolve_url(database_url)
    if supervised_by is not None:
        watch_supervisor(supervised_by)
    with reporting():
        count = _process_count(processes, url)
        import_modules(modules)
        served = sorted(registered_workflows())
        if not served and not queued_steps(frozenset(queues or ())):
            on_queues = f" nor @step(queue=...) for {', '.join(queues)}" if queues else ""
            raise CliError(
                f"{', '.join(modules)} define no @workflow{on_queues}: nothing to serve", USAGE
            )
    if count > 1:
        run(_prepare(url))
        child = _child_argv(
            modules, queues, concurrency, lease, grace, poison_after, verbose, metrics_host
        )

        def argv(index: int) -> list[str]:
            port = metrics_port + index if metrics_port else metrics_port  # 0: any
            return [*child, *(() if port is None else ("--metrics-port", str(port)))]

        env = {**os.environ, "PERDURE_DATABASE_URL": url}
        raise typer.Exit(run(Supervisor(argv, count, grace=grace, env=env).run()))
    if metrics_port is not None:
        _serve_metrics(metrics_host, metrics_port)
    run(
        _serve(
            url,
            served,
            sorted(set(queues or ())),
            concurrency,
            lease,
            grace,
            poison_after,
            supervised=supervised_by is not None,
        )
    )


def _process_count(processes: int | None, url: str) -> int:
    """How many worker processes: as told, else one per core.

    One on memory:// when not told, and more refused: its runs live in one process.
    """
    in_memory = url.startswith("memory:")
    if processes is None:
        return 1 if in_memory else _cores()
    if in_memory and processes > 1:
        raise CliError(
            f"--processes {processes}: a memory:// store lives in one process (use 1, or "
            "a SQLite or PostgreSQL database)",
            USAGE,
        )
    return processes


def _cores() -> int:
    """The cores this process may run on (a cpuset or ``taskset`` counts), else all."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # macOS, Windows
        return os.cpu_count() or 1


async def _prepare(url: str) -> None:
    """Open the database once (creating or migrating it) before any child does.

    So a wrong URL or a server down is one error now, not N children failing in a loop.
    """
    try:
        async with Engine(url, worker=False):
            pass
    except Exception as exc:
        raise database_error(url, exc) from None


def _child_argv(
    modules: list[str],
    queues: list[str] | None,
    concurrency: int,
    lease: float | None,
    grace: float,
    poison_after: int,
    verbose: bool,
    metrics_host: str,
) -> list[str]:
    """``python -m perdure worker ...`` for one child: the same options, one process.

    The database URL goes by the environment, not the command line, where ``ps`` would
    show its password.
    """
    argv = [sys.executable, "-m", "perdure", "worker", *modules, "--processes", "1"]
    argv += ["--supervised-by", str(os.getpid())]
    for queue in queues or ():
        argv += ["--queue", queue]
    argv += ["--concurrency", str(concurrency), "--grace", repr(grace)]
    argv += ["--poison-after", str(poison_after), "--metrics-host", metrics_host]
    if lease is not None:
        argv += ["--lease", repr(lease)]
    if verbose:
        argv.append("--verbose")
    return argv


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
    *,
    supervised: bool = False,
) -> None:
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()

    def on_signal(signum: int) -> None:
        # A supervised worker's second signal is the same stop (the supervisor kills it
        # on a second one of its own): see perdure._cli._supervisor.
        if stop.is_set() and not supervised:  # a second Ctrl-C: leave now
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
