"""Scale-out: a burst of runs on 1, 2 and 3 worker processes sharing one PostgreSQL.

    bench/.venv/bin/python bench/scale_out.py [--workers 1,2,3] [--runs 300]
        [--steps 12] [--step-ms 20] [--concurrency 10] [--head-start SECONDS]

For each number of workers: a throwaway database on the machine's server
(``perdure_scale_*``, dropped afterwards), that many ``perdure worker
bench/scale_out_workflows.py --concurrency C`` processes, and, once they are all
ready, a burst of ``--runs`` runs of ``--steps`` steps started at once by a process
without a worker (``Engine(url, worker=False)``), which then awaits every result.
Each step waits ``--step-ms`` milliseconds, as a call to another service would.

It prints, per number of workers, the share of the steps each worker ran (from the
``run_started`` events: without faults a run stays on the worker that began it),
the steps per second from the first start to the last result, and that time.

``--head-start S`` pauses every worker but the first (SIGSTOP) for S seconds while the
burst lands, as when one worker sees a burst before the others: the case in which a
worker that claims more runs than its slots can run keeps the others idle.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import asyncpg
from benchlib import HERE, drop_database, make_database, postgres_server
from scale_out_workflows import calls

from perdure import Engine, __version__

WORKFLOWS = HERE / "scale_out_workflows.py"


@dataclass
class Worker:
    """One ``perdure worker`` process, its output in a file."""

    name: str
    process: subprocess.Popen[bytes]
    out: Path
    id: str = ""

    async def ready(self, timeout: float = 60.0) -> None:
        """Wait for its ``perdure worker ID ready`` line."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for line in self.out.read_text(errors="replace").splitlines():
                if line.startswith("perdure worker ") and " ready" in line:
                    self.id = line.split()[2]
                    return
            if self.process.poll() is not None:
                raise SystemExit(f"{self.name} exited ({self.process.returncode})")
            await asyncio.sleep(0.05)
        raise SystemExit(f"{self.name} was not ready after {timeout:.0f}s")


def start_worker(name: str, url: str, folder: Path, args: argparse.Namespace) -> Worker:
    """Start one worker process."""
    out = folder / f"{name}.out"
    env = {
        **os.environ,
        "SCALE_STEP_SECONDS": str(args.step_ms / 1000),
        "PYTHONUNBUFFERED": "1",
        "NO_COLOR": "1",
    }
    argv = [
        *(sys.executable, "-m", "perdure", "worker", str(WORKFLOWS), "--processes", "1"),
        *("--database-url", url, "--concurrency", str(args.concurrency)),
    ]
    with out.open("wb") as sink:
        process = subprocess.Popen(argv, stdout=sink, stderr=subprocess.STDOUT, env=env)
    return Worker(name, process, out)


async def burst(url: str, workers: list[Worker], args: argparse.Namespace) -> dict[str, float]:
    """Start the burst, await every result; the figures of one run."""
    late = workers[1:] if args.head_start > 0 else []
    async with Engine(url, worker=False) as engine:
        for worker in late:
            worker.process.send_signal(signal.SIGSTOP)
        try:
            began = time.perf_counter()
            runs = await asyncio.gather(
                *(engine.start(calls, x, args.steps) for x in range(args.runs))
            )
            if late:
                await asyncio.sleep(args.head_start)
        finally:
            for worker in late:
                worker.process.send_signal(signal.SIGCONT)
        results = await asyncio.gather(*(run.result(timeout=600) for run in runs))
        took = time.perf_counter() - began
    if results != [x + args.steps for x in range(args.runs)]:
        raise SystemExit("a run returned a wrong result")
    conn = await asyncpg.connect(url)
    try:
        rows = await conn.fetch("SELECT data::text FROM events WHERE type = 'run_started'")
    finally:
        await conn.close()
    by_worker = Counter(json.loads(row["data"])["worker"] for row in rows)
    figures = {w.name: by_worker[w.id] / args.runs for w in workers}
    figures["steps_per_s"] = args.runs * args.steps / took
    figures["seconds"] = took
    return figures


async def one(count: int, server: str, args: argparse.Namespace) -> dict[str, float]:
    """The burst on ``count`` fresh workers, on a fresh database."""
    url, name = await make_database(server, "perdure_scale")
    workers: list[Worker] = []
    try:
        with tempfile.TemporaryDirectory(prefix="perdure-scale-") as folder:
            # The first worker creates the schema; the others start once it is there.
            workers.append(start_worker("w1", url, Path(folder), args))
            await workers[0].ready()
            workers.extend(
                start_worker(f"w{n}", url, Path(folder), args) for n in range(2, count + 1)
            )
            for worker in workers:
                await worker.ready()
            return await burst(url, workers, args)
    finally:
        for worker in workers:
            worker.process.send_signal(signal.SIGCONT)
            worker.process.kill()
            worker.process.wait()
        await drop_database(server, name)


async def main_async(args: argparse.Namespace) -> None:
    server = postgres_server()
    print(
        f"perdure {__version__}: bursts of {args.runs} runs of {args.steps} steps of "
        f"{args.step_ms} ms, workers --concurrency {args.concurrency}, head start "
        f"{args.head_start} s; load average {os.getloadavg()[0]:.2f}"
    )
    print(f"{'workers':>7}  {'steps per worker (share)':<30}  {'steps/s':>8}  {'seconds':>7}")
    for count in args.workers:
        figures = await one(count, server, args)
        shares = sorted((figures[f"w{n}"] for n in range(1, count + 1)), reverse=True)
        shown = " / ".join(f"{share:.0%}" for share in shares)
        print(
            f"{count:>7}  {shown:<30}  {figures['steps_per_s']:>8,.0f}  {figures['seconds']:>7.2f}"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--workers", type=lambda text: [int(n) for n in text.split(",")], default=[1, 2, 3]
    )
    parser.add_argument("--runs", type=int, default=300)
    parser.add_argument("--steps", type=int, default=12)
    parser.add_argument("--step-ms", type=float, default=20.0)
    parser.add_argument("--concurrency", type=int, default=10)
    parser.add_argument("--head-start", type=float, default=0.0)
    asyncio.run(main_async(parser.parse_args()))


if __name__ == "__main__":
    main()
