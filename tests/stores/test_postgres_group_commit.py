"""The PostgreSQL store's group commit: concurrent writes share round trips and commits.

The contract (test_store_concurrent_writes) shows that concurrent writes land or fail
each on its own on every store; these tests show that on PostgreSQL they did so inside
one batch, that a batch holding a durable append commits synced, that a batch failing
as a whole is sent again write by write, and that a batch writes exactly the rows its
appends write one at a time (the batch function writes the common appends set-wise,
apart from ``perdure_append``).
"""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, TypedDict

import asyncpg
import pytest

from helpers import T0
from perdure._errors import HookConflictError, LeaseLostError
from perdure._records import EventType, NewEvent, NewRun, StepOutcome
from perdure.stores import PostgresStore
from pg import TABLES, clear_tables, fresh_database

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Collection, Coroutine

RUNS = [f"r{index:02}" for index in range(20)]


@pytest.fixture
async def store(postgres_database: str) -> AsyncIterator[PostgresStore]:
    opened = PostgresStore(postgres_database)
    await opened.open()
    await clear_tables(postgres_database)
    yield opened
    await opened.close()


async def hold_all(store: PostgresStore, worker: str = "w1") -> None:
    """Create RUNS and have ``worker`` hold them all."""
    for run_id in RUNS:
        await store.create_run(NewRun(run_id, "wf", {"args": []}), T0)
    assert len(await store.claim_runs(worker, T0, len(RUNS))) == len(RUNS)


def two_steps(cid: str = "s#1") -> list[NewEvent]:
    return [
        NewEvent(EventType.STEP_STARTED, cid, {"name": "s", "attempt": 1}),
        NewEvent(EventType.STEP_COMPLETED, cid, {"name": "s", "attempt": 1, "output": 1}),
    ]


async def append_all(
    store: PostgresStore, events: dict[str, list[NewEvent]], *, durable: Collection[str] = ()
) -> dict[str, int | BaseException]:
    """Append ``events`` to their runs at once, as w1; each run's outcome."""
    results = await asyncio.gather(
        *(
            store.append("w1", run_id, batch, T0, durable=run_id in durable)
            for run_id, batch in events.items()
        ),
        return_exceptions=True,
    )
    return dict(zip(events, results, strict=True))


async def test_concurrent_appends_share_one_round_trip(store: PostgresStore) -> None:
    """Twenty runs appending at once cost two round trips: the first append goes at once,
    alone, and the nineteen made meanwhile together; each gets its own last seq."""
    await hold_all(store)
    before = store.statistics().appends
    outcomes = await append_all(store, {run_id: two_steps() for run_id in RUNS})
    after = store.statistics().appends
    assert outcomes == dict.fromkeys(RUNS, 3)
    assert (after.submitted - before.submitted, after.batches - before.batches) == (20, 2)
    assert after.largest_batch == 19


async def test_a_lost_lease_fails_alone_inside_the_batch(store: PostgresStore) -> None:
    """The stale append is refused by the batch itself; its neighbours commit with it."""
    await hold_all(store)
    await store.release_run("w1", "r07", T0)
    assert [run.id for run in await store.claim_runs("w2", T0, 10)] == ["r07"]
    before = store.statistics()
    outcomes = await append_all(store, {run_id: two_steps() for run_id in RUNS})
    after = store.statistics()
    lost = outcomes.pop("r07")
    assert isinstance(lost, LeaseLostError)
    assert str(lost) == "worker 'w1' does not hold run 'r07': it is held by worker 'w2'"
    assert outcomes == dict.fromkeys(RUNS[:7] + RUNS[8:], 3)
    assert len(await store.events("r07")) == 1
    assert after.appends.batches - before.appends.batches == 2  # r00 alone, then the rest
    assert after.split_batches == before.split_batches


