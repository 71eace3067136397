"""Version 3 of workflow "changing": fetch, then charge again (not collected).

Deployed after version 2 blocked a version 1 run, it makes version 1's durable calls
once more (its source differs, so its version does too): it continues the run.
"""

from __future__ import annotations

from crash_workflows import charge, fetch

from perdure import workflow


@workflow(name="changing")
async def changing(order: str) -> str:
    """Fetch the order's item, then charge for it (as version 1 did)."""
    fetched = await fetch(order)
    return await charge(fetched)
