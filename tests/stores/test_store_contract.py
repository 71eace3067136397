"""The storage contract, run against every store (see `perdure.stores.Store`).

Each test pins one rule of the protocol. The `store` fixture (conftest) runs each of
them on MemoryStore, on SQLiteStore over a real file and on PostgresStore over a real
database, so every backend is held to exactly the same behaviour.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest

from helpers import T0, at, drain, hold
from perdure._errors import (
    CancelRequestedError,
    HookConflictError,
    HookNotFoundError,
    LeaseLostError,
)
from perdure._records import (
    EventType,
    NewEvent,
    NewRun,
    RunRecord,
    RunStatus,
    StepOutcome,
    StepTask,
)
from perdure.stores import FAR_FUTURE, MemoryStore, PostgresStore, SQLiteStore, Store
from perdure.stores._protocol import (
    HookStore,
    LogStore,
    QueueStore,
    RunStore,
    TimerStore,
    WorkerStore,
)

AnyStore = MemoryStore | SQLiteStore | PostgresStore


async def create(store: AnyStore, run_id: str = "r1", now: datetime = T0, **kw: str) -> RunRecord:
    record, created = await store.create_run(
        NewRun(id=run_id, workflow=kw.get("workflow", "wf"), input={"args": [run_id]}), now
    )
    assert created
    return record


def step(kind: EventType, cid: str = "fetch#1", attempt: int = 1, **data: object) -> NewEvent:
    return NewEvent(kind, cid, {"name": cid.split("#", maxsplit=1)[0], "attempt": attempt, **data})


def hook_created(token: str, cid: str = "approval#1", name: str = "approval") -> NewEvent:
    return NewEvent(EventType.HOOK_CREATED, cid, {"token": token, "name": name, "kind": "hook"})


def sleep_started(cid: str, wake_at: datetime) -> NewEvent:
    return NewEvent(EventType.SLEEP_STARTED, cid, {"wake_at": wake_at.isoformat()})


async def snapshot(store: AnyStore, run_id: str) -> tuple[object, ...]:
    """Everything a store keeps about a run, to show a refused write changed nothing."""
    return (
        await store.get_run(run_id),
        await store.events(run_id),
        await store.steps(run_id),
        await store.timers(run_id),
        await store.list_hooks(run_id=run_id),
    )


# -- creating and reading runs --------------------------------------------------------


async def test_store_satisfies_the_protocol(store: AnyStore) -> None:
    """Each backend is a `Store` as far as isinstance can tell."""
    assert isinstance(store, Store)


@pytest.mark.parametrize(
    "role", [WorkerStore, RunStore, LogStore, TimerStore, HookStore, QueueStore]
)
async def test_store_plays_every_role(store: AnyStore, role: type[object]) -> None:
    """Each backend is each of the role protocols that `Store` combines."""
    assert isinstance(store, role)


async def test_only_a_store_that_tells_dead_workers_by_a_lease_has_one(store: AnyStore) -> None:
    """PostgreSQL has a lease (10 s unless told otherwise); memory and SQLite have none."""
    expected = timedelta(seconds=10) if isinstance(store, PostgresStore) else None

    assert expected == store.lease


async def test_open_is_idempotent(store: AnyStore) -> None:
    """Opening an open store again changes nothing and keeps its data."""
    await create(store)
    await store.open()
    assert await store.get_run("r1") is not None


async def test_create_run_makes_a_pending_run_due_now(store: AnyStore) -> None:
    """A new run is pending, unheld, due at its creation time, with its input kept."""
    run = await create(store, now=at(5))
    assert run.status is RunStatus.PENDING
    assert (run.owner, run.wake_at, run.cancel_requested) == (None, at(5), False)
    assert (run.created_at, run.updated_at, run.started_at, run.completed_at) == (
        at(5),
        at(5),
        None,
        None,
    )
    assert (run.input, run.output, run.error) == ({"args": ["r1"]}, None, None)
    assert await store.get_run("r1") == run


async def test_create_run_logs_run_created_as_seq_one(store: AnyStore) -> None:
    """The log starts with run_created carrying workflow, input and version."""
    await store.create_run(NewRun("r1", "wf", {"args": [1]}, version="v7"), T0)
    (event,) = await store.events("r1")
    assert (event.run_id, event.seq, event.type, event.correlation_id) == (
        "r1",
        1,
        EventType.RUN_CREATED,
        None,
    )
    assert event.data == {"workflow": "wf", "input": {"args": [1]}, "version": "v7"}
    assert event.created_at == T0


async def test_create_run_is_idempotent_on_id(store: AnyStore) -> None:
    """A second create with the same id writes nothing and returns the first run."""
    first = await create(store)
    again, created = await store.create_run(NewRun("r1", "other", {"args": []}), at(9))
    assert (again, created) == (first, False)
    assert len(await store.events("r1")) == 1


async def test_times_come_back_as_the_same_instant_in_utc(store: AnyStore) -> None:
    """A time in any zone is stored exactly (microseconds) and read back as UTC."""
    paris = timezone(timedelta(hours=2))
    moment = datetime(2031, 6, 1, 12, 30, 15, 123456, tzinfo=paris)
    await create(store, now=moment)
    run = await store.get_run("r1")
    assert run is not None
    assert run.created_at == moment
    assert run.created_at.tzinfo == UTC
    assert run.created_at.microsecond == 123456


async def test_naive_times_are_refused(store: AnyStore) -> None:
    """A datetime without a zone is a ValueError rather than a guess, and writes nothing."""
    with pytest.raises(ValueError, match="timezone-aware"):
        await store.create_run(NewRun("r1", "wf", {}), datetime(2030, 1, 1))  # noqa: DTZ001
    assert await store.get_run("r1") is None


async def test_json_values_come_back_exactly(store: AnyStore) -> None:
    """JSON keeps dict key order, numbers and every character (U+0000 included)."""
    value = {
        "zeta": 1,
        "alpha": [0.1, 2**70, None, True],
        "nul": "a\x00b é ☃",
        "": {"b": 2, "a": 1},
    }
    await store.create_run(NewRun("r1", "wf", {"args": [value]}), T0)
    await store.claim_runs("w1", T0, 1)
    await store.append(
        "w1",
        "r1",
        [
            step(EventType.STEP_STARTED, input={"args": [value]}),
            step(EventType.STEP_COMPLETED, output=value),
            NewEvent(EventType.RUN_COMPLETED, data={"output": value}),
        ],
        T0,
    )
    run = await store.get_run("r1")
    assert run is not None
    (row,) = await store.steps("r1")
    events = await store.events("r1")
    for stored in (run.input["args"][0], run.output, row.input["args"][0], row.output):
        assert stored == value
        assert list(stored) == list(value)
        assert list(stored[""]) == ["b", "a"]
    assert list(events[2].data["output"]) == list(value)


async def test_unknown_ids_read_as_none_or_empty(store: AnyStore) -> None:
    """Reads of a run that does not exist return None or empty lists."""
    assert await store.get_run("nope") is None
    assert await store.events("nope") == []
    assert await store.steps("nope") == []
    assert await store.get_hook("nope") is None


async def test_list_runs_is_newest_first_with_filters_and_limit(store: AnyStore) -> None:
    """list_runs orders by created_at then id, newest first, and filters and limits."""
    await create(store, "a", at(1), workflow="x")
    await create(store, "c", at(2), workflow="y")
    await create(store, "b", at(2), workflow="x")
    await store.claim_runs("w1", at(3), 1)  # "a"
    await store.append("w1", "a", [NewEvent(EventType.RUN_STARTED, data={"worker": "w1"})], at(3))

    assert [run.id for run in await store.list_runs()] == ["c", "b", "a"]
    assert [run.id for run in await store.list_runs(limit=2)] == ["c", "b"]
    assert [run.id for run in await store.list_runs(workflow="x")] == ["b", "a"]
    assert [run.id for run in await store.list_runs(status=RunStatus.RUNNING)] == ["a"]
    assert [run.id for run in await store.list_runs(status=RunStatus.PENDING, workflow="x")] == [
        "b"
    ]


async def test_events_after_seq_returns_the_tail_in_order(store: AnyStore) -> None:
    """events(after_seq=n) returns the events numbered above n, in order."""
    await hold(store)
    await store.append(
        "w1", "r1", [step(EventType.STEP_STARTED), step(EventType.STEP_COMPLETED)], T0
    )
    assert [event.seq for event in await store.events("r1")] == [1, 2, 3]
    assert [event.seq for event in await store.events("r1", after_seq=1)] == [2, 3]
    assert await store.events("r1", after_seq=3) == []


# -- claiming -------------------------------------------------------------------------


async def test_claim_takes_oldest_wake_at_first_up_to_limit(store: AnyStore) -> None:
    """claim_runs holds the runs due longest first, no more than the limit."""
    await create(store, "late", at(3))
    await create(store, "early", at(1))
    await create(store, "middle", at(2))
    claimed = await store.claim_runs("w1", at(10), 2)
    assert [run.id for run in claimed] == ["early", "middle"]
    assert all(run.owner == "w1" and run.wake_at is None for run in claimed)
    assert [run.id for run in await store.claim_runs("w2", at(10), 5)] == ["late"]
    assert await store.claim_runs("w3", at(10), 5) == []


async def test_claim_leaves_runs_that_are_not_due(store: AnyStore) -> None:
    """A run whose wake_at is after now is not claimed until then."""
    await hold(store)
    await store.release_run("w1", "r1", at(60))
    assert await store.claim_runs("w1", at(59), 5) == []
    assert [run.id for run in await store.claim_runs("w1", at(60), 5)] == ["r1"]


async def test_claim_leaves_held_and_ended_runs(store: AnyStore) -> None:
    """Held runs and ended runs are never claimed."""
    await hold(store, "held")
    await hold(store, "ended")
    await store.append("w1", "ended", [NewEvent(EventType.RUN_COMPLETED, data={"output": 1})], T0)
    assert await store.claim_runs("w2", at(99), 10) == []


async def test_claim_with_no_room_claims_nothing(store: AnyStore) -> None:
    """A limit of zero claims nothing and leaves the run due."""
    await create(store)
    assert await store.claim_runs("w1", T0, 0) == []
    run = await store.get_run("r1")
    assert run is not None
    assert run.owner is None


async def test_claim_and_next_wake_at_only_see_the_workflows_asked_for(store: AnyStore) -> None:
    """With workflows=, a worker neither claims nor waits for runs whose code it lacks."""
    await create(store, "theirs", at(1), workflow="billing")
    await create(store, "ours", at(2), workflow="wf")
    assert await store.next_wake_at(workflows={"wf"}) == at(2)
    assert await store.next_wake_at(workflows=set()) is None
    assert await store.claim_runs("w1", at(10), 5, workflows=set()) == []
    claimed = await store.claim_runs("w1", at(10), 5, workflows={"wf"})
    assert [run.id for run in claimed] == ["ours"]
    assert await store.next_wake_at(workflows={"wf"}) is None
    assert await store.next_wake_at() == at(1)


# -- appending and fencing ------------------------------------------------------------


async def test_append_numbers_events_and_returns_the_last_seq(store: AnyStore) -> None:
    """Appended events get consecutive seqs after the log's end, and the time given."""
    await hold(store)
    last = await store.append("w1", "r1", [step(EventType.STEP_STARTED)], at(1))
    assert last == 2
    last = await store.append(
        "w1",
        "r1",
        [step(EventType.STEP_COMPLETED, output=5), step(EventType.STEP_STARTED, "b#1")],
        at(2),
    )
    assert last == 4
    events = await store.events("r1")
    assert [(e.seq, e.type, e.correlation_id) for e in events[1:]] == [
        (2, EventType.STEP_STARTED, "fetch#1"),
        (3, EventType.STEP_COMPLETED, "fetch#1"),
        (4, EventType.STEP_STARTED, "b#1"),
    ]
    assert events[2].data == {"name": "fetch", "attempt": 1, "output": 5}
    assert [e.created_at for e in events[1:]] == [at(1), at(2), at(2)]
    run = await store.get_run("r1")
    assert run is not None
    assert run.updated_at == at(2)


