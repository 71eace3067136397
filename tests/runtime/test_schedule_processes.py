"""A schedule across real worker processes, on SQLite and on PostgreSQL: two
``perdure worker`` processes both declare it (``@workflow(schedule=...)``) and both see
every tick, yet each tick starts one run, whose step runs once; a worker SIGKILLed does
not stop the schedule, which lives in the database."""

from __future__ import annotations

import os
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from helpers import ChildProcess, eventually
from perdure import Engine
from pg import fresh_database

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

PROGRAMS = Path(__file__).resolve().parent / "schedule_programs"

pytestmark = pytest.mark.slow


@pytest.fixture(params=["sqlite", "postgres"])
async def database(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[str]:
    """The URL of an empty database of each kind."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path}/schedules.db"
        return
    async with fresh_database() as url:
        yield url


def start_worker(name: str, folder: Path, url: str) -> ChildProcess:
    """A ``perdure worker schedule_workflows`` process."""
    inherited = {k: v for k, v in os.environ.items() if k != "PERDURE_DATABASE_URL"}
    env = {
        **inherited,
        "PYTHONPATH": os.pathsep.join(filter(None, [str(PROGRAMS), inherited.get("PYTHONPATH")])),
        "PYTHONUNBUFFERED": "1",
        "NO_COLOR": "1",
        "SCHEDULE_DIR": str(folder),
    }
    argv = [
        sys.executable, "-m", "perdure", "worker", "schedule_workflows",
        "--database-url", url, "--lease", "2",
    ]  # fmt: skip
    return ChildProcess(name, argv, folder, env=env, timeout=30.0)


def effects(folder: Path) -> list[str]:
    """The run ids whose step ran, once per time it ran."""
    path = folder / "effects.log"
    return [line.split(" ")[0] for line in path.read_text().splitlines()] if path.exists() else []


async def test_two_worker_processes_start_each_tick_once(tmp_path: Path, database: str) -> None:
    """Both workers see every tick of the every-second schedule; each tick has one run and
    its step ran once; after one worker is SIGKILLed the other goes on ticking."""
    async with Engine(database, worker=False) as engine:  # the schema, before the race
        workers = [start_worker(name, tmp_path, database) for name in ("w1", "w2")]
        try:
            for worker in workers:
                await worker.line("perdure worker ")

            async def ended_runs() -> list[Any] | None:
                runs = await engine.list_runs(attributes={"schedule": "every-second"}, limit=1000)
                ended = [run for run in runs if run.record.status.is_terminal]
                return ended if len(ended) >= 4 else None

            await eventually(ended_runs, "four ticks' runs to end", 30, every=0.1)
            workers[0].kill()
            killed_at = datetime.now(UTC)

            async def after_kill() -> list[Any] | None:
                runs = await engine.list_runs(attributes={"schedule": "every-second"}, limit=1000)
                later = [r for r in runs if r.record.created_at > killed_at]
                return later if len(later) >= 3 else None

            await eventually(after_kill, "three ticks after the kill", 30, every=0.1)
            workers[1].close()
            runs = await engine.list_runs(attributes={"schedule": "every-second"}, limit=1000)
        finally:
            for worker in workers:
                worker.close()
    ticks = [(run.record.attributes or {})["tick"] for run in runs]
    assert len(ticks) == len(set(ticks)), "a tick started two runs"
    for run, tick in zip(runs, ticks, strict=True):
        stamp = datetime.fromisoformat(tick).strftime("%Y-%m-%dT%H:%M:%SZ")
        assert run.id == f"every-second@{stamp}"
    ran = effects(tmp_path)
    completed = {run.id for run in runs if run.record.status.value == "completed"}
    assert completed <= set(ran)
    # A step runs again only when its worker died mid-attempt: at most the one SIGKILLed.
    assert len(ran) - len(set(ran)) <= 1, sorted(ran)
