"""Durable streams: writers in workflows and steps, live and committed readers.

Every test runs on each store (the ``engine``/``make_engine`` fixtures). The readers in
other processes, the crash and the HTTP stream are in ``runtime/test_stream_processes.py``
and ``http/test_stream_sse.py``.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest

import perdure
from conftest import EngineFactory
from helpers import T0
from perdure import (
    Engine,
    StreamItem,
    StreamRetracted,
    get_writable,
    step,
    workflow,
)
from perdure._check import export_json
from perdure._chunks import NewChunk, StreamAttempt
from perdure._streams import FLUSH_SIZE
from perdure.testing import check_replay


async def collect(engine: Engine, run_id: str, name: str = "default", **options: Any) -> list[Any]:
    """Everything a reader yields, until the stream ends."""
    run = await engine.get_run(run_id)
    return [item async for item in run.stream(name, **options)]


def values(items: list[Any]) -> list[Any]:
    return [item.value for item in items if isinstance(item, StreamItem)]


# -- writers -------------------------------------------------------------------------


@step
async def say(words: list[str]) -> int:
    out = get_writable("tokens")
    for word in words:
        await out.write(word)
    return len(words)


@workflow(name="streams.talker")
async def talker(words: list[str]) -> int:
    out = get_writable("tokens")
    await out.write({"begin": len(words)})
    said = await say(words)
    await out.write({"end": said})
    return said


async def test_chunks_of_the_body_and_of_a_step_in_order(engine: Engine) -> None:
    run = await engine.start(talker, ["a", "b", "c"])
    assert await run.result(timeout=10) == 3
    items = await collect(engine, run.id, "tokens")
    assert [item.index for item in items] == [0, 1, 2, 3, 4]
    assert values(items) == [{"begin": 3}, "a", "b", "c", {"end": 3}]
    assert values(await collect(engine, run.id, "tokens", committed=True)) == values(items)
    assert await run.streams() == {"tokens": 5}


async def test_a_reader_resumes_from_an_index_and_from_the_end(engine: Engine) -> None:
    run = await engine.start(talker, [str(n) for n in range(10)])
    await run.result(timeout=10)
    assert values(await collect(engine, run.id, "tokens", start=5)) == [
        "4",
        "5",
        "6",
        "7",
        "8",
        "9",
        {"end": 10},
    ]
    assert [i.index for i in await collect(engine, run.id, "tokens", start=-3)] == [9, 10, 11]
    assert await collect(engine, run.id, "tokens", start=-100) == await collect(
        engine, run.id, "tokens"
    )
    assert await collect(engine, run.id, "tokens", start=12) == []
    assert await collect(engine, run.id, "nothing") == []


@step
async def many(count: int) -> int:
    out = get_writable()
    for n in range(count):
        await out.write(n)
    return count


@workflow(name="streams.many_chunks")
async def many_chunks(count: int) -> int:
    return await many(count)


async def test_more_chunks_than_a_batch(engine: Engine) -> None:
    count = FLUSH_SIZE * 2 + 7
    run = await engine.start(many_chunks, count)
    assert await run.result(timeout=30) == count
    items = await collect(engine, run.id)
    assert [item.value for item in items] == list(range(count))
    assert [item.index for item in items] == list(range(count))


# -- live -------------------------------------------------------------------------------

gates: dict[str, asyncio.Event] = {}


@step
async def gated(key: str) -> str:
    out = get_writable()
    await out.write("first")
    await gates[key].wait()  # the test opens it once a reader has seen "first"
    await out.write("second")
    return "done"


@workflow(name="streams.gated_flow")
async def gated_flow(key: str) -> str:
    return await gated(key)


async def test_a_live_reader_gets_a_chunk_while_the_step_runs(engine: Engine) -> None:
    gates["live"] = asyncio.Event()
    run = await engine.start(gated_flow, "live")
    reader = run.stream()
    first = await asyncio.wait_for(anext(reader), 10)
    assert first == StreamItem(0, "first")
    assert (await run.status()).value == "running"
    gates["live"].set()
    assert await asyncio.wait_for(anext(reader), 10) == StreamItem(1, "second")
    with pytest.raises(StopAsyncIteration):
        await asyncio.wait_for(anext(reader), 10)  # the run ended


async def test_a_committed_reader_waits_for_the_step_to_succeed(engine: Engine) -> None:
    gates["committed"] = asyncio.Event()
    run = await engine.start(gated_flow, "committed")
    live = run.stream()
    assert await asyncio.wait_for(anext(live), 10) == StreamItem(0, "first")
    committed = asyncio.ensure_future(collect(engine, run.id, committed=True))
    await asyncio.sleep(0.3)  # it may not yield "first" while the attempt may still fail
    assert not committed.done()
    gates["committed"].set()
    assert values(await asyncio.wait_for(committed, 10)) == ["first", "second"]


@workflow(name="streams.closing")
async def closing() -> str:
    out = get_writable("x")
    await out.write(1)
    await out.close()
    await out.close()  # idempotent
    with pytest.raises(RuntimeError, match="closed"):
        await out.write(2)
    gates_hold = get_writable("other")
    await gates_hold.write("still running")
    await closing_wait()
    return "ok"


@step
async def closing_wait() -> None:
    await gates["close"].wait()


async def test_a_closed_stream_ends_its_readers_before_the_run_ends(engine: Engine) -> None:
    gates["close"] = asyncio.Event()
    run = await engine.start(closing)
    items = await asyncio.wait_for(collect(engine, run.id, "x"), 10)
    assert items == [StreamItem(0, 1)]
    assert (await run.status()).value == "running"
    gates["close"].set()
    await run.result(timeout=10)


# -- retractions ------------------------------------------------------------------------

failures: dict[str, int] = {}


@step(max_retries=2)
async def flaky(key: str) -> str:
    out = get_writable()
    failures[key] = failures.get(key, 0) + 1
    attempt = failures[key]
    for n in range(3):
        await out.write(f"try {attempt} chunk {n}")
    if attempt == 1:
        await gates[key].wait()  # until a live reader has seen them
        raise RuntimeError("the model stopped mid-sentence")
    return "ok"


@workflow(name="streams.flaky_flow")
async def flaky_flow(key: str) -> str:
    return await flaky(key)


async def test_a_failed_attempt_is_retracted(engine: Engine) -> None:
    failures.pop("r", None)
    gates["r"] = asyncio.Event()
    run = await engine.start(flaky_flow, "r")
    reader = run.stream()
    first = [await asyncio.wait_for(anext(reader), 10) for _ in range(3)]
    assert first == [StreamItem(n, f"try 1 chunk {n}") for n in range(3)]
    gates["r"].set()
    assert await asyncio.wait_for(anext(reader), 10) == StreamRetracted(3, "flaky#1", 1, (0, 1, 2))
    rest = [item async for item in reader]
    assert rest == [StreamItem(4 + n, f"try 2 chunk {n}") for n in range(3)]
    assert await run.result(timeout=10) == "ok"
    assert await collect(engine, run.id) == [
        *first,
        StreamRetracted(3, "flaky#1", 1, (0, 1, 2)),
        *rest,
    ]
    assert await collect(engine, run.id, committed=True) == rest


quiet_calls: dict[str, int] = {}


@step(max_retries=2)
async def quiet(key: str) -> str:
    quiet_calls[key] = quiet_calls.get(key, 0) + 1
    if quiet_calls[key] == 1:
        raise RuntimeError("failed before writing anything")
    return "ok"  # the retry writes nothing either


@workflow(name="streams.quiet_flow")
async def quiet_flow(key: str) -> str:
    return await quiet(key)


async def test_a_retry_retracts_what_a_dead_execution_left(engine: Engine) -> None:
    """Chunks a killed execution stored (written here by hand, as its process would
    have) are retracted when the call's next attempt begins, even one that writes nothing."""
    quiet_calls.pop("dead", None)
    left = StreamAttempt("quiet#1", 1, "the-dead-one")
    await engine.store.append_chunks("dead-run", "default", [NewChunk("half")], T0, attempt=left)
    run = await engine.start(quiet_flow, "dead", run_id="dead-run")
    assert await run.result(timeout=10) == "ok"
    assert await collect(engine, run.id) == [
        StreamItem(0, "half"),
        StreamRetracted(1, "quiet#1", 1, (0,)),
    ]
    assert await collect(engine, run.id, committed=True) == []


