"""What only the PostgreSQL store promises: migrations that many workers may run at
once, leases that run out, fencing of stale workers, LISTEN/NOTIFY across store
objects, and surviving dropped connections.

Every store here is a separate object with its own pool, as another process or machine
would have. Times are explicit (stores never read a clock), so a lease of 0.2 s runs
out the moment a test passes a ``now`` 0.2 s later, without waiting.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
from typing import TYPE_CHECKING

import asyncpg
import pytest

from helpers import T0, at, drain, hold
from perdure._errors import HookConflictError, LeaseLostError
from perdure._records import EventType, NewEvent, NewRun
from perdure.stores import FAR_FUTURE, PostgresStore
from perdure.stores.postgres import migrate
from perdure.stores.postgres._schema import migrations
from pg import clear_tables, fresh_database

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

LEASE = 0.2


# What a call on a connection the server dropped raises: asyncpg's connection errors
# (a PostgresError of class 08, or 57P for a terminated backend), an InterfaceError, or,
# when the drop lands as a query starts, an InternalClientError.
CONNECTION_ERRORS = (
    asyncpg.PostgresError,
    asyncpg.InterfaceError,
    asyncpg.InternalClientError,
    OSError,
)


def assert_connection_error(exc: BaseException) -> None:
    if isinstance(exc, asyncpg.PostgresError):
        assert exc.sqlstate.startswith(("08", "57P")), exc


@pytest.fixture
async def store(postgres_database: str) -> AsyncIterator[PostgresStore]:
    opened = PostgresStore(postgres_database, lease=LEASE)
    await opened.open()
    await clear_tables(postgres_database)
    yield opened
    await opened.close()


@pytest.fixture
async def other(store: PostgresStore) -> AsyncIterator[PostgresStore]:
    """A second store on the same database, as another worker machine would have."""
    opened = PostgresStore(store.url, lease=LEASE)
    await opened.open()
    yield opened
    await opened.close()


def started(cid: str = "s#1") -> NewEvent:
    return NewEvent(EventType.STEP_STARTED, cid, {"name": "s", "attempt": 1})


def hook_created(token: str, cid: str = "h#1") -> NewEvent:
    return NewEvent(EventType.HOOK_CREATED, cid, {"token": token, "name": "h", "kind": "hook"})


async def held_by(store: PostgresStore, run_id: str) -> str | None:
    run = await store.get_run(run_id)
    assert run is not None
    return run.owner


# -- migrations -----------------------------------------------------------------------


async def test_stores_opening_together_on_a_new_database_migrate_it_once() -> None:
    """Five stores opening at once on an empty database apply each migration once."""
    async with fresh_database() as url:
        stores = [PostgresStore(url) for _ in range(5)]
        await asyncio.gather(*(store.open() for store in stores))
        try:
            conn = await asyncpg.connect(url)
            try:
                recorded = await conn.fetch("SELECT version, name FROM schema_migrations")
            finally:
                await conn.close()
            assert sorted((row["version"], row["name"]) for row in recorded) == [
                (migration.version, migration.name) for migration in migrations()
            ]
            await stores[0].create_run(NewRun("r1", "wf", {}), T0)
            assert await stores[4].get_run("r1") is not None
            assert await migrate(url) == []
        finally:
            await asyncio.gather(*(store.close() for store in stores))


async def test_migrate_names_what_it_applied_and_is_idempotent() -> None:
    """migrate() on a new database returns every migration's name, and then nothing."""
    async with fresh_database() as url:
        assert await migrate(url) == [migration.name for migration in migrations()]
        assert await migrate(url) == []


async def test_a_database_migrated_by_a_newer_perdure_is_refused(postgres_database: str) -> None:
    """A schema version this perdure does not know stops open() before it touches anything."""
    await migrate(postgres_database)
    conn = await asyncpg.connect(postgres_database)
    try:
        await conn.execute("INSERT INTO schema_migrations (version, name) VALUES (9999, 'x.sql')")
        store = PostgresStore(postgres_database)
        with pytest.raises(RuntimeError, match=r"\[9999\].*newer perdure"):
            await store.open()
        with pytest.raises(RuntimeError, match="not open"):
            await store.get_run("r1")
    finally:
        await conn.execute("DELETE FROM schema_migrations WHERE version = 9999")
        await conn.close()


# -- leases ---------------------------------------------------------------------------