async def test_a_hook_conflict_fails_alone_inside_the_batch(store: PostgresStore) -> None:
    """Two runs creating one token in one batch: the first in id order gets it; the
    other's whole append is undone, and the rest of the batch commits."""
    await hold_all(store)
    events = {run_id: two_steps() for run_id in RUNS}
    hook = NewEvent(EventType.HOOK_CREATED, "h#1", {"token": "t", "name": "h", "kind": "hook"})
    events["r12"].append(hook)
    events["r03"].append(hook)
    before = store.statistics()
    outcomes = await append_all(store, events)
    after = store.statistics()
    conflict = outcomes.pop("r12")
    assert isinstance(conflict, HookConflictError)
    assert (conflict.token, conflict.holder_run_id) == ("t", "r03")
    assert outcomes == {run_id: 4 if run_id == "r03" else 3 for run_id in outcomes}
    assert len(await store.events("r12")) == 1
    assert await store.steps("r12") == []
    assert [hook.run_id for hook in await store.list_hooks()] == ["r03"]
    assert after.appends.batches - before.appends.batches == 2  # r00 alone, then the rest
    assert after.split_batches == before.split_batches


async def test_a_batch_failing_as_a_whole_is_sent_again_append_by_append(
    store: PostgresStore,
) -> None:
    """Data PostgreSQL refuses (NaN is not JSON to it) fails its own append only."""
    await hold_all(store)
    events = {run_id: two_steps() for run_id in RUNS}
    events["r05"] = [
        NewEvent(EventType.STEP_STARTED, "s#1", {"name": "s", "attempt": 1, "x": float("nan")})
    ]
    before = store.statistics().split_batches
    outcomes = await append_all(store, events)
    refused = outcomes.pop("r05")
    assert isinstance(refused, asyncpg.PostgresError)
    assert refused.sqlstate == "22P02"  # invalid input syntax for type json
    assert outcomes == dict.fromkeys(RUNS[:5] + RUNS[6:], 3)
    assert len(await store.events("r05")) == 1
    assert store.statistics().split_batches == before + 1


async def test_concurrent_creates_and_reads_share_round_trips(store: PostgresStore) -> None:
    """Runs created at once go in one batch, and so do run reads made at once."""
    before = store.statistics()
    created = await asyncio.gather(
        *(store.create_run(NewRun(run_id, "wf", {"args": [run_id]}), T0) for run_id in RUNS)
    )
    read = await asyncio.gather(*(store.get_run(run_id) for run_id in RUNS))
    after = store.statistics()
    assert [(record.id, new) for record, new in created] == [(run_id, True) for run_id in RUNS]
    assert read == [record for record, _ in created]
    assert after.creates.batches - before.creates.batches == 2  # r00 alone, then the rest
    assert after.run_reads.batches - before.run_reads.batches == 2


# Records the transaction and commit mode of every event written, from inside the
# transaction: the store sets synchronous_commit for its transaction only.
_COMMIT_MODES = """
CREATE TABLE commit_modes (run_id text NOT NULL, tx bigint NOT NULL, mode text NOT NULL);
CREATE FUNCTION note_commit_mode() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO commit_modes
    VALUES (NEW.run_id, txid_current(), current_setting('synchronous_commit'));
    RETURN NULL;
END $$;
CREATE TRIGGER note_commit_mode AFTER INSERT ON events
    FOR EACH ROW EXECUTE FUNCTION note_commit_mode();
"""


@pytest.fixture
async def noted() -> AsyncIterator[tuple[PostgresStore, asyncpg.Connection[asyncpg.Record]]]:
    """A store on a database of its own that notes each event's commit mode."""
    async with fresh_database() as url:
        opened = PostgresStore(url)
        await opened.open()
        conn: asyncpg.Connection[asyncpg.Record] = await asyncpg.connect(url)
        try:
            await conn.execute(_COMMIT_MODES)
            yield opened, conn
        finally:
            await conn.close()
            await opened.close()


async def modes_since(
    conn: asyncpg.Connection[asyncpg.Record], tx: int
) -> dict[str, set[tuple[int, str]]]:
    """Per run, the transactions (and their commit modes) that wrote its events after
    ``tx``."""
    found: dict[str, set[tuple[int, str]]] = {}
    for row in await conn.fetch("SELECT run_id, tx, mode FROM commit_modes WHERE tx > $1", tx):
        found.setdefault(row["run_id"], set()).add((row["tx"], row["mode"]))
    return found


