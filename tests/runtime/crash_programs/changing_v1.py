"""Version 1 of workflow "changing": fetch, then charge (not collected)."""

from __future__ import annotations

from crash_workflows import charge, fetch

from perdure import workflow


@workflow(name="changing")
async def changing(order: str) -> str:
    """Fetch the order's item, then charge for it."""
    item = await fetch(order)
    return await charge(item)