async def test_a_worker_that_stops_heartbeating_is_reaped_once_its_lease_runs_out(
    store: PostgresStore,
) -> None:
    """Runs of a worker whose heartbeat is older than the lease are released, due at
    once (since they were created)."""
    await store.register_worker("dead", T0)
    await store.register_worker("live", T0)
    await hold(store, "r1", "dead")
    await store.heartbeat("live", at(0.2))
    assert await store.reap_dead_workers("live", at(LEASE)) == 0  # a lease lasts `lease`
    assert await held_by(store, "r1") == "dead"
    assert await store.reap_dead_workers("live", at(LEASE + 0.01)) == 1
    run = await store.get_run("r1")
    assert run is not None
    assert (run.owner, run.wake_at) == (None, T0)
    assert await store.reap_dead_workers("live", at(5)) == 0  # the row went with the runs


async def test_a_heartbeat_renews_the_lease(store: PostgresStore) -> None:
    """A worker that heartbeats keeps its runs however long it lives."""
    await store.register_worker("w1", T0)
    await hold(store, "r1", "w1")
    for second in range(1, 4):
        await store.heartbeat("w1", at(second))
        assert await store.reap_dead_workers("w2", at(second + LEASE)) == 0
    assert await held_by(store, "r1") == "w1"


async def test_the_caller_is_never_reaped(store: PostgresStore) -> None:
    """A worker reaping with a stale heartbeat of its own keeps its runs."""
    await store.register_worker("w1", T0)
    await hold(store, "r1", "w1")
    assert await store.reap_dead_workers("w1", at(60)) == 0
    assert await held_by(store, "r1") == "w1"


async def test_a_reaped_worker_is_fenced_off_the_runs_it_lost(
    store: PostgresStore, other: PostgresStore
) -> None:
    """After its run was reaped and claimed by another, a stale worker's append and
    release raise LeaseLostError and write nothing; its heartbeat does not win it back."""
    await store.register_worker("stale", T0)
    await hold(store, "r1", "stale")
    await store.append("stale", "r1", [started()], T0)
    await other.register_worker("fresh", at(1))
    assert await other.reap_dead_workers("fresh", at(1)) == 1
    assert [run.id for run in await other.claim_runs("fresh", at(1), 5)] == ["r1"]
    before = (await store.events("r1"), await store.steps("r1"), await store.get_run("r1"))

    with pytest.raises(LeaseLostError, match=r"'stale'.*'r1'.*'fresh'"):
        await store.append("stale", "r1", [started("s#2"), hook_created("tok")], at(2))
    with pytest.raises(LeaseLostError, match="'stale'"):
        await store.release_run("stale", "r1", at(2))
    await store.heartbeat("stale", at(2))

    assert (await store.events("r1"), await store.steps("r1"), await store.get_run("r1")) == before
    assert await store.get_hook("tok") is None
    assert await other.append("fresh", "r1", [started("s#2")], at(3)) == 3


async def test_a_stale_append_racing_the_reaper_never_lands_after_it(
    store: PostgresStore, other: PostgresStore
) -> None:
    """Whichever of a stale append and the reaper locks the run first, an event is in the
    log only if the append committed while the stale worker still held the run."""
    outcomes: set[type] = set()
    for index in range(20):
        run_id = f"r{index}"
        await store.register_worker("stale", at(index))
        await hold(store, run_id, "stale", at(index), workflow=f"wf-{run_id}")  # the last is due
        append = store.append("stale", run_id, [started()], at(index))
        reap = other.reap_dead_workers("reaper", at(index + 1))
        if index % 2:  # either may reach the server first
            appended, reaped = await asyncio.gather(append, reap, return_exceptions=True)
        else:
            reaped, appended = await asyncio.gather(reap, append, return_exceptions=True)
        outcomes.add(type(appended))
        assert reaped == 1
        logged = len(await store.events(run_id))
        if isinstance(appended, LeaseLostError):
            assert logged == 1
        else:
            assert (appended, logged) == (2, 2)
        assert await held_by(store, run_id) is None
    assert LeaseLostError in outcomes  # the race was run both ways


async def test_workers_reaping_at_once_release_each_run_once(
    store: PostgresStore, other: PostgresStore
) -> None:
    """Many reapers at once share out the dead workers: every run is released exactly
    once, and none of them fails (no deadlock)."""
    for worker in ("d1", "d2", "d3"):
        await store.register_worker(worker, T0)
        for index in range(5):
            await hold(store, f"{worker}-{index}", worker)
    released = await asyncio.gather(
        *(
            (store if index % 2 else other).reap_dead_workers(f"r{index}", at(1))
            for index in range(8)
        )
    )
    assert sum(released) == 15
    assert all(run.owner is None for run in await store.list_runs())


# -- claims and hooks across stores ---------------------------------------------------


