"""Flow control across three real worker processes, on SQLite and on PostgreSQL.

The workers are ``python -m perdure worker flow_workflows`` processes; the test starts
runs through an Engine without a worker, and reads the side-effect log the steps write
(`flow_programs/flow_workflows.py`): each step's enter and exit, on the monotonic
clock the machine's processes share. A workflow concurrency limit per key is held
while a worker holding a slot is SIGKILLed, and other keys are not held back; a step
concurrency limit and a rate limit hold across the processes.
"""

from __future__ import annotations

import os
import signal
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from helpers import ChildProcess, eventually
from perdure import Engine, RunStatus
from pg import fresh_database

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

PROGRAMS = Path(__file__).resolve().parent / "flow_programs"
sys.path.insert(0, str(PROGRAMS))  # the test process starts these workflows by reference

from flow_workflows import (  # noqa: E402
    cluster_per_customer,
    cluster_uses_rated,
    cluster_uses_scarce,
)

pytestmark = pytest.mark.slow

LEASE = "2"


@dataclass(frozen=True, slots=True)
class Line:
    """One line of the effects log."""

    kind: str
    key: str
    n: int
    pid: int
    at: int
    """time.monotonic_ns() when it was written."""


def effects(folder: Path) -> list[Line]:
    """Every line the steps wrote so far."""
    path = folder / "effects.log"
    if not path.exists():
        return []
    found = []
    for text in path.read_text().splitlines():
        kind, key, n, pid, at = text.split(" ")
        found.append(Line(kind, key, int(n), int(pid), int(at)))
    return found


def most_at_once(lines: list[Line], key: str, killed: dict[int, int]) -> int:
    """The most attempts of ``key`` between their enter and exit at one moment.

    An attempt whose process was killed before it wrote its exit ends at the kill.
    """
    open_at: dict[tuple[int, int], int] = {}
    moments: list[tuple[int, int]] = []
    for line in lines:
        if line.key != key:
            continue
        if line.kind == "enter":
            open_at[line.n, line.pid] = line.at
        elif line.kind == "exit":
            moments += [(open_at.pop((line.n, line.pid)), 1), (line.at, -1)]
    for (_, pid), began in open_at.items():
        assert pid in killed, f"an attempt of {key} in live process {pid} never left"
        moments += [(began, 1), (killed[pid], -1)]
    moments.sort(key=lambda moment: (moment[0], moment[1]))  # a leave before an enter
    most = now = 0
    for _, change in moments:
        now += change
        most = max(most, now)
    return most


