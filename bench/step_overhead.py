"""Per-step overhead of a sequential workflow of trivial steps.

    .venv/bin/python bench/step_overhead.py [--url sqlite:///path.db] [--sizes 10,100,1000]

For each size N it starts one workflow of N trivial steps and reports the time from
start to result divided by N: what perdure adds to each step (an append to the log,
the hand-over to the workflow). Run it before and after a change to the hot path; the
figures in BENCHMARKS.md say which command and machine produced them.
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
from pathlib import Path

from workloads_perdure import sequential

import perdure


async def measure(url: str, sizes: list[int], repeat: int) -> None:
    """Print µs per step for each size (best of ``repeat`` runs)."""
    async with perdure.Engine(url) as engine:
        await (await engine.start(sequential, 10)).result()  # warm up
        print(f"store: {url}")
        print(f"{'steps':>8} {'best total (s)':>15} {'µs/step':>10}")
        for n in sizes:
            best = float("inf")
            for _ in range(repeat):
                began = time.perf_counter()
                run = await engine.start(sequential, n)
                result = await run.result()
                best = min(best, time.perf_counter() - began)
                if result != n * (n - 1) // 2:
                    raise SystemExit(f"wrong result {result} for n={n}")
            print(f"{n:>8} {best:>15.4f} {best / n * 1e6:>10.1f}")


def main() -> None:
    """Parse arguments and run the measurement."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", help="database URL (default: a fresh SQLite file)")
    parser.add_argument("--sizes", default="10,100,1000")
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    sizes = [int(n) for n in args.sizes.split(",")]
    with tempfile.TemporaryDirectory() as tmp:
        url = args.url or f"sqlite:///{Path(tmp) / 'bench.db'}"
        asyncio.run(measure(url, sizes, args.repeat))


if __name__ == "__main__":
    main()
