"""perdure's side of the comparison: the workloads of `run.py`, one per process.

    bench/.venv/bin/python bench/workloads_perdure.py WORKLOAD --url URL [--params JSON]

WORKLOAD is one of ``a`` .. ``i`` (see `run.py`), or a helper role that another
workload starts in a second process (``serve-resume``, ``recovery-load``,
``recovery-resume``). `workloads_dbos.py` has the same shape, workload for workload.
Every workflow here uses perdure's defaults unless a comment says otherwise.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import os
import random
import signal
import sqlite3
import statistics
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any, NoReturn

from benchlib import (
    HERE,
    emit,
    history_windows,
    percentile,
    read_line_with,
    rss_mib,
    run_workload,
    spawn,
)

import perdure

Params = dict[str, Any]
Figures = dict[str, Any]

PROCESSES = sorted({1, 2, os.cpu_count() or 1})
"""Workload c's burst also runs on ``perdure worker --processes N`` for each N here:
one, two, and one per core (BENCHMARKS.md, "Every core")."""


# -- workflows -----------------------------------------------------------------------


@perdure.step(name="bench-noop")
async def noop(i: int) -> int:
    """A step that does nothing: all that is measured is the library's own cost."""
    return i


@perdure.workflow(name="bench-fan-child")
async def fan_child(i: int) -> int:
    """A child run of one trivial step."""
    return await noop(i)


@perdure.workflow(name="bench-fan-out")
async def fan_out(n: int) -> int:
    """N child runs at once (gathered), and the sum of their results."""
    return sum(await asyncio.gather(*(fan_child(i) for i in range(n))))


@perdure.workflow(name="bench-sequential")
async def sequential(n: int) -> int:
    """N trivial steps, one after the other."""
    total = 0
    for i in range(n):
        total += await noop(i)
    return total


@perdure.step(name="bench-clock")
async def clock(i: int) -> float:
    """A trivial step that says when it ran."""
    del i
    return time.perf_counter()


@perdure.workflow(name="bench-timed-sequential")
async def timed_sequential(n: int) -> list[float]:
    """N trivial steps, one after the other; when each of them ran."""
    return [await clock(i) for i in range(n)]


@perdure.workflow(name="bench-one-step")
async def one_step(i: int) -> int:
    """One trivial step."""
    return await noop(i)


@dataclass
class Ping:
    """A hook payload: which round this is."""

    round: int


ping = perdure.define_hook(Ping, name="bench-ping")


@perdure.step(name="bench-stamp")
async def stamp(round_: int) -> float:
    """The time this step began."""
    del round_
    return time.time()


@perdure.workflow(name="bench-resume")
async def waiter(rounds: int, prefix: str) -> list[float]:
    """Wait on hook ``PREFIX-i``, then stamp the time, for i in range(rounds)."""
    stamps = []
    for i in range(rounds):
        await ping.create(token=f"{prefix}-{i}")
        stamps.append(await stamp(i))
    return stamps


@perdure.workflow(name="bench-sleeper")
async def sleeper(seconds: float, times: int) -> list[float]:
    """Sleep ``times`` times; how late each woke after the call, then after its deadline.

    Reads the wall clock in workflow code, which a workflow should not do (a replay
    would read it again); no run here is replayed.
    """
    late, late_deadline = [], []
    for _ in range(times):
        before = time.time()
        # perdure sets the deadline from the workflow's clock, the time of the last
        # event in its log, which may be a little before the call.
        deadline = perdure.now().timestamp() + seconds
        await perdure.sleep(seconds)
        after = time.time()
        late.append(after - before - seconds)
        late_deadline.append(after - deadline)
    return late + late_deadline


class Counter:
    """Counts calls in this process, and notes when the count reaches a target."""

    def __init__(self) -> None:
        self.count = 0
        self.target = -1
        self.reached = asyncio.Event()
        self.last_at = 0.0
        self.first_at = 0.0

    def hit(self) -> None:
        self.count += 1
        self.last_at = time.time()
        if self.count == 1:
            self.first_at = self.last_at
        if self.count == self.target:
            self.reached.set()


