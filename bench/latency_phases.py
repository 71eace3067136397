"""Where the start-to-result time of a one-step run goes, phase by phase (issue 16).

    .venv/bin/python bench/latency_phases.py [--url sqlite:///path.db | --url postgres]
        [--runs 300] [--plain]

Workload b (one run after another, each started and awaited) with clocks read at the
seams, from the outside: the store's ``create_run`` and ``append`` are wrapped, and the
step notes when it runs. It prints, for each seam the runs pass and the next one, the
median µs between them: where the time of a one-step run goes.

The wrappers themselves add a few µs per seam. Works with the code before the eager
start too (its hand-off is then the worker's wake-up and claim).
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

from benchlib import drop_database, make_database, postgres_server

import perdure
from perdure._records import EventType

LABELS = {
    "began": "start() called",
    "created": "create_run committed",
    "started_call": "append of run_started called",
    "started_done": "append of run_started committed",
    "step": "the step's body ran",
    "step_call": "append of the step's events called",
    "step_done": "append of the step's events committed",
    "end_call": "append of the end called",
    "end_done": "append of the end committed",
    "resumed": "the workflow resumed after its step",
    "returned": "result() returned",
}

marks: dict[str, float] = {}


@perdure.step(name="phases-add-one")
async def add_one(i: int) -> int:
    """The trivial step; notes when it ran."""
    marks["step"] = time.perf_counter()
    return i + 1


@perdure.workflow(name="phases-one-step")
async def one_step(i: int) -> int:
    """One trivial step."""
    value = await add_one(i)
    marks["resumed"] = time.perf_counter()
    return value


def instrument(engine: perdure.Engine) -> None:
    """Wrap the seams this script times: the store's writes."""
    store: Any = engine.store
    create, append = store.create_run, store.append

    async def create_run(*args: Any, **kwargs: Any) -> Any:
        answer = await create(*args, **kwargs)
        marks["created"] = time.perf_counter()
        return answer

    async def timed_append(worker: str, run_id: str, events: list[Any], *a: Any, **k: Any) -> Any:
        kinds = {event.type for event in events}
        if EventType.RUN_STARTED in kinds:
            key = "started"
        elif kinds & {EventType.RUN_COMPLETED, EventType.RUN_FAILED}:
            key = "end"
        else:
            key = "step"
        marks[f"{key}_call"] = time.perf_counter()
        answer = await append(worker, run_id, events, *a, **k)
        marks[f"{key}_done"] = time.perf_counter()
        return answer

    store.create_run, store.append = create_run, timed_append


def phases(began: float, returned: float) -> dict[tuple[str, str], float]:
    """The µs between each seam and the next one the run passed, by their names."""
    seen = sorted([("began", began), ("returned", returned), *marks.items()], key=lambda m: m[1])
    return {(a, b): (tb - ta) * 1e6 for (a, ta), (b, tb) in itertools.pairwise(seen)}


async def measure(url: str, runs: int, *, plain: bool = False) -> None:
    """Print the median µs of each phase, and of the whole (only the whole if ``plain``)."""
    rows: list[dict[tuple[str, str], float]] = []
    totals: list[float] = []
    async with perdure.Engine(url) as engine:
        if not plain:
            instrument(engine)
        for i in range(5):
            await (await engine.start(one_step, i)).result()
        for i in range(runs):
            marks.clear()
            began = time.perf_counter()
            await (await engine.start(one_step, i)).result()
            returned = time.perf_counter()
            totals.append((returned - began) * 1e6)
            rows.append(phases(began, returned))
    if plain:
        print(f"{statistics.median(totals):>9.1f}  whole (p50), {runs} runs")
        return
    # The seams in the order most runs passed them.
    order = max(
        {tuple(row) for row in rows}, key=lambda shape: sum(tuple(r) == shape for r in rows)
    )
    print(f"store: {url.split(':', 1)[0]}, {runs} runs, median µs")
    for pair in order:
        took = statistics.median(row[pair] for row in rows if pair in row)
        print(f"{took:>9.1f}  {LABELS[pair[0]]} -> {LABELS[pair[1]]}")
    print(f"{statistics.median(totals):>9.1f}  whole (p50)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--url", default=None, help="default: a fresh SQLite file; 'postgres': a throwaway database"
    )
    parser.add_argument("--runs", type=int, default=300)
    parser.add_argument(
        "--plain", action="store_true", help="no clocks at the seams (for callgrind's counts)"
    )
    args = parser.parse_args()
    if args.url == "postgres":
        asyncio.run(on_postgres(args.runs, plain=args.plain))
        return
    with tempfile.TemporaryDirectory() as tmp:
        url = args.url or f"sqlite:///{Path(tmp) / 'phases.db'}"
        asyncio.run(measure(url, args.runs, plain=args.plain))


async def on_postgres(runs: int, *, plain: bool) -> None:
    """`measure` on a throwaway database of the bench's PostgreSQL server."""
    server = postgres_server()
    url, name = await make_database(server, "perdure_phases")
    try:
        await measure(url, runs, plain=plain)
    finally:
        await drop_database(server, name)


if __name__ == "__main__":
    main()
