"""A worker process for the agent crash test (run as a script, not collected).

Usage: ``agent_child.py RUN_ID TOPIC``. It opens ``$PERDURE_DATABASE_URL`` with a worker
whose lease is 2 s (on PostgreSQL, how soon another worker takes over the runs of one
that died), starts (or finds) the run of ``crash_agent.pipeline`` and prints
``result RUN_ID JSON`` when it ends.
"""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from crash_agent import pipeline

import perdure


async def main(run_id: str, topic: str) -> None:
    async with perdure.Engine(lease="2s") as engine:
        run = await engine.start(pipeline, topic, run_id=run_id)
        print("started", run.id, flush=True)
        print("result", run.id, json.dumps(await run.result()), flush=True)


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2]))
