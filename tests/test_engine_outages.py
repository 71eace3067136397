"""The public API through a database outage: reads wait for the database within the
caller's deadline, writes are tried again when that cannot store them twice, and
whatever the database does reaches the caller as a perdure error, never the driver's
(issue 10, section 4).

The PostgreSQL server that stops here is a private one (`pg.private_postgres`), shared
by this module's tests; the machine's server only sees connections of a test's own
database terminated. Each test that stops the private server starts it again.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sqlite3
import time
from typing import TYPE_CHECKING, Any

import asyncpg
import pytest

from helpers import T0, eventually, hold
from perdure import Engine, RunStatus, StoreError, workflow
from perdure._log import hook_created
from perdure.stores.postgres import PostgresStore
from pg import create_database, fresh_database, private_postgres

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Iterator
    from pathlib import Path

    from pg import PrivatePostgres


@workflow(name="outage-echo")
async def echo(text: str) -> str:
    """Return the text (these tests start runs; no worker runs them)."""
    return text


@pytest.fixture(scope="module")
def server() -> Iterator[PrivatePostgres]:
    """A PostgreSQL server of this module's own, which its tests stop and start."""
    with private_postgres() as started:
        yield started


@pytest.fixture
async def engine(server: PrivatePostgres) -> AsyncIterator[Engine]:
    """An Engine without a worker on a new database of the private server."""
    url = await create_database(server.url())
    async with Engine(url, worker=False) as opened:
        yield opened


@contextlib.asynccontextmanager
async def outage(server: PrivatePostgres) -> AsyncIterator[None]:
    """The server stopped (fast shutdown) for the block, and started again after it.

    On threads: the event loop, and the calls under test, run while it stops and starts.
    """
    await asyncio.to_thread(server.stop, "fast")
    try:
        yield
    finally:
        await asyncio.to_thread(server.start)


@pytest.fixture(autouse=True)
def _retries_logged(caplog: pytest.LogCaptureFixture) -> None:
    """Each call's retries are logged at DEBUG, saying which call it is: tests read that."""
    caplog.set_level(logging.DEBUG, logger="perdure.worker")


def retried(caplog: pytest.LogCaptureFixture, what: str) -> int:
    """How many times the call ``what`` has failed and been tried again (each log of its
    first failure counts one; a call's later failures are not logged)."""
    return caplog.text.count(f"{what}; retrying until the store answers")


async def told(caplog: pytest.LogCaptureFixture, what: str, call: asyncio.Future[Any]) -> None:
    """Wait until ``call``, named ``what`` in the log, has failed and is being tried again;
    if it ends first, raise what it raised."""

    async def seen() -> bool:
        if call.done():
            call.result()  # its error, if it raised one
            raise AssertionError(f"{what} ended without meeting the outage")
        return retried(caplog, what) >= 1

    await eventually(seen, f"{what} to fail and be tried again", 10, every=0.01)


# -- reads --------------------------------------------------------------------------------


async def test_reads_wait_through_a_server_outage_and_answer_once_it_is_back(
    engine: Engine, server: PrivatePostgres, caplog: pytest.LogCaptureFixture
) -> None:
    """get_run, list_runs, and a Run's status, refresh and events, called while the
    server is down, keep trying and answer once it is back (before: a driver error)."""
    run = await engine.start(echo, "hi", run_id="r-read")
    async with outage(server):
        reads = asyncio.gather(
            engine.get_run(run.id),
            engine.list_runs(),
            run.status(),
            run.refresh(),
            run.events(),
        )
        await told(caplog, "listing runs", reads)
    found, listed, status, record, events = await asyncio.wait_for(reads, 30)
    assert found.id == run.id
    assert [r.id for r in listed] == [run.id]
    assert status is RunStatus.PENDING
    assert record.id == run.id
    assert [e.type.value for e in events] == ["run_created"]