async def test_workers_claiming_at_once_never_take_the_same_run(
    store: PostgresStore, other: PostgresStore
) -> None:
    """FOR UPDATE SKIP LOCKED: concurrent claims split the due runs between workers."""
    for index in range(60):
        await store.create_run(NewRun(f"r{index:02}", "wf", {}), at(index / 100))
    claims = await asyncio.gather(
        *((store if index % 2 else other).claim_runs(f"w{index}", at(1), 7) for index in range(12))
    )
    taken = [run.id for claimed in claims for run in claimed]
    assert len(taken) == len(set(taken)) == 60
    for index, claimed in enumerate(claims):
        assert all(run.owner == f"w{index}" for run in claimed)
        due = [run.id for run in claimed]
        assert due == sorted(due)  # each claim comes back oldest wake_at first


async def test_one_token_created_by_two_runs_at_once_goes_to_one(
    store: PostgresStore, other: PostgresStore
) -> None:
    """Two runs racing to create a hook with one token: one gets it, the other gets
    HookConflictError naming the winner, with nothing written."""
    await hold(store, "a", "w1")
    await hold(store, "b", "w2")
    results = await asyncio.gather(
        store.append("w1", "a", [started(), hook_created("tok")], T0),
        other.append("w2", "b", [started(), hook_created("tok")], T0),
        return_exceptions=True,
    )
    hook = await store.get_hook("tok")
    assert hook is not None
    loser = "b" if hook.run_id == "a" else "a"
    (error,) = [result for result in results if isinstance(result, BaseException)]
    assert isinstance(error, HookConflictError)
    assert f"'{hook.run_id}'" in str(error)
    assert len(await store.events(loser)) == 1


async def test_a_resume_racing_a_release_always_leaves_the_run_due(
    store: PostgresStore, other: PostgresStore
) -> None:
    """A payload stored while its run is handed back is never stranded: the run ends up
    due at once, whichever commits first."""
    for index in range(20):
        run_id, token = f"r{index}", f"tok{index}"
        await hold(store, run_id, "w1", workflow=f"wf-{run_id}")  # the last may be due
        await store.append("w1", run_id, [hook_created(token)], T0)
        release = store.release_run("w1", run_id, FAR_FUTURE)
        resume = other.resume_hook(token, {"n": index}, at(1))
        await asyncio.gather(*((release, resume) if index % 2 else (resume, release)))
        run = await store.get_run(run_id)
        assert run is not None
        assert run.owner is None
        assert run.wake_at is not None
        assert run.wake_at <= at(1)


async def test_hook_event_is_the_live_hooks_hook_created_event(store: PostgresStore) -> None:
    """hook_event (for the HTTP app) returns the event that created the live hook, or None."""
    await hold(store, "r1", "w1")
    await store.append("w1", "r1", [started(), hook_created("tok", "h#1")], at(1))
    event = await store.hook_event("tok")
    assert event is not None
    assert (event.run_id, event.seq, event.type, event.correlation_id) == (
        "r1",
        3,
        EventType.HOOK_CREATED,
        "h#1",
    )
    assert event.data == {"token": "tok", "name": "h", "kind": "hook"}
    assert await store.hook_event("nope") is None
    await store.append("w1", "r1", [NewEvent(EventType.HOOK_DISPOSED, "h#1", {"token": "tok"})], T0)
    assert await store.hook_event("tok") is None


# -- change notification --------------------------------------------------------------


async def test_resume_and_cancel_by_another_store_wake_a_waiting_one(
    store: PostgresStore, other: PostgresStore
) -> None:
    """LISTEN/NOTIFY: another store's resume and cancel request wake wait_for_change."""
    await hold(store, "r1", "w1")
    await store.append("w1", "r1", [hook_created("tok")], T0)
    await drain(store)
    waiter = asyncio.create_task(store.wait_for_change(30))
    await other.resume_hook("tok", 1, at(1))
    assert await asyncio.wait_for(waiter, 10) is True
    await drain(store)
    waiter = asyncio.create_task(store.wait_for_change(30))
    await other.request_cancel("r1", at(2))
    assert await asyncio.wait_for(waiter, 10) is True


async def test_a_release_and_a_reap_by_another_store_wake_a_waiting_one(
    store: PostgresStore, other: PostgresStore
) -> None:
    """Runs becoming claimable through another store (released or reaped) are news."""
    await other.register_worker("w1", T0)
    await hold(other, "r1", "w1")
    await hold(other, "r2", "w1")
    await drain(store)
    waiter = asyncio.create_task(store.wait_for_change(30))
    await other.release_run("w1", "r1", at(60))
    assert await asyncio.wait_for(waiter, 10) is True
    await drain(store)
    waiter = asyncio.create_task(store.wait_for_change(30))
    assert await other.reap_dead_workers("w2", at(60)) == 1
    assert await asyncio.wait_for(waiter, 10) is True


