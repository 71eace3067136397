"""Where Temporal's start-to-result time of a one-step workflow goes (workload b).

    bench/.venv/bin/python bench/temporal_phases.py [--runs 30] [--memory]
        [--sqlite-pragma journal_mode=wal ...]

Starts a Temporal dev server (as `workloads_temporal.py` does: SQLite in a temporary
folder, or ``--memory`` for none), runs one-step workflows one after the other, and
reads back each run's history: the server stamps every event, so the gaps between
events split the run into phases (the first workflow task waiting for a worker, the
worker running it, the activity, the second workflow task...). Prints the median of
each gap in ms, and the client's start-to-result time beside their sum.

With ``--throughput R``, it then starts R workflows of 10 activities at once (workload
c) and prints the CPU time that the server and this process (the worker and the
client) spent per activity: on a machine of 2 cores shared by both, it bounds the
throughput.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import os
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from temporal_workflows import OneStep, Sequential
from temporalio.api.enums.v1 import EventType
from workloads_temporal import TASK_QUEUE, dev_server, new_id, start_many, worker


def event_name(event_type: int) -> str:
    """``WORKFLOW_TASK_STARTED`` for EVENT_TYPE_WORKFLOW_TASK_STARTED."""
    return str(EventType.Name(event_type)).removeprefix("EVENT_TYPE_")  # type: ignore[arg-type,unused-ignore]


def children_cpu_s() -> float:
    """CPU seconds (user and system) spent so far by this process's live children."""
    total = 0
    for task in Path("/proc/self/task").iterdir():
        for pid in (task / "children").read_text().split():
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])  # utime, stime (fields 14, 15)
    return total / os.sysconf("SC_CLK_TCK")


async def throughput(client: Any, runs: int) -> None:
    """R workflows of 10 activities at once: steps/s, and CPU ms per activity."""
    server_before, own_before = children_cpu_s(), time.process_time()
    began = time.perf_counter()
    handles = await start_many(client, Sequential.run, [(10, False)] * runs)
    await asyncio.gather(*(h.result() for h in handles))
    took = time.perf_counter() - began
    steps = runs * 10
    server_ms = (children_cpu_s() - server_before) * 1000 / steps
    own_ms = (time.process_time() - own_before) * 1000 / steps
    print(f"\n{runs} workflows of 10 activities at once: {steps / took:,.0f} steps/s")
    print(f"CPU per activity: server {server_ms:.2f} ms, worker and client {own_ms:.2f} ms")


async def measure(url: str, params: dict[str, Any], runs: int, burst: int, *, eager: bool) -> None:
    """Run the one-step workflows and print the phases."""
    gaps: dict[str, list[float]] = {}
    totals: list[float] = []
    async with dev_server(url, params) as client, worker(client):
        for i in range(5 + runs):
            began = time.perf_counter()
            handle = await client.start_workflow(
                OneStep.run,
                i,
                id=new_id("phase"),
                task_queue=TASK_QUEUE,
                request_eager_start=eager,
            )
            await handle.result()
            took = time.perf_counter() - began
            if i < 5:  # warm up
                continue
            totals.append(took * 1000)
            history = await handle.fetch_history()
            events = [
                (event_name(e.event_type), e.event_time.ToMilliseconds()) for e in history.events
            ]
            pairs = itertools.pairwise(events)  # every run has the same events, in order
            for k, ((before, at), (after, then)) in enumerate(pairs, 1):
                gaps.setdefault(f"{k:>2}. {before} -> {after}", []).append(then - at)
        print_phases(gaps, totals)
        if burst:
            await throughput(client, burst)


def print_phases(gaps: dict[str, list[float]], totals: list[float]) -> None:
    """The median of each gap between two events, and of the client's time."""
    print(f"{'phase (median of ' + str(len(totals)) + ' runs)':<72} {'ms':>8}")
    total = 0.0
    for name, values in gaps.items():
        median = statistics.median(values)
        total += median
        print(f"{name:<72} {median:>8.1f}")
    print(f"{'sum of the medians (server events, first to last)':<72} {total:>8.1f}")
    print(f"{'start-to-result at the client, median':<72} {statistics.median(totals):>8.1f}")


def main() -> None:
    """Parse arguments and measure."""
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--runs", type=int, default=30)
    parser.add_argument("--memory", action="store_true", help="no --db-filename: in memory")
    parser.add_argument(
        "--eager", action="store_true", help="ask for eager workflow start (request_eager_start)"
    )
    parser.add_argument("--throughput", type=int, default=0, metavar="R", help="then R at once")
    parser.add_argument("--sqlite-pragma", action="append", default=[], metavar="PRAGMA=VALUE")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="temporal_phases_") as tmp:
        url = f"sqlite:///{Path(tmp) / 'bench.db'}"
        params = {"sqlite_pragmas": args.sqlite_pragma, "in_memory": args.memory}
        asyncio.run(measure(url, params, args.runs, args.throughput, eager=args.eager))


if __name__ == "__main__":
    main()
