"""A step of queue ``cli-gpu``: what `perdure worker --queue cli-gpu queue_steps` serves.

The module defines no workflow: a worker serving only queues needs only their steps.
"""

from __future__ import annotations

import os

from perdure import step


@step(queue="cli-gpu", name="cli-gpu-double")
async def gpu_double(x: int) -> list[int]:
    """Twice ``x``, and the id of the process that computed it."""
    return [x * 2, os.getpid()]
