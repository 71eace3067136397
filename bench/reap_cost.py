"""What releasing a dead worker's runs costs on PostgreSQL, R runs in one reap.

    bench/.venv/bin/python bench/reap_cost.py [R]     # default 10,000

In a throwaway database: a worker registers and claims R runs; then it is reaped as
gone from its host (`PostgresStore.reap_gone_workers`, the prompt path of workload f),
and, after the runs were claimed by it again, as a worker whose lease lapsed
(`reap_dead_workers`). Prints the seconds each reap took, and a claim of 100 runs
after it. Workload f's first recovered step waits for the whole reap: this is the part
of it that grows with R (BENCHMARKS.md, "Prompt recovery from the same host").
"""

from __future__ import annotations

import asyncio
import sys
import time
from datetime import UTC, datetime, timedelta

from benchlib import drop_database, make_database, postgres_server

from perdure._process import WorkerProcess, this_process
from perdure._records import NewRun
from perdure.stores import PostgresStore


async def hold(store: PostgresStore, worker: str, runs: int, now: datetime) -> None:
    """Register ``worker`` and have it claim every run (all of them due)."""
    await store.register_worker(worker, now)
    claimed = await store.claim_runs(worker, now, runs)
    if len(claimed) != runs:
        raise RuntimeError(f"{worker} claimed {len(claimed)} runs of {runs}")


async def main(runs: int) -> None:
    """Time both reaps of ``runs`` held runs."""
    server = postgres_server()
    url, name = await make_database(server, "perdure_bench_reap")
    store = PostgresStore(url, lease=60)
    await store.open()
    try:
        now = datetime.now(UTC)
        for start in range(0, runs, 1000):
            news = (NewRun(f"r{i}", "wf", {"args": []}) for i in range(start, start + 1000))
            await asyncio.gather(*(store.create_run(new, now) for new in news))
        await hold(store, "dead", runs, now)
        host, pid, tag = this_process()
        began = time.perf_counter()
        released = await store.reap_gone_workers(
            "alive", [WorkerProcess("dead", host, pid, tag)], now
        )
        print(f"reap_gone_workers: {released} runs in {time.perf_counter() - began:.3f} s")
        began = time.perf_counter()
        claimed = await store.claim_runs("alive", now, 100)
        print(f"then a claim of {len(claimed)} runs: {time.perf_counter() - began:.3f} s")
        await store.unregister_worker("alive", now)
        await hold(store, "dead", runs, now)
        later = now + timedelta(hours=1)
        began = time.perf_counter()
        released = await store.reap_dead_workers("alive", later)
        print(f"reap_dead_workers: {released} runs in {time.perf_counter() - began:.3f} s")
    finally:
        await store.close()
        await drop_database(server, name)


if __name__ == "__main__":
    asyncio.run(main(int(sys.argv[1]) if len(sys.argv) > 1 else 10_000))
