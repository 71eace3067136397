"""A burst of runs spreads over the workers that have room (issue 10, section 3).

Real ``perdure worker`` processes on one PostgreSQL database (`cluster_lab`), whose
steps append ``RUN STEP PID`` to a side-effect file as they begin, and a burst of runs
started at once by a process without a worker. A worker claims runs only as far as its
step slots have room for them, so a burst does not queue up on the first worker to see
it while the others idle: the runs it has no slot for stay in the store, for whichever
worker has room.

What makes the shares robust on a loaded two-core machine: the burst is ten times what
the workers' slots hold (``--concurrency 10``), so it outlasts the claim passes by far;
and each step sleeps 20 ms, so a worker's pace is set by its slots, the same for all,
rather than by the CPU time the machine happens to give its process.
"""

from __future__ import annotations

import asyncio
import signal
from collections import Counter
from typing import TYPE_CHECKING

import pytest

import helpers
from cluster_lab import Lab, ticks
from perdure import Engine, RunStatus
from pg import fresh_database

if TYPE_CHECKING:
    from collections.abc import AsyncIterator
    from pathlib import Path

RUNS = 300
STEPS = 12


@pytest.fixture
async def lab(tmp_path: Path) -> AsyncIterator[Lab]:
    """A Lab on a throwaway database of the machine's server; its workers are killed and
    the database dropped when the test ends."""
    async with fresh_database() as url:
        made = Lab(tmp_path, url)
        try:
            yield made
        finally:
            made.close()


async def run_burst(engine: Engine, runs: int, steps: int) -> None:
    """Start ``runs`` runs of `ticks` at once, then wait until each has completed."""
    started = await asyncio.gather(
        *(engine.start(ticks, x, steps, run_id=f"run-{x}") for x in range(runs))
    )

    async def all_ended() -> bool:
        records = await engine.store.list_runs(limit=runs + 1)
        return len(records) == runs and all(r.status.is_terminal for r in records)

    await helpers.eventually(all_ended, f"{runs} runs to end", 120, every=0.1)
    for x, run in enumerate(started):
        record = await engine.store.get_run(run.id)
        assert record is not None
        assert (record.status, record.output) == (RunStatus.COMPLETED, x + steps), run.id


@pytest.mark.slow
async def test_a_burst_spreads_over_three_workers_though_it_reaches_one_first(lab: Lab) -> None:
    """Three workers of 10 step slots; a burst of 300 runs of 12 steps of 20 ms, started
    at once while two of the workers are paused for half a second (busy, descheduled,
    or merely slower to wake: a burst always reaches one worker first). Every run
    completes, and each worker runs between 20 % and 50 % of the 3,600 steps.

    Before, the first worker claimed the whole burst (up to 10,000 runs) and queued it
    on its 10 slots, and the other two, once awake, found nothing left to claim."""
    lab.settings["CLUSTER_STEP_SECONDS"] = "0.02"
    workers = [lab.worker(f"w{n}", "--concurrency", "10") for n in range(3)]
    for worker in workers:
        await worker.ready()
    late = workers[1:]
    async with Engine(lab.url, worker=False) as engine:
        for worker in late:
            worker.signal(signal.SIGSTOP)
        try:
            burst = asyncio.ensure_future(run_burst(engine, RUNS, STEPS))
            await asyncio.sleep(0.5)  # the scenario: how long the burst has one worker alone
        finally:
            for worker in late:
                worker.signal(signal.SIGCONT)
        await burst

    by_pid = Counter(e.pid for e in lab.effects())
    assert sum(by_pid.values()) == RUNS * STEPS, "a step ran twice, or not at all"
    shares = {w.name: round(by_pid[w.pid] / (RUNS * STEPS), 3) for w in workers}
    assert all(0.2 <= share <= 0.5 for share in shares.values()), f"steps per worker: {shares}"
    assert all(w.alive for w in workers)
