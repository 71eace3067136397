"""A worker process for the crash tests (run as a script, not collected).

Usage::

    crash_child.py [--path DIR]... run MODULE:WORKFLOW RUN_ID[,RUN_ID...] ARGS_JSON
    crash_child.py [--path DIR]... leave-when-sleeping MODULE:WORKFLOW RUN_ID ARGS_JSON
    crash_child.py [--path DIR]... worker MODULE...

It opens ``$PERDURE_DATABASE_URL`` with a worker (real clock) and prints its progress
on stdout, one line at a time, flushed:

- ``worker ID`` once the Engine is running (dead workers' runs are already released);
- ``run``: starts each run (or finds it, when an earlier life started it), prints
  ``started RUN_ID``, waits for them to end and prints ``result RUN_ID JSON`` or
  ``failed RUN_ID TYPE: MESSAGE`` for each;
- ``leave-when-sleeping``: starts the run, waits until its log shows a sleep, prints
  ``sleeping``, leaves the Engine's ``async with`` and prints ``left``;
- ``worker``: imports the modules and runs until stdin closes or it is killed.

The modules are imported from this folder (and ``--path`` folders), so every life of a
run imports the same code.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import json
import sys
from pathlib import Path
from typing import Any

import perdure

HERE = Path(__file__).resolve().parent


def load(target: str) -> perdure.Workflow[..., Any]:
    """The workflow ``MODULE:NAME``."""
    module_name, _, attribute = target.partition(":")
    workflow: perdure.Workflow[..., Any] = getattr(importlib.import_module(module_name), attribute)
    return workflow


async def run(target: str, run_ids: list[str], args: list[Any]) -> None:
    """Start (or find) the runs, then wait for each to end."""
    workflow = load(target)
    async with perdure.Engine() as engine:
        assert engine.worker is not None
        print("worker", engine.worker.id, flush=True)
        handles = [await engine.start(workflow, *args, run_id=run_id) for run_id in run_ids]
        for handle in handles:
            print("started", handle.id, flush=True)
        for handle in handles:
            try:
                result = await handle.result()
            except perdure.WorkflowFailed as exc:
                print("failed", handle.id, f"{exc.type}: {exc}", flush=True)
            else:
                print("result", handle.id, json.dumps(result), flush=True)


async def leave_when_sleeping(target: str, run_id: str, args: list[Any]) -> None:
    """Start the run, and leave the Engine once its log shows a sleep."""
    workflow = load(target)
    async with perdure.Engine() as engine:
        assert engine.worker is not None
        print("worker", engine.worker.id, flush=True)
        handle = await engine.start(workflow, *args, run_id=run_id)
        print("started", handle.id, flush=True)
        while True:
            changed = engine.changed()
            if any(e.type is perdure.EventType.SLEEP_STARTED for e in await handle.events()):
                break
            await changed.wait()
        print("sleeping", flush=True)
    print("left", flush=True)


async def serve(modules: list[str]) -> None:
    """Run a worker for ``modules`` until stdin closes."""
    for module in modules:
        importlib.import_module(module)
    async with perdure.Engine() as engine:
        assert engine.worker is not None
        print("worker", engine.worker.id, flush=True)
        await asyncio.to_thread(sys.stdin.read)


def main() -> None:
    """Parse the command line and do what it says."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--path", action="append", default=[])
    parser.add_argument("mode", choices=["run", "leave-when-sleeping", "worker"])
    parser.add_argument("rest", nargs="+")
    options = parser.parse_args()
    sys.path[:0] = [str(HERE), *options.path]
    if options.mode == "worker":
        asyncio.run(serve(options.rest))
        return
    target, run_ids, args = options.rest
    if options.mode == "run":
        asyncio.run(run(target, run_ids.split(","), json.loads(args)))
    else:
        asyncio.run(leave_when_sleeping(target, run_ids, json.loads(args)))


if __name__ == "__main__":
    main()