async def test_append_by_another_worker_raises_and_writes_nothing(store: AnyStore) -> None:
    """A worker that does not hold the run gets LeaseLostError naming run and worker."""
    await hold(store)
    before = await snapshot(store, "r1")
    with pytest.raises(LeaseLostError, match=r"'w2'.*'r1'"):
        await store.append("w2", "r1", [step(EventType.STEP_STARTED), hook_created("t")], at(1))
    assert await snapshot(store, "r1") == before
    assert await store.get_hook("t") is None


async def test_append_to_an_unheld_or_unknown_run_raises(store: AnyStore) -> None:
    """Nobody may append to a run nobody holds, or to a run that does not exist."""
    await create(store)
    with pytest.raises(LeaseLostError):
        await store.append("w1", "r1", [step(EventType.STEP_STARTED)], T0)
    with pytest.raises(LeaseLostError):
        await store.append("w1", "nope", [step(EventType.STEP_STARTED)], T0)
    assert len(await store.events("r1")) == 1
    assert await store.events("nope") == []


async def test_append_after_the_run_ended_raises(store: AnyStore) -> None:
    """A terminal event unholds the run for good: the next append is fenced off."""
    await hold(store)
    await store.append("w1", "r1", [NewEvent(EventType.RUN_CANCELLED)], T0)
    with pytest.raises(LeaseLostError):
        await store.append("w1", "r1", [step(EventType.STEP_STARTED)], T0)


async def test_release_by_another_worker_raises_and_changes_nothing(store: AnyStore) -> None:
    """release_run is fenced like append."""
    await hold(store)
    with pytest.raises(LeaseLostError, match=r"'w2'.*'r1'"):
        await store.release_run("w2", "r1", T0)
    run = await store.get_run("r1")
    assert run is not None
    assert (run.owner, run.wake_at) == ("w1", None)


async def test_nothing_may_follow_a_terminal_event_in_one_append(store: AnyStore) -> None:
    """An append with events after run_completed is refused whole."""
    await hold(store)
    before = await snapshot(store, "r1")
    with pytest.raises(ValueError, match="terminal"):
        await store.append(
            "w1", "r1", [NewEvent(EventType.RUN_COMPLETED), step(EventType.STEP_STARTED)], T0
        )
    assert await snapshot(store, "r1") == before


async def test_non_json_data_raises_and_writes_nothing(store: AnyStore) -> None:
    """Event data that is not JSON is a TypeError, and the whole append is dropped."""
    await hold(store)
    before = await snapshot(store, "r1")
    with pytest.raises(TypeError):
        await store.append(
            "w1",
            "r1",
            [step(EventType.STEP_STARTED), step(EventType.STEP_COMPLETED, output={1, 2})],
            T0,
        )
    assert await snapshot(store, "r1") == before


