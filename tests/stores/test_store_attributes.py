"""The store contract for deadlines, attributes and cursor pages, on every store.

`RunStore.list_runs` searches by attribute (the text form of `perdure._attributes`) and
pages with ``before``; `create_run` keeps a new run's deadline and attributes, and an
``attributes_set`` append indexes more.
"""

from __future__ import annotations

from helpers import T0, at, hold
from perdure import _log
from perdure._records import EventType, NewEvent, NewRun, RunStatus
from perdure.stores import MemoryStore, PostgresStore, SQLiteStore

AnyStore = MemoryStore | SQLiteStore | PostgresStore


async def test_a_new_run_keeps_its_deadline_and_attributes(store: AnyStore) -> None:
    """create_run stores the deadline and attributes on the row and in run_created."""
    new = NewRun(
        "r1", "wf", {"args": []}, attributes={"schedule": "daily", "tick": 3}, deadline=at(60)
    )
    record, created = await store.create_run(new, T0)
    assert created
    assert (record.deadline_at, record.attributes) == (at(60), {"schedule": "daily", "tick": 3})
    read = await store.get_run("r1")
    assert read is not None
    assert (read.deadline_at, read.attributes) == (at(60), {"schedule": "daily", "tick": 3})
    first = _log.RunCreated.of((await store.events("r1"))[0])
    assert (first.deadline, first.attributes) == (at(60), {"schedule": "daily", "tick": 3})


async def test_a_run_without_them_has_none(store: AnyStore) -> None:
    """A run created without a deadline or attributes has None for both, and a bare log."""
    record, _ = await store.create_run(NewRun("r1", "wf", {"args": []}), T0)
    assert (record.deadline_at, record.attributes) == (None, None)
    read = await store.get_run("r1")
    assert read is not None
    assert (read.deadline_at, read.attributes) == (None, None)
    assert set((await store.events("r1"))[0].data) == {"workflow", "input", "version"}


async def test_attributes_set_indexes_and_replaces_values(store: AnyStore) -> None:
    """An attributes_set append adds keys and replaces the values of keys already set."""
    await hold(store)
    await store.append(
        "w1", "r1", [_log.attributes_set("attributes#1", values={"a": "x", "n": 1})], T0
    )
    await store.append(
        "w1", "r1", [_log.attributes_set("attributes#2", values={"n": 2.5, "ok": True})], T0
    )
    read = await store.get_run("r1")
    assert read is not None
    assert read.attributes == {"a": "x", "n": 2.5, "ok": True}
    assert [r.id for r in await store.list_runs(attributes={"n": "2.5"})] == ["r1"]
    assert await store.list_runs(attributes={"n": "1"}) == []


async def test_list_runs_finds_runs_having_every_attribute(store: AnyStore) -> None:
    """Attribute terms are ANDed, match by text (3 finds the int 3 and 3.0), and combine
    with the other filters."""
    runs = {
        "a": {"customer": "acme", "tier": "gold", "items": 3},
        "b": {"customer": "acme", "tier": "silver", "items": 3.0},
        "c": {"customer": "globex", "tier": "gold", "vip": True},
        "d": {},
    }
    for second, (run_id, attributes) in enumerate(runs.items()):
        await store.create_run(
            NewRun(run_id, "x" if run_id != "b" else "y", {"args": []}, attributes=attributes),
            at(second),
        )

    async def ids(**kw: object) -> list[str]:
        return [run.id for run in await store.list_runs(**kw)]  # type: ignore[arg-type]

    assert await ids(attributes={"customer": "acme"}) == ["b", "a"]
    assert await ids(attributes={"customer": "acme", "tier": "gold"}) == ["a"]
    assert await ids(attributes={"items": "3"}) == ["b", "a"]
    assert await ids(attributes={"vip": "true"}) == ["c"]
    assert await ids(attributes={"customer": "acme"}, workflow="x") == ["a"]
    assert await ids(attributes={"customer": "acme"}, status=RunStatus.PENDING, limit=1) == ["b"]
    assert await ids(attributes={"customer": "initech"}) == []
    assert await ids(attributes={"nope": "acme"}) == []


async def test_before_pages_newest_first_and_stable_under_inserts(store: AnyStore) -> None:
    """``before`` starts after a run in (created_at, id) order; runs created meanwhile, or
    with the same created_at, never shift a page nor repeat across pages."""
    for run_id, second in [("a", 1), ("b", 2), ("c", 2), ("d", 3), ("e", 4)]:
        await store.create_run(NewRun(run_id, "wf", {"args": []}), at(second))
    first = await store.list_runs(limit=2)
    assert [run.id for run in first] == ["e", "d"]
    await store.create_run(NewRun("f", "wf", {"args": []}), at(5))  # newer: sorts first
    await store.create_run(NewRun("bb", "wf", {"args": []}), at(2))  # ties with b and c
    cursor = (first[-1].created_at, first[-1].id)
    page = await store.list_runs(limit=2, before=cursor)
    assert [run.id for run in page] == ["c", "bb"]
    third = await store.list_runs(limit=2, before=(page[-1].created_at, page[-1].id))
    assert [run.id for run in third] == ["b", "a"]
    assert await store.list_runs(before=(third[-1].created_at, third[-1].id)) == []


async def test_a_cancel_with_a_reason_shows_it_as_the_error(store: AnyStore) -> None:
    """run_cancelled with a reason (a deadline) ends the run cancelled with the reason as
    its error's message; without one, the error stays None."""
    await hold(store)
    await store.append("w1", "r1", [_log.run_cancelled(reason="deadline of 1h passed")], T0)
    read = await store.get_run("r1")
    assert read is not None
    assert read.status is RunStatus.CANCELLED
    assert read.error is not None
    assert read.error["message"] == "deadline of 1h passed"
    await hold(store, "r2")
    await store.append("w1", "r2", [NewEvent(EventType.RUN_CANCELLED)], T0)
    other = await store.get_run("r2")
    assert other is not None
    assert (other.status, other.error) == (RunStatus.CANCELLED, None)


async def test_a_nul_in_the_input_does_not_stop_the_index(store: AnyStore) -> None:
    """A run whose input holds U+0000 still gets its deadline and attributes indexed."""
    new = NewRun("r1", "wf", {"args": ["a\x00b\\"]}, attributes={"k": "v"}, deadline=at(9))
    record, _ = await store.create_run(new, T0)
    read = await store.get_run("r1")
    assert read is not None
    assert (read.input, read.deadline_at, read.attributes) == (
        {"args": ["a\x00b\\"]},
        at(9),
        {"k": "v"},
    )
    assert [r.id for r in await store.list_runs(attributes={"k": "v"})] == ["r1"]
    assert record.attributes == {"k": "v"}
