"""Every core: workload c on 1, 2, ... worker processes, and what it costs each side.

    bench/.venv/bin/python bench/scaling.py [--processes 1,2] [--stores sqlite,postgres]
        [--runs 1000] [--steps 10] [--writers 1,2,4,8,16,32] [--json]

For each store and number of processes: a fresh database (a SQLite file in a temporary
folder, or a throwaway PostgreSQL database ``perdure_scaling_*``), ``perdure worker
bench/workloads_perdure.py --processes N`` ready, then workload c's burst (``--runs``
runs of ``--steps`` trivial steps) started at once by this process, without a worker;
the completed runs are counted in the database every 10 ms. It prints, per setting:

- steps per second, first start to last completion;
- the workers' CPU: CPU seconds per step of the worker processes over the burst (read
  from ``/proc``), so ``1 / that`` is what one core of workers does at most;
- PostgreSQL's side: its backends' CPU per step (the backends of the burst's
  database, from ``/proc``: the server runs on this machine), and steps per
  transaction committed (``pg_stat_database.xact_commit``).

Then the database's own limit, without perdure (``--limits-only``: that alone): one-row
commits per second from ``--writers`` connections committing at once, with
``synchronous_commit`` on (perdure's durable commits: PostgreSQL shares one WAL flush
among the commits that wait for it, group commit) and off (its step commits), and
SQLite's one writer with ``synchronous`` NORMAL (step commits) and FULL (durable ones;
its commits are serialized: ``--writers`` does not apply).

BENCHMARKS.md ("Every core") shows how these figures extrapolate to a 16-core machine
with a database server of its own: the least of 16 cores over the workers' CPU per
step, the server's cores over its CPU per step, and its commit ceiling times the steps
per commit.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import re
import signal
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import asyncpg
from benchlib import HERE, drop_database, make_database, postgres_server
from physical import sqlite_rate
from workloads_perdure import completed_runs, sequential, start_many, until

import perdure

TICK = os.sysconf("SC_CLK_TCK")
STARTED = re.compile(r"perdure supervisor: worker process \d+ started \(pid (\d+)\)")


def cpu_seconds(pid: int) -> float:
    """User and system CPU seconds of process ``pid`` so far (0 if it is gone)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / TICK  # utime, stime


def backends(database: str) -> list[int]:
    """The pids of the PostgreSQL backends connected to ``database`` (on this machine)."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError):
                title = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
                if title.startswith("postgres: ") and f" {database} " in title:
                    found.append(int(entry.name))
    return found


async def commits(conn: asyncpg.Connection, database: str) -> int:
    """Transactions committed in ``database`` so far."""
    value = await conn.fetchval(
        "SELECT xact_commit FROM pg_stat_database WHERE datname = $1", database
    )
    return int(value)


async def ready_workers(workers: asyncio.subprocess.Process, count: int) -> list[int]:
    """Wait for ``count`` ready lines; the worker processes' pids."""
    assert workers.stdout is not None  # noqa: S101 - piped below
    pids, ready = [], 0
    async with asyncio.timeout(120):
        while ready < count:
            line = (await workers.stdout.readline()).decode()
            if not line:
                raise SystemExit(f"perdure worker exited ({await workers.wait()})")
            if match := STARTED.match(line):
                pids.append(int(match[1]))
            ready += line.startswith("perdure worker ") and " ready on " in line
    return pids or [workers.pid]


async def burst(
    url: str, database: str | None, count: int, args: argparse.Namespace
) -> dict[str, Any]:
    """Workload c's burst on ``perdure worker --processes COUNT``; its figures."""
    bench = os.pathsep.join(filter(None, [str(HERE), os.environ.get("PYTHONPATH")]))
    env = {**os.environ, "PERDURE_DATABASE_URL": url, "NO_COLOR": "1", "PYTHONPATH": bench}
    env["PYTHONUNBUFFERED"] = "1"
    argv = [sys.executable, "-m", "perdure", "worker", str(HERE / "workloads_perdure.py")]
    workers = await asyncio.create_subprocess_exec(
        *argv, "--processes", str(count), stdout=asyncio.subprocess.PIPE, env=env
    )
    stats = await asyncpg.connect(url) if database else None
    try:
        pids = await ready_workers(workers, count)
        async with perdure.Engine(url, worker=False) as engine, completed_runs(url) as done:
            before = await done() + count * 10
            await start_many(engine, sequential, [(args.steps,)] * (count * 10))  # warm up
            await until(done, before, 120)
            servers = backends(database) if database else []
            cpu = [cpu_seconds(pid) for pid in pids], [cpu_seconds(pid) for pid in servers]
            committed = await commits(stats, database) if stats and database else 0
            began = time.perf_counter()
            await start_many(engine, sequential, [(args.steps,)] * args.runs)
            await until(done, before + args.runs, 600)
            took = time.perf_counter() - began
            steps = args.runs * args.steps
            figures: dict[str, Any] = {
                "store": "postgres" if database else "sqlite",
                "processes": count,
                "steps_per_s": steps / took,
                "worker_cpu_us_per_step": 1e6
                * sum(cpu_seconds(p) - c for p, c in zip(pids, cpu[0], strict=True))
                / steps,
            }
            if stats and database:
                used = sum(cpu_seconds(p) - c for p, c in zip(servers, cpu[1], strict=True))
                figures["db_cpu_us_per_step"] = 1e6 * used / steps
                figures["steps_per_commit"] = steps / (await commits(stats, database) - committed)
    finally:
        if stats is not None:
            await stats.close()
        workers.send_signal(signal.SIGTERM)
        try:
            await asyncio.wait_for(workers.wait(), 60)
        except TimeoutError:
            workers.kill()
            await workers.wait()
    return figures