@pytest.fixture(params=["sqlite", "postgres"])
async def database(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[str]:
    """The URL of an empty database of each kind."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path}/flow.db"
        return
    async with fresh_database() as url:
        yield url


class Workers:
    """Worker processes serving ``flow_workflows``; all SIGKILLed at the end."""

    def __init__(self, folder: Path, url: str, slots: int) -> None:
        self.folder = folder
        self.url = url
        self.slots = slots
        self.started: list[ChildProcess] = []

    def start(self, name: str) -> ChildProcess:
        inherited = {k: v for k, v in os.environ.items() if k != "PERDURE_DATABASE_URL"}
        env = {
            **inherited,
            "PYTHONPATH": os.pathsep.join(
                filter(None, [str(PROGRAMS), inherited.get("PYTHONPATH")])
            ),
            "PYTHONUNBUFFERED": "1",
            "NO_COLOR": "1",
            "FLOW_DIR": str(self.folder),
        }
        argv = [
            sys.executable, "-m", "perdure", "worker", "flow_workflows",
            "--database-url", self.url, "--lease", LEASE, "--concurrency", str(self.slots),
        ]  # fmt: skip
        child = ChildProcess(name, argv, self.folder, env=env, timeout=30.0)
        self.started.append(child)
        return child

    async def ready(self) -> None:
        for child in self.started:
            await child.line("perdure worker ")

    def close(self) -> None:
        for child in self.started:
            child.close()


@pytest.fixture
def worker_slots() -> int:
    """Each worker's step slots (``--concurrency``); a test may parametrize it."""
    return 100


@pytest.fixture
async def workers(tmp_path: Path, database: str, worker_slots: int) -> AsyncIterator[Workers]:
    """Three worker processes on the database (their store migrates it first)."""
    async with Engine(database, worker=False):
        pass  # the schema exists before three processes race to create it
    made = Workers(tmp_path, database, worker_slots)
    try:
        for name in ("w1", "w2", "w3"):
            made.start(name)
        await made.ready()
        yield made
    finally:
        made.close()


async def _all_completed(engine: Engine, ids: list[str], timeout: float = 60.0) -> None:
    async def done() -> bool:
        statuses = [await (await engine.get_run(run_id)).status() for run_id in ids]
        assert RunStatus.FAILED not in statuses
        return all(status is RunStatus.COMPLETED for status in statuses)

    await eventually(done, "every run to complete", timeout, every=0.05)


async def test_a_limit_per_key_holds_across_processes_and_a_kill(workers: Workers) -> None:
    """Two runs per customer at once across three workers, while one worker holding a
    slot is SIGKILLed; another customer is not held back; every run completes."""
    folder = workers.folder
    async with Engine(workers.url, worker=False) as engine:
        acme = [(await engine.start(cluster_per_customer, "acme", n)).id for n in range(8)]
        globex = [(await engine.start(cluster_per_customer, "globex", n)).id for n in range(3)]

        async def first_acme() -> Line | None:
            return next((x for x in effects(folder) if x.key == "acme"), None)

        victim = await eventually(first_acme, "a step of acme to begin", 30.0, every=0.01)
        os.kill(victim.pid, signal.SIGKILL)
        killed = {victim.pid: _monotonic_ns()}
        await _all_completed(engine, acme + globex)

    lines = effects(folder)
    assert most_at_once(lines, "acme", killed) == 2
    assert most_at_once(lines, "globex", killed) <= 2
    entered = [x for x in lines if x.kind == "enter"]
    acme_enters = [x.at for x in entered if x.key == "acme"]
    first_globex = min(x.at for x in entered if x.key == "globex")
    assert first_globex < sorted(acme_enters)[4]  # globex did not queue behind acme's runs
    # The killed worker's attempt began again elsewhere: nine or more enters for eight runs.
    assert len(acme_enters) >= 9
    assert victim.pid not in {x.pid for x in lines if x.kind == "exit" and x.n == victim.n}


# One step slot each: a worker claims runs only as far as its slots have room
# (`Worker._claim`), and each run's first step holds its worker's slot a moment, so the
# burst spreads over the three workers and the step limit is held across processes.
@pytest.mark.parametrize("worker_slots", [1])
async def test_a_step_limit_and_a_rate_limit_hold_across_processes(workers: Workers) -> None:
    """``@step(concurrency=2)``: two attempts at once, however many workers; and
    ``@step(rate="3/s")``: no second sees more than three starts."""
    folder = workers.folder
    async with Engine(workers.url, worker=False) as engine:
        ids = [(await engine.start(cluster_uses_scarce, n)).id for n in range(9)]
        ids += [(await engine.start(cluster_uses_rated, n)).id for n in range(9)]
        await _all_completed(engine, ids)
    lines = effects(folder)
    assert most_at_once(lines, "scarce", {}) == 2
    assert len({x.pid for x in lines if x.key == "scarce"}) > 1  # spread over workers
    starts = sorted(x.at for x in lines if x.key == "rated")
    assert len(starts) == 9
    # The window is kept on the store's clock; each line is written a moment after its
    # grant, so the starts four apart are a second apart, less that moment (slack 0.2 s).
    for first, fourth in zip(starts, starts[3:], strict=False):
        assert fourth - first >= 800_000_000


def _monotonic_ns() -> int:
    """The clock the workers log on (one for every process of the machine)."""
    return time.monotonic_ns()
