"""``perdure worker --processes N``: one supervisor, N worker processes (issue 16, item 3).

Real ``perdure worker`` supervisors (`cluster_lab`), on a SQLite file and on a fresh
PostgreSQL database, serving ``cluster_workflows`` with ``first`` gated: a test holds
runs mid-step until it opens the gate, so it knows which process holds what when it
kills or stops one. Each child has two step slots (``--concurrency 2``), and a worker
claims runs only as its slots have room (and a quarter more: three runs), so of six
runs or more, four are held at the gate, two by each child. The supervisor prints
``worker process K started (pid P)`` for each child it starts; the children print their
own ``perdure worker ID ready`` lines.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
import sys
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

import pytest

from cluster_lab import Lab, WorkerProcess, chain, eventually, expected
from helpers import ChildProcess, of_type
from perdure import Engine, EventType, RunStatus
from perdure._cli._supervisor import MAX_DELAY, restart_delay
from pg import fresh_database

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Awaitable, Callable

T = TypeVar("T")

PROGRAMS = Path(__file__).resolve().parent / "supervisor_programs"
STARTED = re.compile(r"perdure supervisor: worker process (\d+) started \(pid (\d+)\)")


@pytest.fixture(params=["sqlite", "postgres"])
async def lab(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Lab]:
    """A Lab on a SQLite file or a throwaway PostgreSQL database; every process it
    started, supervisors' children included, is SIGKILLed when the test ends."""
    if request.param == "sqlite":
        made = Lab(tmp_path, f"sqlite:///{tmp_path}/perdure.db")
        try:
            yield made
        finally:
            _close(made)
        return
    async with fresh_database() as url:
        made = Lab(tmp_path, url)
        try:
            yield made
        finally:
            _close(made)


def _close(lab: Lab) -> None:
    for worker in lab.workers:
        _kill_children(worker)
    lab.close()


def _kill_children(supervisor: ChildProcess) -> None:
    for pid in children(supervisor).values():
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


def _async(check: Callable[[], T]) -> Callable[[], Awaitable[T]]:
    async def checked() -> T:
        return check()

    return checked


def children(supervisor: ChildProcess) -> dict[int, int]:
    """The pid of the newest child of each slot (numbered from 1) it has started."""
    return {int(m[1]): int(m[2]) for line in supervisor.lines() if (m := STARTED.fullmatch(line))}


def starts(supervisor: ChildProcess) -> list[tuple[int, int]]:
    """Every (slot, pid) the supervisor started, in order."""
    return [(int(m[1]), int(m[2])) for line in supervisor.lines() if (m := STARTED.fullmatch(line))]


async def ready(supervisor: WorkerProcess, count: int) -> list[str]:
    """Wait until ``count`` children have printed their ready line; their worker ids."""

    async def found() -> list[str] | None:
        if not supervisor.alive:
            raise AssertionError(f"the supervisor exited with {supervisor.process.returncode}")
        ids = [line.split()[2] for line in supervisor.lines() if " ready on " in line]
        return ids if len(ids) >= count else None

    return await eventually(found, f"{count} worker processes to be ready", 60)


async def held_at_gate(lab: Lab, count: int) -> set[int]:
    """Wait until ``count`` step attempts have begun; the pids that run them."""

    async def begun() -> set[int] | None:
        effects = lab.effects()
        return {e.pid for e in effects} if len(effects) >= count else None

    return await eventually(begun, f"{count} steps to begin", 60)


def supervise(lab: Lab, *options: str) -> WorkerProcess:
    lab.settings["CLUSTER_GATED"] = "first"
    return lab.worker("supervisor", "--processes", "2", "--concurrency", "2", *options)


@pytest.mark.slow
async def test_two_processes_both_take_runs(lab: Lab) -> None:
    """--processes 2 starts two worker processes on the one database, and runs are
    done by both: two distinct worker ids start them."""
    supervisor = supervise(lab)
    ids = await ready(supervisor, 2)
    assert len(set(ids)) == 2
    async with Engine(lab.url, worker=False) as engine:
        runs = [await engine.start(chain, x, run_id=f"run-{x}") for x in range(8)]
        assert set(children(supervisor).values()) == await held_at_gate(lab, 4)
        lab.open_gate("first")
        for x, run in enumerate(runs):
            assert expected(x) == await run.result(timeout=60)
        workers = set()
        for run in runs:
            log = await engine.store.events(run.id)
            workers |= {e.data["worker"] for e in of_type(log, EventType.RUN_STARTED)}
    assert set(ids) == workers


