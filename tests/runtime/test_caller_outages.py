"""A process that only starts runs and waits on them rides out PostgreSQL restarts
(issue 10, section 4).

Worker processes (`cluster_lab.Lab`) run `cluster_workflows.chain` on a private
PostgreSQL server (`cluster_lab.private_postgres`; the machine's shared server is never
restarted), while this process, an ``Engine(url, worker=False)``, awaits every run's
``result()``. The server restarts twice under it. Before the fix one of the waits
raised asyncpg's ``ConnectionDoesNotExistError`` (or an ``InterfaceError``) mid-wait.
"""

from __future__ import annotations

import asyncio
import functools
from typing import TYPE_CHECKING

import pytest

from cluster_lab import Lab, chain, eventually, expected, private_postgres
from perdure import Engine, RunStatus
from pg import create_database

if TYPE_CHECKING:
    from pathlib import Path

RUNS = 60


@pytest.mark.slow
async def test_a_caller_awaiting_results_rides_out_two_postgresql_restarts(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A worker=False Engine awaiting 60 run.result()s while the PostgreSQL server is
    restarted twice (fast shutdown) gets every result, and no driver exception."""
    with private_postgres() as server:
        url = await create_database(server.url())
        lab = Lab(tmp_path, url, {"CLUSTER_STEP_SECONDS": "0.1"})
        try:
            workers = [lab.worker(f"w{n}", "--concurrency", "4") for n in range(3)]
            for worker in workers:
                await worker.ready()
            async with Engine(url, worker=False) as engine:
                runs = [await engine.start(chain, x, run_id=f"run-{x}") for x in range(RUNS)]
                waits = [asyncio.create_task(run.result(timeout=90)) for run in runs]

                async def progressed_since(mark: int) -> bool:
                    return len(lab.effects()) >= mark + 12

                for _ in range(2):
                    # Restarted while runs are in flight: wait for progress first.
                    mark = len(lab.effects())
                    await eventually(functools.partial(progressed_since, mark), "progress", 60)
                    in_flight = len(lab.executions()) < RUNS * 3
                    assert in_flight, "every step ran before the restart: use longer steps"
                    # On a thread: this process's event loop keeps running (and reading)
                    # while the server is down, as the caller's did.
                    await asyncio.to_thread(server.stop, "fast")
                    await asyncio.to_thread(server.start)
                outcomes = await asyncio.gather(*waits, return_exceptions=True)
                statuses = [await run.status() for run in runs]
        finally:
            lab.close()

    # The waits did meet the outage (this process read while the server was down).
    assert "a store call of the public API failed" in caplog.text
    failures = [o for o in outcomes if isinstance(o, BaseException)]
    assert not failures, f"{len(failures)} waits failed, the first: {failures[0]!r}"
    assert outcomes == [expected(x) for x in range(RUNS)]
    assert statuses == [RunStatus.COMPLETED] * RUNS
