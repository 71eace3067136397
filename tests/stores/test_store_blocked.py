"""The store contract of blocked runs (issue 12): `block_run` and `unblock_run`.

Run on every store through the ``store`` fixture, like `test_store_contract.py`.
"""

from __future__ import annotations

import pytest

from helpers import T0, at, hold
from perdure import _log
from perdure._errors import LeaseLostError
from perdure._records import EventType, NewEvent, RunStatus
from perdure.stores import MemoryStore, PostgresStore, SQLiteStore

AnyStore = MemoryStore | SQLiteStore | PostgresStore

BLOCKED = _log.run_blocked(reason="durable call #2 is step b", version="v2", worker="w1")


async def test_block_run_sets_the_run_aside_unheld_and_not_due(store: AnyStore) -> None:
    """A blocked run is logged, keeps its steps, and no claim takes it."""
    await hold(store)
    step = NewEvent(EventType.STEP_STARTED, "a#1", {"name": "a", "attempt": 1, "input": None})
    await store.append("w1", "r1", [_log.run_started(worker="w1"), step], at(1))
    await store.block_run("w1", "r1", BLOCKED, at(2))
    run = await store.get_run("r1")
    assert run is not None
    assert (run.status, run.blocked_reason, run.owner, run.wake_at) == (
        RunStatus.BLOCKED,
        "durable call #2 is step b",
        None,
        None,
    )
    assert not run.status.is_terminal
    events = await store.events("r1")
    assert [e.type for e in events][-1] is EventType.RUN_BLOCKED
    assert _log.RunBlocked.of(events[-1]).version == "v2"
    assert [s.correlation_id for s in await store.steps("r1")] == ["a#1"]
    assert await store.claim_runs("w2", at(999), 5) == []
    assert [r.id for r in await store.list_runs(status=RunStatus.BLOCKED)] == ["r1"]


async def test_block_run_is_fenced_like_append(store: AnyStore) -> None:
    """Only the run's holder may block it; another worker's call writes nothing."""
    await hold(store)
    with pytest.raises(LeaseLostError):
        await store.block_run("w2", "r1", BLOCKED, at(1))
    run = await store.get_run("r1")
    assert run is not None
    assert (run.status, run.owner) == (RunStatus.PENDING, "w1")
    with pytest.raises(LeaseLostError):
        await store.block_run("w1", "nope", BLOCKED, at(1))


async def test_a_blocked_run_with_a_cancel_request_is_due_at_once(store: AnyStore) -> None:
    """A cancel stored before the block is not lost: the run is due, its holder cancels it."""
    await hold(store)
    await store.request_cancel("r1", at(1))
    await store.block_run("w1", "r1", BLOCKED, at(2))
    assert [r.id for r in await store.claim_runs("w2", at(2), 5)] == ["r1"]


async def test_cancel_of_a_blocked_run_makes_it_due(store: AnyStore) -> None:
    """A cancel request wakes a blocked run, so a worker can end it cancelled."""
    await hold(store)
    await store.block_run("w1", "r1", BLOCKED, at(1))
    await store.request_cancel("r1", at(2))
    claimed = await store.claim_runs("w2", at(2), 5)
    assert [(r.id, r.cancel_requested) for r in claimed] == [("r1", True)]


async def test_unblock_run_makes_the_run_due_now(store: AnyStore) -> None:
    """unblock_run logs run_unblocked, clears the reason, and a claim takes the run."""
    await hold(store)
    await store.append("w1", "r1", [_log.run_started(worker="w1")], at(1))
    await store.block_run("w1", "r1", BLOCKED, at(2))
    run = await store.unblock_run("r1", at(3), by="w9")
    assert run is not None
    assert (run.status, run.blocked_reason, run.owner, run.wake_at) == (
        RunStatus.RUNNING,
        None,
        None,
        at(3),
    )
    last = (await store.events("r1"))[-1]
    assert (last.type, _log.RunUnblocked.of(last).by) == (EventType.RUN_UNBLOCKED, "w9")
    assert [r.id for r in await store.claim_runs("w2", at(3), 5)] == ["r1"]


async def test_unblock_run_leaves_other_runs_alone(store: AnyStore) -> None:
    """A run that is not blocked comes back as it stands; an unknown id is None."""
    await hold(store)
    before = await store.get_run("r1")
    assert await store.unblock_run("r1", at(1), by=None) == before
    assert len(await store.events("r1")) == 1
    assert await store.unblock_run("nope", T0, by=None) is None


async def test_block_and_unblock_events_cannot_be_appended(store: AnyStore) -> None:
    """run_blocked moves the run's holder, so only block_run writes it."""
    await hold(store)
    with pytest.raises(ValueError, match="block_run"):
        await store.append("w1", "r1", [BLOCKED], at(1))
    assert len(await store.events("r1")) == 1
