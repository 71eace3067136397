"""The workflow of the scale-out benchmark (`scale_out.py`): what its workers run.

``perdure worker bench/scale_out_workflows.py`` imports this file, and so does the
benchmark's driver, to start runs. Each step waits ``$SCALE_STEP_SECONDS`` (default
0.02), as a call to another service would: a worker's pace is then set by its step
slots, not by how much CPU time the machine gives its process.
"""

from __future__ import annotations

import asyncio
import os

from perdure import step, workflow


@step(name="scale.call")
async def call(x: int) -> int:
    """Add 1, after waiting as long as a call to another service takes."""
    await asyncio.sleep(float(os.environ.get("SCALE_STEP_SECONDS") or 0.02))
    return x + 1


@workflow(name="scale.calls")
async def calls(x: int, steps: int) -> int:
    """``steps`` calls, one after the other: x + steps."""
    for _ in range(steps):
        x = await call(x)
    return x
