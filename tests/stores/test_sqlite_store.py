"""What only the SQLite store promises: a file that outlives the process, migrations,
dead-process detection through file locks, cross-process wake-ups, group commit.

Second processes are real: `_sqlite_child.py` run with this interpreter.
"""

from __future__ import annotations

import asyncio
import sqlite3
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from helpers import T0, ChildProcess, at, drain, hold
from perdure._errors import LeaseLostError
from perdure._records import EventType, NewEvent, NewRun, RunStatus
from perdure.stores import SQLiteStore
from perdure.stores.sqlite import _rows as rows
from perdure.stores.sqlite._schema import connect, migrate, migrations
from perdure.stores.sqlite._writer import CHECKPOINT_EVERY, LOG_LIMIT

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Callable

CHILD = Path(__file__).with_name("_sqlite_child.py")


@pytest.fixture
def db(tmp_path: Path) -> Path:
    return tmp_path / "perdure.db"


@pytest.fixture
async def store(db: Path) -> AsyncIterator[SQLiteStore]:
    opened = SQLiteStore(db)
    await opened.open()
    yield opened
    await opened.close()


def completed(cid: str) -> NewEvent:
    return NewEvent(EventType.STEP_COMPLETED, cid, {"name": "s", "attempt": 1, "output": cid})


async def wait_until(condition: Callable[[], bool], timeout: float = 10.0) -> None:
    """Wait for ``condition`` to hold, checking every millisecond, failing after timeout."""
    async with asyncio.timeout(timeout):
        while not condition():
            await asyncio.sleep(0.001)


def child_process(mode: str, db: Path, worker: str, run_id: str, now: datetime) -> ChildProcess:
    """A second process on the same database (see `_sqlite_child.py`); it prints a line
    for each step it has finished."""
    argv = [sys.executable, str(CHILD), mode, str(db), worker, run_id, now.isoformat()]
    return ChildProcess(f"child-{mode}", argv, db.parent, every=0.001, timeout=60)


# -- the file -------------------------------------------------------------------------


async def test_everything_survives_closing_and_reopening(db: Path) -> None:
    """Runs, logs, steps, timers, hooks, inbox and cancel flags are read back after reopen."""
    first = SQLiteStore(db)
    await first.open()
    await hold(first, "r1")
    await first.append(
        "w1",
        "r1",
        [
            NewEvent(EventType.STEP_STARTED, "s#1", {"name": "s", "attempt": 1, "input": [1]}),
            NewEvent(EventType.SLEEP_STARTED, "sleep#1", {"wake_at": at(60).isoformat()}),
            NewEvent(EventType.HOOK_CREATED, "h#1", {"token": "t", "name": "h", "kind": "hook"}),
        ],
        at(1),
    )
    await first.resume_hook("t", {"p": 1}, at(2))
    await first.request_cancel("r1", at(3))
    state = (
        await first.get_run("r1"),
        await first.events("r1"),
        await first.steps("r1"),
        await first.timers("r1"),
        await first.list_hooks(),
        await first.inbox("w1"),
    )
    await first.close()

    second = SQLiteStore(db)
    await second.open()
    try:
        again = (
            await second.get_run("r1"),
            await second.events("r1"),
            await second.steps("r1"),
            await second.timers("r1"),
            await second.list_hooks(),
            await second.inbox("w1"),
        )
    finally:
        await second.close()
    assert again == state
    assert state[0] is not None
    assert state[0].cancel_requested


async def test_times_are_stored_as_utc_microseconds(store: SQLiteStore, db: Path) -> None:
    """The file holds integer microseconds since the epoch, which sort as times do."""
    moment = datetime(2031, 2, 3, 4, 5, 6, 789012, tzinfo=UTC)
    await store.create_run(NewRun("r1", "wf", {}), moment)
    with sqlite3.connect(db) as raw:
        (created_at,) = raw.execute("SELECT created_at FROM runs").fetchone()
    assert created_at == int(moment.timestamp()) * 1_000_000 + 789012


async def test_the_file_is_in_wal_mode(store: SQLiteStore, db: Path) -> None:
    """open() turns on WAL, so readers never block the writer."""
    await store.create_run(NewRun("r1", "wf", {}), T0)
    with sqlite3.connect(db) as raw:
        assert raw.execute("PRAGMA journal_mode").fetchone() == ("wal",)


