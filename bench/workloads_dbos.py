"""DBOS Transact's side of the comparison: the workloads of `run.py`, one per process.

    bench/.venv/bin/python bench/workloads_dbos.py WORKLOAD --url URL [--params JSON]

The same shape as `workloads_perdure.py`, workload for workload, with DBOS's async API
(`DBOS.start_workflow_async`, async steps, `DBOS.recv_async` / `DBOS.send_async`,
`DBOS.sleep_async`), so that both libraries run their workflows on an asyncio event
loop. DBOS is configured with its defaults apart from the application name, the
system database URL and a log level of WARNING; no Conductor key is given, so it
connects to nothing but the database. Its SQLite system database is a file in the
benchmark's temporary folder; its PostgreSQL one a throwaway database.

DBOS is not installed in the project's own virtual environment, and its API is typed
here as ``Any`` (see ``[[tool.mypy.overrides]]`` in pyproject.toml).
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import signal
import statistics
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any, NoReturn

from benchlib import emit, history_windows, percentile, read_line_with, rss_mib, run_workload, spawn
from dbos import DBOS, DBOSClient, SetWorkflowID

Params = dict[str, Any]
Figures = dict[str, Any]
RECV_TIMEOUT = 600.0


def launch(url: str) -> None:
    """Configure and launch DBOS on this system database."""
    config: Any = {"name": "perdure-bench", "system_database_url": url, "log_level": "WARNING"}
    DBOS(config=config)
    DBOS.launch()


class Counter:
    """Counts calls from any thread (DBOS runs recovered workflows on its own loop)."""

    def __init__(self) -> None:
        self.count = 0
        self.target = -1
        self.first_at = 0.0
        self.last_at = 0.0
        self._lock = threading.Lock()

    def hit(self) -> None:
        with self._lock:
            self.count += 1
            self.last_at = time.time()
            if self.count == 1:
                self.first_at = self.last_at

    async def reached(self) -> None:
        while self.count < self.target:  # noqa: ASYNC110 - hits come from other threads
            await asyncio.sleep(0.005)


# -- workflows -----------------------------------------------------------------------


@DBOS.step()
async def noop(i: int) -> int:
    """A step that does nothing: all that is measured is the library's own cost."""
    return i


@DBOS.workflow()
async def sequential(n: int) -> int:
    """N trivial steps, one after the other."""
    total = 0
    for i in range(n):
        total += await noop(i)
    return total


@DBOS.step()
async def clock(i: int) -> float:
    """A trivial step that says when it ran."""
    del i
    return time.perf_counter()


@DBOS.workflow()
async def timed_sequential(n: int) -> list[float]:
    """N trivial steps, one after the other; when each of them ran."""
    return [await clock(i) for i in range(n)]


@DBOS.workflow()
async def fan_child(i: int) -> int:
    """A child workflow of one trivial step."""
    return int(await noop(i))


@DBOS.workflow()
async def fan_out(n: int) -> int:
    """N child workflows started at once from this one (DBOS.start_workflow_async in a
    workflow), then their results, one after the other (each read is recorded)."""
    handles = [await DBOS.start_workflow_async(fan_child, i) for i in range(n)]
    total = 0
    for handle in handles:
        total += await handle.get_result()
    return total


@DBOS.workflow()
async def one_step(i: int) -> int:
    """One trivial step."""
    return int(await noop(i))


@DBOS.step()
async def stamp(round_: int) -> float:
    """The time this step began."""
    del round_
    return time.time()


@DBOS.workflow()
async def waiter(rounds: int) -> list[float]:
    """Announce round i (an event), wait for message i, then stamp the time."""
    stamps = []
    for i in range(rounds):
        await DBOS.set_event_async("round", i)
        await DBOS.recv_async("ping", timeout_seconds=RECV_TIMEOUT)
        stamps.append(await stamp(i))
    return stamps


@DBOS.workflow()
async def sleeper(seconds: float, times: int) -> list[float]:
    """Sleep ``times`` times; how late each sleep woke, in seconds."""
    late = []
    for _ in range(times):
        before = time.time()
        await DBOS.sleep_async(seconds)
        late.append(time.time() - before - seconds)
    # DBOS sets a sleep's deadline from the clock at the call: lateness against the
    # deadline is lateness against the call.
    return late + late


STARTED = Counter()


@DBOS.step()
async def hang(i: int) -> int:
    """In the process to be killed, never return; after recovery, return at once."""
    STARTED.hit()
    if os.environ.get("BENCH_PHASE") == "load":
        await asyncio.Event().wait()
    return i


