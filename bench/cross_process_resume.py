"""Time from `hook.resume()` in one process to the workflow continuing in a worker process.

    .venv/bin/python bench/cross_process_resume.py [--rounds 200] [--store sqlite|postgres|both]
        [--postgres-server postgresql://postgres@127.0.0.1:5432/postgres]

For each store it starts a ``perdure worker`` process serving ``workloads_perdure.py`` on a fresh
database (a SQLite file in a temporary folder; a throwaway PostgreSQL database, dropped
at the end), and one run that waits on a hook, then a step, ``rounds`` times over. This
process, an Engine without a worker, waits until the run's next hook is live, notes the
time and resumes it; the step after the hook, in the worker process, returns the time
it began. Latency is the difference: the resume's durable write, the wake-up crossing
processes (NOTIFY on PostgreSQL, the database watcher on SQLite), the payload's
delivery, its ``hook_received`` append and the step's start. The run stays in the
worker's memory throughout (no eviction, no replay). Both processes read one clock.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import secrets
import statistics
import sys
import tempfile
import time
from pathlib import Path

from benchlib import drop_database, make_database, percentile
from workloads_perdure import Ping, ping, waiter

import perdure

BENCH = Path(__file__).resolve().parent
WORKFLOWS = BENCH / "workloads_perdure.py"
"""The module the worker serves: its ``bench-resume`` workflow is the one measured."""
WARM_UP = 5
"""Rounds run first and left out of the figures (connections, prepared statements)."""


async def start_worker(url: str) -> asyncio.subprocess.Process:
    """Start ``perdure worker`` on the workloads module; return once it is ready."""
    path = os.pathsep.join(filter(None, [str(BENCH), os.environ.get("PYTHONPATH")]))
    worker = await asyncio.create_subprocess_exec(
        *(sys.executable, "-m", "perdure", "worker", str(WORKFLOWS), "--database-url", url),
        *("--processes", "1"),  # one worker process, whatever the cores
        stdout=asyncio.subprocess.PIPE,
        env={**os.environ, "NO_COLOR": "1", "PYTHONPATH": path},
    )
    if worker.stdout is None:  # pragma: no cover - stdout=PIPE gives one
        raise RuntimeError("no pipe from the worker")
    async with asyncio.timeout(30):
        ready = (await worker.stdout.readline()).decode()
    if "ready" not in ready:
        raise SystemExit(f"the worker did not start: {ready!r}")
    return worker


async def measure(url: str, rounds: int) -> tuple[list[float], list[float]]:
    """Seconds from each resume to the step after it, and each resume call's own time."""
    total, prefix = WARM_UP + rounds, secrets.token_hex(4)
    async with perdure.Engine(url, worker=False) as engine:
        worker = await start_worker(url)
        try:
            run = await engine.start(waiter, total, prefix)
            sent: list[float] = []
            calls: list[float] = []
            for i in range(total):
                token = f"{prefix}-{i}"
                # A hook's creation is not announced to other processes: poll (this is
                # before the clock starts, so the poll costs the figures nothing).
                async with asyncio.timeout(30):
                    while await engine.store.get_hook(token) is None:  # noqa: ASYNC110
                        await asyncio.sleep(0.0005)
                began = time.time()
                await ping.resume(token, Ping(i), engine=engine)
                calls.append(time.time() - began)
                sent.append(began)
            stamps = await run.result(timeout=60)
        finally:
            worker.terminate()
            await worker.wait()
    latencies = [stamped - at for stamped, at in zip(stamps, sent, strict=True)]
    return latencies[WARM_UP:], calls[WARM_UP:]


def report(store: str, latencies: list[float], calls: list[float]) -> None:
    """Print one line of figures, in milliseconds."""
    ms = [x * 1000 for x in latencies]
    print(
        f"{store:<11} {len(ms):>6} {percentile(ms, 0.5):>8.2f} {percentile(ms, 0.9):>8.2f} "
        f"{percentile(ms, 0.99):>8.2f} {max(ms):>8.2f} {statistics.median(calls) * 1000:>14.2f}"
    )


async def main_async(stores: list[str], rounds: int, server: str) -> None:
    """Measure each store in turn and print a table."""
    print(
        f"{'store':<11} {'rounds':>6} {'p50 ms':>8} {'p90 ms':>8} {'p99 ms':>8} {'max ms':>8} "
        f"{'resume() p50':>14}"
    )
    for store in stores:
        if store == "sqlite":
            with tempfile.TemporaryDirectory() as tmp:
                latencies, calls = await measure(f"sqlite:///{Path(tmp) / 'bench.db'}", rounds)
        else:
            url, name = await make_database(server, "perdure_bench")
            try:
                latencies, calls = await measure(url, rounds)
            finally:
                await drop_database(server, name)
        report(store, latencies, calls)


def main() -> None:
    """Parse arguments and run the measurement."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=200)
    parser.add_argument("--store", choices=["sqlite", "postgres", "both"], default="both")
    parser.add_argument(
        "--postgres-server",
        default=os.environ.get("PERDURE_TEST_POSTGRES_URL")
        or "postgresql://postgres@127.0.0.1:5432/postgres",
        help="a PostgreSQL server (and a database on it to connect to) where a "
        "throwaway database may be created",
    )
    args = parser.parse_args()
    stores = ["sqlite", "postgres"] if args.store == "both" else [args.store]
    asyncio.run(main_async(stores, args.rounds, args.postgres_server))


if __name__ == "__main__":
    main()