async def test_own_step_appends_are_silent_but_own_releases_are_reported(
    store: PostgresStore,
) -> None:
    """A store's step appends wake nobody, itself included; its own release does wake it,
    so a worker pass that ran alongside the release looks again."""
    await hold(store, "r1", "w1")
    await drain(store)
    quiet = asyncio.create_task(store.wait_for_change(0.3))
    await store.append("w1", "r1", [started()], at(1))
    assert await quiet is False
    waiter = asyncio.create_task(store.wait_for_change(30))
    await store.release_run("w1", "r1", at(60))
    assert await asyncio.wait_for(waiter, 10) is True


async def test_a_broken_listener_reports_a_change_and_listens_again(
    store: PostgresStore, other: PostgresStore
) -> None:
    """When the LISTEN connection dies, the next wait says something may have changed,
    reconnects, and later notifications arrive again."""
    await drain(store)
    listener = store._listener
    assert listener is not None
    assert listener._conn is not None
    pid = listener._conn.get_server_pid()
    conn = await asyncpg.connect(store.url)
    try:
        assert await conn.fetchval("SELECT pg_terminate_backend($1)", pid)
    finally:
        await conn.close()
    assert await asyncio.wait_for(store.wait_for_change(30), 10) is True
    await drain(store)  # the next wait reconnects
    assert listener._conn is not None
    assert listener._conn.get_server_pid() != pid
    waiter = asyncio.create_task(store.wait_for_change(30))
    await other.create_run(NewRun("r1", "wf", {}), T0)
    assert await asyncio.wait_for(waiter, 10) is True


# -- connections ----------------------------------------------------------------------


async def test_the_store_works_again_after_the_server_drops_its_connections(
    store: PostgresStore,
) -> None:
    """Connections killed under the pool make calls raise a connection error, never
    hang or pass silently, and calls succeed again once new connections are made."""
    await hold(store, "r1", "w1")
    conn = await asyncpg.connect(store.url)
    try:
        await conn.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE datname = current_database() AND pid <> pg_backend_pid()"
        )
    finally:
        await conn.close()
    failures: list[Exception] = []
    while True:  # each dead connection fails at most one call, then the pool replaces it
        try:
            assert await store.append("w1", "r1", [started()], T0) == 2
            break
        except CONNECTION_ERRORS as exc:
            assert_connection_error(exc)
            failures.append(exc)
            assert len(failures) <= 10, failures
    assert [event.seq for event in await store.events("r1")] == [1, 2]
    assert await store.wait_for_change(5) is True  # its listener was dropped too


async def test_an_operation_whose_connection_dies_raises_and_the_next_one_works(
    store: PostgresStore,
) -> None:
    """An append whose connection is killed while it waits raises a connection error and
    writes nothing; the store's next append goes through on a new connection."""
    await hold(store, "r1", "w1")
    admin = await asyncpg.connect(store.url)
    try:
        blocker = admin.transaction()
        await blocker.start()
        await admin.execute("SELECT 1 FROM runs WHERE id = 'r1' FOR UPDATE")
        append = asyncio.create_task(store.append("w1", "r1", [started()], T0))
        waiting_pid = None
        async with asyncio.timeout(10):
            while waiting_pid is None:
                waiting_pid = await admin.fetchval(
                    "SELECT pid FROM pg_stat_activity WHERE datname = current_database() "
                    "AND wait_event_type = 'Lock' AND pid <> pg_backend_pid()"
                )
        assert await admin.fetchval("SELECT pg_terminate_backend($1)", waiting_pid)
        with pytest.raises(CONNECTION_ERRORS) as caught:
            await append
        assert_connection_error(caught.value)
        await blocker.rollback()
    finally:
        await admin.close()
    assert await store.append("w1", "r1", [started()], T0) == 2


# -- construction ---------------------------------------------------------------------


def test_repr_hides_the_password() -> None:
    """A store's repr names the database without its password."""
    text = repr(PostgresStore("postgresql://me:s3cret@db.example:6543/app"))
    assert "s3cret" not in text
    assert "me:***@db.example:6543/app" in text


def test_a_lease_must_be_positive() -> None:
    """A zero lease would reap every worker at once: refused."""
    with pytest.raises(ValueError, match="lease"):
        PostgresStore("postgresql://localhost/app", lease=0)


def test_without_asyncpg_a_postgresql_url_names_the_extra_to_install() -> None:
    """Without asyncpg, open_store on a PostgreSQL URL names the perdure[postgres] extra."""
    program = (
        "import sys; sys.modules['asyncpg'] = None\n"
        "from perdure.stores import open_store\n"
        "try:\n"
        "    open_store('postgresql://localhost/app')\n"
        "except ImportError as exc:\n"
        "    print(exc)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", program], capture_output=True, text=True, check=True, timeout=60
    )
    assert "perdure[postgres]" in result.stdout
