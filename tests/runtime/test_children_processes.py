"""Child runs and cancels across real processes: SIGKILL while a parent waits on its
children, and a step on another process's queue cancelled with its run.

The programs are ``crash_programs/children_programs.py``; their steps append
side-effect lines to a file and wait at gates the test opens (as in test_crash.py). On
SQLite and on PostgreSQL (a fresh database per test, and a short lease so a killed
worker's runs come back within the test's deadline).
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
from helpers import of_type
from perdure import Engine, EventType, RunStatus, WorkflowCancelled
from pg import fresh_database

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Callable

PROGRAMS = Path(__file__).resolve().parent / "crash_programs"
PROGRAM = PROGRAMS / "children_programs.py"
sys.path.insert(0, str(PROGRAMS))

from children_programs import remote_parent  # noqa: E402 (after the path is set)

DEADLINE = 30.0
"""Seconds to wait for anything: a killed worker's lease (2 s here) and a replay."""

pytestmark = [pytest.mark.slow, pytest.mark.parametrize("store_kind", ["sqlite", "postgres"])]


class Lab:
    """One test's database, folder (effects file, gates) and child processes."""

    def __init__(self, folder: Path, url: str) -> None:
        self.folder = folder
        self.url = url
        self.env = {
            **os.environ,
            "PERDURE_DATABASE_URL": url,
            "CRASH_DIR": str(folder),
            "PERDURE_TEST_LEASE": "2",
            "PYTHONUNBUFFERED": "1",
        }
        self.children: list[helpers.ChildProcess] = []

    def spawn(self, name: str, *argv: str) -> helpers.ChildProcess:
        child = helpers.ChildProcess(
            name,
            [sys.executable, str(PROGRAM), *argv],
            self.folder,
            env=self.env,
            every=0.01,
            timeout=DEADLINE,
        )
        self.children.append(child)
        return child

    def open_gate(self, name: str) -> None:
        (self.folder / f"gate-{name}").touch()

    def effects(self) -> Counter[str]:
        path = self.folder / "effects.log"
        if not path.exists():
            return Counter()
        return Counter(line.rsplit(" ", 1)[0] for line in path.read_text().splitlines())

    async def wait_effects(self, condition: Callable[[Counter[str]], bool], what: str) -> None:
        async def met() -> bool:
            return condition(self.effects())

        await helpers.eventually(met, what, DEADLINE, every=0.01)


@pytest.fixture
async def lab(store_kind: str, tmp_path: Path) -> AsyncIterator[Lab]:
    """A Lab on a fresh SQLite file or PostgreSQL database; its processes are killed after."""
    async with contextlib.AsyncExitStack() as stack:
        if store_kind == "postgres":
            url = await stack.enter_async_context(fresh_database())
        else:
            url = f"sqlite:///{tmp_path}/children.db"
        made = Lab(tmp_path, url)
        try:
            yield made
        finally:
            for child in made.children:
                child.close()


async def test_sigkill_while_the_parent_waits_starts_no_child_twice(lab: Lab) -> None:
    """Killed while a parent waits on 5 children, a fresh process finishes the parent;
    each child was started once (one run each, its first step once), none twice."""
    first = lab.spawn("first", "run", "p1", "5")
    await first.line("worker ")
    await lab.wait_effects(
        lambda seen: all(seen[f"child-waits:{i}"] == 1 for i in range(5)),
        "the 5 children to wait at their gate",
    )
    first.kill()
    lab.open_gate("children")
    second = lab.spawn("second", "run", "p1", "5")
    assert (await second.line("result ")) == "result p1 [0, 10, 20, 30, 40]"
    seen = lab.effects()
    assert all(seen[f"child-began:{i}"] == 1 for i in range(5)), seen
    async with Engine(lab.url, worker=False) as engine:
        parent = await engine.get_run("p1")
        assert await parent.status() is RunStatus.COMPLETED
        children = await engine.list_runs(parent_id="p1")
        assert len(children) == 5
        events = await parent.events()
        started = of_type(events, EventType.CHILD_STARTED)
        assert sorted(e.data["run_id"] for e in started) == sorted(c.id for c in children)
        assert len(of_type(events, EventType.CHILD_COMPLETED)) == 5
        for child in children:
            assert len(of_type(await child.events(), EventType.RUN_STARTED)) == 1


async def test_a_step_on_another_process_queue_sees_the_cancel(lab: Lab) -> None:
    """Cancelling a run cancels its step running on a queue worker in another process:
    the step sees CancelledError, and the run logs the attempt as cancelled."""
    queue_worker = lab.spawn("queue-worker", "queue-worker")
    await queue_worker.line("worker ")
    async with Engine(lab.url) as engine:
        run = await engine.start(remote_parent)
        await lab.wait_effects(lambda seen: seen["remote-began"] == 1, "the remote step to begin")
        await run.cancel()
        with pytest.raises(WorkflowCancelled):
            await run.result(timeout=DEADLINE)
        await lab.wait_effects(
            lambda seen: seen["remote-cancelled"] == 1, "the remote step to see the cancel"
        )
        events = await run.events()
        (cancelled,) = of_type(events, EventType.STEP_CANCELLED)
        assert cancelled.correlation_id == "children.slow_remote#1"
        (row,) = await engine.store.steps(run.id)
        assert row.status == "cancelled"