@pytest.mark.slow
async def test_a_killed_child_is_started_again_and_its_runs_complete(lab: Lab) -> None:
    """SIGKILL of one child: the supervisor starts another in its slot, and the runs it
    held are taken over and complete."""
    supervisor = supervise(lab)
    await ready(supervisor, 2)
    async with Engine(lab.url, worker=False) as engine:
        runs = [await engine.start(chain, x, run_id=f"run-{x}") for x in range(6)]
        assert len(await held_at_gate(lab, 4)) == 2
        victim = lab.effects()[0].pid
        slot = next(k for k, pid in children(supervisor).items() if pid == victim)
        victim_runs = {e.run for e in lab.effects() if e.pid == victim}
        os.kill(victim, signal.SIGKILL)
        await supervisor.logged(f"worker process {slot} (pid {victim}) ended with SIGKILL")
        await ready(supervisor, 3)
        assert children(supervisor)[slot] != victim
        lab.open_gate("first")
        for x, run in enumerate(runs):
            assert expected(x) == await run.result(timeout=60)
    for run_id in victim_runs:
        again = [e.pid for e in lab.effects() if (e.run, e.step) == (run_id, "first#1")]
        assert victim in again
        assert again[-1] != victim, f"{run_id}'s first step did not run again elsewhere"
    assert supervisor.alive


@pytest.mark.slow
async def test_sigterm_stops_every_child_cleanly_and_hands_runs_back(lab: Lab) -> None:
    """SIGTERM to the supervisor: each child stops as a lone worker does (its steps held
    past --grace are abandoned, its runs handed back), the supervisor exits 0, and
    another worker completes every run."""
    supervisor = supervise(lab, "--grace", "0.2")
    ids = await ready(supervisor, 2)
    async with Engine(lab.url, worker=False) as engine:
        runs = [await engine.start(chain, x, run_id=f"run-{x}") for x in range(6)]
        await held_at_gate(lab, 4)
        pids = list(children(supervisor).values())
        supervisor.signal(signal.SIGTERM)
        assert 0 == await supervisor.exit_code(timeout=60)
        lines = supervisor.lines()
        stopped = [x.split()[2] for x in lines if re.fullmatch(r"perdure worker \S+ stopped", x)]
        assert sorted(ids) == sorted(stopped)
        for pid in pids:
            with pytest.raises(ProcessLookupError):
                os.kill(pid, 0)
        for run in runs:
            record = await engine.store.get_run(run.id)
            assert record is not None
            # handed back, or not yet claimed when the stop came: held by no one
            assert record.owner is None, run.id
            assert record.status in {RunStatus.RUNNING, RunStatus.PENDING}, run.id
        lab.open_gate("first")
        lab.worker("after")
        for x, run in enumerate(runs):
            assert expected(x) == await run.result(timeout=60)


@pytest.mark.slow
async def test_the_children_of_a_supervisor_killed_stop_and_hand_their_runs_back(
    lab: Lab,
) -> None:
    """kill -9 of the supervisor: its children, told by the kernel, stop as on SIGTERM
    (each prints its stopped line) and hand their runs back; none is left running."""
    supervisor = supervise(lab, "--grace", "0.2")
    ids = await ready(supervisor, 2)
    async with Engine(lab.url, worker=False) as engine:
        runs = [await engine.start(chain, x, run_id=f"run-{x}") for x in range(6)]
        await held_at_gate(lab, 4)
        supervisor.kill()

        async def stopped() -> list[str] | None:
            lines = supervisor.lines()
            found = [x.split()[2] for x in lines if re.fullmatch(r"perdure worker \S+ stopped", x)]
            return found if len(found) == 2 else None

        assert sorted(ids) == sorted(await eventually(stopped, "both children to stop", 60))
        for run in runs:
            record = await engine.store.get_run(run.id)
            assert record is not None
            # handed back, or not yet claimed when the stop came: held by no one
            assert record.owner is None, run.id
            assert record.status in {RunStatus.RUNNING, RunStatus.PENDING}, run.id


