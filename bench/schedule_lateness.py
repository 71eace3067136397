"""Schedule tick lateness: how long after its tick a schedule's run is created, and runs.

    .venv/bin/python bench/schedule_lateness.py [--ticks 30] [--stores sqlite,postgres]
        [--workers 2] [--json results.json]

For each store, on a fresh database (a SQLite file in a temporary folder, or a
throwaway PostgreSQL database ``perdure_sched_*`` dropped afterwards): ``--workers``
Engines with workers in this process share it, on the real clock, and one schedule
ticks every second (``* * * * * *``) ``--ticks`` times. Each tick's run is one step
that notes the wall time it began. Two figures per tick, in milliseconds after it:

- **created**: the run's ``created_at``, when a worker's timer fired and it created the
  run (`perdure._runtime._ticker`): the wake-up latency of the schedule itself;
- **step began**: when the run's first step began: creation, the claim, and the start
  of the workflow, what a user waits for.

It prints p50, p99 and max of both, and checks that every tick started exactly one run
(with two workers, both see every tick).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from benchlib import drop_database, make_database, percentile, postgres_server

import perdure
from perdure import Engine, step, workflow


@step
async def note_time() -> float:
    """The wall time the step began."""
    return time.time()


@workflow(name="bench-scheduled")
async def scheduled() -> float:
    """One tick's run: a step that notes when it began."""
    return await note_time()


def stats(values: list[float]) -> dict[str, float]:
    """p50, p99 and max, in milliseconds."""
    return {
        "p50_ms": percentile(values, 0.5) * 1000,
        "p99_ms": percentile(values, 0.99) * 1000,
        "max_ms": max(values) * 1000,
    }


async def measure(url: str, ticks: int, workers: int) -> dict[str, Any]:
    """Run the schedule on ``url``; the lateness figures."""
    engines = [Engine(url) for _ in range(workers)]
    for engine in engines:
        await engine.__aenter__()
    try:
        first = datetime.now(UTC).replace(microsecond=0) + timedelta(seconds=2)
        last = first + timedelta(seconds=ticks - 1)
        await engines[0].schedule(
            "bench-every-second",
            scheduled,
            cron="* * * * * *",
            overlap="allow",
            start_at=first,
            end_at=last,
        )
        deadline = time.monotonic() + ticks + 30
        while True:
            runs = await engines[0].list_runs(attributes={"schedule": "bench-every-second"})
            if len(runs) >= ticks and all(run.record.status.is_terminal for run in runs):
                break
            if time.monotonic() > deadline:
                raise SystemExit(f"only {len(runs)} of {ticks} ticks ran in time")
            await asyncio.sleep(0.2)
        created, began = [], []
        for run in runs:
            tick = datetime.fromisoformat((run.record.attributes or {})["tick"])
            created.append((run.record.created_at - tick).total_seconds())
            began.append(await run.result() - tick.timestamp())
        if len({run.id for run in runs}) != ticks:
            raise SystemExit(f"{len(runs)} runs for {ticks} ticks")
        started = sum(e.worker._ticker.started for e in engines if e.worker is not None)  # noqa: SLF001
        if started != ticks:
            raise SystemExit(f"the workers created {started} runs for {ticks} ticks")
    finally:
        for engine in engines:
            await engine.__aexit__(None, None, None)
    return {
        "ticks": ticks,
        "workers": workers,
        "created": stats(created),
        "step_began": stats(began),
    }


async def main_async(args: argparse.Namespace) -> dict[str, Any]:
    """Every store in turn."""
    results: dict[str, Any] = {}
    for store in args.stores.split(","):
        if store == "sqlite":
            with tempfile.TemporaryDirectory(prefix="perdure-sched-") as folder:
                url = f"sqlite:///{Path(folder) / 'bench.db'}"
                results[store] = await measure(url, args.ticks, args.workers)
        elif store == "postgres":
            server = postgres_server()
            url, name = await make_database(server, "perdure_sched")
            try:
                results[store] = await measure(url, args.ticks, args.workers)
            finally:
                await drop_database(server, name)
        else:
            raise SystemExit(f"unknown store {store!r}: sqlite or postgres")
    return results


def main() -> None:
    """Parse the options, measure, print."""
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--ticks", type=int, default=30)
    parser.add_argument("--stores", default="sqlite,postgres")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--json", help="also write the figures to this file")
    args = parser.parse_args()
    results = asyncio.run(main_async(args))
    print(f"perdure {perdure.__version__}, python {sys.version.split()[0]}")
    print(f"{args.ticks} ticks of * * * * * *, {args.workers} workers; ms after the tick")
    print(f"{'store':<10} {'figure':<12} {'p50':>8} {'p99':>8} {'max':>8}")
    for store, found in results.items():
        for figure in ("created", "step_began"):
            row = found[figure]
            print(
                f"{store:<10} {figure:<12} {row['p50_ms']:>8.2f} {row['p99_ms']:>8.2f} "
                f"{row['max_ms']:>8.2f}"
            )
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
