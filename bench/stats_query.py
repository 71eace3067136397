"""How long the Metrics page's query takes on a SQLite store of a million runs.

    .venv/bin/python bench/stats_query.py [--runs 1000000] [--steps 2] [--path FILE]

Bulk-inserts ``--runs`` runs spread evenly over the last seven days (and ``--steps``
step rows per run) straight into a fresh SQLite file made by `SQLiteStore.open`, so
the schema and its indexes are perdure's own: 95.5 % completed, 3 % failed, 1 %
cancelled, 0.4 % pending, 0.1 % blocked, over five workflows. Then it times
`store.stats` (what ``GET /stats``, the dashboard's Metrics page and ``perdure stats``
read) for the last hour, day and week, all workflows and one, best of ``--repeat``.
BENCHMARKS.md ("Metrics page") records what it printed.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import sqlite3
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from perdure._stats import StatsWindow
from perdure.stores import SQLiteStore

WORKFLOWS = ("orders", "emails", "reports", "imports", "billing")
WEEK_US = 7 * 86400 * 1_000_000
BATCH = 50_000


def _us(moment: datetime) -> int:
    return (moment - datetime(1970, 1, 1, tzinfo=UTC)) // timedelta(microseconds=1)


def fill(path: Path, runs: int, steps: int, now: datetime) -> None:
    """Insert the runs and their steps in batches, in one transaction."""
    rng = random.Random(17)
    end = _us(now)
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("BEGIN")
    run_rows: list[tuple[object, ...]] = []
    step_rows: list[tuple[object, ...]] = []
    for i in range(runs):
        created = end - WEEK_US + (i * WEEK_US) // runs
        roll = rng.random()
        status = (
            "completed" if roll < 0.955 else "failed" if roll < 0.985 else
            "cancelled" if roll < 0.995 else "pending" if roll < 0.999 else "blocked"
        )  # fmt: skip
        ended = status in {"completed", "failed", "cancelled"}
        took = rng.randint(10_000, 5_000_000)
        completed = created + took if ended else None
        run_id = f"run-{i:08d}"
        run_rows.append((
            run_id, WORKFLOWS[i % len(WORKFLOWS)], status, "[]", created,
            completed or created, created, completed, None if ended else created, 2 + 2 * steps,
        ))  # fmt: skip
        if ended:
            for s in range(steps):
                attempt = 1 if rng.random() < 0.97 else 2
                started = created + s * took // (steps + 1)
                step_rows.append((
                    run_id, f"step{s}#1", f"step{s}", "completed", attempt, "null",
                    started, started + rng.randint(1_000, took // (steps + 1)), s + 2,
                ))  # fmt: skip
        if len(run_rows) >= BATCH:
            _flush(conn, run_rows, step_rows)
    _flush(conn, run_rows, step_rows)
    conn.execute("COMMIT")
    conn.close()


def _flush(
    conn: sqlite3.Connection,
    run_rows: list[tuple[object, ...]],
    step_rows: list[tuple[object, ...]],
) -> None:
    conn.executemany(
        "INSERT INTO runs (id, workflow, status, input, created_at, updated_at, started_at, "
        "completed_at, wake_at, last_seq) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        run_rows,
    )
    conn.executemany(
        "INSERT INTO steps (run_id, correlation_id, name, status, attempt, input, started_at, "
        "updated_at, first_seq) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
        step_rows,
    )
    run_rows.clear()
    step_rows.clear()


async def measure(path: Path, runs: int, steps: int, repeat: int) -> None:
    """Make the store, fill it, and print the best time of each query."""
    now = datetime.now(UTC).replace(microsecond=0)
    store = SQLiteStore(path)
    await store.open()
    await store.close()
    began = time.perf_counter()
    fill(path, runs, steps, now)
    print(f"{runs:,} runs and their steps inserted in {time.perf_counter() - began:.1f} s")
    store = SQLiteStore(path)
    await store.open()
    try:
        print(f"{'window':>8} {'workflow':>9} {'best (ms)':>10} {'started':>9} {'ended':>9}")
        for label, length in (("1h", 1), ("24h", 24), ("7d", 168)):
            for workflow in (None, "orders"):
                window = StatsWindow.ending(now, timedelta(hours=length))
                best = float("inf")
                for _ in range(repeat):
                    t = time.perf_counter()
                    stats = await store.stats(window, workflow=workflow)
                    best = min(best, time.perf_counter() - t)
                ended = sum(stats.totals[k] for k in ("completed", "failed", "cancelled"))
                print(
                    f"{label:>8} {workflow or 'all':>9} {best * 1000:>10.1f} "
                    f"{stats.totals['started']:>9,} {ended:>9,}"
                )
    finally:
        await store.close()


def main() -> None:
    """Parse arguments and run the measurement."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=1_000_000)
    parser.add_argument("--steps", type=int, default=2)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--path", help="the SQLite file to make (default: a temporary one)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(args.path) if args.path else Path(tmp) / "stats.db"
        asyncio.run(measure(path, args.runs, args.steps, args.repeat))


if __name__ == "__main__":
    main()
