"""The store contract of the eager start (issue 16): ``create_run(..., claim_for=...)``.

A run started in a process whose worker has room is created already held by that
worker, in the transaction that creates it, so no claim and no wake-up stand between
the start and the run's first step. Run on every store through the ``store`` fixture,
like `test_store_contract.py`.
"""

from __future__ import annotations

import pytest

from helpers import T0, at
from perdure._errors import LeaseLostError
from perdure._records import EventType, NewEvent, NewRun, RunStatus
from perdure.stores import MemoryStore, PostgresStore, SQLiteStore

AnyStore = MemoryStore | SQLiteStore | PostgresStore

STARTED = NewEvent(EventType.RUN_STARTED, data={"worker": "w1"})


async def test_a_run_created_for_a_worker_is_held_by_it_from_the_start(store: AnyStore) -> None:
    """With claim_for, the new run is pending, held by that worker, and due never."""
    record, created = await store.create_run(NewRun("r1", "wf", {"args": [1]}), T0, claim_for="w1")
    assert created
    assert (record.status, record.owner, record.wake_at) == (RunStatus.PENDING, "w1", None)
    stored = await store.get_run("r1")
    assert stored is not None
    assert (stored.status, stored.owner, stored.wake_at) == (RunStatus.PENDING, "w1", None)
    assert [event.type for event in await store.events("r1")] == [EventType.RUN_CREATED]


async def test_no_other_worker_can_claim_or_write_a_run_created_held(store: AnyStore) -> None:
    """Held from its insert: another worker's claim finds nothing, its append is refused."""
    await store.create_run(NewRun("r1", "wf", {"args": [1]}), T0, claim_for="w1")
    assert await store.claim_runs("w2", at(60), 10) == []
    with pytest.raises(LeaseLostError):
        await store.append("w2", "r1", [STARTED], at(1))
    assert await store.append("w1", "r1", [STARTED], at(1)) == 2
    running = await store.get_run("r1")
    assert running is not None
    assert (running.status, running.owner) == (RunStatus.RUNNING, "w1")


async def test_a_run_that_exists_is_returned_as_it_is_and_not_claimed(store: AnyStore) -> None:
    """create_run with claim_for on an id that exists writes nothing and claims nothing."""
    await store.create_run(NewRun("r1", "wf", {"args": [1]}), T0)
    again, created = await store.create_run(
        NewRun("r1", "wf", {"args": [2]}), at(5), claim_for="w1"
    )
    assert not created
    assert (again.owner, again.wake_at, again.input) == (None, T0, {"args": [1]})
    claimed = await store.claim_runs("w2", at(5), 10)
    assert [run.id for run in claimed] == ["r1"]


async def test_a_run_created_held_is_released_like_any_held_run(store: AnyStore) -> None:
    """Handed back (release_run), the eagerly held run is due and another worker claims it."""
    await store.create_run(NewRun("r1", "wf", {"args": [1]}), T0, claim_for="w1")
    await store.release_run("w1", "r1", at(2))
    assert await store.claim_runs("w2", at(1), 10) == []
    (claimed,) = await store.claim_runs("w2", at(2), 10)
    assert (claimed.id, claimed.owner) == ("r1", "w2")


@pytest.mark.parametrize(
    ("run_id", "text"),
    [
        ("it's", "a 'quoted' \"text\" \\ -- ; END $"),  # a $: PostgreSQL's fallback
        ("plain-'quotes'", "no dollar: ' \" \\ -- ; END IF; END"),  # its one-statement way
        ("$v$", "$perdure$ $v$"),
    ],
    ids=["dollar", "quotes", "delimiters"],
)
async def test_any_text_is_created_held_exactly(store: AnyStore, run_id: str, text: str) -> None:
    """Ids and inputs holding quotes, dollars and SQL come back as given, the run held."""
    record, created = await store.create_run(
        NewRun(run_id, "wf", {"args": [text]}), T0, claim_for="w1"
    )
    assert created
    stored = await store.get_run(run_id)
    assert stored is not None
    assert (stored.owner, stored.input) == ("w1", {"args": [text]})
    assert record.input == {"args": [text]}
    again, created = await store.create_run(NewRun(run_id, "wf", {}), at(1), claim_for="w2")
    assert not created
    assert again.owner == "w1"


async def test_a_child_run_created_held_keeps_its_parent_deadline_and_attributes(
    store: AnyStore,
) -> None:
    """Created held, a run's parent, deadline and attributes are indexed as for any create."""
    await store.create_run(NewRun("parent", "wf", {"args": []}), T0)
    child = NewRun(
        "child",
        "wf",
        {"args": [1]},
        attributes={"tenant": "acme"},
        deadline=at(60),
        parent_id="parent",
        root_id="parent",
        parent_call="child.wf#1",
    )
    record, created = await store.create_run(child, T0, claim_for="w1")
    assert created
    stored = await store.get_run("child")
    assert stored is not None
    assert stored == record
    assert (stored.owner, stored.parent_id, stored.root_id) == ("w1", "parent", "parent")
    assert (stored.deadline_at, stored.attributes) == (at(60), {"tenant": "acme"})