async def test_claims_read_the_partial_index(store: SQLiteStore, db: Path) -> None:
    """Claiming and next_wake_at search runs_claimable, not the whole runs table."""
    await store.create_run(NewRun("r1", "wf", {}), T0)
    with sqlite3.connect(db) as raw:
        claim_plan = raw.execute(
            "EXPLAIN QUERY PLAN SELECT id FROM runs WHERE owner IS NULL AND wake_at IS NOT NULL "
            "AND wake_at <= ? ORDER BY wake_at, id LIMIT ?",
            (0, 1),
        ).fetchall()
        wake_plan = raw.execute(
            "EXPLAIN QUERY PLAN SELECT min(wake_at) FROM runs "
            "WHERE owner IS NULL AND wake_at IS NOT NULL"
        ).fetchall()
    assert "USING INDEX runs_claimable" in str(claim_plan)
    assert "USING INDEX runs_claimable" in str(wake_plan)


async def test_a_store_refuses_use_before_open_and_after_close(db: Path) -> None:
    """Calls on a store that is not open raise RuntimeError instead of hanging."""
    store = SQLiteStore(db)
    with pytest.raises(RuntimeError, match="not open"):
        await store.get_run("r1")
    await store.open()
    await store.close()
    with pytest.raises(RuntimeError):
        await store.create_run(NewRun("r1", "wf", {}), T0)


# -- migrations -----------------------------------------------------------------------


async def test_migrations_are_applied_once(db: Path) -> None:
    """Opening again applies nothing: every shipped migration is recorded exactly once."""
    for _ in range(2):
        store = SQLiteStore(db)
        await store.open()
        await store.close()
    shipped = migrations()
    assert shipped[0].name == "0001_initial.sql"
    with sqlite3.connect(db) as raw:
        recorded = raw.execute("SELECT version, name FROM schema_migrations ORDER BY version")
        assert recorded.fetchall() == [(m.version, m.name) for m in shipped]
    conn = connect(db)
    try:
        assert migrate(conn, shipped) == []
    finally:
        conn.close()


async def test_an_older_database_keeps_its_log_and_steps_through_the_upgrade(db: Path) -> None:
    """A database made before 0003 (rowid events and steps) is rebuilt with clustered
    tables, and every event and step row it held is still there."""
    conn = connect(db)
    try:
        migrate(conn, [m for m in migrations() if m.version <= 2])
        conn.execute(
            "INSERT INTO runs (id, workflow, status, input, created_at, updated_at, last_seq) "
            "VALUES ('r1', 'wf', 'running', '{}', 1, 1, 2)"
        )
        conn.executemany(
            "INSERT INTO events (run_id, seq, type, correlation_id, data, created_at) "
            "VALUES ('r1', ?, ?, ?, ?, 1)",
            [(1, "run_created", None, '{"workflow": "wf"}'), (2, "step_started", "s#1", "{}")],
        )
        conn.execute(
            "INSERT INTO steps (run_id, correlation_id, name, status, attempt, input, "
            "started_at, updated_at, first_seq) VALUES ('r1', 's#1', 's', 'running', 1, '[1]', "
            "1, 1, 2)"
        )
    finally:
        conn.close()
    store = SQLiteStore(db)
    await store.open()
    try:
        events = await store.events("r1")
        assert [(e.seq, e.type, e.correlation_id) for e in events] == [
            (1, EventType.RUN_CREATED, None),
            (2, EventType.STEP_STARTED, "s#1"),
        ]
        assert [(s.correlation_id, s.input) for s in await store.steps("r1")] == [("s#1", [1])]
    finally:
        await store.close()
    with sqlite3.connect(db) as raw:
        tables = dict(raw.execute("SELECT name, sql FROM sqlite_master WHERE type = 'table'"))
    assert "WITHOUT ROWID" in tables["events"]
    assert "WITHOUT ROWID" in tables["steps"]


