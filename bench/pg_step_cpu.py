"""CPU per sequential step on PostgreSQL, the client's and the server's, apart.

    .venv/bin/python bench/pg_step_cpu.py [--steps 2000] [--repeat 5] [--server URL]

Workload a's figure is wall time, which on a busy machine (two cores shared with other
work) measures the wait for a core as much as perdure. CPU time is steadier: this runs
one workflow of N trivial steps, as workload a does, on a throwaway database, and
reports per step the CPU time of this process (the engine, the store's Python,
asyncpg) and of the database's server processes serving it (their
``/proc/PID/schedstat``, so the server must run on this machine), and the wall time,
best of ``--repeat``. Run it with ``PYTHONPATH=<tree>/src`` to measure another tree.
"""

from __future__ import annotations

import argparse
import asyncio
import secrets
import sys
import time
from pathlib import Path
from typing import Any

import asyncpg
from workloads_perdure import sequential

import perdure

SERVER = "postgresql://postgres@127.0.0.1:5432/postgres"


def server_cpu_ns(pids: list[int]) -> dict[int, int]:
    """CPU time each of the server processes ``pids`` has run, in ns (those still there)."""
    times = {}
    for pid in pids:
        try:
            times[pid] = int(Path(f"/proc/{pid}/schedstat").read_text().split()[0])
        except (FileNotFoundError, ProcessLookupError):
            continue
    return times


async def serving(admin: asyncpg.Connection[Any], name: str) -> list[int]:
    """The server processes connected to database ``name``, but ``admin``'s own."""
    query = "SELECT pid FROM pg_stat_activity WHERE datname = $1 AND pid <> pg_backend_pid()"
    return [row["pid"] for row in await admin.fetch(query, name)]


async def measure(url: str, name: str, steps: int, repeat: int) -> None:
    """Print the best client CPU, server CPU and wall time per step of ``repeat`` runs."""
    admin = await asyncpg.connect(url)
    try:
        async with perdure.Engine(url) as engine:
            await (await engine.start(sequential, 10)).result()  # warm up
            best: dict[str, float] = {}
            for _ in range(repeat):
                server = server_cpu_ns(await serving(admin, name))
                client, wall = time.process_time(), time.perf_counter()
                result = await (await engine.start(sequential, steps)).result()
                client, wall = time.process_time() - client, time.perf_counter() - wall
                # A connection opened meanwhile counts from its start.
                after = server_cpu_ns(await serving(admin, name))
                spent = sum(ns - server.get(pid, 0) for pid, ns in after.items())
                figures = {
                    "client CPU": client * 1e6,
                    "server CPU": spent / 1e3,
                    "wall": wall * 1e6,
                }
                if result != steps * (steps - 1) // 2:
                    raise SystemExit(f"wrong result {result}")
                if "-v" in sys.argv:
                    print({key: round(value / steps, 1) for key, value in figures.items()})
                for key, value in figures.items():
                    best[key] = min(best.get(key, float("inf")), value / steps)
    finally:
        await admin.close()
    print(f"µs per step, best of {repeat} runs of {steps} steps:")
    for key, value in best.items():
        print(f"  {key:<12} {value:8.1f}")
    print(f"  {'CPU, both':<12} {best['client CPU'] + best['server CPU']:8.1f}")


async def main() -> None:
    """Measure on a throwaway database of the server."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=2000)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--server", default=SERVER)
    parser.add_argument("-v", action="store_true", help="print each run")
    args = parser.parse_args()
    name = f"perdure_bench_cpu_{secrets.token_hex(4)}"
    admin = await asyncpg.connect(args.server)
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
        try:
            base = args.server.rsplit("/", 1)[0]
            await measure(f"{base}/{name}", name, args.steps, args.repeat)
        finally:
            await admin.execute(f'DROP DATABASE "{name}" WITH (FORCE)')
    finally:
        await admin.close()


if __name__ == "__main__":
    asyncio.run(main())
