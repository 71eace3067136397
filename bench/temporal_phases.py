"""Where Temporal's start-to-result time of a one-step workflow goes (workload b).

    bench/.venv/bin/python bench/temporal_phases.py [--runs 30] [--memory]
        [--sqlite-pragma journal_mode=wal ...]

Starts a Temporal dev server (as `workloads_temporal.py` does: SQLite in a temporary
folder, or ``--memory`` for none), runs one-step workflows one after the other, and
reads back each run's history: the server stamps every event, so the gaps between
events split the run into phases (the first workflow task waiting for a worker, the
worker running it, the activity, the second workflow task...). Prints the median of
each gap in ms, and the client's start-to-result time beside their sum.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from temporal_workflows import OneStep
from temporalio.api.enums.v1 import EventType
from workloads_temporal import TASK_QUEUE, dev_server, new_id, worker


def event_name(event_type: int) -> str:
    """``WORKFLOW_TASK_STARTED`` for EVENT_TYPE_WORKFLOW_TASK_STARTED."""
    return str(EventType.Name(event_type)).removeprefix("EVENT_TYPE_")  # type: ignore[arg-type,unused-ignore]


async def measure(url: str, params: dict[str, Any], runs: int) -> None:
    """Run the one-step workflows and print the phases."""
    gaps: dict[str, list[float]] = {}
    totals: list[float] = []
    async with dev_server(url, params) as client, worker(client):
        for i in range(5 + runs):
            began = time.perf_counter()
            handle = await client.start_workflow(
                OneStep.run, i, id=new_id("phase"), task_queue=TASK_QUEUE
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
    print(f"{'phase (median of ' + str(runs) + ' runs)':<72} {'ms':>8}")
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
    parser.add_argument("--sqlite-pragma", action="append", default=[], metavar="PRAGMA=VALUE")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="temporal_phases_") as tmp:
        url = f"sqlite:///{Path(tmp) / 'bench.db'}"
        params = {"sqlite_pragmas": args.sqlite_pragma, "in_memory": args.memory}
        asyncio.run(measure(url, params, args.runs))


if __name__ == "__main__":
    main()