async def test_concurrent_appends_all_land_and_a_refused_one_harms_none(store: AnyStore) -> None:
    """Appends racing on one event loop each land whole; a fenced one fails alone."""
    for index in range(20):
        await hold(store, f"r{index}")
    writes = [
        store.append(
            "w1", f"r{index}", [step(EventType.STEP_STARTED), step(EventType.STEP_COMPLETED)], T0
        )
        for index in range(20)
    ]
    writes.insert(10, store.append("intruder", "r3", [step(EventType.STEP_STARTED, "x#1")], T0))
    results = await asyncio.gather(*writes, return_exceptions=True)
    assert isinstance(results.pop(10), LeaseLostError)
    assert results == [3] * 20
    for index in range(20):
        assert [e.type for e in await store.events(f"r{index}")][1:] == [
            EventType.STEP_STARTED,
            EventType.STEP_COMPLETED,
        ]


# -- index updates, event by event ----------------------------------------------------


async def test_run_started_makes_the_run_running(store: AnyStore) -> None:
    """run_started sets status running and started_at, which a later start keeps."""
    await hold(store)
    await store.append("w1", "r1", [NewEvent(EventType.RUN_STARTED, data={"worker": "w1"})], at(1))
    await store.append("w1", "r1", [NewEvent(EventType.RUN_STARTED, data={"worker": "w1"})], at(2))
    run = await store.get_run("r1")
    assert run is not None
    assert (run.status, run.started_at, run.owner) == (RunStatus.RUNNING, at(1), "w1")


async def test_step_events_keep_each_steps_latest_state(store: AnyStore) -> None:
    """step_* events upsert one row per correlation id, listed in first-started order."""
    await hold(store)
    error = {"type": "builtins.ValueError", "message": "no", "traceback": "..."}
    await store.append(
        "w1", "r1", [step(EventType.STEP_STARTED, "b#1", input={"args": [1]})], at(1)
    )
    await store.append(
        "w1", "r1", [step(EventType.STEP_STARTED, "a#1", input={"args": [2]})], at(2)
    )
    await store.append(
        "w1",
        "r1",
        [step(EventType.STEP_RETRYING, "b#1", error=error, retry_at=at(5).isoformat())],
        at(3),
    )
    (b_row, a_row) = await store.steps("r1")
    assert (b_row.correlation_id, b_row.status, b_row.attempt, b_row.error) == (
        "b#1",
        "retrying",
        1,
        error,
    )
    await store.append(
        "w1",
        "r1",
        [
            step(EventType.STEP_STARTED, "b#1", attempt=2, input={"args": [1]}),
            step(EventType.STEP_COMPLETED, "b#1", attempt=2, output={"ok": True}),
            step(EventType.STEP_FAILED, "a#1", error=error),
        ],
        at(4),
    )
    (b_row, a_row) = await store.steps("r1")
    assert (b_row.name, b_row.status, b_row.attempt, b_row.input) == (
        "b",
        "completed",
        2,
        {"args": [1]},
    )
    assert (b_row.output, b_row.error, b_row.started_at, b_row.updated_at) == (
        {"ok": True},
        None,
        at(1),
        at(4),
    )
    assert (a_row.name, a_row.status, a_row.attempt, a_row.output, a_row.error) == (
        "a",
        "failed",
        1,
        None,
        error,
    )
    assert (a_row.run_id, a_row.input, a_row.started_at) == ("r1", {"args": [2]}, at(2))


async def test_sleep_events_add_and_remove_timers(store: AnyStore) -> None:
    """sleep_started adds a timer at its wake_at; sleep_completed removes it."""
    await hold(store)
    await store.append(
        "w1", "r1", [sleep_started("sleep#1", at(60)), sleep_started("sleep#2", at(30))], T0
    )
    assert list((await store.timers("r1")).items()) == [("sleep#2", at(30)), ("sleep#1", at(60))]
    await store.append(
        "w1", "r1", [NewEvent(EventType.SLEEP_COMPLETED, "sleep#2", {"cancelled": False})], at(30)
    )
    assert await store.timers("r1") == {"sleep#1": at(60)}


async def test_hook_created_makes_a_live_hook_and_disposed_removes_it(store: AnyStore) -> None:
    """hook_created inserts the hook row; hook_disposed deletes it."""
    await hold(store)
    await store.append("w1", "r1", [hook_created("tok", "approval#1", "approval")], at(1))
    hook = await store.get_hook("tok")
    assert hook is not None
    assert (hook.token, hook.run_id, hook.correlation_id, hook.name, hook.kind) == (
        "tok",
        "r1",
        "approval#1",
        "approval",
        "hook",
    )
    assert hook.created_at == at(1)
    await store.append(
        "w1", "r1", [NewEvent(EventType.HOOK_DISPOSED, "approval#1", {"token": "tok"})], at(2)
    )
    assert await store.get_hook("tok") is None
    assert await store.list_hooks() == []


async def test_hook_event_is_the_live_hooks_created_event(store: AnyStore) -> None:
    """hook_event gives the hook_created event of the hook holding the token now, with
    its data; none once the hook is gone or for an unknown token."""
    await hold(store)
    first = NewEvent(
        EventType.HOOK_CREATED,
        "web#1",
        {"token": "tok", "name": "webhook", "kind": "webhook", "respond_with": 201},
    )
    await store.append("w1", "r1", [step(EventType.STEP_STARTED), first], at(1))
    event = await store.hook_event("tok")
    assert event is not None
    assert (event.seq, event.correlation_id, event.data["respond_with"]) == (3, "web#1", 201)
    again = NewEvent(
        EventType.HOOK_CREATED,
        "web#2",
        {"token": "tok", "name": "webhook", "kind": "webhook", "respond_with": 204},
    )
    disposed = NewEvent(EventType.HOOK_DISPOSED, "web#1", {"token": "tok"})
    await store.append("w1", "r1", [disposed, again], at(2))
    event = await store.hook_event("tok")
    assert event is not None
    assert (event.correlation_id, event.data["respond_with"]) == ("web#2", 204)
    assert await store.hook_event("unknown") is None
    await store.append("w1", "r1", [NewEvent(EventType.RUN_COMPLETED, data={"output": 1})], at(3))
    assert await store.hook_event("tok") is None


async def test_hook_created_with_error_makes_no_hook(store: AnyStore) -> None:
    """A hook_created that records a taken token is logged but adds no hook row."""
    await hold(store)
    failed = NewEvent(
        EventType.HOOK_CREATED,
        "approval#1",
        {
            "token": "tok",
            "name": "approval",
            "kind": "hook",
            "error": "token 'tok' is taken",
        },
    )
    assert await store.append("w1", "r1", [failed], T0) == 2
    assert await store.get_hook("tok") is None


async def test_hook_token_held_by_another_run_conflicts(store: AnyStore) -> None:
    """Creating a hook with a live token raises HookConflictError and writes nothing."""
    await hold(store, "r1")
    await store.append("w1", "r1", [hook_created("tok")], T0)
    await hold(store, "r2")
    before = await snapshot(store, "r2")
    with pytest.raises(HookConflictError, match=r"'tok'.*'r1'"):
        await store.append("w1", "r2", [step(EventType.STEP_STARTED), hook_created("tok")], T0)
    assert await snapshot(store, "r2") == before
    hook = await store.get_hook("tok")
    assert hook is not None
    assert hook.run_id == "r1"


async def test_one_token_twice_in_one_append_conflicts(store: AnyStore) -> None:
    """Two hooks with one token in the same append conflict with each other."""
    await hold(store)
    with pytest.raises(HookConflictError, match="'tok'"):
        await store.append("w1", "r1", [hook_created("tok", "a#1"), hook_created("tok", "b#1")], T0)
    assert await store.get_hook("tok") is None
    assert len(await store.events("r1")) == 1