@DBOS.workflow()
async def recoverable(i: int) -> int:
    """One step that the first process never finishes."""
    return int(await hang(i))


NAPPING = Counter()


@DBOS.workflow()
async def nap(i: int) -> int:
    """Sleep for an hour."""
    NAPPING.hit()
    await DBOS.sleep_async(3600)
    return i


# -- workloads -------------------------------------------------------------------------


async def start_many(
    fn: Any, args: list[tuple[Any, ...]], ids: list[str] | None = None
) -> list[Any]:
    """Start one workflow per argument tuple, up to 500 starts in flight at once."""

    async def start_one(index: int) -> Any:
        if ids is None:
            return await DBOS.start_workflow_async(fn, *args[index])
        with SetWorkflowID(ids[index]):
            return await DBOS.start_workflow_async(fn, *args[index])

    handles: list[Any] = []
    for at in range(0, len(args), 500):
        chunk = range(at, min(at + 500, len(args)))
        handles.extend(await asyncio.gather(*(start_one(i) for i in chunk)))
    return handles


async def run(fn: Any, *args: Any) -> Any:
    """Start a workflow and wait for its result."""
    handle = await DBOS.start_workflow_async(fn, *args)
    return await handle.get_result()


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


async def a_sequential(url: str, params: Params) -> Figures:
    """µs per step of one workflow of N trivial steps (best of up to ``repeat``)."""
    figures: Figures = {}
    launch(url)
    await run(sequential, 10)  # warm up
    for n in params["sizes"]:
        best, spent, tries = float("inf"), 0.0, 0
        while tries < params["repeat"] and (tries == 0 or spent < params["budget_s"]):
            began = time.perf_counter()
            result = await run(sequential, n)
            took = time.perf_counter() - began
            if result != n * (n - 1) // 2:
                raise SystemExit(f"wrong result {result} for n={n}")
            best, spent, tries = min(best, took), spent + took, tries + 1
        figures[f"us_per_step_{n}"] = best / n * 1e6
    return figures


async def i_history(url: str, params: Params) -> Figures:
    """The cost of a step against the history behind it: one run of N steps per size."""
    figures: Figures = {}
    launch(url)
    await run(timed_sequential, 10)  # warm up
    for n in params["sizes"]:
        figures.update(history_windows(await run(timed_sequential, n), params["windows"]))
    return figures


async def b_latency(url: str, params: Params) -> Figures:
    """Start-to-result time of a one-step workflow, one run after another."""
    samples: list[float] = []
    launch(url)
    for i in range(5):
        await run(one_step, i)
    deadline = time.perf_counter() + params["budget_s"]
    while len(samples) < params["count"] and time.perf_counter() < deadline:
        began = time.perf_counter()
        await run(one_step, len(samples))
        samples.append(time.perf_counter() - began)
    return latency_figures(samples, "")


async def h_fan_out(url: str, params: Params) -> Figures:
    """One parent starting ``children`` child workflows: its start to its result."""
    children = params["children"]
    launch(url)
    await run(fan_out, 10)  # warm up
    began = time.perf_counter()
    total = await run(fan_out, children)
    took = time.perf_counter() - began
    if total != children * (children - 1) // 2:
        raise SystemExit("the fan-out returned a wrong result")
    return {"total_s": took, "children_per_s": children / took}