def test_a_workers_pass_does_not_visit_every_run_it_holds(db: Path) -> None:
    """The reads of every pass (inbox, finished step tasks, cancel requests) start from
    what waits, never from all the runs the worker holds: with 100,000 sleeping runs
    held, a pass must cost what it did with ten."""
    conn = connect(db)
    try:
        migrate(conn, migrations())
        executed: list[str] = []  # each statement, with its parameters filled in
        conn.set_trace_callback(executed.append)
        rows.inbox(conn, "w1")
        rows.step_results(conn, "w1")
        rows.cancel_requests(conn, "w1")
        conn.set_trace_callback(None)
        plans = [row[3] for sql in executed for row in conn.execute(f"EXPLAIN QUERY PLAN {sql}")]
    finally:
        conn.close()
    assert plans
    assert not [plan for plan in plans if "runs_owner" in plan or plan.startswith("SCAN r")]


async def test_two_stores_may_create_one_database_at_once(db: Path) -> None:
    """Concurrent first opens of a new file serialize on BEGIN IMMEDIATE; both succeed."""
    stores = [SQLiteStore(db) for _ in range(3)]
    await asyncio.gather(*(store.open() for store in stores))
    try:
        await stores[0].create_run(NewRun("r1", "wf", {}), T0)
        assert await stores[2].get_run("r1") is not None
    finally:
        for store in stores:
            await store.close()


async def test_a_database_from_a_newer_perdure_is_refused(db: Path) -> None:
    """A migration this code does not know means a newer schema: open() refuses it."""
    store = SQLiteStore(db)
    await store.open()
    await store.close()
    with sqlite3.connect(db) as raw:
        raw.execute("INSERT INTO schema_migrations (version, name) VALUES (9999, 'future.sql')")
    with pytest.raises(RuntimeError, match="newer perdure"):
        await SQLiteStore(db).open()


# -- workers and dead processes -------------------------------------------------------


async def test_a_killed_process_has_its_runs_reaped_at_once(store: SQLiteStore, db: Path) -> None:
    """After SIGKILL, the dead worker's lock is free and its runs are released, due at once."""
    await store.register_worker("me", T0)
    await store.create_run(NewRun("r1", "wf", {}), T0)
    child = child_process("hold", db, "child", "r1", T0)
    try:
        assert await child.line() == "ready r1"
        assert await store.reap_dead_workers("me", at(1)) == 0
        child.kill()
        assert await store.reap_dead_workers("me", at(2)) == 1
    finally:
        child.close()
    run = await store.get_run("r1")
    assert run is not None
    assert (run.owner, run.wake_at) == (None, T0)  # due since it was created
    assert not (Path(f"{db}.workers") / "child.lock").exists()
    assert [run.id for run in await store.claim_runs("me", at(2), 5)] == ["r1"]
    assert await store.reap_dead_workers("me", at(3)) == 0


async def test_a_live_process_is_not_reaped(store: SQLiteStore, db: Path) -> None:
    """A worker whose process lives keeps its runs, however often others reap."""
    await store.register_worker("me", T0)
    await store.create_run(NewRun("r1", "wf", {}), T0)
    child = child_process("hold", db, "child", "r1", T0)
    try:
        assert await child.line() == "ready r1"
        assert await store.reap_dead_workers("me", at(30)) == 0
        run = await store.get_run("r1")
        assert run is not None
        assert run.owner == "child"
        assert (Path(f"{db}.workers") / "child.lock").exists()
        assert await child.finish() == 0
    finally:
        child.close()


async def test_a_closed_stores_workers_are_reaped(db: Path, store: SQLiteStore) -> None:
    """Closing a store without unregistering drops its locks: others reap its runs."""
    other = SQLiteStore(db)
    await other.open()
    await other.register_worker("gone", T0)
    await hold(other, "r1", worker="gone")
    await other.close()
    assert await store.reap_dead_workers("me", at(1)) == 1


