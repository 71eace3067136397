"""The store contract for child runs (see `RunStore.create_run`), on every store.

A child run keeps its parent and root; its end, however it comes, lands in its parent's
inbox in the transaction that ends it, and wakes the parent if nobody holds it.
"""

from __future__ import annotations

from helpers import T0, at, hold
from perdure._log import run_cancelled, run_completed, run_failed, run_started
from perdure._records import NewRun, RunStatus
from perdure.stores import FAR_FUTURE, MemoryStore, PostgresStore, SQLiteStore

AnyStore = MemoryStore | SQLiteStore | PostgresStore
ERROR = {"type": "builtins.ValueError", "message": "no", "traceback": "tb"}


def child(
    run_id: str, parent: str = "p1", call: str = "child.wf#1", root: str | None = None
) -> NewRun:
    return NewRun(
        run_id, "wf", {"args": [run_id]}, "v1", parent_id=parent, root_id=root, parent_call=call
    )


async def test_a_child_keeps_its_parent_and_root(store: AnyStore) -> None:
    """A child's record and run_created name its parent and root; list_runs finds it."""
    await hold(store, "p1")
    record, created = await store.create_run(child("c1"), T0)
    assert created
    assert (record.parent_id, record.root_id) == ("p1", "p1")
    await store.create_run(child("c2", parent="c1", root="p1", call="child.wf#7"), at(1))
    grandchild = await store.get_run("c2")
    assert grandchild is not None
    assert (grandchild.parent_id, grandchild.root_id) == ("c1", "p1")
    (created_event,) = await store.events("c2")
    assert created_event.data["parent_id"] == "c1"
    assert created_event.data["root_id"] == "p1"
    assert [run.id for run in await store.list_runs(parent_id="p1")] == ["c1"]
    assert [run.id for run in await store.list_runs(parent_id="c1")] == ["c2"]
    assert await store.list_runs(parent_id="c2") == []
    parent = await store.get_run("p1")
    assert parent is not None
    assert (parent.parent_id, parent.root_id) == (None, None)


async def test_a_child_end_lands_in_its_parent_inbox(store: AnyStore) -> None:
    """Completed, failed or cancelled, a child's end is an inbox item of its parent under
    the child's call, with what the parent logs."""
    await hold(store, "p1")
    for n, end in enumerate([run_completed(output=[1, "x"]), run_failed(error=ERROR)], 1):
        run_id = f"c{n}"
        await store.create_run(child(run_id, call=f"child.wf#{n}"), T0)
        await hold_created(store, run_id)
        await store.append("w2", run_id, [run_started(worker="w2"), end], at(n))
    await store.create_run(child("c3", call="child.wf#3"), T0)
    await store.request_cancel("c3", at(3))  # pending and unheld: cancelled at once
    items = await store.inbox("w1")
    assert [(item.token, item.correlation_id) for item in items] == [
        ("c1", "child.wf#1"),
        ("c2", "child.wf#2"),
        ("c3", "child.wf#3"),
    ]
    assert [item.payload for item in items] == [
        {"status": "completed", "output": [1, "x"]},
        {"status": "failed", "error": ERROR},
        {"status": "cancelled"},
    ]
    assert {item.run_id for item in items} == {"p1"}


async def test_a_child_end_wakes_its_released_parent(store: AnyStore) -> None:
    """A parent released to wait only on its child is due again when the child ends."""
    await hold(store, "p1")
    await store.create_run(child("c1"), T0)
    await store.release_run("w1", "p1", FAR_FUTURE)
    await hold_created(store, "c1")
    await store.append("w2", "c1", [run_started(worker="w2"), run_completed(output=3)], at(5))
    parent = await store.get_run("p1")
    assert parent is not None
    assert parent.wake_at == at(5)
    (claimed,) = await store.claim_runs("w1", at(6), 10, workflows=["wf"])
    assert claimed.id == "p1"
    (item,) = await store.inbox("w1")
    assert item.payload == {"status": "completed", "output": 3}


async def test_no_inbox_item_for_an_ended_parent_or_a_run_without_one(store: AnyStore) -> None:
    """A child whose parent has ended, and a run that is no child, tell nobody."""
    await hold(store, "p1")
    await store.create_run(child("c1"), T0)
    await store.append("w1", "p1", [run_started(worker="w1"), run_cancelled()], at(1))
    await hold_created(store, "c1")
    await store.append("w2", "c1", [run_started(worker="w2"), run_completed(output=1)], at(2))
    await hold(store, "lonely", "w3", workflow="other")
    await store.append("w3", "lonely", [run_started(worker="w3"), run_completed(output=1)], at(3))
    assert await store.inbox("w1") == []
    assert await store.inbox("w3") == []
    record = await store.get_run("c1")
    assert record is not None
    assert record.status is RunStatus.COMPLETED


async def hold_created(store: AnyStore, run_id: str, worker: str = "w2") -> None:
    """Have ``worker`` claim the already created run ``run_id`` (of workflow wf)."""
    claimed = await store.claim_runs(worker, at(0.5), 100, workflows=["wf"])
    assert run_id in {run.id for run in claimed}, claimed
    for run in claimed:
        if run.id != run_id:
            await store.release_run(worker, run.id, FAR_FUTURE)
