"""The `StreamStore` contract, run on every store (the ``store`` fixture).

Rows are numbered from 0 per (run, stream); a workflow body's chunk is stored once per
key; a step attempt's chunks are open until its step's row shows that attempt completed
the call, and retracted (with a retraction row) when it failed or was superseded.
"""

from __future__ import annotations

import pytest

from helpers import T0, at, hold
from perdure._chunks import NewChunk, StreamAttempt
from perdure._records import EventType, NewEvent
from perdure.stores._protocol import StreamStore
from stores.conftest import AnyStore


def chunks(*values: object) -> list[NewChunk]:
    return [NewChunk(value) for value in values]


async def run_held(store: AnyStore) -> None:
    await hold(store, "r1", "w1")


def step_event(kind: EventType, cid: str, attempt: int) -> NewEvent:
    return NewEvent(kind, cid, {"name": cid.split("#", maxsplit=1)[0], "attempt": attempt})


async def test_every_store_is_a_stream_store(store: AnyStore) -> None:
    assert isinstance(store, StreamStore)


async def test_rows_are_numbered_per_stream_and_read_back_in_order(store: AnyStore) -> None:
    assert await store.append_chunks("r1", "a", chunks("x", {"y": [1, 2]}), T0) == 2
    assert await store.append_chunks("r1", "b", chunks(None), T0) == 1
    assert await store.append_chunks("r1", "a", [*chunks(3), NewChunk(close=True)], at(1)) == 4
    rows = await store.read_chunks("r1", "a")
    assert [(r.index, r.kind, r.value, r.state) for r in rows] == [
        (0, "chunk", "x", "committed"),
        (1, "chunk", {"y": [1, 2]}, "committed"),
        (2, "chunk", 3, "committed"),
        (3, "close", None, "committed"),
    ]
    assert rows[0].created_at == T0
    assert [r.index for r in await store.read_chunks("r1", "a", start=1, limit=2)] == [1, 2]
    assert await store.read_chunks("r1", "a", start=9) == []
    assert await store.read_chunks("r2", "a") == []
    assert await store.stream_lengths("r1") == {"a": 4, "b": 1}
    assert await store.stream_lengths("r2") == {}


async def test_a_key_is_stored_once(store: AnyStore) -> None:
    first = [NewChunk("one", key="1"), NewChunk("two", key="2")]
    assert await store.append_chunks("r1", "s", first, T0) == 2
    again = [NewChunk("one", key="1"), NewChunk("two", key="2"), NewChunk("three", key="3")]
    assert await store.append_chunks("r1", "s", again, T0) == 3
    assert [r.value for r in await store.read_chunks("r1", "s")] == ["one", "two", "three"]
    # Keys are per stream.
    assert await store.append_chunks("r1", "t", [NewChunk("one", key="1")], T0) == 1


async def test_many_keys_at_once(store: AnyStore) -> None:
    """A replay writes back every chunk of the body at once: more keys than SQLite binds."""
    many = [NewChunk(n, key=str(n)) for n in range(40_000)]
    assert await store.append_chunks("r1", "s", many[:100], T0) == 100
    assert await store.append_chunks("r1", "s", many, T0) == 40_000
    rows = await store.read_chunks("r1", "s", start=39_999)
    assert [(r.index, r.value) for r in rows] == [(39_999, 39_999)]


async def test_a_value_that_is_not_json_writes_nothing(store: AnyStore) -> None:
    with pytest.raises(TypeError):
        await store.append_chunks("r1", "s", chunks("fine", object()), T0)
    assert await store.read_chunks("r1", "s") == []


async def test_a_bad_stream_name_is_refused(store: AnyStore) -> None:
    with pytest.raises(ValueError, match="stream name"):
        await store.append_chunks("r1", "", chunks(1), T0)


