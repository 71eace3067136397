"""A worker whose run kills it: the poison run test's child (run as a script, not collected).

Usage: ``poison_child.py RUN_ID POISON_AFTER``

It opens ``$PERDURE_DATABASE_URL`` with a worker (a lease of one second, so that on
PostgreSQL the next life takes the run over soon), prints ``worker ID``, starts run
RUN_ID of workflow ``poison`` (or finds it, when an earlier life started it) and serves
until stdin closes. The run's step kills this process with SIGKILL once its attempt is
in the log, in every life: a poison run. Each kill is counted in ``$CRASH_DIR/effects.log``.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from pathlib import Path

import perdure

ENGINE: list[perdure.Engine] = []
"""This process's Engine, once entered (its worker may claim the run before that)."""


@perdure.step(max_retries=20)  # each death counts an attempt: plenty left
async def crash(order: str) -> str:
    """Kill this process once this attempt's step_started is stored (so each life leaves
    the same trace: one step_started), as a step that crashes the interpreter would."""
    meta = perdure.get_step_metadata()
    call = meta.step_id.split(":", 1)[1]

    async def logged() -> bool:
        if not ENGINE:
            return False
        return any(
            event.type is perdure.EventType.STEP_STARTED
            and event.correlation_id == call
            and event.data.get("attempt") == meta.attempt
            for event in await ENGINE[0].store.events(meta.run_id)
        )

    while not await logged():
        await asyncio.sleep(0.01)
    with (Path(os.environ["CRASH_DIR"]) / "effects.log").open("a") as effects:
        effects.write(f"crash {os.getpid()}\n")
    os.kill(os.getpid(), signal.SIGKILL)
    return order


@perdure.workflow(name="poison", version="p1")
async def poison(order: str) -> str:
    """One step, which kills its worker."""
    return await crash(order)


async def main(run_id: str, poison_after: int) -> None:
    """Start (or find) the run and serve until stdin closes."""
    async with perdure.Engine(lease="1s", poison_after=poison_after) as engine:
        assert engine.worker is not None
        ENGINE.append(engine)
        print("worker", engine.worker.id, flush=True)
        await engine.start(poison, "o-1", run_id=run_id)
        print("started", run_id, flush=True)
        await asyncio.to_thread(sys.stdin.read)


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], int(sys.argv[2])))
