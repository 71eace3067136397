"""Durable streams: chunks a second one step writes, and write-to-reader latency.

    .venv/bin/python bench/streams.py [--chunks 50000] [--rate 200] [--seconds 5]
        [--store sqlite|postgres|both] [--json]

For each store, on a fresh database (a SQLite file in a temporary folder; a throwaway
PostgreSQL database, dropped at the end), a ``perdure worker`` process serves
``bench/stream_workloads.py``, and this process (an Engine without a worker) starts
runs and reads their streams:

- **burst**: one step writes ``--chunks`` short text chunks as fast as it can. Figures:
  chunks a second, from the run's start to its result (the last chunks are stored
  before the step's result); and how many store writes that took (each batch stored
  is one write, stamped with one time).
- **paced**: one step writes ``--rate`` chunks a second for ``--seconds``, each holding
  the time it was written; this process follows the stream live (`Run.stream`) and
  notes when each arrives. Figures: latency p50 and p99 from ``write()`` in the worker
  to the item in this reader, across processes (the wake-up is the store's: NOTIFY on
  PostgreSQL, the database watcher on SQLite); and the store writes a second it cost.

Both processes read one clock. A write's latency includes the writer's batching: a
chunk waits up to `perdure._streams.FLUSH_INTERVAL` (0.2 s) for the batch it joins.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from benchlib import drop_database, make_database, percentile
from stream_workloads import stream_burst, stream_paced

import perdure

BENCH = Path(__file__).resolve().parent
WORKFLOWS = BENCH / "stream_workloads.py"


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


async def store_writes(engine: perdure.Engine, run_id: str) -> int:
    """How many writes stored the run's stream: each batch has one time of its own."""
    stamps: set[Any] = set()
    start = 0
    while True:
        rows = await engine.store.read_chunks(run_id, "tokens", start=start, limit=5000)
        if not rows:
            return len(stamps)
        stamps.update(row.created_at for row in rows)
        start = rows[-1].index + 1


async def measure(url: str, chunks: int, rate: float, seconds: float) -> dict[str, Any]:
    """The figures of one store."""
    async with perdure.Engine(url, worker=False) as engine:
        worker = await start_worker(url)
        try:
            began = time.perf_counter()
            burst = await engine.start(stream_burst, chunks)
            await burst.result(timeout=600)
            elapsed = time.perf_counter() - began
            burst_writes = await store_writes(engine, burst.id)

            count = max(1, round(rate * seconds))
            run = await engine.start(stream_paced, count, rate)
            latencies: list[float] = []
            async for item in run.stream("tokens"):
                arrived = time.time()
                if isinstance(item, perdure.StreamItem):
                    latencies.append(arrived - item.value["t"])
            await run.result(timeout=60)
            paced_writes = await store_writes(engine, run.id)
        finally:
            worker.terminate()
            await worker.wait()
    ms = [x * 1000 for x in latencies]
    return {
        "burst_chunks": chunks,
        "burst_chunks_per_s": chunks / elapsed,
        "burst_store_writes": burst_writes,
        "paced_rate": rate,
        "paced_chunks": len(ms),
        "latency_p50_ms": percentile(ms, 0.5),
        "latency_p99_ms": percentile(ms, 0.99),
        "latency_max_ms": max(ms),
        "paced_store_writes_per_s": paced_writes / seconds,
    }


async def main_async(stores: list[str], args: argparse.Namespace) -> dict[str, Any]:
    """Measure each store in turn."""
    results: dict[str, Any] = {}
    for store in stores:
        if store == "sqlite":
            with tempfile.TemporaryDirectory() as tmp:
                url = f"sqlite:///{Path(tmp) / 'bench.db'}"
                results[store] = await measure(url, args.chunks, args.rate, args.seconds)
        else:
            url, name = await make_database(args.postgres_server, "perdure_bench")
            try:
                results[store] = await measure(url, args.chunks, args.rate, args.seconds)
            finally:
                await drop_database(args.postgres_server, name)
    return results


def print_table(results: dict[str, Any]) -> None:
    """The figures as a table."""
    print(
        f"   {'store':<9} {'burst chunks/s':>15} {'store writes':>13} | {'paced':>9} "
        f"{'p50 ms':>8} {'p99 ms':>8} {'max ms':>8} {'writes/s':>9}"
    )
    for store, r in results.items():
        print(
            f"   {store:<9} {r['burst_chunks_per_s']:>15,.0f} {r['burst_store_writes']:>13,} | "
            f"{r['paced_rate']:>7.0f}/s {r['latency_p50_ms']:>8.1f} {r['latency_p99_ms']:>8.1f} "
            f"{r['latency_max_ms']:>8.1f} {r['paced_store_writes_per_s']:>9.1f}"
        )


def main() -> None:
    """Parse arguments, measure, print."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--chunks", type=int, default=50_000)
    parser.add_argument("--rate", type=float, default=200.0)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--store", choices=["sqlite", "postgres", "both"], default="both")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    parser.add_argument(
        "--postgres-server",
        default=os.environ.get("PERDURE_TEST_POSTGRES_URL")
        or "postgresql://postgres@127.0.0.1:5432/postgres",
        help="a PostgreSQL server where a throwaway database may be created",
    )
    args = parser.parse_args()
    stores = ["sqlite", "postgres"] if args.store == "both" else [args.store]
    results = asyncio.run(main_async(stores, args))
    if args.json:
        print(json.dumps(results))
    else:
        print_table(results)


if __name__ == "__main__":
    main()