async def test_a_disposed_token_may_be_created_again(store: AnyStore) -> None:
    """Disposing a hook frees its token, even for a hook created in the same append."""
    await hold(store)
    dispose = NewEvent(EventType.HOOK_DISPOSED, "a#1", {"token": "tok"})
    await store.append(
        "w1", "r1", [hook_created("tok", "a#1"), dispose, hook_created("tok", "b#1")], T0
    )
    hook = await store.get_hook("tok")
    assert hook is not None
    assert hook.correlation_id == "b#1"


async def test_disposing_another_runs_token_leaves_its_hook(store: AnyStore) -> None:
    """hook_disposed only ever deletes the appending run's own hook."""
    await hold(store, "r1")
    await store.append("w1", "r1", [hook_created("tok")], T0)
    await hold(store, "r2")
    await store.append("w1", "r2", [NewEvent(EventType.HOOK_DISPOSED, "x#1", {"token": "tok"})], T0)
    assert await store.get_hook("tok") is not None


@pytest.mark.parametrize(
    ("event", "status", "output", "error"),
    [
        (
            NewEvent(EventType.RUN_COMPLETED, data={"output": {"n": 1}}),
            RunStatus.COMPLETED,
            {"n": 1},
            None,
        ),
        (
            NewEvent(EventType.RUN_FAILED, data={"error": {"type": "E", "message": "m"}}),
            RunStatus.FAILED,
            None,
            {"type": "E", "message": "m"},
        ),
        (NewEvent(EventType.RUN_CANCELLED), RunStatus.CANCELLED, None, None),
    ],
)
async def test_a_terminal_event_ends_the_run_and_clears_what_waits(
    store: AnyStore, event: NewEvent, status: RunStatus, output: object, error: object
) -> None:
    """A terminal event sets status and result, unholds the run, and deletes its
    timers, hooks and inbox items (and frees its tokens)."""
    await hold(store)
    await store.append("w1", "r1", [sleep_started("sleep#1", at(60)), hook_created("tok")], T0)
    await store.resume_hook("tok", {"x": 1}, at(1))
    await store.append("w1", "r1", [event], at(2), durable=True)
    run = await store.get_run("r1")
    assert run is not None
    assert (run.status, run.output, run.error, run.completed_at) == (status, output, error, at(2))
    assert (run.owner, run.wake_at) == (None, None)
    assert await store.timers("r1") == {}
    assert await store.list_hooks(run_id="r1") == []
    assert await store.inbox("w1") == []
    assert await store.next_wake_at() is None
    await hold(store, "r2")
    await store.append("w1", "r2", [hook_created("tok")], at(3))


# -- hooks and the inbox --------------------------------------------------------------


async def test_get_and_list_hooks(store: AnyStore) -> None:
    """list_hooks lists live hooks oldest first, optionally of one run."""
    await hold(store, "r1")
    await store.append("w1", "r1", [hook_created("b", "h#1")], at(2))
    await hold(store, "r2", now=at(3))
    await store.append("w1", "r2", [hook_created("a", "h#1")], at(1))
    await store.append("w1", "r1", [hook_created("c", "h#2")], at(2))
    assert [hook.token for hook in await store.list_hooks()] == ["a", "b", "c"]
    assert [hook.token for hook in await store.list_hooks(run_id="r1")] == ["b", "c"]


async def test_resume_puts_the_payload_in_the_holding_workers_inbox(store: AnyStore) -> None:
    """resume_hook stores the payload for the worker holding the run, oldest first."""
    await hold(store)
    await store.append("w1", "r1", [hook_created("tok", "approval#1", "approval")], T0)
    hook = await store.resume_hook("tok", {"decision": "yes"}, at(1))
    assert (hook.token, hook.run_id) == ("tok", "r1")
    await store.resume_hook("tok", {"decision": "no"}, at(2), name="approval")
    items = await store.inbox("w1")
    assert [(i.run_id, i.token, i.correlation_id, i.payload, i.created_at) for i in items] == [
        ("r1", "tok", "approval#1", {"decision": "yes"}, at(1)),
        ("r1", "tok", "approval#1", {"decision": "no"}, at(2)),
    ]
    assert items[0].id < items[1].id
    assert await store.inbox("w2") == []
    run = await store.get_run("r1")
    assert run is not None
    assert (run.owner, run.wake_at) == ("w1", None)


async def test_resume_wakes_a_run_nobody_holds(store: AnyStore) -> None:
    """A resume makes an unheld run waiting on hooks due at once."""
    await hold(store)
    await store.append("w1", "r1", [hook_created("tok")], T0)
    await store.release_run("w1", "r1", FAR_FUTURE)
    assert await store.next_wake_at() == FAR_FUTURE
    await store.resume_hook("tok", 1, at(5))
    run = await store.get_run("r1")
    assert run is not None
    assert run.wake_at == at(5)
    assert await store.next_wake_at() == at(5)
    assert [run.id for run in await store.claim_runs("w2", at(5), 5)] == ["r1"]
    assert [item.payload for item in await store.inbox("w2")] == [1]


async def test_resume_of_an_unknown_token_raises_and_writes_nothing(store: AnyStore) -> None:
    """No live hook holds the token: HookNotFoundError, a LookupError, naming it."""
    await hold(store)
    with pytest.raises(HookNotFoundError, match="'nope'") as caught:
        await store.resume_hook("nope", {}, T0)
    assert isinstance(caught.value, LookupError)
    assert await store.inbox("w1") == []


async def test_resume_with_the_wrong_name_raises_and_writes_nothing(store: AnyStore) -> None:
    """A resume naming another hook type than the token's is refused."""
    await hold(store)
    await store.append("w1", "r1", [hook_created("tok", name="approval")], T0)
    with pytest.raises(HookNotFoundError, match="'approval'"):
        await store.resume_hook("tok", {}, T0, name="payment")
    assert await store.inbox("w1") == []


async def test_resume_reaches_only_the_hook_the_payload_was_checked_against(
    store: AnyStore,
) -> None:
    """With created_by, a token another hook has taken since (the payload was checked
    against the schema of the hook that call created) is refused, writing nothing."""
    await hold(store)
    await store.append("w1", "r1", [hook_created("tok", "approval#1")], T0)
    for stale in (("r1", "approval#2"), ("r2", "approval#1")):
        with pytest.raises(HookNotFoundError, match="'tok'"):
            await store.resume_hook("tok", {"a": 1}, at(1), created_by=stale)
    assert await store.inbox("w1") == []
    hook = await store.resume_hook("tok", {"a": 2}, at(2), created_by=("r1", "approval#1"))
    assert (hook.run_id, hook.correlation_id) == ("r1", "approval#1")
    assert [item.payload for item in await store.inbox("w1")] == [{"a": 2}]


async def test_append_consumes_inbox_items(store: AnyStore) -> None:
    """consume_inbox deletes the items delivered by the append, and only those."""
    await hold(store)
    await store.append("w1", "r1", [hook_created("tok")], T0)
    first = await store.resume_hook("tok", "one", at(1))
    await store.resume_hook("tok", "two", at(2))
    one, _two = await store.inbox("w1")
    received = NewEvent(
        EventType.HOOK_RECEIVED, first.correlation_id, {"token": "tok", "payload": "one"}
    )
    await store.append("w1", "r1", [received], at(3), consume_inbox=[one.id])
    assert [item.payload for item in await store.inbox("w1")] == ["two"]