async def test_a_stale_heartbeat_is_reaped_even_with_its_lock_held(db: Path) -> None:
    """A worker silent for longer than stale_after is reaped; its next heartbeat returns it."""
    alive, reaper = SQLiteStore(db), SQLiteStore(db, stale_after=60)
    await alive.open()
    await reaper.open()
    try:
        await alive.register_worker("slow", T0)
        await hold(alive, "r1", worker="slow")
        assert await reaper.reap_dead_workers("me", at(59)) == 0
        assert await reaper.reap_dead_workers("me", at(61)) == 1
        with pytest.raises(LeaseLostError):
            await alive.append("slow", "r1", [completed("s#1")], at(62))
        await alive.heartbeat("slow", at(62))
        await hold(alive, "r2", worker="slow", now=at(62), workflow="wf-r2")  # r1 is due
        assert await reaper.reap_dead_workers("me", at(63)) == 0
        run = await alive.get_run("r2")
        assert run is not None
        assert run.owner == "slow"
    finally:
        await alive.close()
        await reaper.close()


async def test_one_worker_id_cannot_be_registered_twice(db: Path, store: SQLiteStore) -> None:
    """A worker id whose lock another live store holds is refused."""
    await store.register_worker("w1", T0)
    await store.register_worker("w1", at(1))  # the same store again: fine
    other = SQLiteStore(db)
    await other.open()
    try:
        with pytest.raises(RuntimeError, match="'w1'"):
            await other.register_worker("w1", T0)
    finally:
        await other.close()


async def test_unregister_removes_the_row_and_lock_file(store: SQLiteStore, db: Path) -> None:
    """A worker that leaves leaves no lock file and no row behind."""
    await store.register_worker("w/1", T0)
    lock = Path(f"{db}.workers") / "w%2F1.lock"
    assert lock.exists()
    await store.unregister_worker("w/1", at(1))
    assert not lock.exists()
    with sqlite3.connect(db) as raw:
        assert raw.execute("SELECT count(*) FROM workers").fetchone() == (0,)


# -- change notification --------------------------------------------------------------


async def test_wait_for_change_sees_another_stores_commit(db: Path, store: SQLiteStore) -> None:
    """A commit through another connection to the file wakes wait_for_change."""
    other = SQLiteStore(db)
    await other.open()
    try:
        await drain(store)
        waiter = asyncio.create_task(store.wait_for_change(30))
        await other.create_run(NewRun("r1", "wf", {}), T0)
        assert await asyncio.wait_for(waiter, 10) is True
    finally:
        await other.close()


async def test_wait_for_change_sees_another_process_commit(db: Path, store: SQLiteStore) -> None:
    """A commit by another process wakes wait_for_change, and the run is readable."""
    await drain(store)
    waiter = asyncio.create_task(store.wait_for_change(30))
    child = child_process("create", db, "-", "r1", T0)
    try:
        assert await child.line() == "created"
        assert await asyncio.wait_for(waiter, 10) is True
        assert await child.finish() == 0
    finally:
        child.close()
    run = await store.get_run("r1")
    assert run is not None
    assert run.status is RunStatus.PENDING


# -- the writer -----------------------------------------------------------------------


async def test_concurrent_writes_share_commits_and_a_failure_stays_alone(
    store: SQLiteStore, db: Path
) -> None:
    """Writes queued together commit in one transaction; a fenced one among them fails
    alone while the others land."""
    for index in range(50):
        await hold(store, f"r{index}")
    before = store.statistics()
    writes = [store.append("w1", f"r{index}", [completed(f"s#{index}")], T0) for index in range(50)]
    writes.insert(25, store.append("intruder", "r7", [completed("x#1")], T0))
    blocker = sqlite3.connect(db, isolation_level=None)
    blocker.execute("BEGIN IMMEDIATE")  # the writer waits, so all 51 writes queue up
    try:
        gathered = asyncio.gather(*writes, return_exceptions=True)
        await wait_until(lambda: store.statistics().queued == 51)
    finally:
        blocker.execute("ROLLBACK")
        blocker.close()
    results = await gathered
    assert isinstance(results.pop(25), LeaseLostError)
    assert results == [2] * 50
    after = store.statistics()
    assert after.batches - before.batches <= 2
    assert after.largest_batch >= 26
    assert after.failed_writes - before.failed_writes == 1
    for index in range(50):
        events = await store.events(f"r{index}")
        assert [e.correlation_id for e in events[1:]] == [f"s#{index}"]