@pytest.mark.parametrize(
    ("durable", "first", "batch"),
    [(set(), "off", "off"), ({"r10"}, "off", "on"), (set(RUNS), "on", "on")],
)
async def test_a_batch_commits_synced_when_it_holds_a_durable_append(
    noted: tuple[PostgresStore, asyncpg.Connection[asyncpg.Record]],
    durable: set[str],
    first: str,
    batch: str,
) -> None:
    """The appends made while the first is under way commit in one transaction: synced
    (the server's default) if any of them is durable, wherever it falls in the batch,
    and not synced otherwise."""
    store, conn = noted
    assert await conn.fetchval("SHOW synchronous_commit") == "on"
    await hold_all(store)
    tx = int(await conn.fetchval("SELECT max(tx) FROM commit_modes"))
    outcomes = await append_all(store, {run_id: two_steps() for run_id in RUNS}, durable=durable)
    assert outcomes == dict.fromkeys(RUNS, 3)
    modes = await modes_since(conn, tx)
    ((first_tx, first_mode),) = modes.pop(RUNS[0])
    ((batch_tx, batch_mode),) = set().union(*modes.values())  # one for all the others
    assert (first_mode, batch_mode) == (first, batch)
    assert batch_tx != first_tx


# -- a batch writes what the same appends write one by one -----------------------------


def ev(event_type: EventType, cid: str | None = None, /, **data: object) -> NewEvent:
    return NewEvent(event_type, cid, data)


def step_event(event_type: EventType, cid: str, /, **data: object) -> NewEvent:
    return ev(event_type, cid, name=cid.split("#", maxsplit=1)[0], attempt=1, **data)


class Options(TypedDict, total=False):
    durable: bool
    consume_inbox: list[int]
    consume_tasks: list[int]


ERROR = {"type": "builtins.ValueError", "message": "no", "traceback": "..."}
LATER = datetime(2030, 1, 2, tzinfo=UTC)
Round = list[tuple[str, list[NewEvent], Options]]


def rounds(inbox_id: int, task_id: int) -> list[Round]:
    """Appends of every kind, in rounds of appends to different runs (and one run twice),
    in run id order: plain ones, and every reason for an append not to be plain; to
    runs held, lost, ended and unknown."""
    return [
        [
            ("r00", [ev(EventType.RUN_STARTED), step_event(EventType.STEP_STARTED, "a#1",
                                                           input={"args": [1]})], {}),
            ("r01", [ev(EventType.RUN_STARTED)], {}),
            ("r02", [ev(EventType.RUN_STARTED), ev(EventType.RUN_STARTED)], {}),
            ("r03", [], {}),
            ("r04", [step_event(EventType.STEP_STARTED, "b#1")], {"durable": True}),
            ("r11", [ev(EventType.RUN_STARTED)], {}),
            ("r99", [ev(EventType.RUN_STARTED)], {}),
        ],
        [
            ("r00", [step_event(EventType.STEP_COMPLETED, "a#1", output={"x": [1, None]}),
                     step_event(EventType.STEP_STARTED, "a#2", input={"args": []})], {}),
            ("r01", [step_event(EventType.STEP_STARTED, "b#1", input={"args": [2]}),
                     step_event(EventType.STEP_COMPLETED, "b#1", output=3)], {}),
            ("r02", [step_event(EventType.STEP_STARTED, "c#1"),
                     step_event(EventType.STEP_RETRYING, "c#1", error=ERROR,
                                retry_at=LATER.isoformat())], {}),
            ("r03", [ev(EventType.SLEEP_STARTED, "s#1", wake_at=LATER.isoformat())], {}),
            ("r04", [ev(EventType.HOOK_CREATED, "h#1", token="t4", name="h", kind="hook")], {}),
            ("r05", [ev(EventType.HOOK_CREATED, "h#1", token="t4", name="h", kind="hook")], {}),
            ("r06", [step_event(EventType.STEP_STARTED, "q#1", queue="q", input={"args": []})],
             {}),
            ("r07", [ev(EventType.HOOK_CREATED, "h#1", token="t7", name="h", kind="webhook")],
             {}),
            ("r08", [ev(EventType.RUN_COMPLETED, output={"done": True})], {"durable": True}),
            ("r11", [step_event(EventType.STEP_STARTED, "a#1")], {}),
            ("r98", [ev(EventType.SLEEP_STARTED, "s#1", wake_at=LATER.isoformat())], {}),
        ],
        [
            ("r00", [step_event(EventType.STEP_FAILED, "a#2", error=ERROR)], {}),
            ("r01", [step_event(EventType.STEP_STARTED, "d#1")], {}),
            ("r01", [step_event(EventType.STEP_COMPLETED, "d#1", output=None)], {}),
            ("r02", [ev(EventType.RUN_STARTED), step_event(EventType.STEP_STARTED, "g#1"),
                     step_event(EventType.STEP_COMPLETED, "g#1", input={"args": ["c"]})], {}),
            ("r03", [ev(EventType.SLEEP_COMPLETED, "s#1")], {}),
            ("r04", [ev(EventType.HOOK_DISPOSED, "h#1", token="t4")], {}),
            ("r05", [step_event(EventType.STEP_STARTED, "f#1", input={"args": ["a"]}),
                     step_event(EventType.STEP_RETRYING, "f#1", input={"args": ["b"]},
                                error=ERROR),
                     step_event(EventType.STEP_COMPLETED, "f#1", output=1)], {}),
            ("r06", [step_event(EventType.STEP_COMPLETED, "q#1", output=7)],
             {"consume_tasks": [task_id]}),
            ("r07", [ev(EventType.HOOK_RECEIVED, "h#1", token="t7", payload={"ok": 1})],
             {"consume_inbox": [inbox_id]}),
            ("r08", [step_event(EventType.STEP_STARTED, "z#1")], {}),
            ("r09", [ev(EventType.RUN_FAILED, error=ERROR)], {}),
        ],
    ]  # fmt: skip


