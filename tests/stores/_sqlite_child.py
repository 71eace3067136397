"""A second process for the SQLite store's tests (run as a script, not collected).

Usage: ``python _sqlite_child.py MODE DATABASE WORKER RUN NOW``, NOW in ISO 8601.

- ``hold``: register WORKER, claim RUN, print ``ready <claimed ids>``, then wait until
  stdin closes (or the test kills this process) and close the store.
- ``create``: create RUN, print ``created``, close the store and exit.
"""

from __future__ import annotations

import asyncio
import sys
from datetime import datetime

from perdure._records import NewRun
from perdure.stores.sqlite import SQLiteStore


async def main(mode: str, database: str, worker: str, run_id: str, now_text: str) -> None:
    now = datetime.fromisoformat(now_text)
    store = SQLiteStore(database)
    await store.open()
    try:
        if mode == "hold":
            await store.register_worker(worker, now)
            claimed = await store.claim_runs(worker, now, 10)
            print("ready", *[run.id for run in claimed], flush=True)
            await asyncio.to_thread(sys.stdin.read)
        elif mode == "create":
            await store.create_run(NewRun(run_id, "wf", {"args": []}), now)
            print("created", flush=True)
        else:
            raise SystemExit(f"unknown mode {mode!r}")
    finally:
        await store.close()


if __name__ == "__main__":
    asyncio.run(main(*sys.argv[1:6]))
