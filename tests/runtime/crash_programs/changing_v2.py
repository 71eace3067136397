"""Version 2 of workflow "changing": fetch, then refund (not collected).

Deployed while a version 1 run was in flight between its two steps, it no longer
matches that run's log.
"""

from __future__ import annotations

from crash_workflows import fetch, refund

from perdure import workflow


@workflow(name="changing")
async def changing(order: str) -> str:
    """Fetch the order's item, then refund it."""
    item = await fetch(order)
    return await refund(item)
