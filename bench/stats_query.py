"""How long the Metrics page's query takes on a store of a million runs.

    .venv/bin/python bench/stats_query.py [--stores sqlite,postgres] [--runs 1000000]
        [--steps 2] [--repeat 5] [--path FILE] [--explain]

Bulk-inserts ``--runs`` runs spread evenly over the last seven days (and ``--steps``
step rows per run) straight into a fresh store made by the store's own ``open``, so the
schema and its indexes are perdure's own: 95.5 % completed, 3 % failed, 1 % cancelled,
0.4 % pending, 0.1 % blocked, over five workflows. SQLite: a fresh file, in one
transaction. PostgreSQL: a throwaway database on the server of
``$PERDURE_TEST_POSTGRES_URL`` (else 127.0.0.1:5432), filled with COPY, then ``VACUUM
ANALYZE`` (what autovacuum does to a table after a bulk load), and dropped at the end.
Then it times `store.stats` (what ``GET /stats``, the dashboard's Metrics page and
``perdure stats`` read) for the last hour, day and week, all workflows and one, best of
``--repeat``. On PostgreSQL it also EXPLAINs each of the four reads
(`perdure.stores.postgres._stats.statements`) for each window, and says whether its
plan reads a whole table (a Seq Scan); ``--explain`` prints the plans.
BENCHMARKS.md ("Metrics page") records what it printed.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import random
import sqlite3
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING

from benchlib import drop_database, make_database, postgres_server

from perdure._stats import StatsWindow
from perdure.stores import PostgresStore, SQLiteStore
from perdure.stores.postgres._stats import statements

if TYPE_CHECKING:
    from collections.abc import Iterator

    from perdure.stores import Store

WORKFLOWS = ("orders", "emails", "reports", "imports", "billing")
WEEK_US = 7 * 86400 * 1_000_000
BATCH = 50_000
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
RUN_COLUMNS = (
    "id", "workflow", "status", "input", "created_at", "updated_at", "started_at",
    "completed_at", "wake_at", "last_seq",
)  # fmt: skip
STEP_COLUMNS = (
    "run_id", "correlation_id", "name", "status", "attempt", "input", "started_at",
    "updated_at", "first_seq",
)  # fmt: skip
HOURS = {"1h": 1, "24h": 24, "7d": 168}
"""The windows timed, by label."""
TIMES = {"runs": (4, 5, 6, 7, 8), "steps": (6, 7)}
"""The columns of each table's rows that hold a time (microseconds since the epoch)."""

Rows = list[tuple[object, ...]]


def _us(moment: datetime) -> int:
    return (moment - EPOCH) // timedelta(microseconds=1)


def batches(runs: int, steps: int, now: datetime) -> Iterator[tuple[Rows, Rows]]:
    """The runs and their steps, a batch at a time, each time in microseconds."""
    rng = random.Random(17)
    end = _us(now)
    run_rows: Rows = []
    step_rows: Rows = []
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
            yield run_rows, step_rows
            run_rows, step_rows = [], []
    yield run_rows, step_rows


def fill_sqlite(path: Path, runs: int, steps: int, now: datetime) -> None:
    """Insert the runs and their steps in batches, in one transaction."""
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("BEGIN")
    for run_rows, step_rows in batches(runs, steps, now):
        conn.executemany(
            f"INSERT INTO runs ({', '.join(RUN_COLUMNS)}) VALUES ({', '.join('?' * 10)})",  # noqa: S608
            run_rows,
        )
        conn.executemany(
            f"INSERT INTO steps ({', '.join(STEP_COLUMNS)}) VALUES ({', '.join('?' * 9)})",  # noqa: S608
            step_rows,
        )
    conn.execute("COMMIT")
    conn.close()


def _as_times(rows: Rows, columns: tuple[int, ...]) -> Rows:
    """The rows with their microsecond columns as datetimes, as COPY takes timestamptz."""
    out = []
    for row in rows:
        values = list(row)
        for c in columns:
            us = values[c]
            if isinstance(us, int):
                values[c] = EPOCH + timedelta(microseconds=us)
        out.append(tuple(values))
    return out


