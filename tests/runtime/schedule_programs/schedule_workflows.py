"""A schedule declared in code, every second, for the worker processes of
test_schedule_processes.py. Its step appends ``<run id> <pid>`` to ``$SCHEDULE_DIR/effects.log``
each time it runs."""

from __future__ import annotations

import os
from pathlib import Path

import perdure


@perdure.step
async def note(run_id: str) -> str:
    """Write that this run's step ran, and where."""
    with (Path(os.environ["SCHEDULE_DIR"]) / "effects.log").open("a") as log:
        log.write(f"{run_id} {os.getpid()}\n")
    return run_id


@perdure.workflow(name="every-second", schedule="* * * * * *")
async def every_second() -> str:
    """One tick's run."""
    return await note(perdure.get_workflow_metadata().run_id)
