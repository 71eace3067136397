"""Version 2 of workflow "buggy": the bug fixed (not collected). Labelled "b2"."""

from __future__ import annotations

from crash_workflows import fetch, refund

from perdure import workflow


@workflow(name="buggy", version="b2")
async def buggy(order: str) -> str:
    """Fetch, then refuse on purpose or refund."""
    item = await fetch(order)
    if order == "refuse":
        raise ValueError(f"order {order} is refused on purpose")
    return await refund(item.upper())