async def fill_postgres(url: str, runs: int, steps: int, now: datetime) -> None:
    """COPY the runs and their steps in, then VACUUM ANALYZE as autovacuum would."""
    import asyncpg  # noqa: PLC0415 - only the PostgreSQL half needs it

    conn = await asyncpg.connect(url)
    try:
        for run_rows, step_rows in batches(runs, steps, now):
            await conn.copy_records_to_table(
                "runs", records=_as_times(run_rows, TIMES["runs"]), columns=RUN_COLUMNS
            )
            await conn.copy_records_to_table(
                "steps", records=_as_times(step_rows, TIMES["steps"]), columns=STEP_COLUMNS
            )
        await conn.execute("VACUUM ANALYZE runs, steps")
    finally:
        await conn.close()


async def time_stats(store: Store, now: datetime, repeat: int) -> None:
    """Print the best time of `store.stats` for each window, all workflows and one."""
    print(f"{'window':>8} {'workflow':>9} {'best (ms)':>10} {'started':>9} {'ended':>9}")
    for label, hours in HOURS.items():
        for workflow in (None, "orders"):
            window = StatsWindow.ending(now, timedelta(hours=hours))
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


async def explain(url: str, now: datetime, *, show: bool) -> None:
    """EXPLAIN the store's four reads per window; say which plans scan a whole table."""
    import asyncpg  # noqa: PLC0415 - only the PostgreSQL half needs it

    conn = await asyncpg.connect(url)
    try:
        for label, workflow in itertools.product(("1h", "24h", "7d"), (None, "orders")):
            window = StatsWindow.ending(now, timedelta(hours=HOURS[label]))
            for name, (sql, args) in statements(window, workflow).items():
                plan = [row[0] for row in await conn.fetch("EXPLAIN " + sql, *args)]
                scans = sorted({line.strip().split(" on ")[-1].split()[0]
                                for line in plan if "Seq Scan" in line})  # fmt: skip
                verdict = f"SEQ SCAN of {', '.join(scans)}" if scans else "indexes only"
                print(f"{label:>8} {workflow or 'all':>9} {name:>8}: {verdict}")
                if show:
                    print("\n".join(f"      {line}" for line in plan))
    finally:
        await conn.close()


async def measure_sqlite(path: Path, args: argparse.Namespace, now: datetime) -> None:
    """Make the SQLite store, fill it, and time its queries."""
    store = SQLiteStore(path)
    await store.open()
    await store.close()
    began = time.perf_counter()
    fill_sqlite(path, args.runs, args.steps, now)
    took = time.perf_counter() - began
    print(f"sqlite: {args.runs:,} runs and their steps inserted in {took:.1f} s")
    store = SQLiteStore(path)
    await store.open()
    try:
        await time_stats(store, now, args.repeat)
    finally:
        await store.close()


async def measure_postgres(args: argparse.Namespace, now: datetime) -> None:
    """Make a throwaway PostgreSQL database, fill it, time and EXPLAIN; drop it."""
    server = postgres_server()
    url, name = await make_database(server, "perdure_stats")
    try:
        store = PostgresStore(url)
        await store.open()  # the schema and its indexes, by perdure's migrations
        await store.close()
        began = time.perf_counter()
        await fill_postgres(url, args.runs, args.steps, now)
        took = time.perf_counter() - began
        print(f"postgres: {args.runs:,} runs and their steps copied and analyzed in {took:.1f} s")
        store = PostgresStore(url)
        await store.open()
        try:
            await time_stats(store, now, args.repeat)
        finally:
            await store.close()
        print("plans:")
        await explain(url, now, show=args.explain)
    finally:
        await drop_database(server, name)


def main() -> None:
    """Parse arguments and run the measurements."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--stores", default="sqlite,postgres")
    parser.add_argument("--runs", type=int, default=1_000_000)
    parser.add_argument("--steps", type=int, default=2)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--path", help="the SQLite file to make (default: a temporary one)")
    parser.add_argument("--explain", action="store_true", help="print PostgreSQL's plans")
    args = parser.parse_args()
    now = datetime.now(UTC).replace(microsecond=0)
    stores = args.stores.split(",")
    if "sqlite" in stores:
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(args.path) if args.path else Path(tmp) / "stats.db"
            asyncio.run(measure_sqlite(path, args, now))
    if "postgres" in stores:
        asyncio.run(measure_postgres(args, now))


if __name__ == "__main__":
    main()