async def postgres_commits(url: str, writers: int, seconds: float, synchronous: str) -> float:
    """One-row commits per second from ``writers`` connections committing at once."""
    conns = [await asyncpg.connect(url) for _ in range(writers)]
    try:
        for conn in conns:
            await conn.execute(f"SET synchronous_commit = {synchronous}")
        await conns[0].execute("CREATE TABLE IF NOT EXISTS t (id bigserial PRIMARY KEY, v text)")
        deadline = time.perf_counter() + seconds

        async def write(conn: asyncpg.Connection) -> int:
            done = 0
            while time.perf_counter() < deadline:
                await conn.execute("INSERT INTO t (v) VALUES ('x')")
                done += 1
            return done

        began = time.perf_counter()
        total = sum(await asyncio.gather(*(write(c) for c in conns)))
        return total / (time.perf_counter() - began)
    finally:
        for conn in conns:
            await conn.close()


async def main_async(args: argparse.Namespace) -> list[dict[str, Any]]:
    server = postgres_server()
    rows: list[dict[str, Any]] = []
    for store in args.stores:
        for count in [] if args.limits_only else args.processes:
            with tempfile.TemporaryDirectory(prefix="perdure-scaling-") as folder:
                if store == "sqlite":
                    rows.append(await burst(f"sqlite:///{folder}/bench.db", None, count, args))
                else:
                    url, name = await make_database(server, "perdure_scaling")
                    try:
                        rows.append(await burst(url, name, count, args))
                    finally:
                        await drop_database(server, name)
            print(json.dumps(rows[-1]), file=sys.stderr, flush=True)
    if "sqlite" in args.stores:
        with tempfile.TemporaryDirectory(prefix="perdure-scaling-") as folder:
            for synchronous in ("NORMAL", "FULL"):
                limit = sqlite_rate(Path(folder) / f"{synchronous}.db", "wal", synchronous, 2)
                rows.append(
                    {
                        "store": "sqlite",
                        "setting": f"WAL, synchronous={synchronous}",
                        "writers": 1,
                        "commits_per_s": limit.commits_per_s,
                    }
                )
    if "postgres" in args.stores:
        url, name = await make_database(server, "perdure_scaling")
        try:
            for synchronous in ("on", "off"):  # perdure's durable commits; its step commits
                for writers in args.writers:
                    rate = await postgres_commits(url, writers, 2.0, synchronous)
                    rows.append(
                        {
                            "store": "postgres",
                            "setting": f"synchronous_commit={synchronous}",
                            "writers": writers,
                            "commits_per_s": rate,
                        }
                    )
        finally:
            await drop_database(server, name)
    return rows


def numbers(text: str) -> list[int]:
    return [int(x) for x in text.split(",")]


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--processes", type=numbers, default=sorted({1, 2, os.cpu_count() or 1}))
    parser.add_argument("--stores", type=lambda s: s.split(","), default=["sqlite", "postgres"])
    parser.add_argument("--runs", type=int, default=1000)
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--writers", type=numbers, default=[1, 2, 4, 8, 16, 32])
    parser.add_argument("--limits-only", action="store_true", help="only the database alone")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    rows = asyncio.run(main_async(args))
    if args.json:
        print(json.dumps(rows))
        return
    print(f"perdure {perdure.__version__}, {os.cpu_count()} cores")
    print(
        f"{'store':<9} {'procs':>5} {'steps/s':>9} {'worker µs/step':>15} "
        f"{'db µs/step':>11} {'steps/commit':>13}"
    )
    for row in rows:
        if "processes" in row:
            print(
                f"{row['store']:<9} {row['processes']:>5} {row['steps_per_s']:>9,.0f} "
                f"{row['worker_cpu_us_per_step']:>15.1f} "
                f"{row.get('db_cpu_us_per_step', float('nan')):>11.1f} "
                f"{row.get('steps_per_commit', float('nan')):>13.2f}"
            )
    print(f"\n{'store':<9} {'setting':<24} {'writers':>7} {'commits/s':>10}")
    for row in rows:
        if "writers" in row:
            print(
                f"{row['store']:<9} {row['setting']:<24} {row['writers']:>7} "
                f"{row['commits_per_s']:>10,.0f}"
            )


if __name__ == "__main__":
    main()