async def test_check_replay_passes_for_a_run_that_streamed(engine: Engine, tmp_path: Path) -> None:
    """A body's writes are no events: a replay of the exported log makes them again."""
    run = await engine.start(talker, ["a", "b"])
    await run.result(timeout=10)
    exported = export_json(await run.refresh(), await run.events())
    path = tmp_path / "run.json"
    path.write_text(json.dumps(exported))
    check_replay(talker, path)


async def test_a_fork_keeps_the_body_chunks_logged_before_its_step(engine: Engine) -> None:
    run = await engine.start(talker, ["a", "b"])
    await run.result(timeout=10)
    fork = await engine.fork(run.id, from_step="say#1")
    assert await fork.result(timeout=10) == 2
    # The body's first chunk came with the log; the step and the rest ran in the fork.
    assert values(await collect(engine, fork.id, "tokens")) == [{"begin": 2}, "a", "b", {"end": 2}]


# -- bad input ------------------------------------------------------------------------


@step
async def writes_a_lock() -> None:
    out = get_writable()
    await out.write("fine")
    try:
        await out.write(asyncio.Lock())
    except TypeError as exc:
        assert "a chunk of stream 'default'" in str(exc)  # noqa: PT017
        return
    raise AssertionError("a lock was written")


@workflow(name="streams.bad_value")
async def bad_value() -> None:
    await writes_a_lock()


async def test_a_value_perdure_cannot_store_is_a_type_error(engine: Engine) -> None:
    run = await engine.start(bad_value)
    await run.result(timeout=10)
    assert await collect(engine, run.id) == [StreamItem(0, "fine")]


async def test_a_writer_needs_a_run_and_a_name() -> None:
    with pytest.raises(RuntimeError, match="inside a workflow"):
        get_writable()
    with pytest.raises(ValueError, match="stream name"):
        get_writable("")


async def test_a_reader_refuses_a_bad_start(engine: Engine) -> None:
    run = await engine.start(talker, [])
    await run.result(timeout=10)
    with pytest.raises(TypeError, match="start"):
        await collect(engine, run.id, "tokens", start="1")


# -- replay -------------------------------------------------------------------------


@workflow(name="streams.sleepy_writer")
async def sleepy_writer() -> str:
    out = get_writable()
    await out.write("before")
    await perdure.sleep(3600)
    await out.write("after")
    return "ok"


async def test_a_replay_does_not_log_the_body_chunks_again(make_engine: EngineFactory) -> None:
    async with make_engine(evict_after=0) as engine:
        run = await engine.start(sleepy_writer)
        assert await run.result(timeout=10) == "ok"
        stats = engine.statistics()
        assert stats is not None
        assert stats.replays >= 1  # evicted while it slept, replayed to go on
        assert values(await collect(engine, run.id)) == ["before", "after"]
        logged = [e.correlation_id for e in await run.events() if e.type.value == "stream_written"]
        assert logged == ["stream:default#1", "stream:default#2"]  # each logged once