async def test_a_wait_whose_timeout_passes_during_an_outage_times_out_on_time(
    engine: Engine, server: PrivatePostgres, caplog: pytest.LogCaptureFixture
) -> None:
    """run.result(timeout=0.5) while the server is down raises TimeoutError after 0.5 s,
    as asyncio.timeout does around get_run: the retries keep the caller's deadline."""
    run = await engine.start(echo, "hi", run_id="r-timeout")
    async with outage(server):
        began = time.monotonic()
        with pytest.raises(TimeoutError):
            await run.result(timeout=0.5)
        waited = time.monotonic() - began
        with pytest.raises(TimeoutError):
            async with asyncio.timeout(0.3):
                await engine.get_run(run.id)
        # Each met the outage, and kept trying until the deadline.
        assert retried(caplog, "reading run 'r-timeout'") == 2
    assert 0.5 <= waited < 1.5


# -- writes -------------------------------------------------------------------------------


async def test_a_start_with_a_run_id_during_an_outage_succeeds_once_the_server_is_back(
    engine: Engine, server: PrivatePostgres, caplog: pytest.LogCaptureFixture
) -> None:
    """start(run_id=...) and cancel() sent while the server is down are tried again and
    succeed once it is back: each is stored once however often it is sent."""
    async with outage(server):
        starting = asyncio.ensure_future(engine.start(echo, "hi", run_id="r-start"))
        await told(caplog, "starting run 'r-start'", starting)
    run = await asyncio.wait_for(starting, 30)
    assert run.id == "r-start"
    async with outage(server):
        cancelling = asyncio.ensure_future(run.cancel())
        await told(caplog, "cancelling run 'r-start'", cancelling)
    await asyncio.wait_for(cancelling, 30)
    assert [r.id for r in await engine.list_runs()] == ["r-start"]
    assert await run.status() is RunStatus.CANCELLED


async def live_hook(store: Any, run_id: str) -> str:
    """A run held by worker w1, waiting on a live hook; its token."""
    token = f"token-{run_id}"
    await hold(store, run_id, "w1")
    created = hook_created("h#1", token=token, name="outage-hook", kind="hook")
    await store.append("w1", run_id, [created], T0)
    return token


# -- a connection that breaks mid-statement (the machine's server: no restart) ------------


@pytest.fixture
async def shared_engine() -> AsyncIterator[Engine]:
    """An Engine without a worker on a fresh database of the machine's server."""
    async with fresh_database() as url, Engine(url, worker=False) as opened:
        yield opened


@contextlib.asynccontextmanager
async def blocked(url: str, lock: str, *args: Any) -> AsyncIterator[asyncpg.Connection[Any]]:
    """A transaction holding ``lock`` (SQL) for the block, on a connection of its own."""
    admin: asyncpg.Connection[Any] = await asyncpg.connect(url)
    try:
        async with admin.transaction():
            await admin.execute(lock, *args)
            yield admin
    finally:
        await admin.close()


async def waiting_backend(admin: asyncpg.Connection[Any], other_than: int = 0) -> int:
    """The pid of a backend of this database waiting on a lock (not ``other_than``)."""

    async def pid() -> int | None:
        # In the transaction, pg_stat_activity would show its first snapshot every time.
        await admin.execute("SELECT pg_stat_clear_snapshot()")
        found: int | None = await admin.fetchval(
            "SELECT pid FROM pg_stat_activity WHERE datname = current_database() "
            "AND wait_event_type = 'Lock' AND pid <> pg_backend_pid() AND pid <> $1",
            other_than,
        )
        return found

    return await eventually(pid, "a statement to wait on the lock", 10, every=0.01)


async def test_a_hook_resume_whose_connection_breaks_raises_store_error_maybe_stored(
    shared_engine: Engine,
) -> None:
    """A resume whose connection is killed while its statement runs raises StoreError
    with maybe_stored=True (the database may have committed it before the break), not
    asyncpg's error; a payload sent twice would be received twice, so it is not resent."""
    store = shared_engine.store
    assert isinstance(store, PostgresStore)
    token = await live_hook(store, "r-broken")
    lock = "SELECT 1 FROM runs WHERE id = $1 FOR UPDATE"
    async with blocked(store.url, lock, "r-broken") as admin:
        resuming = asyncio.ensure_future(shared_engine.resume_hook(token, {"n": 1}))
        victim = await waiting_backend(admin)
        assert await admin.fetchval("SELECT pg_terminate_backend($1)", victim)
        with pytest.raises(StoreError) as caught:
            await asyncio.wait_for(resuming, 10)
    assert caught.value.maybe_stored is True
    assert "may or may not have been stored" in str(caught.value)
    assert isinstance(caught.value.__cause__, asyncpg.PostgresError | asyncpg.InterfaceError)
    assert await store.inbox("w1") == []  # here it was not: the break came first


