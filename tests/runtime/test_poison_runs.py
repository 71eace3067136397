"""Poison runs (issue 12): a run whose recovery keeps killing its worker is blocked.

A real worker process runs a step that SIGKILLs its own process; the test starts the
next life each time one dies, as a supervisor would, on a SQLite file and on a
PostgreSQL database. After ``poison_after`` deaths in a row the next worker blocks the
run instead of running it, and lives on. ``crash_programs/poison_child.py`` is the
child.
"""

from __future__ import annotations

import functools
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from helpers import ChildProcess, eventually
from perdure import Engine, RunStatus
from pg import fresh_database

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

pytestmark = pytest.mark.slow

CHILD = Path(__file__).resolve().parent / "crash_programs" / "poison_child.py"
POISON_AFTER = 3


@pytest.fixture(params=["sqlite", "postgres"])
async def url(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[str]:
    """A SQLite file, or a fresh PostgreSQL database."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path}/poison.db"
        return
    async with fresh_database() as made:
        yield made


async def test_a_run_that_kills_its_worker_is_blocked_after_poison_after_deaths(
    url: str, tmp_path: Path
) -> None:
    """Three lives die in the step; the fourth blocks the run, names why, and lives."""
    env = {**os.environ, "PERDURE_DATABASE_URL": url, "CRASH_DIR": str(tmp_path)}
    env["PYTHONUNBUFFERED"] = "1"
    lives: list[ChildProcess] = []
    effects = tmp_path / "effects.log"

    def crashes() -> int:
        return len(effects.read_text().splitlines()) if effects.exists() else 0

    try:
        async with Engine(url, worker=False) as watcher:

            async def blocked_or_dead(life: ChildProcess) -> str | None:
                record = await watcher.store.get_run("p1")
                if record is not None and record.status is RunStatus.BLOCKED:
                    return "blocked"
                if record is not None and record.status.is_terminal:
                    return record.status.value  # not what a poison run may come to
                return None if life.alive else "dead"

            outcome = "dead"
            while outcome == "dead" and len(lives) <= POISON_AFTER + 1:
                life = ChildProcess(
                    f"life{len(lives) + 1}",
                    [sys.executable, str(CHILD), "p1", str(POISON_AFTER)],
                    tmp_path,
                    env=env,
                    timeout=30.0,
                )
                lives.append(life)
                outcome = await eventually(
                    functools.partial(blocked_or_dead, life),
                    f"{life.name} to die or block the run",
                    30.0,
                    every=0.05,
                )
            assert outcome == "blocked"
            assert len(lives) == POISON_AFTER + 1
            assert crashes() == POISON_AFTER
            assert lives[-1].alive  # the worker that blocked it was not taken down
            record = await watcher.store.get_run("p1")
            assert record is not None
            assert record.blocked_reason is not None
            assert f"found its worker dead {POISON_AFTER} times in a row" in (record.blocked_reason)
            assert [life.process.returncode for life in lives[:-1]] == [-9] * POISON_AFTER

            # Tried again by hand, it counts afresh: it kills again before it blocks again.
            await watcher.unblock("p1")
            await lives[-1].exit_code()
            assert crashes() == POISON_AFTER + 1
    finally:
        for life in lives:
            life.close()
