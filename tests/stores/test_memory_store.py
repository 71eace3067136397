"""What only the in-memory store has to get right: change notification on one loop."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

import pytest

from perdure._records import NewRun
from perdure.stores import MemoryStore


async def test_a_cancel_that_arrives_with_a_change_is_not_swallowed() -> None:
    """Cancelling wait_for_change as a write wakes it still cancels it (an Engine's exit hung)."""
    store = MemoryStore()
    await store.open()
    await store.wait_for_change(0)  # forget the changes made so far
    waiting = asyncio.create_task(store.wait_for_change(10))
    await asyncio.sleep(0)  # one loop turn: the task is now waiting on the store

    await store.create_run(NewRun("r1", "wf", {}), datetime(2030, 1, 1, tzinfo=UTC))
    waiting.cancel()

    with pytest.raises(asyncio.CancelledError):
        await waiting
