"""Version 1 of workflow "buggy": a bug (an AttributeError) after its first step (not
collected). Labelled "b1"."""

from __future__ import annotations

from crash_workflows import fetch, refund

from perdure import workflow


@workflow(name="buggy", version="b1")
async def buggy(order: str) -> str:
    """Fetch, then refuse on purpose or hit the bug."""
    item = await fetch(order)
    if order == "refuse":
        raise ValueError(f"order {order} is refused on purpose")
    return await refund(item.no_such_method())  # type: ignore[attr-defined]
