"""A worker or a reader process for the stream tests (run as a script, not collected).

Usage::

    stream_child.py worker          # runs a worker until stdin closes (or it is killed)
    stream_child.py read RUN_ID NAME [--start N] [--committed]

Both open ``$PERDURE_DATABASE_URL`` (PostgreSQL with a 1 s lease, so that a killed
worker's runs are taken over quickly). ``worker`` prints ``worker ID`` once running.
``read`` prints ``ready`` once its Engine runs (no worker), then one JSON line per item
(``{"index": i, "value": v}``, or ``{"index": i, "retracted": [...]}``) as it arrives,
and ``end`` when the stream ends.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import stream_workflows  # noqa: F401 (the workflows a worker runs)

import perdure


def engine(*, worker: bool) -> perdure.Engine:
    url = os.environ["PERDURE_DATABASE_URL"]
    lease = "1s" if url.startswith("postgres") else None
    return perdure.Engine(url, worker=worker, lease=lease)


async def work() -> None:
    async with engine(worker=True) as running:
        assert running.worker is not None
        print("worker", running.worker.id, flush=True)
        await asyncio.to_thread(sys.stdin.read)  # until the test closes stdin


async def read(run_id: str, name: str, start: int, committed: bool) -> None:
    async with engine(worker=False) as running:
        run = await running.get_run(run_id)
        print("ready", flush=True)
        async for item in run.stream(name, start, committed=committed):
            if isinstance(item, perdure.StreamRetracted):
                line = {"index": item.index, "retracted": list(item.indices)}
            else:
                line = {"index": item.index, "value": item.value}
            print(json.dumps(line), flush=True)
    print("end", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser()
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("worker")
    reader = commands.add_parser("read")
    reader.add_argument("run_id")
    reader.add_argument("name")
    reader.add_argument("--start", type=int, default=0)
    reader.add_argument("--committed", action="store_true")
    args = parser.parse_args()
    if args.command == "worker":
        asyncio.run(work())
    else:
        asyncio.run(read(args.run_id, args.name, args.start, args.committed))


if __name__ == "__main__":
    main()