async def test_a_start_whose_connection_breaks_is_tried_again_and_stored_once(
    shared_engine: Engine,
) -> None:
    """A start whose connection is killed mid-statement may have been stored, and is
    tried again anyway: creating a run is idempotent on its id (chosen before the first
    try, also when the caller gives none), so the run exists once."""
    store = shared_engine.store
    assert isinstance(store, PostgresStore)
    async with blocked(store.url, "LOCK TABLE runs IN SHARE ROW EXCLUSIVE MODE") as admin:
        starting = asyncio.ensure_future(shared_engine.start(echo, "hi"))
        victim = await waiting_backend(admin)
        assert await admin.fetchval("SELECT pg_terminate_backend($1)", victim)
        await waiting_backend(admin, other_than=victim)  # tried again, on a new connection
    run = await asyncio.wait_for(starting, 10)
    assert [r.id for r in await shared_engine.list_runs()] == [run.id]


# -- SQLite -------------------------------------------------------------------------------


@pytest.fixture
def sqlite_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A SQLite file whose writer waits 50 ms, not 10 s, for another process's lock."""
    monkeypatch.setattr("perdure.stores.sqlite._writer.BUSY_TIMEOUT", 0.05)
    return tmp_path / "perdure.db"


@contextlib.contextmanager
def write_locked(path: Path) -> Iterator[None]:
    """The file's write lock held for the block, as another process would hold it."""
    other = sqlite3.connect(path, isolation_level=None)
    try:
        other.execute("BEGIN IMMEDIATE")
        yield
        other.execute("ROLLBACK")
    finally:
        other.close()


async def test_a_start_that_meets_a_locked_sqlite_file_waits_for_the_lock(
    sqlite_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A start that meets another process's write lock for longer than the busy timeout
    is tried again until the lock is let go, then stored once (before: the writer's
    private `_Locked` reached the caller)."""
    async with Engine(f"sqlite:///{sqlite_path}", worker=False) as engine:
        with write_locked(sqlite_path):
            starting = asyncio.ensure_future(engine.start(echo, "hi", run_id="r-locked"))
            await told(caplog, "starting run 'r-locked'", starting)
        run = await asyncio.wait_for(starting, 10)
        assert [r.id for r in await engine.list_runs()] == [run.id]


async def test_a_hook_resume_that_met_a_locked_sqlite_file_is_sent_once_it_is_free(
    sqlite_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A resume that met a locked file wrote nothing, so it is tried again, though a
    resume is not idempotent, and the hook receives the payload once."""
    async with Engine(f"sqlite:///{sqlite_path}", worker=False) as engine:
        token = await live_hook(engine.store, "r-hook")
        with write_locked(sqlite_path):
            resuming = asyncio.ensure_future(engine.resume_hook(token, {"ok": True}))
            await told(caplog, f"resuming hook {token!r}", resuming)
        hook = await asyncio.wait_for(resuming, 10)
        assert hook.run_id == "r-hook"
        assert [item.payload for item in await engine.store.inbox("w1")] == [{"ok": True}]


async def test_a_file_that_is_no_database_raises_store_error(sqlite_path: Path) -> None:
    """An Engine on a file SQLite cannot read raises StoreError (nothing stored), not
    sqlite3's DatabaseError: a failure no retry mends is told at once."""
    sqlite_path.write_bytes(b"this is not a database, " * 200)
    with pytest.raises(StoreError) as caught:
        async with Engine(f"sqlite:///{sqlite_path}", worker=False):
            pass
    assert caught.value.maybe_stored is False
    assert isinstance(caught.value.__cause__, sqlite3.DatabaseError)
