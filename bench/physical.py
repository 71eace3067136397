"""The storage's own limit: one-row commits per second, one after the other.

    bench/.venv/bin/python bench/physical.py [--seconds 3] [--dir /tmp]
        [--postgres-server postgresql://postgres@127.0.0.1:5432/postgres]

For each setting it inserts one small row and commits, in a loop, for ``--seconds``
seconds, on one connection, and prints commits per second:

- SQLite in WAL mode with ``synchronous=NORMAL`` (a commit is written to the WAL but
  not synced: survives a process crash, may be lost on power loss) and with
  ``synchronous=FULL`` (every commit syncs the WAL), in a file under ``--dir`` (the
  benchmarks' temporary folder, so the same disk);
- SQLite with its default rollback journal and ``synchronous=FULL`` (what a SQLite
  database gets when nobody sets a journal mode, as DBOS's SQLite system database);
- PostgreSQL with ``synchronous_commit`` on (every commit waits for the WAL flush)
  and off (the commit returns before the flush; the WAL writer flushes within
  ``3 x wal_writer_delay``), in a throwaway database.

A single sequential writer is what one sequential workflow is: each figure is a
ceiling on sequential durable steps per second with that setting. Concurrent writers
can share a sync (group commit), so throughput figures may exceed it.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sqlite3
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from benchlib import drop_database, make_database


@dataclass
class Limit:
    """Commits per second of one setting."""

    store: str
    setting: str
    commits_per_s: float
    us_per_commit: float


def sqlite_rate(path: Path, journal: str, synchronous: str, seconds: float) -> Limit:
    """One-row inserts, each its own transaction, for ``seconds`` seconds."""
    conn = sqlite3.connect(path, isolation_level=None)
    try:
        conn.execute(f"PRAGMA journal_mode = {journal}")
        conn.execute(f"PRAGMA synchronous = {synchronous}")
        conn.execute("CREATE TABLE IF NOT EXISTS t (id INTEGER PRIMARY KEY, v TEXT)")
        count = 0
        began = time.perf_counter()
        deadline = began + seconds
        while time.perf_counter() < deadline:
            conn.execute("BEGIN IMMEDIATE")
            conn.execute("INSERT INTO t (v) VALUES (?)", ("x" * 100,))
            conn.execute("COMMIT")
            count += 1
        elapsed = time.perf_counter() - began
    finally:
        conn.close()
    label = f"{journal.upper()}, synchronous={synchronous}"
    return Limit("SQLite", label, count / elapsed, elapsed / count * 1e6)


async def postgres_rate(url: str, synchronous_commit: str, seconds: float) -> Limit:
    """One-row inserts, each its own transaction, for ``seconds`` seconds."""
    import asyncpg  # noqa: PLC0415 - only the PostgreSQL figures need it

    conn = await asyncpg.connect(url)
    try:
        await conn.execute(f"SET synchronous_commit = {synchronous_commit}")
        await conn.execute("CREATE TABLE IF NOT EXISTS t (id bigserial PRIMARY KEY, v text)")
        insert = await conn.prepare("INSERT INTO t (v) VALUES ($1)")
        count = 0
        began = time.perf_counter()
        deadline = began + seconds
        while time.perf_counter() < deadline:
            await insert.fetch("x" * 100)  # autocommit: one statement, one transaction
            count += 1
        elapsed = time.perf_counter() - began
    finally:
        await conn.close()
    label = f"synchronous_commit={synchronous_commit}"
    return Limit("PostgreSQL", label, count / elapsed, elapsed / count * 1e6)


async def measure(seconds: float, folder: str, server: str | None) -> list[Limit]:
    """Every setting in turn."""
    limits = []
    with tempfile.TemporaryDirectory(dir=folder) as tmp:
        for journal, synchronous in (("wal", "NORMAL"), ("wal", "FULL"), ("delete", "FULL")):
            path = Path(tmp) / f"{journal}-{synchronous}.db"
            limits.append(sqlite_rate(path, journal, synchronous, seconds))
    if server is not None:
        url, name = await make_database(server, "perdure_bench_physical")
        try:
            limits += [await postgres_rate(url, setting, seconds) for setting in ("on", "off")]
        finally:
            await drop_database(server, name)
    return limits


def main() -> None:
    """Parse arguments, measure, print a table (or JSON with ``--json``)."""
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--dir", default=tempfile.gettempdir())
    parser.add_argument(
        "--postgres-server",
        default=os.environ.get("PERDURE_TEST_POSTGRES_URL")
        or "postgresql://postgres@127.0.0.1:5432/postgres",
    )
    parser.add_argument("--no-postgres", action="store_true")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    server = None if args.no_postgres else args.postgres_server
    limits = asyncio.run(measure(args.seconds, args.dir, server))
    if args.json:
        print(json.dumps([asdict(limit) for limit in limits]))
        return
    print(f"{'store':<11} {'setting':<30} {'commits/s':>10} {'µs/commit':>10}")
    for limit in limits:
        print(
            f"{limit.store:<11} {limit.setting:<30} {limit.commits_per_s:>10.0f} "
            f"{limit.us_per_commit:>10.1f}"
        )


if __name__ == "__main__":
    main()