async def test_a_step_chunk_is_open_until_its_attempt_completes_the_call(
    store: AnyStore,
) -> None:
    await run_held(store)
    attempt = StreamAttempt("draft#1", 1, "k1")
    await store.append_chunks("r1", "s", chunks("a", "b"), T0, attempt=attempt)
    rows = await store.read_chunks("r1", "s")
    assert [(r.state, r.step, r.attempt) for r in rows] == [("open", "draft#1", 1)] * 2
    await store.append("w1", "r1", [step_event(EventType.STEP_STARTED, "draft#1", 1)], T0)
    assert {r.state for r in await store.read_chunks("r1", "s")} == {"open"}
    await store.append("w1", "r1", [step_event(EventType.STEP_COMPLETED, "draft#1", 1)], T0)
    assert {r.state for r in await store.read_chunks("r1", "s")} == {"committed"}


async def test_a_retracted_attempt_gets_a_retraction_row(store: AnyStore) -> None:
    await run_held(store)
    one = StreamAttempt("draft#1", 1, "k1")
    await store.append_chunks("r1", "s", chunks("a", "b"), T0, attempt=one)
    await store.append_chunks("r1", "t", chunks("c"), T0, attempt=one)
    await store.append_chunks("r1", "s", chunks("body"), T0)
    assert await store.retract_chunks("r1", one, at(1)) == 3
    assert await store.retract_chunks("r1", one, at(1)) == 0  # already retracted
    rows = await store.read_chunks("r1", "s")
    assert [(r.index, r.kind, r.state) for r in rows] == [
        (0, "chunk", "retracted"),
        (1, "chunk", "retracted"),
        (2, "chunk", "committed"),
        (3, "retraction", "committed"),
    ]
    assert rows[3].value == {"step": "draft#1", "attempt": 1, "indices": [0, 1]}
    assert rows[3].created_at == at(1)
    t = await store.read_chunks("r1", "t")
    assert [r.kind for r in t] == ["chunk", "retraction"]
    assert t[1].value == {"step": "draft#1", "attempt": 1, "indices": [0]}


async def test_supersede_retracts_other_executions_of_the_call(store: AnyStore) -> None:
    await run_held(store)
    died = StreamAttempt("draft#1", 2, "died")
    other_step = StreamAttempt("other#1", 1, "o")
    await store.append_chunks("r1", "s", chunks("a"), T0, attempt=died)
    await store.append_chunks("r1", "s", chunks("o"), T0, attempt=other_step)
    again = StreamAttempt("draft#1", 2, "again")
    assert await store.append_chunks("r1", "s", chunks("b"), T0, attempt=again, supersede=True) == 4
    rows = await store.read_chunks("r1", "s")
    assert [(r.kind, r.value, r.state) for r in rows] == [
        ("chunk", "a", "retracted"),
        ("chunk", "o", "open"),
        ("retraction", {"step": "draft#1", "attempt": 2, "indices": [0]}, "committed"),
        ("chunk", "b", "open"),
    ]
    # Same attempt number, but only the new execution's chunks commit with the step.
    await store.append("w1", "r1", [step_event(EventType.STEP_STARTED, "draft#1", 2)], T0)
    await store.append("w1", "r1", [step_event(EventType.STEP_COMPLETED, "draft#1", 2)], T0)
    assert [r.state for r in await store.read_chunks("r1", "s")] == [
        "retracted",
        "open",
        "committed",
        "committed",
    ]
    # Superseding with nothing to write retracts as well, and adds no row of its own.
    third = StreamAttempt("other#1", 2, "o2")
    assert await store.append_chunks("r1", "s", [], T0, attempt=third, supersede=True) == 5
    assert (await store.read_chunks("r1", "s", start=4))[0].value == {
        "step": "other#1",
        "attempt": 1,
        "indices": [1],
    }
    # With nothing to write, a stream nobody wrote to stays unwritten.
    fourth = StreamAttempt("other#1", 3, "o3")
    assert await store.append_chunks("r1", "never", [], T0, attempt=fourth, supersede=True) == 0
    assert "never" not in await store.stream_lengths("r1")