async def test_consume_inbox_leaves_other_runs_items(store: AnyStore) -> None:
    """An append cannot consume another run's inbox items."""
    await hold(store, "r1")
    await store.append("w1", "r1", [hook_created("tok")], T0)
    await store.resume_hook("tok", "one", at(1))
    (item,) = await store.inbox("w1")
    await hold(store, "r2", now=at(1))
    await store.append("w1", "r2", [], at(2), consume_inbox=[item.id])
    assert [i.id for i in await store.inbox("w1")] == [item.id]


# -- releasing, workers ---------------------------------------------------------------


async def test_release_makes_the_run_claimable_at_wake_at(store: AnyStore) -> None:
    """A released run is unheld and due at the time given."""
    await hold(store)
    await store.release_run("w1", "r1", at(30))
    run = await store.get_run("r1")
    assert run is not None
    assert (run.owner, run.wake_at) == (None, at(30))
    assert await store.next_wake_at() == at(30)


async def test_release_with_an_inbox_item_is_due_at_once(store: AnyStore) -> None:
    """A run handed back with an undelivered payload is claimable right away."""
    await hold(store)
    await store.append("w1", "r1", [hook_created("tok")], T0)
    await store.resume_hook("tok", 1, at(1))
    await store.release_run("w1", "r1", FAR_FUTURE)
    run = await store.get_run("r1")
    assert run is not None
    assert run.wake_at is not None
    assert run.wake_at <= at(1)
    assert [run.id for run in await store.claim_runs("w2", at(1), 5)] == ["r1"]


async def test_release_with_a_cancel_request_is_due_at_once(store: AnyStore) -> None:
    """A run handed back with a pending cancel request is claimable right away."""
    await hold(store)
    await store.request_cancel("r1", at(1))
    await store.release_run("w1", "r1", FAR_FUTURE)
    run = await store.get_run("r1")
    assert run is not None
    assert run.wake_at is not None
    assert run.wake_at <= at(1)
    assert [run.id for run in await store.claim_runs("w2", at(1), 5)] == ["r1"]


async def test_unregister_releases_the_workers_runs_due_now(store: AnyStore) -> None:
    """A worker leaving hands back every run it holds, claimable at once: due since it
    was created."""
    await store.register_worker("w1", T0)
    await hold(store, "r1", now=at(1))
    await hold(store, "r2")
    await store.release_run("w1", "r2", at(99))
    await store.unregister_worker("w1", at(5))
    runs = {run.id: run for run in await store.list_runs()}
    assert (runs["r1"].owner, runs["r1"].wake_at) == (None, at(1))
    assert (runs["r2"].owner, runs["r2"].wake_at) == (None, at(99))


async def test_runs_handed_back_by_a_leaving_worker_are_claimed_before_later_runs(
    store: AnyStore,
) -> None:
    """Runs a worker held when it left go back in the order they were created, ahead
    of the runs created after them: a worker claims only as many runs as its step
    slots have room for, so runs can wait in the store, and the runs that were in
    flight are not sent behind all of those."""
    await store.register_worker("w1", T0)
    await hold(store, "in-flight", now=at(1))
    await create(store, "older", T0)
    await create(store, "newer", at(2))
    await store.unregister_worker("w1", at(5))
    claimed = await store.claim_runs("w2", at(5), 3)
    assert [run.id for run in claimed] == ["older", "in-flight", "newer"]


async def test_a_live_worker_is_not_reaped(store: AnyStore) -> None:
    """reap_dead_workers leaves the runs of workers that are alive."""
    await store.register_worker("w1", T0)
    await store.register_worker("w2", T0)
    await hold(store, "r1", worker="w2")
    await store.heartbeat("w2", at(1))
    assert await store.reap_dead_workers("w1", at(2)) == 0
    run = await store.get_run("r1")
    assert run is not None
    assert run.owner == "w2"


# -- cancelling -----------------------------------------------------------------------


async def test_cancel_of_an_unknown_run_returns_none(store: AnyStore) -> None:
    """request_cancel of an id no run has returns None."""
    assert await store.request_cancel("nope", T0) is None


async def test_cancel_of_a_pending_unheld_run_cancels_it_at_once(store: AnyStore) -> None:
    """A run nobody has started is cancelled on the spot, with run_cancelled logged."""
    await create(store)
    run = await store.request_cancel("r1", at(1))
    assert run is not None
    assert (run.status, run.completed_at, run.owner, run.wake_at) == (
        RunStatus.CANCELLED,
        at(1),
        None,
        None,
    )
    assert await store.get_run("r1") == run
    assert [e.type for e in await store.events("r1")] == [
        EventType.RUN_CREATED,
        EventType.RUN_CANCELLED,
    ]
    assert await store.claim_runs("w1", at(2), 5) == []


async def test_cancel_of_a_held_run_flags_it_for_its_worker(store: AnyStore) -> None:
    """A held run is only flagged; its worker finds it in cancel_requests."""
    await hold(store)
    run = await store.request_cancel("r1", at(1))
    assert run is not None
    assert (run.status, run.cancel_requested, run.owner, run.wake_at) == (
        RunStatus.PENDING,
        True,
        "w1",
        None,
    )
    assert await store.cancel_requests("w1") == ["r1"]
    assert await store.cancel_requests("w2") == []
    assert len(await store.events("r1")) == 1


async def test_cancel_of_an_unheld_started_run_wakes_it(store: AnyStore) -> None:
    """An unheld run that has started is flagged and made due at once."""
    await hold(store)
    await store.append("w1", "r1", [NewEvent(EventType.RUN_STARTED, data={"worker": "w1"})], T0)
    await store.release_run("w1", "r1", at(3600))
    run = await store.request_cancel("r1", at(1))
    assert run is not None
    assert (run.status, run.cancel_requested, run.wake_at) == (RunStatus.RUNNING, True, at(1))
    (claimed,) = await store.claim_runs("w2", at(1), 5)
    assert claimed.cancel_requested
    assert await store.cancel_requests("w2") == ["r1"]


async def test_cancel_of_an_ended_run_changes_nothing(store: AnyStore) -> None:
    """An ended run stays as it ended."""
    await hold(store)
    await store.append("w1", "r1", [NewEvent(EventType.RUN_COMPLETED, data={"output": 1})], T0)
    ended = await store.get_run("r1")
    assert await store.request_cancel("r1", at(1)) == ended
    assert await store.get_run("r1") == ended


async def test_cancel_requests_omit_ended_runs(store: AnyStore) -> None:
    """A run that ended after its cancel request is no longer listed."""
    await hold(store)
    await store.request_cancel("r1", at(1))
    await store.append("w1", "r1", [NewEvent(EventType.RUN_CANCELLED)], at(2))
    assert await store.cancel_requests("w1") == []


# -- wake-ups -------------------------------------------------------------------------


async def test_next_wake_at_is_the_earliest_due_unheld_run(store: AnyStore) -> None:
    """next_wake_at ignores held and ended runs, and is None when nothing waits."""
    assert await store.next_wake_at() is None
    await hold(store, "held")
    assert await store.next_wake_at() is None
    await create(store, "later", at(20))
    await create(store, "sooner", at(10))
    assert await store.next_wake_at() == at(10)


async def other_handle(store: AnyStore) -> AnyStore:
    """Another handle on the same database, as another process would have."""
    other: AnyStore
    if isinstance(store, MemoryStore):
        return store  # one process, one object: there is no other handle
    if isinstance(store, PostgresStore):
        other = PostgresStore(store.url)
    else:
        other = SQLiteStore(store.path)
    await other.open()
    return other


