"""The PostgreSQL store's lone plain append (``perdure_append_plain``, migration 0016)
and the connection its appends keep (`perdure.stores.postgres._lane`).

A plain append (steps and the run's start, nothing queued or consumed) sent alone goes
through a function of fewer statements than ``perdure_append``: it must leave exactly
the rows ``perdure_append`` leaves, and be fenced the same way.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import asyncpg
import pytest

from helpers import T0, at, hold
from perdure import _log
from perdure._errors import CancelRequestedError, LeaseLostError
from perdure.stores import PostgresStore
from perdure.stores.postgres import _ops as ops
from pg import clear_tables

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

    from perdure._records import NewEvent


@pytest.fixture
async def store(postgres_database: str) -> AsyncIterator[PostgresStore]:
    opened = PostgresStore(postgres_database)
    await opened.open()
    await clear_tables(postgres_database)
    yield opened
    await opened.close()


def step(cid: str, output: Any = 1, *, attempt: int = 1) -> list[NewEvent]:
    """A trivial step's append: its start and its end."""
    return [
        _log.step_started(cid, name="s", attempt=attempt, input={"args": [cid]}),
        _log.step_completed(cid, name="s", attempt=attempt, output=output),
    ]


APPENDS: list[list[NewEvent]] = [
    [_log.run_started(worker="w1")],
    step("s#1"),
    [_log.step_started("s#2", name="s", attempt=1, input=[2])],  # one event
    [_log.step_completed("s#2", name="s", attempt=1, output="two")],  # its row exists
    [],  # no event at all
    [*step("s#3"), *step("s#4", {"nested": [None, 1.5, "\u0000"]})],  # more than two
    [_log.attributes_set("attributes#1", values={"stage": "b"})],  # the trigger's
    [_log.stream_written("stream:out#1", stream="out", value={"chunk": 1})],  # the trigger's
    [  # a retried attempt folds into one row
        _log.step_started("s#5", name="s", attempt=1, input=None),
        _log.step_failed("s#5", name="s", attempt=1, error={"type": "E", "message": "m"}),
        _log.step_started("s#5", name="s", attempt=2, input=[5]),
    ],
]


async def contents(store: PostgresStore, run_id: str) -> tuple[Any, ...]:
    """Everything an append writes for a run, comparable across runs."""
    run = await store.get_run(run_id)
    assert run is not None
    # After run_created, whose input names the run.
    events = [
        (e.seq, e.type, e.correlation_id, e.data) for e in await store.events(run_id, after_seq=1)
    ]
    steps = [
        (s.correlation_id, s.name, s.status, s.attempt, s.input, s.output, s.error)
        for s in await store.steps(run_id)
    ]
    firsts = await raw(store, "SELECT correlation_id, first_seq FROM steps WHERE run_id = $1 "
                       "ORDER BY correlation_id", run_id)  # fmt: skip
    attributes = await raw(store, "SELECT key, text FROM run_attributes WHERE run_id = $1", run_id)
    chunks = await store.read_chunks(run_id, "out")
    return (
        events,
        steps,
        firsts,
        attributes,
        [(c.index, c.value) for c in chunks],
        (run.status, run.started_at, run.updated_at, run.owner),
    )


async def raw(store: PostgresStore, query: str, *arguments: Any) -> list[tuple[Any, ...]]:
    conn = await asyncpg.connect(store.url)
    try:
        return [tuple(row) for row in await conn.fetch(query, *arguments)]
    finally:
        await conn.close()


async def test_a_lone_plain_append_writes_what_perdure_append_writes(
    store: PostgresStore,
) -> None:
    """The same appends, through the store (the plain function) and through
    ``perdure_append`` directly, leave the same log, step rows, indexes and run row."""
    await hold(store, "plain", "w1")
    await hold(store, "general", "w1")
    conn = await asyncpg.connect(store.url)
    try:
        for index, events in enumerate(APPENDS, start=1):
            append = ops.append_arguments(
                "w1", "general", events, at(index), durable=False, consume_inbox=None
            )
            assert append.plain
            general = await conn.fetchval(ops.APPEND, *append.arguments())
            assert await store.append("w1", "plain", events, at(index)) == general
    finally:
        await conn.close()
    plain, general = await contents(store, "plain"), await contents(store, "general")
    assert plain == general
    assert plain[0][-1][1].value == "step_started"  # the comparison saw every append
    assert plain[3] == [("stage", "b")]
    assert plain[4] == [(0, {"chunk": 1})]
    assert plain[5][0] == "running"


async def test_a_plain_append_is_fenced_like_any_other(store: PostgresStore) -> None:
    """Lost lease (unknown run, run of another worker) and a cancel request each refuse
    a plain append with their error, and it writes nothing."""
    await hold(store, "r1", "w1")
    await store.append("w1", "r1", step("s#1"), T0)
    before = await contents(store, "r1")

    with pytest.raises(LeaseLostError, match=r"'w2'.*'r1'.*'w1'"):
        await store.append("w2", "r1", step("s#2"), at(1))
    with pytest.raises(LeaseLostError, match="'nowhere'"):
        await store.append("w1", "nowhere", step("s#2"), at(1))
    assert await store.request_cancel("r1", at(2)) is not None
    with pytest.raises(CancelRequestedError, match="'r1'"):
        await store.append("w1", "r1", step("s#2"), at(3))
    after = await contents(store, "r1")
    assert after[:5] == before[:5]  # the run row's updated_at moved with the request
    last_seq = before[0][-1][0]
    assert await store.append("w1", "r1", [_log.run_cancelled()], at(4)) == last_seq + 1


async def test_appends_go_on_after_their_kept_connection_is_cut(store: PostgresStore) -> None:
    """The server ends the backend of the connection the appends keep: at most the next
    append fails, with a connection error, and the ones after it land."""
    await hold(store, "r1", "w1")
    await store.append("w1", "r1", step("s#1"), T0)
    pids = await raw(
        store,
        "SELECT pid FROM pg_stat_activity WHERE datname = current_database() "
        "AND query LIKE 'SELECT perdure_append_plain(%'",
    )
    assert len(pids) == 1  # one connection carried the appends
    killed = await raw(store, "SELECT pg_terminate_backend($1)", pids[0][0])
    assert killed == [(True,)]

    failures = 0
    for index in range(2, 5):
        try:
            await store.append("w1", "r1", step(f"s#{index}"), at(index))
        except (
            asyncpg.PostgresError,
            asyncpg.InterfaceError,
            asyncpg.InternalClientError,
            OSError,
        ):
            failures += 1
    assert failures <= 1
    steps = [s.correlation_id for s in await store.steps("r1")]
    assert steps[-1] == "s#4"
    assert len(steps) == 4 - failures