@pytest.mark.slow
async def test_the_default_is_one_process_per_core(tmp_path: Path) -> None:
    """Without --processes (nor $PERDURE_WORKER_PROCESSES), one child per core."""
    lab = Lab(tmp_path, f"sqlite:///{tmp_path}/perdure.db")
    lab.settings["PERDURE_WORKER_PROCESSES"] = ""  # an empty variable counts as unset
    try:
        supervisor = lab.worker("supervisor")
        cores = len(os.sched_getaffinity(0))
        await ready(supervisor, cores)
        assert len(children(supervisor)) == cores
        supervisor.signal(signal.SIGTERM)
        assert 0 == await supervisor.exit_code(timeout=60)
    finally:
        _close(lab)


@pytest.mark.slow
def test_a_memory_store_is_one_process(tmp_path: Path) -> None:
    """--processes 2 on memory:// is refused (exit 2, naming the option): its runs
    would live in the supervisor's memory, which no child shares."""
    argv = [sys.executable, "-m", "perdure", "worker", str(PROGRAMS / "dies_young.py")]
    env = {**os.environ, "DIES_YOUNG_LOG": str(tmp_path / "imports.log"), "NO_COLOR": "1"}
    done = subprocess.run(
        [*argv, "--processes", "2", "--database-url", "memory://"],
        capture_output=True,
        text=True,
        env=env,
        check=False,
        timeout=60,
    )
    assert (2, "") == (done.returncode, done.stdout)
    assert "--processes 2: a memory:// store lives in one process" in done.stderr
    assert not (tmp_path / "imports.log").exists(), "it imported MODULE before refusing"


@pytest.mark.slow
async def test_a_child_that_dies_at_once_is_started_again_ever_more_slowly(
    tmp_path: Path,
) -> None:
    """A child that dies as it starts is started again after 1 s, then 2 s, ... (as the
    supervisor logs it, and as the children's own start times show), not in a loop."""
    log = tmp_path / "imports.log"
    argv = [sys.executable, "-m", "perdure", "worker", str(PROGRAMS / "dies_young.py")]
    argv += ["--processes", "2", "--database-url", f"sqlite:///{tmp_path}/perdure.db"]
    env = {**os.environ, "DIES_YOUNG_LOG": str(log), "NO_COLOR": "1"}
    supervisor = ChildProcess("supervisor", argv, tmp_path, env=env, timeout=60)
    try:

        async def second_start() -> list[tuple[int, float, float]] | None:
            """Slot 1's first two children: when each began and imported MODULE (dying)."""
            pids = [pid for slot, pid in starts(supervisor) if slot == 1][:2]
            lines = log.read_text().splitlines() if log.exists() else []
            times = {int(p): (float(b), float(i)) for p, b, i in (x.split() for x in lines)}
            if len(pids) < 2 or any(p not in times for p in pids):
                return None
            return [(p, *times[p]) for p in pids]

        (_, _, died), (pid, began, _) = await eventually(
            second_start, "a second child of slot 1", 60
        )
        assert began - died >= 0.9, "started again within a second of dying"  # 10 ms ticks
        again = rf"worker process 1 \(pid {pid}\) ended with exit code 3 after \S+; starting it "
        await eventually(
            _async(lambda: re.search(again + "again in 2s", supervisor.stderr())),
            "the second restart of slot 1 to wait 2 s",
            60,
        )
        assert re.search(r"worker process 1 \(pid \d+\) .* again in 1s", supervisor.stderr())
        supervisor.signal(signal.SIGTERM)
        await supervisor.exit_code(timeout=60)
    finally:
        _kill_children(supervisor)
        supervisor.close()


def test_the_restart_delay_doubles_from_a_second_up_to_its_cap() -> None:
    """No wait after a child that lived long; 1, 2, 4 ... seconds after children in a
    row that died young, never more than MAX_DELAY."""
    assert [restart_delay(n) for n in range(6)] == [0.0, 1.0, 2.0, 4.0, 8.0, 16.0]
    assert restart_delay(6) == restart_delay(60) == MAX_DELAY
