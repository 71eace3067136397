"""A durable agent survives SIGKILL: its recorded tool calls are not made again.

Real worker processes (``agent_programs/agent_child.py``) run the agent of
``agent_programs/crash_agent.py`` on a SQLite file and on a fresh PostgreSQL database
(where the second process takes the run over once the dead one's lease, 2 s, lapses);
the tool counts its calls in a file.
"""

from __future__ import annotations

import contextlib
import os
import sys
from collections import Counter
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

import helpers
from pg import fresh_database

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

HERE = Path(__file__).resolve().parent
CHILD = HERE / "agent_programs" / "agent_child.py"
DEADLINE = 30.0


def effects(folder: Path) -> Counter[str]:
    path = folder / "effects.log"
    lines = path.read_text().splitlines() if path.exists() else []
    return Counter(line.rsplit(" ", 1)[0] for line in lines)


@contextlib.asynccontextmanager
async def database(kind: str, folder: Path) -> AsyncIterator[str]:
    if kind == "sqlite":
        yield f"sqlite:///{folder}/agent.db"
        return
    async with fresh_database() as url:
        yield url


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["sqlite", "postgres"])
async def test_a_tool_call_is_not_repeated_after_sigkill_and_restart(
    kind: str, tmp_path: Path
) -> None:
    """Killed while the model request after a tool call is in flight, the agent resumes
    in a new process after its last recorded call: the tool is not called again, only
    the request in flight is made again."""
    async with database(kind, tmp_path) as url:
        await crash_and_recover(url, tmp_path)


async def crash_and_recover(url: str, tmp_path: Path) -> None:
    env = {
        **os.environ,
        "PERDURE_DATABASE_URL": url,
        "CRASH_DIR": str(tmp_path),
        "PYTHONUNBUFFERED": "1",
    }
    argv = [sys.executable, str(CHILD), "a1", "cats"]
    first = helpers.ChildProcess("first", argv, tmp_path, env=env, timeout=DEADLINE)
    second: helpers.ChildProcess | None = None
    try:

        async def report_in_flight() -> bool:
            return effects(tmp_path)["model:report"] == 1

        await helpers.eventually(report_in_flight, "the second model request", DEADLINE, every=0.01)
        assert Counter({"model:lookup": 1, "lookup": 1, "model:report": 1}) == effects(tmp_path)
        first.kill()

        (tmp_path / "gate-report").touch()
        second = helpers.ChildProcess("second", argv, tmp_path, env=env, timeout=DEADLINE)
        line = await second.line("result a1")

        assert '"report: cats sleep a lot"' == line.split(" ", 2)[2]
        assert Counter({"model:lookup": 1, "lookup": 1, "model:report": 2}) == effects(tmp_path)
    finally:
        first.close()
        if second is not None:
            second.close()