async def c_throughput(url: str, params: Params) -> Figures:
    """``runs`` workflows of ``steps`` trivial steps, all started at once."""
    runs, steps = params["runs"], params["steps"]
    launch(url)
    await run(sequential, steps)  # warm up
    began = time.perf_counter()
    handles = await start_many(sequential, [(steps,)] * runs)
    started = time.perf_counter()
    results = await asyncio.gather(*(h.get_result() for h in handles))
    took = time.perf_counter() - began
    if any(r != steps * (steps - 1) // 2 for r in results):
        raise SystemExit("a run returned a wrong result")
    return {
        "workflows_per_s": runs / took,
        "steps_per_s": runs * steps / took,
        "total_s": took,
        "start_all_s": started - began,
    }


class Sender:
    """Where messages come from: this process's DBOS, or a DBOSClient in another process."""

    def __init__(self, client: Any | None) -> None:
        self.client = client

    async def round_announced(self, workflow_id: str) -> Any:
        if self.client is None:
            return await DBOS.get_event_async(workflow_id, "round", timeout_seconds=0.01)
        return await self.client.get_event_async(workflow_id, "round", timeout_seconds=0.01)

    async def send(self, workflow_id: str, i: int) -> None:
        if self.client is None:
            await DBOS.send_async(workflow_id, i, topic="ping")
        else:
            await self.client.send_async(workflow_id, i, topic="ping")

    async def result(self, workflow_id: str) -> Any:
        if self.client is None:
            handle = await DBOS.retrieve_workflow_async(workflow_id)
        else:
            handle = await self.client.retrieve_workflow_async(workflow_id)
        return await handle.get_result()


async def resume_rounds(sender: Sender, workflow_id: str, params: Params) -> Figures:
    """Send the waiter's messages one by one; latencies from each send to the next step."""
    total = params["warmup"] + params["rounds"]
    sent: list[float] = []
    calls: list[float] = []
    deadline = time.perf_counter() + params["budget_s"]
    for i in range(total):
        async with asyncio.timeout(60):
            while await sender.round_announced(workflow_id) != i:  # noqa: ASYNC110
                await asyncio.sleep(0.0005)
        # A random wait first, so that the resume does not fall in step with a polling
        # watcher's period (which would give the same, best or worst, delay every round).
        await asyncio.sleep(params["gap_s"] + random.uniform(0, params["jitter_s"]))
        began = time.time()
        await sender.send(workflow_id, i)
        calls.append(time.time() - began)
        sent.append(began)
        if i >= params["warmup"] + params["min_rounds"] and time.perf_counter() > deadline:
            break
    for i in range(len(sent), total):  # let the run end (not measured)
        await sender.send(workflow_id, i)
    stamps: list[float] = await sender.result(workflow_id)
    latencies = [stamps[i] - sent[i] for i in range(params["warmup"], len(sent))]
    figures = latency_figures(latencies, "")
    figures["resume_call_p50_ms"] = statistics.median(calls[params["warmup"] :]) * 1000
    return figures


async def d_resume(url: str, params: Params) -> Figures:
    """Send to continuation, in the same process and from another process."""
    total = params["warmup"] + params["rounds"]
    figures: Figures = {}
    # Same process: DBOS runs the workflow here; this process sends.
    launch(url)
    with SetWorkflowID("resume-same"):
        await DBOS.start_workflow_async(waiter, total)
    same = await resume_rounds(Sender(None), "resume-same", params)
    figures.update({f"same_{k}": v for k, v in same.items()})
    DBOS.destroy()
    # DBOS made its own (now shut down) pool this loop's default executor; the client's
    # async calls need one that runs.
    asyncio.get_running_loop().set_default_executor(ThreadPoolExecutor(8))
    # Another process runs the workflow; this one sends with a DBOSClient.
    server = await spawn(
        "workloads_dbos.py", "serve-resume", "--url", url, "--params", json.dumps(params)
    )
    client = DBOSClient(system_database_url=url)
    try:
        workflow_id = await read_line_with(server, "started", 60)
        cross = await resume_rounds(Sender(client), workflow_id, params)
        figures.update({f"cross_{k}": v for k, v in cross.items()})
    finally:
        client.destroy()
        if server.returncode is None:
            server.terminate()
        await server.wait()
    return figures


async def serve_resume(url: str, params: Params) -> Figures:
    """Helper process of `d_resume`: run the waiter here until it ends."""
    total = params["warmup"] + params["rounds"]
    launch(url)
    with SetWorkflowID("resume-cross"):
        handle = await DBOS.start_workflow_async(waiter, total)
    print("started resume-cross", flush=True)
    await handle.get_result()
    return {}


async def e_sleep(url: str, params: Params) -> Figures:
    """How late durable sleeps wake: ``runs`` runs sleeping ``times`` x ``seconds``."""
    launch(url)
    await run(sleeper, 0.05, 1)  # warm up
    handles = await start_many(sleeper, [(params["seconds"], params["times"])] * params["runs"])
    figures: Figures = {}
    results = await asyncio.gather(*(h.get_result() for h in handles))
    times = params["times"]
    figures.update(latency_figures([x for r in results for x in r[:times]], "late_"))
    figures.update(latency_figures([x for r in results for x in r[times:]], "late_deadline_"))
    return figures


async def f_recovery(url: str, params: Params) -> Figures:
    """``runs`` runs mid-step in a process that is SIGKILLed; time until all run again."""
    encoded = json.dumps(params)
    loader = await spawn(
        "workloads_dbos.py",
        *("recovery-load", "--url", url, "--params", encoded),
        env={"BENCH_PHASE": "load"},
    )
    try:
        await read_line_with(loader, "loaded", params["load_timeout_s"])
    finally:
        loader.send_signal(signal.SIGKILL)
        await loader.wait()
    spawned = time.time()
    resumer = await spawn("workloads_dbos.py", "recovery-resume", "--url", url, "--params", encoded)
    try:
        line = await read_line_with(resumer, "recovered", params["recover_timeout_s"])
    finally:
        if resumer.returncode is None:
            resumer.send_signal(signal.SIGKILL)
        await resumer.wait()
    times = json.loads(line)
    return {
        "imported_s": times["main"] - spawned,
        "first_running_s": times["first"] - spawned,
        "all_running_s": times["all_running"] - spawned,
        "all_completed_s": times["all_completed"] - spawned,
    }


async def recovery_load(url: str, params: Params) -> Figures:
    """Helper of `f_recovery`: start the runs and hold every one inside its step."""
    runs = params["runs"]
    STARTED.target = runs
    launch(url)
    await start_many(recoverable, [(i,) for i in range(runs)], [f"rec-{i}" for i in range(runs)])
    await STARTED.reached()
    print("loaded", flush=True)
    await asyncio.Event().wait()  # until SIGKILL
    return {}


async def recovery_resume(url: str, params: Params) -> NoReturn:
    """Helper of `f_recovery`: launch, which recovers the dead process's workflows."""
    main_at = time.time()
    runs = params["runs"]
    STARTED.target = runs
    launch(url)
    await STARTED.reached()
    while await DBOS.list_workflows_async(  # noqa: ASYNC110 - polling the store is the point
        status=["PENDING", "ENQUEUED"], limit=1, load_input=False, load_output=False
    ):
        await asyncio.sleep(0.01)
    times = {
        "main": main_at,
        "first": STARTED.first_at,
        "all_running": STARTED.last_at,
        "all_completed": time.time(),
    }
    print(f"recovered {json.dumps(times)}", flush=True)
    os._exit(0)


def sleeps_logged(url: str) -> int:
    """How many `DBOS.sleep` calls the system database holds (read with plain SQL)."""
    import sqlalchemy as sa  # noqa: PLC0415 - a DBOS dependency

    if url.startswith("sqlite"):
        engine = sa.create_engine(url)
        table = "operation_outputs"
    else:
        engine = sa.create_engine(url.replace("postgresql://", "postgresql+psycopg://", 1))
        table = "dbos.operation_outputs"
    try:
        with engine.connect() as conn:
            count = conn.execute(
                sa.text(f"SELECT count(*) FROM {table} WHERE function_name = 'DBOS.sleep'")  # noqa: S608
            ).scalar_one()
    finally:
        engine.dispose()
    return int(count)


async def g_memory(url: str, params: Params) -> NoReturn:
    """Resident size of this process holding ``runs`` sleeping workflows."""
    runs = params["runs"]
    NAPPING.target = runs
    launch(url)
    await run(sequential, 10)  # warm up
    await run(sleeper, 0.01, 1)
    baseline = rss_mib()
    began = time.perf_counter()
    await start_many(nap, [(i,) for i in range(runs)])
    await NAPPING.reached()
    while await asyncio.to_thread(sleeps_logged, url) < runs + 1:  # noqa: ASYNC110
        await asyncio.sleep(0.2)  # + 1: the warm-up's sleep
    loaded_s = time.perf_counter() - began
    await asyncio.sleep(1.0)
    held = rss_mib()
    emit(
        {
            "baseline_mib": baseline,
            "rss_mib": held,
            "kib_per_run": (held - baseline) * 1024 / runs,
            "load_s": loaded_s,
            "version": version(),
        }
    )
    os._exit(0)  # DBOS.destroy() would wait on every sleeping workflow's thread of control


def version() -> str:
    """The installed DBOS version."""
    from importlib.metadata import version as dist_version  # noqa: PLC0415

    return dist_version("dbos")


WORKLOADS = {
    "a": a_sequential,
    "b": b_latency,
    "c": c_throughput,
    "d": d_resume,
    "e": e_sleep,
    "f": f_recovery,
    "g": g_memory,
    "h": h_fan_out,
    "i": i_history,
    "serve-resume": serve_resume,
    "recovery-load": recovery_load,
    "recovery-resume": recovery_resume,
}


if __name__ == "__main__":
    # Leave at once: the database is thrown away, and DBOS's threads need not be joined.
    run_workload(WORKLOADS, __doc__ or "", version, exit_at_once=True)