async def test_wait_for_change_sees_a_write_and_times_out_when_quiet(store: AnyStore) -> None:
    """A new run made through another handle wakes wait_for_change; quiet, it times out."""
    other = await other_handle(store)
    try:
        await drain(store)
        assert await store.wait_for_change(0.05) is False
        waiter = asyncio.create_task(store.wait_for_change(30))
        await create(other)
        assert await asyncio.wait_for(waiter, 10) is True
    finally:
        if other is not store:
            await other.close()


async def test_a_step_append_wakes_nobody_but_a_finished_run_does(store: AnyStore) -> None:
    """A step's append is nobody else's business (waking workers for it would cost a pass
    per step); a run ending is, since others may wait for its result."""
    other = await other_handle(store)
    try:
        await hold(other)
        await drain(store)
        quiet = asyncio.create_task(store.wait_for_change(0.3))
        await other.append("w1", "r1", [step(EventType.STEP_STARTED)], at(1))
        if isinstance(store, SQLiteStore):
            await quiet  # SQLite sees a commit by another connection, not what it was
        else:  # memory and PostgreSQL report only what others act on
            assert await quiet is False
        await drain(store)
        ended = asyncio.create_task(store.wait_for_change(30))
        await other.append(
            "w1", "r1", [NewEvent(EventType.RUN_COMPLETED, data={"output": 1})], at(2)
        )
        assert await asyncio.wait_for(ended, 10) is True
    finally:
        if other is not store:
            await other.close()


async def test_own_writes_are_not_reported_on_sqlite(tmp_path: Path) -> None:
    """SQLite reports only other connections' commits: its own steps never wake its worker."""
    store = SQLiteStore(tmp_path / "own.db")
    await store.open()
    try:
        await hold(store)
        await drain(store)
        waiter = asyncio.create_task(store.wait_for_change(0.3))
        await store.append("w1", "r1", [step(EventType.STEP_STARTED)], at(1))
        await store.append(
            "w1", "r1", [NewEvent(EventType.RUN_COMPLETED, data={"output": 1})], at(2)
        )
        assert await waiter is False
    finally:
        await store.close()


# -- step tasks (steps routed to queues) ----------------------------------------------


def queued_step(cid: str = "embed#1", queue: object = "gpu", attempt: int = 1) -> NewEvent:
    """A step_started routed to ``queue``: the event that queues a step task."""
    return step(EventType.STEP_STARTED, cid, attempt, queue=queue, input={"args": [cid]})


async def queue_task(
    store: AnyStore, cid: str = "embed#1", queue: str = "gpu", run_id: str = "r1"
) -> StepTask:
    """Log a step routed to ``queue`` for a run w1 holds; the task it queued."""
    await store.append("w1", run_id, [queued_step(cid, queue)], T0)
    (task,) = [task for task in await store.step_tasks(run_id) if task.correlation_id == cid]
    return task


async def claim_one(store: AnyStore, worker: str = "q1", now: datetime = T0) -> StepTask:
    """Have queue worker ``worker`` claim the one queued task of queue gpu."""
    (task,) = await store.claim_step_tasks(worker, ["gpu"], now, 10)
    return task


DONE = StepOutcome(attempt=1, output={"vector": [1, 2]})
ERROR = {"type": "builtins.ValueError", "message": "no", "traceback": "..."}


async def test_a_step_started_with_a_queue_queues_a_task(store: AnyStore) -> None:
    """step_started naming a queue inserts a queued, unowned task with the step's call;
    one without a queue inserts none."""
    await hold(store)
    await store.append("w1", "r1", [step(EventType.STEP_STARTED, "local#1")], at(1))
    await store.append("w1", "r1", [queued_step()], at(2))
    (task,) = await store.step_tasks("r1")
    assert (task.run_id, task.correlation_id, task.queue, task.name) == (
        "r1",
        "embed#1",
        "gpu",
        "embed",
    )
    assert (task.input, task.attempt, task.status, task.owner, task.outcome) == (
        {"args": ["embed#1"]},
        1,
        "queued",
        None,
        None,
    )
    assert (task.created_at, task.updated_at) == (at(2), at(2))
    (_, row) = await store.steps("r1")
    assert (row.correlation_id, row.status) == ("embed#1", "running")


async def test_claim_step_tasks_takes_the_oldest_of_the_queues_asked_for(store: AnyStore) -> None:
    """claim_step_tasks claims queued tasks of the given queues only, oldest first, up
    to the limit, and marks them claimed by the worker."""
    await hold(store)
    await store.append(
        "w1",
        "r1",
        [queued_step("a#1"), queued_step("b#1", "cpu"), queued_step("c#1"), queued_step("d#1")],
        T0,
    )
    claimed = await store.claim_step_tasks("q1", ["gpu"], at(1), 2)
    assert [task.correlation_id for task in claimed] == ["a#1", "c#1"]
    assert all((t.status, t.owner, t.updated_at) == ("claimed", "q1", at(1)) for t in claimed)
    assert claimed[0].id < claimed[1].id
    assert [t.correlation_id for t in await store.claim_step_tasks("q2", ["gpu"], at(1), 9)] == [
        "d#1"
    ]
    assert await store.claim_step_tasks("q3", ["gpu"], at(1), 9) == []
    assert await store.claim_step_tasks("q3", ["gpu", "cpu"], at(1), 0) == []
    assert await store.claim_step_tasks("q3", [], at(1), 9) == []
    statuses = {t.correlation_id: (t.status, t.owner) for t in await store.step_tasks("r1")}
    assert statuses == {
        "a#1": ("claimed", "q1"),
        "b#1": ("queued", None),
        "c#1": ("claimed", "q1"),
        "d#1": ("claimed", "q2"),
    }


async def test_claim_step_tasks_only_takes_the_steps_named(store: AnyStore) -> None:
    """With names=, a worker never claims a step whose code it does not have."""
    await hold(store)
    await store.append("w1", "r1", [queued_step("a#1"), queued_step("b#1")], T0)
    assert await store.claim_step_tasks("q1", ["gpu"], T0, 9, names=set()) == []
    claimed = await store.claim_step_tasks("q1", ["gpu"], T0, 9, names={"b", "other"})
    assert [task.correlation_id for task in claimed] == ["b#1"]


async def test_workers_claiming_at_once_take_different_tasks(store: AnyStore) -> None:
    """Concurrent claims never hand one task to two workers."""
    await hold(store)
    await store.append("w1", "r1", [queued_step(f"s#{n}") for n in range(1, 11)], T0)
    claims = await asyncio.gather(
        *(store.claim_step_tasks(f"q{n}", ["gpu"], T0, 3) for n in range(5))
    )
    ids = [task.id for claim in claims for task in claim]
    assert len(ids) == len(set(ids)) == 10


async def test_finish_stores_the_outcome_for_the_holder(store: AnyStore) -> None:
    """A finished task shows in step_results of the run's holder only, with its outcome,
    the retries of a failed step included."""
    await hold(store)
    await store.append("w1", "r1", [queued_step("a#1"), queued_step("b#1")], T0)
    first, second = await store.claim_step_tasks("q1", ["gpu"], T0, 2)
    assert await store.step_results("w1") == []
    retries = (
        {"attempt": 1, "error": ERROR, "retry_at": at(2).isoformat()},
        {"attempt": 2, "error": ERROR, "retry_at": at(4).isoformat()},
    )
    failed = StepOutcome(attempt=3, error=ERROR, retries=retries)
    await store.finish_step_task("q1", second.id, failed, at(5))
    await store.finish_step_task("q1", first.id, StepOutcome(attempt=1, output=None), at(6))
    results = await store.step_results("w1")
    assert [task.correlation_id for task in results] == ["b#1", "a#1"]
    assert [(task.status, task.owner, task.updated_at) for task in results] == [
        ("finished", "q1", at(5)),
        ("finished", "q1", at(6)),
    ]
    assert results[0].outcome == failed
    assert results[0].attempt == 3
    assert not failed.succeeded
    assert results[1].outcome == StepOutcome(attempt=1, output=None)
    assert results[1].outcome.succeeded
    assert await store.step_results("q1") == []
    assert await store.step_results("w2") == []