STARTED = Counter()
"""Steps of `recoverable` that began in this process."""


@perdure.step(name="bench-hang")
async def hang(i: int) -> int:
    """In the process to be killed, never return; after recovery, return at once."""
    STARTED.hit()
    if os.environ.get("BENCH_PHASE") == "load":
        await asyncio.Event().wait()
    return i


@perdure.workflow(name="bench-recoverable")
async def recoverable(i: int) -> int:
    """One step that the first process never finishes."""
    return await hang(i)


NAPPING = Counter()


@perdure.workflow(name="bench-nap")
async def nap(i: int) -> int:
    """Sleep for an hour."""
    NAPPING.hit()
    await perdure.sleep(3600)
    return i


# -- workloads -------------------------------------------------------------------------


async def start_many(engine: perdure.Engine, fn: Any, args: list[tuple[Any, ...]]) -> list[Any]:
    """Start one run per argument tuple, up to 500 starts in flight at once."""
    runs: list[Any] = []
    for at in range(0, len(args), 500):
        chunk = args[at : at + 500]
        runs.extend(await asyncio.gather(*(engine.start(fn, *a) for a in chunk)))
    return runs


async def a_sequential(url: str, params: Params) -> Figures:
    """µs per step of one workflow of N trivial steps (best of up to ``repeat``)."""
    figures: Figures = {}
    async with perdure.Engine(url) as engine:
        await (await engine.start(sequential, 10)).result()  # warm up
        for n in params["sizes"]:
            best, spent, tries = float("inf"), 0.0, 0
            while tries < params["repeat"] and (tries == 0 or spent < params["budget_s"]):
                began = time.perf_counter()
                result = await (await engine.start(sequential, n)).result()
                took = time.perf_counter() - began
                if result != n * (n - 1) // 2:
                    raise SystemExit(f"wrong result {result} for n={n}")
                best, spent, tries = min(best, took), spent + took, tries + 1
            figures[f"us_per_step_{n}"] = best / n * 1e6
        figures.update(await late_against_early(engine, params["timed_n"]))
    return figures