async def setup_runs(store: PostgresStore) -> None:
    """Runs r00..r11, held by w1 but r11, which w2 took."""
    for run_id in [f"r{index:02}" for index in range(12)]:
        await store.create_run(NewRun(run_id, "wf", {"args": [run_id]}), T0)
    assert len(await store.claim_runs("w1", T0, 11)) == 11
    assert [run.id for run in await store.claim_runs("w2", T0, 10)] == ["r11"]


def outcome(result: int | BaseException) -> object:
    return result if isinstance(result, int) else (type(result), str(result))


async def outcome_of(write: Coroutine[object, object, int]) -> object:
    try:
        return outcome(await write)
    except Exception as exc:
        return outcome(exc)


async def between_rounds(store: PostgresStore, done: int) -> None:
    """What happens outside appends, the same on both databases: a hook resumed, a
    queued step run by a queue worker."""
    if done == 2:
        await store.resume_hook("t7", {"ok": 1}, T0)
        (task,) = await store.claim_step_tasks("qw", {"q"}, T0, 10)
        await store.finish_step_task("qw", task.id, StepOutcome(attempt=1, output=7), T0)


async def contents(url: str) -> dict[str, list[tuple[object, ...]]]:
    """Every row of perdure's tables, in a stable order."""
    conn: asyncpg.Connection[asyncpg.Record] = await asyncpg.connect(url)
    try:
        found = {}
        for table in TABLES:
            rows = await conn.fetch(f"SELECT to_json(t)::text AS row FROM {table} AS t")  # noqa: S608
            found[table] = sorted(tuple(json.loads(row["row"]).items()) for row in rows)
        return found
    finally:
        await conn.close()


async def test_a_batch_writes_what_the_same_appends_write_one_by_one() -> None:
    """Appends of every kind, sent one at a time to one database and in batches to
    another, leave both with the same rows and answer the same."""
    async with fresh_database() as one_url, fresh_database() as many_url:
        one, many = PostgresStore(one_url), PostgresStore(many_url)
        await one.open()
        await many.open()
        try:
            for store in (one, many):
                await setup_runs(store)
            inbox_id = task_id = 1  # the first ids of fresh databases' sequences
            for done, appends in enumerate(rounds(inbox_id, task_id)):
                for store in (one, many):
                    await between_rounds(store, done)
                now = T0 + timedelta(seconds=done)
                alone = [
                    await outcome_of(one.append("w1", run_id, events, now, **options))
                    for run_id, events, options in appends
                ]
                before = many.statistics()
                together = await asyncio.gather(
                    *(
                        many.append("w1", run_id, events, now, **options)
                        for run_id, events, options in appends
                    ),
                    return_exceptions=True,
                )
                after = many.statistics()
                assert [outcome(result) for result in together] == alone
                # The first append of a round goes at once, alone; the rest together.
                assert after.appends.batches - before.appends.batches == 2
                assert after.split_batches == before.split_batches == 0
            assert await contents(one_url) == await contents(many_url)
        finally:
            await one.close()
            await many.close()