async def test_writes_commit_on_the_event_loop_unless_another_process_holds_the_lock(
    store: SQLiteStore, db: Path
) -> None:
    """An uncontended write commits inline (no thread hop); one that meets another
    connection's write lock waits for it on the writer's thread, and still lands."""
    await hold(store, "r1")
    before = store.statistics()
    for index in range(5):
        await store.append("w1", "r1", [completed(f"s#{index}")], T0)
    inline = store.statistics()
    assert inline.batches - before.batches == 5
    assert inline.threaded_batches == before.threaded_batches
    blocker = sqlite3.connect(db, isolation_level=None)
    blocker.execute("BEGIN IMMEDIATE")
    try:
        write = asyncio.ensure_future(store.append("w1", "r1", [completed("s#5")], T0))
        await wait_until(lambda: store.statistics().threaded_batches > inline.threaded_batches)
        assert not write.done()  # it waits for the lock on the thread, not on the loop
    finally:
        blocker.execute("ROLLBACK")
        blocker.close()
    assert await write == 7
    events = await store.events("r1")
    assert [e.correlation_id for e in events[1:]] == [f"s#{index}" for index in range(6)]


async def test_the_log_is_checkpointed_off_the_event_loop(store: SQLiteStore, db: Path) -> None:
    """Every CHECKPOINT_EVERY commits the write-ahead log is copied into the database
    file, so the log is reused rather than growing with every commit."""
    await hold(store, "r1")
    wal = Path(f"{db}-wal")
    rounds = 2 * CHECKPOINT_EVERY
    for index in range(2 * rounds):
        await store.append("w1", "r1", [completed(f"s#{index}")], T0)
        if index == rounds - 1:
            half_way = wal.stat().st_size
    assert store.statistics().checkpoints >= 3
    # Without checkpoints, the log would have doubled in the second half.
    assert wal.stat().st_size <= half_way * 1.2
    assert len(await store.events("r1")) == 2 * rounds + 1


async def test_a_log_grown_past_its_limit_is_emptied(store: SQLiteStore, db: Path) -> None:
    """Writes that fill the log past LOG_LIMIT pages between two checkpoints (big
    payloads here, many runs at once in a worker) get it emptied, not just reused."""
    await hold(store, "r1")
    payload = "x" * 5 * 4096  # each append writes at least five pages
    assert CHECKPOINT_EVERY * 5 > LOG_LIMIT
    for index in range(CHECKPOINT_EVERY):
        event = NewEvent(
            EventType.STEP_COMPLETED, f"s#{index}", {"name": "s", "attempt": 1, "output": payload}
        )
        await store.append("w1", "r1", [event], T0)
    await wait_until(lambda: store.statistics().checkpoints >= 1)
    await store.append("w1", "r1", [completed("after")], T0)  # waits for the checkpoint
    assert Path(f"{db}-wal").stat().st_size < 1024 * 1024
    assert len(await store.events("r1")) == CHECKPOINT_EVERY + 2


async def test_durable_writes_are_synced(store: SQLiteStore) -> None:
    """create_run, resume_hook, request_cancel and durable appends commit with a sync;
    ordinary appends do not."""

    def synced() -> int:
        return store.statistics().synced_batches

    count = synced()
    await hold(store, "r1")
    assert synced() == count + 1  # create_run; the claim is not synced
    hook = NewEvent(EventType.HOOK_CREATED, "h#1", {"token": "t", "name": "h", "kind": "hook"})
    await store.append("w1", "r1", [hook], T0)
    assert synced() == count + 1
    await store.resume_hook("t", 1, T0)
    await store.request_cancel("r1", T0)
    await store.append("w1", "r1", [NewEvent(EventType.RUN_CANCELLED)], T0, durable=True)
    assert synced() == count + 4


async def test_close_finishes_queued_writes(db: Path) -> None:
    """Writes queued when close() is called are committed before it returns."""
    store = SQLiteStore(db)
    await store.open()
    writes = asyncio.gather(
        *(store.create_run(NewRun(f"r{index}", "wf", {}), T0) for index in range(20))
    )
    await wait_until(lambda: store.statistics().queued + store.statistics().writes >= 20)
    await store.close()
    assert all(created for _, created in await writes)
    reopened = SQLiteStore(db)
    await reopened.open()
    try:
        assert len(await reopened.list_runs()) == 20
    finally:
        await reopened.close()
