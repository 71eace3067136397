"""Version 2 of workflow "buggy", the bug fixed, but still labelled "b1" (not collected).

Its workers do not try the runs "b1" blocked by themselves: ``engine.unblock`` does.
"""

from __future__ import annotations

from crash_workflows import fetch, refund

from perdure import workflow


@workflow(name="buggy", version="b1")
async def buggy(order: str) -> str:
    """Fetch, then refuse on purpose or refund."""
    item = await fetch(order)
    if order == "refuse":
        raise ValueError(f"order {order} is refused on purpose")
    return await refund(item.upper())
