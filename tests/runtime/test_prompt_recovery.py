"""Prompt recovery after SIGKILL on the same host (issue 16, item 4): real processes.

A worker process begins a step and is killed with SIGKILL; a second worker process on
the same host must run the step again well before the dead one's lease (60 s here)
lapses: on PostgreSQL because it sees the dead process is gone (`perdure._runtime._gone`),
on SQLite because the kernel dropped the dead process's lock. Every wait is bounded by
`DEADLINE`, far below the lease, so a recovery that waited for the lease fails the test.

On PostgreSQL, a worker whose row names another host is not reaped early (the
reaping is driven by hand here, with `reap_gone`, so no test waits for a non-event),
and a live pid whose start time is not the recorded one (its pid reused) is reaped.
"""

from __future__ import annotations

import os
import socket
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

import asyncpg
import pytest

import helpers
from perdure import Engine, RunStatus
from perdure._process import this_process
from perdure._runtime._gone import reap_gone
from perdure.stores import PostgresStore
from pg import clear_tables

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

pytestmark = pytest.mark.slow

CHILD = Path(__file__).resolve().parent / "crash_programs" / "gone_child.py"
LEASE = 60.0
"""The workers' lease: recovery must not wait for it."""
DEADLINE = 30.0
"""Seconds to wait for anything: generous, and well below `LEASE`."""


class Lab:
    """One test's database URL, folder and worker processes."""

    def __init__(self, folder: Path, url: str) -> None:
        self.folder = folder
        self.url = url
        self.env = {**os.environ, "CRASH_DIR": str(folder), "PYTHONUNBUFFERED": "1"}
        self.children: list[helpers.ChildProcess] = []

    def spawn(self, name: str, *argv: str) -> helpers.ChildProcess:
        command = [sys.executable, str(CHILD), self.url, str(LEASE), *argv]
        child = helpers.ChildProcess(name, command, self.folder, env=self.env, timeout=DEADLINE)
        self.children.append(child)
        return child

    def began(self) -> list[int]:
        """The pids of the processes in which the step began, in order."""
        path = self.folder / "effects.log"
        lines = path.read_text().splitlines() if path.exists() else []
        return [int(line.split()[1]) for line in lines]

    async def began_in(self, count: int) -> list[int]:
        """Wait until the step has begun ``count`` times; the pids."""

        async def enough() -> list[int] | None:
            pids = self.began()
            return pids if len(pids) >= count else None

        return await helpers.eventually(
            enough, f"the step to begin {count} times", DEADLINE, every=0.01
        )


async def emptied(url: str) -> None:
    """Bring the database's schema up to date (the session's may be new), then empty it."""
    store = PostgresStore(url)
    await store.open()
    await store.close()
    await clear_tables(url)


@pytest.fixture(params=["sqlite", "postgres"])
async def lab(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Lab]:
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path}/recovery.db"
    else:
        url = request.getfixturevalue("postgres_database")
        await emptied(url)
    made = Lab(tmp_path, url)
    try:
        yield made
    finally:
        for child in made.children:
            child.close()


async def test_a_worker_on_the_same_host_reruns_a_killed_workers_step_at_once(lab: Lab) -> None:
    """SIGKILL mid-step; a worker process started next on the same host runs the step
    again and finishes the run, well within the dead worker's 60 s lease."""
    first = lab.spawn("first", "start", "r1")
    await first.line("worker ")
    assert await lab.began_in(1) == [first.pid]
    first.kill()

    second = lab.spawn("second", "worker")
    await second.line("worker ")
    assert await lab.began_in(2) == [first.pid, second.pid]
    (lab.folder / "gate-open").touch()
    async with Engine(lab.url, worker=False) as engine:
        run = await engine.get_run("r1")
        assert await run.result(timeout=DEADLINE) == second.pid


async def test_a_running_worker_takes_a_killed_neighbours_runs_at_once(lab: Lab) -> None:
    """A worker already running (not one starting) notices in its maintenance rounds that
    a worker of its host was killed, and takes its run without waiting for the lease."""
    idle = lab.spawn("idle", "worker")
    await idle.line("worker ")
    starter = lab.spawn("starter", "start", "r1")
    await starter.line("started ")
    (began,) = await lab.began_in(1)
    # Whichever claimed the run is killed; the other, already running, takes it.
    killed, other = (starter, idle) if began == starter.pid else (idle, starter)
    assert began == killed.pid
    killed.kill()
    assert await lab.began_in(2) == [killed.pid, other.pid]


@pytest.fixture
async def pg_lab(tmp_path: Path, postgres_database: str) -> AsyncIterator[Lab]:
    await emptied(postgres_database)
    made = Lab(tmp_path, postgres_database)
    try:
        yield made
    finally:
        for child in made.children:
            child.close()


async def test_a_worker_of_another_host_is_not_reaped_early(pg_lab: Lab) -> None:
    """A killed worker whose row names another host keeps its run, however dead its pid
    is here: a lost host and a partitioned one look alike, and the lease decides. Named
    this host again, it is reaped at once."""
    first = pg_lab.spawn("first", "start", "r1")
    worker_id = (await first.line("worker ")).split()[1]
    await pg_lab.began_in(1)
    conn = await asyncpg.connect(pg_lab.url)
    store = PostgresStore(pg_lab.url, lease=LEASE)
    await store.open()
    try:
        await conn.execute("UPDATE workers SET host = 'elsewhere.example' WHERE id = $1", worker_id)
        first.kill()
        now = datetime.now(UTC)
        assert await reap_gone(store, "observer", now) == 0
        run = await store.get_run("r1")
        assert run is not None
        assert run.owner == worker_id
        assert await store.live_workers(now) != []  # its lease still holds

        await conn.execute(
            "UPDATE workers SET host = $2 WHERE id = $1", worker_id, socket.gethostname()
        )
        assert await reap_gone(store, "observer", now) == 1
        run = await store.get_run("r1")
        assert run is not None
        assert (run.owner, run.status) == (None, RunStatus.RUNNING)
    finally:
        await conn.close()
        await store.close()


async def test_a_worker_whose_pid_was_reused_is_reaped(pg_lab: Lab) -> None:
    """A worker's pid now names a live process started at another time (the pid was
    reused): it is gone and reaped; while its row records the live process's own start
    time, it is not. (The row is pointed at this test's process after the worker's
    death: a live process whose pid the row records, as after a reuse.)"""
    first = pg_lab.spawn("first", "start", "r1")
    worker_id = (await first.line("worker ")).split()[1]
    await pg_lab.began_in(1)
    conn = await asyncpg.connect(pg_lab.url)
    store = PostgresStore(pg_lab.url, lease=LEASE)
    await store.open()
    try:
        first.kill()  # its own pid is gone; the row is then pointed at a live process
        _, pid, tag = this_process()
        assert tag is not None
        await conn.execute(
            "UPDATE workers SET pid = $2, process = $3 WHERE id = $1", worker_id, pid, tag
        )
        now = datetime.now(UTC)
        assert await reap_gone(store, "observer", now) == 0
        namespace, _, started = tag.rpartition("/")
        reused = f"{namespace}/{int(started) - 1}"
        await conn.execute("UPDATE workers SET process = $2 WHERE id = $1", worker_id, reused)
        assert await reap_gone(store, "observer", now) == 1
        run = await store.get_run("r1")
        assert run is not None
        assert (run.owner, run.recoveries) == (None, 1)
        assert await store.host_workers(socket.gethostname()) == []
    finally:
        await conn.close()
        await store.close()