async def test_finish_is_fenced_by_the_tasks_owner(store: AnyStore) -> None:
    """Finishing a task that is not claimed by the caller (another worker's, a queued
    one, an unknown id, one already finished) raises LeaseLostError and writes nothing."""
    await hold(store)
    queued = await queue_task(store, "a#1")
    await queue_task(store, "b#1")
    (claimed,) = await store.claim_step_tasks("q1", ["gpu"], T0, 1)
    before = await store.step_tasks("r1")
    with pytest.raises(LeaseLostError, match=rf"'q2'.*step task {claimed.id}"):
        await store.finish_step_task("q2", claimed.id, DONE, at(1))
    unclaimed = next(task for task in before if task.id != claimed.id)
    with pytest.raises(LeaseLostError):
        await store.finish_step_task("q1", unclaimed.id, DONE, at(1))
    with pytest.raises(LeaseLostError):
        await store.finish_step_task("q1", 10_000 + queued.id, DONE, at(1))
    assert await store.step_tasks("r1") == before
    await store.finish_step_task("q1", claimed.id, DONE, at(2))
    with pytest.raises(LeaseLostError):
        await store.finish_step_task("q1", claimed.id, DONE, at(3))
    (result,) = await store.step_results("w1")
    assert result.updated_at == at(2)


async def test_finish_wakes_a_run_nobody_holds(store: AnyStore) -> None:
    """A run handed back while it waits on a step task becomes due when the task finishes,
    as on a resume; an earlier wake_at is kept."""
    await hold(store)
    await queue_task(store)
    task = await claim_one(store)
    await store.release_run("w1", "r1", FAR_FUTURE)
    assert await store.next_wake_at() == FAR_FUTURE
    await store.finish_step_task("q1", task.id, DONE, at(5))
    run = await store.get_run("r1")
    assert run is not None
    assert (run.owner, run.wake_at) == (None, at(5))
    assert [run.id for run in await store.claim_runs("w2", at(5), 5)] == ["r1"]
    assert [task.outcome for task in await store.step_results("w2")] == [DONE]


async def test_finish_keeps_an_earlier_wake_at_and_leaves_a_held_run_alone(
    store: AnyStore,
) -> None:
    """A finished task never delays an unheld run, and never unholds a held one."""
    await hold(store, "r1")
    await queue_task(store, "a#1", run_id="r1")
    await hold(store, "r2")
    await queue_task(store, "b#1", run_id="r2")
    first, second = await store.claim_step_tasks("q1", ["gpu"], T0, 2)
    await store.release_run("w1", "r1", at(3))
    await store.finish_step_task("q1", first.id, DONE, at(9))
    await store.finish_step_task("q1", second.id, DONE, at(9))
    r1, r2 = await store.get_run("r1"), await store.get_run("r2")
    assert r1 is not None
    assert r2 is not None
    assert (r1.owner, r1.wake_at) == (None, at(3))
    assert (r2.owner, r2.wake_at) == ("w1", None)


async def test_release_with_a_finished_task_is_due_at_once(store: AnyStore) -> None:
    """A run handed back with a step outcome not yet logged is claimable right away."""
    await hold(store)
    await queue_task(store)
    task = await claim_one(store)
    await store.finish_step_task("q1", task.id, DONE, at(1))
    await store.release_run("w1", "r1", FAR_FUTURE)
    run = await store.get_run("r1")
    assert run is not None
    assert run.wake_at is not None
    assert run.wake_at <= at(1)


async def test_append_consumes_step_tasks(store: AnyStore) -> None:
    """consume_tasks deletes the tasks whose outcome the append logs, and only those of
    the appending run."""
    await hold(store, "r1")
    await store.append("w1", "r1", [queued_step("a#1"), queued_step("b#1")], T0)
    await hold(store, "r2")
    await queue_task(store, "c#1", run_id="r2")
    a, b, c = await store.claim_step_tasks("q1", ["gpu"], T0, 3)
    for task in (a, b, c):
        await store.finish_step_task("q1", task.id, DONE, at(1))
    completed = step(EventType.STEP_COMPLETED, "a#1", output={"vector": [1, 2]})
    await store.append("w1", "r1", [completed], at(2), consume_tasks=[a.id, c.id])
    assert [task.correlation_id for task in await store.step_tasks("r1")] == ["b#1"]
    assert [task.correlation_id for task in await store.step_tasks("r2")] == ["c#1"]
    assert {task.id for task in await store.step_results("w1")} == {b.id, c.id}


async def test_consume_tasks_is_fenced_like_the_append(store: AnyStore) -> None:
    """An append refused for its lease consumes nothing."""
    await hold(store)
    await queue_task(store)
    task = await claim_one(store)
    await store.finish_step_task("q1", task.id, DONE, at(1))
    with pytest.raises(LeaseLostError):
        await store.append("w2", "r1", [step(EventType.STEP_COMPLETED)], at(2), consume_tasks=[1])
    assert [t.id for t in await store.step_tasks("r1")] == [task.id]


async def test_a_terminal_event_deletes_the_runs_tasks(store: AnyStore) -> None:
    """When the run ends, its tasks go (queued, claimed and finished alike), and the
    queue worker still running one can no longer finish it."""
    await hold(store)
    await store.append("w1", "r1", [queued_step("a#1"), queued_step("b#1")], T0)
    await queue_task(store, "c#1")
    a, b = await store.claim_step_tasks("q1", ["gpu"], T0, 2)
    await store.finish_step_task("q1", a.id, DONE, at(1))
    await store.append("w1", "r1", [NewEvent(EventType.RUN_CANCELLED)], at(2), durable=True)
    assert await store.step_tasks("r1") == []
    assert await store.claim_step_tasks("q2", ["gpu"], at(3), 9) == []
    with pytest.raises(LeaseLostError, match="no such task"):
        await store.finish_step_task("q1", b.id, DONE, at(3))


async def test_a_new_step_started_replaces_the_steps_task(store: AnyStore) -> None:
    """Queuing a step again (same correlation id) replaces its task with a fresh one."""
    await hold(store)
    old = await queue_task(store)
    await claim_one(store)
    await store.append("w1", "r1", [queued_step(attempt=2)], at(1))
    (new,) = await store.step_tasks("r1")
    assert new.id != old.id
    assert (new.status, new.owner, new.attempt) == ("queued", None, 2)


async def test_unregister_puts_the_workers_claimed_tasks_back(store: AnyStore) -> None:
    """A queue worker leaving requeues the tasks it claimed and did not finish, their
    attempt counted; finished tasks and other workers' claims stay as they are."""
    await store.register_worker("q1", T0)
    await hold(store)
    await store.append("w1", "r1", [queued_step(f"s#{n}") for n in (1, 2, 3)], T0)
    mine = await store.claim_step_tasks("q1", ["gpu"], T0, 2)
    (theirs,) = await store.claim_step_tasks("q2", ["gpu"], T0, 1)
    await store.finish_step_task("q1", mine[0].id, DONE, at(1))
    await store.unregister_worker("q1", at(5))
    tasks = {task.id: task for task in await store.step_tasks("r1")}
    assert (tasks[mine[0].id].status, tasks[mine[0].id].outcome) == ("finished", DONE)
    put_back = tasks[mine[1].id]
    assert (put_back.status, put_back.owner, put_back.attempt) == ("queued", None, 2)
    assert put_back.updated_at == at(5)
    assert (tasks[theirs.id].status, tasks[theirs.id].owner) == ("claimed", "q2")
    (again,) = await store.claim_step_tasks("q3", ["gpu"], at(6), 9)
    assert (again.id, again.attempt) == (put_back.id, 2)
    run = await store.get_run("r1")
    assert run is not None
    assert run.owner == "w1"