async def late_against_early(engine: perdure.Engine, n: int) -> Figures:
    """The cost of the last steps of one N-step run against that of its first steps.

    Each step returns when it ran, so the gap between two consecutive steps is what one
    step cost at that point of the run: whatever grows with the history shows as a
    ratio above 1. Each side is N/20 steps (the first side starting at step 10). The
    median of each side is the typical step; the mean also counts the rare pauses (a
    garbage collection, the database's own background work) that fall in it.
    """
    stamps = await (await engine.start(timed_sequential, n)).result()
    gaps = [later - earlier for earlier, later in itertools.pairwise(stamps)]
    window = max(n // 20, 10)
    early, late = gaps[10 : 10 + window], gaps[-window:]
    return {
        "early_us": statistics.median(early) * 1e6,
        "late_us": statistics.median(late) * 1e6,
        "late_over_early": statistics.median(late) / statistics.median(early),
        "late_over_early_mean": statistics.fmean(late) / statistics.fmean(early),
    }


async def i_history(url: str, params: Params) -> Figures:
    """The cost of a step against the history behind it: one run of N steps per size.

    Each step returns when it ran (`timed_sequential`); `history_windows` turns the
    stamps into the median cost of a step in each tenth of the run.
    """
    figures: Figures = {}
    async with perdure.Engine(url) as engine:
        await (await engine.start(timed_sequential, 10)).result()  # warm up
        for n in params["sizes"]:
            stamps = await (await engine.start(timed_sequential, n)).result()
            figures.update(history_windows(stamps, params["windows"]))
    return figures


async def b_latency(url: str, params: Params) -> Figures:
    """Start-to-result time of a one-step workflow, one run after another."""
    samples: list[float] = []
    async with perdure.Engine(url) as engine:
        for i in range(5):
            await (await engine.start(one_step, i)).result()
        deadline = time.perf_counter() + params["budget_s"]
        while len(samples) < params["count"] and time.perf_counter() < deadline:
            began = time.perf_counter()
            await (await engine.start(one_step, len(samples))).result()
            samples.append(time.perf_counter() - began)
    return latency_figures(samples, "")


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


async def c_throughput(url: str, params: Params) -> Figures:
    """``runs`` workflows of ``steps`` trivial steps, all started at once."""
    runs, steps = params["runs"], params["steps"]
    async with perdure.Engine(url) as engine:
        await (await engine.start(sequential, steps)).result()  # warm up
        began = time.perf_counter()
        handles = await start_many(engine, sequential, [(steps,)] * runs)
        started = time.perf_counter()
        results = await asyncio.gather(*(h.result() for h in handles))
        took = time.perf_counter() - began
    if any(r != steps * (steps - 1) // 2 for r in results):
        raise SystemExit("a run returned a wrong result")
    figures: Figures = {
        "workflows_per_s": runs / took,
        "steps_per_s": runs * steps / took,
        "total_s": took,
        "start_all_s": started - began,
    }
    for count in params.get("processes", PROCESSES):
        figures[f"processes_{count}_steps_per_s"] = await c_on_processes(url, runs, steps, count)
    return figures


async def c_on_processes(url: str, runs: int, steps: int, count: int) -> float:
    """Steps per second of workload c's burst on ``perdure worker --processes COUNT``.

    The workers are processes of their own, ready before the burst (with one, the
    worker runs in the command's process; with more, under its supervisor); this
    process starts the runs without a worker, as a web app would. It counts the runs
    completed in the database every 10 ms rather than awaiting each result: a thousand
    waiters, each woken to read its run at every commit of another process, would take
    the CPU the workers need (two cores here).
    """
    bench = os.pathsep.join(filter(None, [str(HERE), os.environ.get("PYTHONPATH")]))
    env = {**os.environ, "PERDURE_DATABASE_URL": url, "NO_COLOR": "1", "PYTHONPATH": bench}
    env["PYTHONUNBUFFERED"] = "1"
    argv = [sys.executable, "-m", "perdure", "worker", str(HERE / "workloads_perdure.py")]
    workers = await asyncio.create_subprocess_exec(
        *argv, "--processes", str(count), stdout=asyncio.subprocess.PIPE, env=env
    )
    try:
        for _ in range(count):
            await read_line_with(workers, "perdure worker ", 120)
        async with perdure.Engine(url, worker=False) as engine, completed_runs(url) as done:
            before = await done()
            await start_many(engine, sequential, [(steps,)] * (count * 10))  # warm up
            before += count * 10
            await until(done, before, 120)
            began = time.perf_counter()
            await start_many(engine, sequential, [(steps,)] * runs)
            await until(done, before + runs, 300)
            took = time.perf_counter() - began
    finally:
        workers.send_signal(signal.SIGTERM)
        try:
            await asyncio.wait_for(workers.wait(), 60)
        except TimeoutError:
            workers.kill()
            await workers.wait()
    return runs * steps / took


@contextlib.asynccontextmanager
async def completed_runs(url: str) -> AsyncIterator[Callable[[], Awaitable[int]]]:
    """A function that counts the completed runs in the database at ``url``."""
    if url.startswith("sqlite:///"):
        conn = sqlite3.connect(url.removeprefix("sqlite:///"))

        async def count_sqlite() -> int:
            row = conn.execute("SELECT count(*) FROM runs WHERE status = 'completed'").fetchone()
            return int(row[0])

        try:
            yield count_sqlite
        finally:
            conn.close()
        return
    import asyncpg  # noqa: PLC0415 - only PostgreSQL workloads need it

    pg = await asyncpg.connect(url)

    async def count_postgres() -> int:
        return int(await pg.fetchval("SELECT count(*) FROM runs WHERE status = 'completed'"))

    try:
        yield count_postgres
    finally:
        await pg.close()


async def until(count: Callable[[], Awaitable[int]], target: int, timeout: float) -> None:
    """Check ``count`` every 10 ms until it reaches ``target``."""
    async with asyncio.timeout(timeout):
        while await count() < target:  # noqa: ASYNC110 - another process's commits: polled
            await asyncio.sleep(0.01)


async def resume_rounds(
    engine: perdure.Engine, run_id: str, prefix: str, params: Params
) -> Figures:
    """Resume the waiter's hooks one by one; latencies from each resume to the next step."""
    total = params["warmup"] + params["rounds"]
    sent: list[float] = []
    calls: list[float] = []
    deadline = time.perf_counter() + params["budget_s"]
    for i in range(total):
        token = f"{prefix}-{i}"
        async with asyncio.timeout(60):
            while await engine.store.get_hook(token) is None:  # noqa: ASYNC110
                await asyncio.sleep(0.0005)
        # A random wait first, so that the resume does not fall in step with a polling
        # watcher's period (which would give the same, best or worst, delay every round).
        await asyncio.sleep(params["gap_s"] + random.uniform(0, params["jitter_s"]))
        began = time.time()
        await ping.resume(token, Ping(i), engine=engine)
        calls.append(time.time() - began)
        sent.append(began)
        if i >= params["warmup"] + params["min_rounds"] and time.perf_counter() > deadline:
            break
    # Let the run end: resume the hooks left (not measured).
    for i in range(len(sent), total):
        token = f"{prefix}-{i}"
        async with asyncio.timeout(60):
            while await engine.store.get_hook(token) is None:  # noqa: ASYNC110
                await asyncio.sleep(0.0005)
        await ping.resume(token, Ping(i), engine=engine)
    run = await engine.get_run(run_id)
    stamps: list[float] = await run.result(timeout=120)
    latencies = [stamps[i] - sent[i] for i in range(params["warmup"], len(sent))]
    figures = latency_figures(latencies, "")
    figures["resume_call_p50_ms"] = statistics.median(calls[params["warmup"] :]) * 1000
    return figures


async def d_resume(url: str, params: Params) -> Figures:
    """Resume to continuation, in the same process and from another process."""
    total = params["warmup"] + params["rounds"]
    figures: Figures = {}
    # Same process: this Engine's worker runs the run; this process resumes it.
    async with perdure.Engine(url) as engine:
        prefix = "same"
        run = await engine.start(waiter, total, prefix, run_id="resume-same")
        same = await resume_rounds(engine, run.id, prefix, params)
    figures.update({f"same_{k}": v for k, v in same.items()})
    # Another process: a worker process runs the run; this process (no worker) resumes.
    server = await spawn(
        "workloads_perdure.py", "serve-resume", "--url", url, "--params", json.dumps(params)
    )
    try:
        run_id = await read_line_with(server, "started", 60)
        async with perdure.Engine(url, worker=False) as engine:
            cross = await resume_rounds(engine, run_id, "cross", params)
        figures.update({f"cross_{k}": v for k, v in cross.items()})
    finally:
        if server.returncode is None:
            server.terminate()
        await server.wait()
    return figures


async def serve_resume(url: str, params: Params) -> Figures:
    """Helper process of `d_resume`: run the waiter in this process's worker until it ends."""
    total = params["warmup"] + params["rounds"]
    async with perdure.Engine(url) as engine:
        run = await engine.start(waiter, total, "cross", run_id="resume-cross")
        print(f"started {run.id}", flush=True)
        await run.result()
    return {}


async def e_sleep(url: str, params: Params) -> Figures:
    """How late durable sleeps wake: ``runs`` runs sleeping ``times`` x ``seconds``."""
    async with perdure.Engine(url) as engine:
        await (await engine.start(sleeper, 0.05, 1)).result()  # warm up
        handles = await start_many(
            engine, sleeper, [(params["seconds"], params["times"])] * params["runs"]
        )
        results = await asyncio.gather(*(h.result() for h in handles))
    times = params["times"]
    figures: Figures = {}
    figures.update(latency_figures([x for r in results for x in r[:times]], "late_"))
    figures.update(latency_figures([x for r in results for x in r[times:]], "late_deadline_"))
    return figures


async def f_recovery(url: str, params: Params) -> Figures:
    """``runs`` runs mid-step in a process that is SIGKILLed; time until all run again."""
    encoded = json.dumps(params)
    loader = await spawn(
        "workloads_perdure.py",
        *("recovery-load", "--url", url, "--params", encoded),
        env={"BENCH_PHASE": "load"},
    )
    try:
        await read_line_with(loader, "loaded", params["load_timeout_s"])
    finally:
        loader.send_signal(signal.SIGKILL)
        await loader.wait()
    spawned = time.time()
    resumer = await spawn(
        "workloads_perdure.py", "recovery-resume", "--url", url, "--params", encoded
    )
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
    }


async def recovery_load(url: str, params: Params) -> Figures:
    """Helper of `f_recovery`: start the runs and hold every one inside its step."""
    runs = params["runs"]
    STARTED.target = runs
    # Every step must be in flight at once, so this process allows that many steps and
    # runs; the recovering process uses the defaults.
    # ``lease_s`` (PostgreSQL) is perdure's default, 10 s, unless the parameters say.
    lease = params.get("lease_s")
    async with perdure.Engine(
        url, max_concurrent_steps=runs + 10, max_active_runs=runs + 10, lease=lease
    ) as e:
        await start_many(e, recoverable, [(i,) for i in range(runs)])
        await STARTED.reached.wait()
        print("loaded", flush=True)
        await asyncio.Event().wait()  # until SIGKILL
    return {}


async def unfinished(engine: perdure.Engine) -> bool:
    """Whether any run is still pending or running."""
    for status in ("running", "pending"):
        if await engine.list_runs(status=status, limit=1):
            return True
    return False


async def recovery_resume(url: str, params: Params) -> Figures:
    """Helper of `f_recovery`: take over the dead process's runs; report when."""
    main_at = time.time()
    runs = params["runs"]
    STARTED.target = runs
    async with perdure.Engine(url, lease=params.get("lease_s")) as engine:
        await STARTED.reached.wait()
        # All steps began again; now until every run is completed.
        while await unfinished(engine):  # noqa: ASYNC110 - polling the store is the point
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


async def g_memory(url: str, params: Params) -> NoReturn:
    """Resident size of this process, one worker holding ``runs`` sleeping runs."""
    runs = params["runs"]
    NAPPING.target = runs
    # Held in memory, all of them: no eviction during the measurement, and room for
    # every run (the defaults hold at most 10,000 runs, evicting a sleeper after 60 s).
    async with perdure.Engine(url, max_active_runs=runs + 10, evict_after="2h") as engine:
        await (await engine.start(sequential, 10)).result()  # warm up
        await (await engine.start(sleeper, 0.01, 1)).result()
        baseline = rss_mib()
        began = time.perf_counter()
        await start_many(engine, nap, [(i,) for i in range(runs)])
        await NAPPING.reached.wait()
        while True:  # until every run's sleep is logged and the run suspended
            stats = engine.statistics()
            if stats is not None and stats.suspended_runs >= runs:
                break
            await asyncio.sleep(0.05)
        loaded_s = time.perf_counter() - began
        await asyncio.sleep(1.0)
        held = rss_mib()
        figures = {
            "baseline_mib": baseline,
            "rss_mib": held,
            "kib_per_run": (held - baseline) * 1024 / runs,
            "load_s": loaded_s,
            "version": perdure.__version__,
        }
        # Leaving the Engine would hand every run back, which takes long with this many
        # (see BENCHMARKS.md); the database is thrown away, so end the process here.
        emit(figures)
        os._exit(0)


async def h_fan_out(url: str, params: Params) -> Figures:
    """One parent gathering ``children`` child runs: its start to its result."""
    children = params["children"]
    async with perdure.Engine(url) as engine:
        await (await engine.start(fan_out, 10)).result()  # warm up
        began = time.perf_counter()
        run = await engine.start(fan_out, children)
        total = await run.result()
        took = time.perf_counter() - began
    if total != children * (children - 1) // 2:
        raise SystemExit("the fan-out returned a wrong result")
    return {"total_s": took, "children_per_s": children / took}


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
    run_workload(WORKLOADS, __doc__ or "", lambda: perdure.__version__)
