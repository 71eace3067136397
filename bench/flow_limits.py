"""The cost of a concurrency limit: steps per second with and without one on a hot key.

    .venv/bin/python bench/flow_limits.py [--stores sqlite,postgres] [--runs 200]
        [--steps 10] [--repeat 3] [--json]

For each store (a fresh SQLite file; a throwaway PostgreSQL database on the machine's
server, dropped afterwards) and each variant, one Engine with a worker starts
``--runs`` runs of ``--steps`` trivial steps at once and awaits every result:

- ``none``: a workflow without a limit;
- ``10 slots``: the same on a worker of 10 step slots: as few steps at once as the
  limit allows, the baseline that shows what the limit itself costs;
- ``hot key``: every run of ``@workflow(concurrency=Limit(10, key="key"))`` has the
  same key, so at most 10 of them run at once and the rest wait in the store; the
  claim counts the key's holders each time it meets one;
- ``step limit``: ``@step(concurrency=10)``, each attempt asking the store for a slot
  and giving it back.

It prints the best of ``--repeat`` for each, in steps per second (with ``--json``,
only the figures, as JSON: `run.py` runs it so in `make bench`). The figures in
BENCHMARKS.md ("Flow control") say which command and machine produced them.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import tempfile
import time
from pathlib import Path

from benchlib import drop_database, make_database, postgres_server

from perdure import Engine, Limit, Workflow, step, workflow

SLOTS = 10


@step
async def trivial(i: int) -> int:
    """Nothing: what is measured is perdure's own cost."""
    return i


@step(name="flow-bench-scarce", concurrency=SLOTS)
async def scarce(i: int) -> int:
    """Nothing, in one of ``SLOTS`` slots shared by every worker."""
    return i


@workflow(name="flow-bench-none")
async def unlimited(key: str, steps: int) -> int:
    """``steps`` trivial steps, no limit."""
    del key
    return sum([await trivial(i) for i in range(steps)])


@workflow(name="flow-bench-hot", concurrency=Limit(SLOTS, key="key"))
async def hot(key: str, steps: int) -> int:
    """``steps`` trivial steps, ``SLOTS`` runs of a key at once."""
    del key
    return sum([await trivial(i) for i in range(steps)])


@workflow(name="flow-bench-step")
async def step_limited(key: str, steps: int) -> int:
    """``steps`` steps of a limited step."""
    del key
    return sum([await scarce(i) for i in range(steps)])


VARIANTS: dict[str, tuple[Workflow[[str, int], int], dict[str, int]]] = {
    "none": (unlimited, {}),
    "10 slots": (unlimited, {"max_concurrent_steps": SLOTS}),
    "hot key": (hot, {}),
    "step limit": (step_limited, {}),
}
"""Each variant's workflow and Engine options."""


async def burst(
    url: str, fn: Workflow[[str, int], int], args: argparse.Namespace, options: dict[str, int]
) -> float:
    """Seconds from the first start to the last result of ``args.runs`` runs."""
    async with Engine(url, max_concurrent_steps=options.get("max_concurrent_steps", 100)) as engine:
        began = time.perf_counter()
        started = [await engine.start(fn, "acme", args.steps) for _ in range(args.runs)]
        for run in started:
            await run.result()
        return time.perf_counter() - began


async def measure(store: str, args: argparse.Namespace) -> dict[str, dict[str, float]]:
    """Steps/s and seconds of each variant on ``store``, each row printed unless --json."""
    figures: dict[str, dict[str, float]] = {}
    for name, (fn, options) in VARIANTS.items():
        best = float("inf")
        for _ in range(args.repeat):
            with tempfile.TemporaryDirectory() as tmp:
                if store == "sqlite":
                    url = f"sqlite:///{Path(tmp)}/b.db"
                    best = min(best, await burst(url, fn, args, options))
                    continue
                server = postgres_server()
                url, database = await make_database(server, "perdure_flow")
                try:
                    best = min(best, await burst(url, fn, args, options))
                finally:
                    await drop_database(server, database)
        steps = args.runs * args.steps
        figures[name] = {"steps_per_s": steps / best, "seconds": best}
        if not args.json:
            print(f"{store:>9} {name:>11} {steps / best:>10.0f} steps/s {best:>8.2f} s")
    return figures


def main() -> None:
    """Parse arguments and run the measurements."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--stores", default="sqlite,postgres")
    parser.add_argument("--runs", type=int, default=200)
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    args = parser.parse_args()
    if not args.json:
        print(f"{args.runs} runs of {args.steps} trivial steps, started at once; {SLOTS} slots")
        print(f"{'store':>9} {'limit':>11} {'throughput':>10}")
    results = {store: asyncio.run(measure(store, args)) for store in args.stores.split(",")}
    if args.json:
        print(json.dumps(results))


if __name__ == "__main__":
    main()
