"""What the benchmark's modules share: throwaway databases, percentiles, memory, results.

Every workload module (`workloads_perdure.py`, `workloads_dbos.py`) is run as a
script, one process per workload and store, by `run.py`:

    python bench/workloads_LIB.py WORKLOAD --store sqlite|postgres --url URL --params JSON

and prints one line ``BENCH-RESULT {json}``: a flat mapping of figure names to numbers
(or to null for a figure it could not measure, with the reason under ``"notes"``).
Workloads that need a second process start it the same way (``python
bench/workloads_LIB.py ROLE ...``) with the same interpreter.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import itertools
import json
import os
import secrets
import statistics
import subprocess
import sys
from collections.abc import Callable, Coroutine, Mapping
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
RESULT_MARK = "BENCH-RESULT "
DEFAULT_SERVER = "postgresql://postgres@127.0.0.1:5432/postgres"


def postgres_server() -> str:
    """The PostgreSQL server on which throwaway databases are made."""
    return os.environ.get("PERDURE_TEST_POSTGRES_URL") or DEFAULT_SERVER


async def make_database(server: str, prefix: str) -> tuple[str, str]:
    """Create a throwaway database ``PREFIX_<random>`` on ``server``; its URL and name."""
    import asyncpg  # noqa: PLC0415 - only PostgreSQL workloads need it

    name = f"{prefix}_{secrets.token_hex(4)}"
    conn = await asyncpg.connect(server)
    try:
        await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()
    return server.rsplit("/", 1)[0] + f"/{name}", name


async def drop_database(server: str, name: str) -> None:
    """Drop a throwaway database, whoever is still connected."""
    import asyncpg  # noqa: PLC0415 - only PostgreSQL workloads need it

    conn = await asyncpg.connect(server)
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await conn.close()


def percentile(values: list[float], fraction: float) -> float:
    """The value at ``fraction`` of the sorted values (nearest rank)."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(fraction * len(ordered)) - 1))]


def history_windows(stamps: list[float], windows: int = 10) -> dict[str, Any]:
    """The cost of a step in each window of one run's history (workload i).

    ``stamps`` are the times at which the run's steps ran, one per step, so the gap
    between two consecutive stamps is what one step cost with that much history behind
    it. The gaps are cut into ``windows`` equal windows; for each: the number of steps
    before its middle, the median and the mean gap in µs. A library that replays its
    history at each step (cost linear in the history, quadratic in total) shows a
    rising line; one that does not shows a flat one.
    """
    gaps = [(later - earlier) * 1e6 for earlier, later in itertools.pairwise(stamps)]
    rows = []
    for k in range(windows):
        start, end = k * len(gaps) // windows, (k + 1) * len(gaps) // windows
        window = gaps[start:end]
        rows.append([(start + end) / 2 + 1, statistics.median(window), statistics.fmean(window)])
    n = len(stamps)
    return {
        f"windows_{n}": rows,
        f"first_window_us_{n}": rows[0][1],
        f"last_window_us_{n}": rows[-1][1],
        f"last_over_first_{n}": rows[-1][1] / rows[0][1],
    }


def rss_mib() -> float:
    """This process's resident set size in MiB (Linux), after a full collection."""
    gc.collect()
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS in /proc/self/status")


def emit(figures: dict[str, Any]) -> None:
    """Print the result line the driver reads."""
    print(RESULT_MARK + json.dumps(figures), flush=True)


def read_result(output: str) -> dict[str, Any]:
    """The figures from a workload process's output."""
    for line in reversed(output.splitlines()):
        if line.startswith(RESULT_MARK):
            figures: dict[str, Any] = json.loads(line[len(RESULT_MARK) :])
            return figures
    raise RuntimeError("the process printed no result")


def child(module: str, *args: str) -> list[str]:
    """The command line of a helper process of ``module`` (same interpreter)."""
    return [sys.executable, str(HERE / module), *args]


async def spawn(
    module: str, *args: str, env: dict[str, str] | None = None
) -> asyncio.subprocess.Process:
    """Start a helper process whose stdout is piped (it reports through lines)."""
    return await asyncio.create_subprocess_exec(
        *child(module, *args),
        stdout=asyncio.subprocess.PIPE,
        env={**os.environ, "NO_COLOR": "1", **(env or {})},
    )


async def read_line_with(process: asyncio.subprocess.Process, word: str, timeout: float) -> str:
    """Read the helper's lines until one starts with ``word``; return the rest of it."""
    if process.stdout is None:  # pragma: no cover - spawn() pipes stdout
        raise RuntimeError("no pipe from the helper process")
    async with asyncio.timeout(timeout):
        while True:
            raw = await process.stdout.readline()
            if not raw:
                code = await process.wait()
                raise RuntimeError(f"the helper exited ({code}) before saying {word!r}")
            line = raw.decode().rstrip("\n")
            if line.startswith(word):
                return line[len(word) :].strip()


def run_sync(cmd: list[str], timeout: float) -> subprocess.CompletedProcess[str]:
    """Run a command, capturing its output as text."""
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, check=False)


Workload = Callable[[str, dict[str, Any]], Coroutine[Any, Any, dict[str, Any]]]


def run_workload(
    workloads: Mapping[str, Workload],
    description: str,
    version: Callable[[], str],
    *,
    exit_at_once: bool = False,
) -> None:
    """A workload module's command line: run the workload named, print its figures.

    Helper roles (names longer than one letter) print what they print themselves.
    ``exit_at_once`` ends the process without joining a library's threads: the
    database is thrown away anyway.
    """
    parser = argparse.ArgumentParser(description=description.splitlines()[0])
    parser.add_argument("workload", choices=sorted(workloads))
    parser.add_argument("--url", required=True)
    parser.add_argument("--params", default="{}")
    args = parser.parse_args()
    figures = asyncio.run(workloads[args.workload](args.url, json.loads(args.params)))
    if len(args.workload) == 1:
        figures["version"] = version()
        emit(figures)
    if exit_at_once:
        os._exit(0)