async def test_reaping_a_dead_worker_puts_its_claimed_tasks_back(store: AnyStore) -> None:
    """A queue worker that stopped heartbeating long ago is reaped: its claimed tasks
    are queued again, counted in what reap_dead_workers returns."""
    if isinstance(store, MemoryStore):
        pytest.skip("a memory store's workers live in its process: none can die alone")
    await store.register_worker("w1", T0)
    await store.register_worker("q1", T0)
    await hold(store)
    await queue_task(store)
    task = await claim_one(store)
    later = T0 + timedelta(hours=1)
    await store.heartbeat("w1", later)
    assert await store.reap_dead_workers("w1", later) == 1
    (put_back,) = await store.step_tasks("r1")
    assert (put_back.id, put_back.status, put_back.owner, put_back.attempt) == (
        task.id,
        "queued",
        None,
        2,
    )
    with pytest.raises(LeaseLostError):
        await store.finish_step_task("q1", task.id, DONE, later)


async def test_queued_and_finished_tasks_wake_other_processes(store: AnyStore) -> None:
    """Queue workers hear of a queued task, and holders of a finished one, through
    wait_for_change, though a step's append is otherwise nobody's news."""
    other = await other_handle(store)
    try:
        await hold(other)
        await drain(store)
        queued = asyncio.create_task(store.wait_for_change(30))
        await other.append("w1", "r1", [queued_step()], at(1))
        assert await asyncio.wait_for(queued, 10) is True
        (task,) = await other.claim_step_tasks("q1", ["gpu"], at(2), 1)
        await drain(store)
        finished = asyncio.create_task(store.wait_for_change(30))
        await other.finish_step_task("q1", task.id, DONE, at(3))
        assert await asyncio.wait_for(finished, 10) is True
    finally:
        if other is not store:
            await other.close()


async def test_a_queue_must_be_a_non_empty_string(store: AnyStore) -> None:
    """A step_started whose queue is empty or not a string is refused whole."""
    await hold(store)
    before = await snapshot(store, "r1")
    for bad in ("", 7):
        with pytest.raises(ValueError, match="queue"):
            await store.append("w1", "r1", [queued_step(queue=bad)], T0)
    assert await snapshot(store, "r1") == before
    assert await store.step_tasks("r1") == []


# -- a stored cancel request fences the run's appends (issue 10) ----------------------


async def test_after_a_cancel_request_only_the_cancellation_may_be_appended(
    store: AnyStore,
) -> None:
    """Once a held run's cancel is requested, every append but one ending it cancelled
    raises CancelRequestedError and writes nothing; the cancellation itself lands, with
    the events before it."""
    await hold(store)
    await store.append("w1", "r1", [step(EventType.STEP_STARTED)], at(1))
    await store.request_cancel("r1", at(2))
    before = await snapshot(store, "r1")
    refused = [
        [step(EventType.STEP_COMPLETED, output=1)],
        [step(EventType.STEP_COMPLETED, output=1), step(EventType.STEP_STARTED, "b#1")],
        [step(EventType.STEP_COMPLETED, output=1), NewEvent(EventType.RUN_COMPLETED)],
        [NewEvent(EventType.RUN_FAILED, data={"error": {"type": "x", "message": "y"}})],
        [hook_created("t")],
    ]
    for events in refused:
        with pytest.raises(CancelRequestedError, match="'r1'"):
            await store.append("w1", "r1", events, at(3))
    assert await snapshot(store, "r1") == before
    assert await store.get_hook("t") is None

    last = await store.append(
        "w1",
        "r1",
        [step(EventType.STEP_COMPLETED, output=1), NewEvent(EventType.RUN_CANCELLED)],
        at(4),
        durable=True,
    )
    assert last == 4
    run = await store.get_run("r1")
    assert run is not None
    assert (run.status, run.owner) == (RunStatus.CANCELLED, None)


async def test_a_worker_that_does_not_hold_the_run_is_told_so_cancel_or_not(
    store: AnyStore,
) -> None:
    """The lease is checked first: a worker that does not hold the run gets
    LeaseLostError, whether or not the run's cancel is requested."""
    await hold(store)
    await store.request_cancel("r1", at(1))
    with pytest.raises(LeaseLostError):
        await store.append("w2", "r1", [NewEvent(EventType.RUN_CANCELLED)], at(2))


@pytest.mark.parametrize("kind", ["step", "hook", "end"])
async def test_a_cancel_request_refuses_only_its_own_runs_appends(
    store: AnyStore, kind: str
) -> None:
    """Among appends racing on one event loop (one batch on PostgreSQL), only those of
    the run whose cancel is requested are refused; the others land whole."""
    for index in range(6):
        await hold(store, f"r{index}")
    await store.request_cancel("r3", at(1))
    events = {
        "step": [step(EventType.STEP_STARTED), step(EventType.STEP_COMPLETED)],
        "hook": [step(EventType.STEP_STARTED), hook_created("t3")],
        "end": [step(EventType.STEP_STARTED), NewEvent(EventType.RUN_COMPLETED)],
    }[kind]
    others = [step(EventType.STEP_STARTED), step(EventType.STEP_COMPLETED)]
    results = await asyncio.gather(
        *(
            store.append("w1", f"r{index}", events if index == 3 else others, at(2))
            for index in range(6)
        ),
        return_exceptions=True,
    )
    assert isinstance(results.pop(3), CancelRequestedError)
    assert results == [3] * 5
    assert len(await store.events("r3")) == 1
    assert await store.get_hook("t3") is None
    cancelled = await store.append("w1", "r3", [NewEvent(EventType.RUN_CANCELLED)], at(3))
    assert cancelled == 2


# -- a heartbeat tells a worker whether it was taken for dead (issue 10) -------------


async def test_a_heartbeat_says_whether_the_worker_was_still_registered(store: AnyStore) -> None:
    """heartbeat returns True for a registered worker, False for one whose row was gone
    (unregistered here), and puts the row back either way."""
    await store.register_worker("w1", T0)
    assert await store.heartbeat("w1", at(1)) is True
    await store.unregister_worker("w1", at(2))
    assert await store.heartbeat("w1", at(3)) is False
    assert await store.heartbeat("w1", at(4)) is True


async def test_a_reaped_workers_next_heartbeat_says_so(store: AnyStore) -> None:
    """A worker reaped while it was silent (its runs released) learns it from its next
    heartbeat, and gets its row back but not its runs."""
    if isinstance(store, MemoryStore):
        pytest.skip("a memory store's workers live in its process: none can die alone")
    await store.register_worker("w1", T0)
    await store.register_worker("silent", T0)
    await hold(store, worker="silent")
    later = T0 + timedelta(hours=1)
    await store.heartbeat("w1", later)
    assert await store.reap_dead_workers("w1", later) == 1
    assert await store.heartbeat("silent", later) is False
    run = await store.get_run("r1")
    assert run is not None
    assert run.owner is None
    assert await store.heartbeat("silent", later) is True
