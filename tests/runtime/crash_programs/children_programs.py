"""Child runs and cancels across processes, for test_children_processes.py (not collected).

Usage::

    children_programs.py run RUN_ID N     # a worker; starts (or finds) fan_parent(N)
    children_programs.py queue-worker     # a worker serving the queue "children-slow"

It opens ``$PERDURE_DATABASE_URL`` with a worker (real clock; a lease of
``$PERDURE_TEST_LEASE`` seconds on PostgreSQL when set) and prints, flushed:
``worker ID`` once running, then for ``run`` ``result RUN_ID JSON`` at the end. Both
run until stdin closes or they are killed. Steps append side-effect lines to
``$CRASH_DIR/effects.log`` (`crash_workflows.record`) and may wait at its gates.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from crash_workflows import gate, record  # noqa: E402

import perdure  # noqa: E402 (after the path is set)
from perdure import step, workflow  # noqa: E402

# -- a parent that fans out to children, which wait at a gate -----------------------------


@step(name="children.began")
async def child_began(i: int) -> int:
    """Counts a child's start: a step it completes before anything can be killed."""
    record(f"child-began:{i}")
    return i


@step(name="children.wait")
async def child_waits(i: int) -> int:
    """Waits at gate ``children``."""
    record(f"child-waits:{i}")
    await gate("children")
    return i * 10


@workflow(name="children-fan-child")
async def fan_child(i: int) -> int:
    """A child: one step that counts its start, one that waits."""
    await child_began(i)
    return await child_waits(i)


@workflow(name="children-fan-parent")
async def fan_parent(n: int) -> list[int]:
    """``n`` children at once."""
    return list(await asyncio.gather(*(fan_child(i) for i in range(n))))


# -- a step on another process's queue, cancelled with its run ----------------------------


@step(name="children.slow_remote", queue="children-slow", max_retries=0)
async def slow_remote() -> str:
    """Waits (at gate ``never``) until cancelled, and says it saw the cancel."""
    record("remote-began")
    try:
        await gate("never")
    except asyncio.CancelledError:
        record("remote-cancelled")
        raise
    return "done"


@workflow(name="children-remote-parent")
async def remote_parent() -> str:
    """One step, run by the workers of queue ``children-slow``."""
    return await slow_remote()


# -- the process --------------------------------------------------------------------------


def _engine(**options: Any) -> perdure.Engine:
    lease = os.environ.get("PERDURE_TEST_LEASE")
    if lease and os.environ.get("PERDURE_DATABASE_URL", "").startswith("postgres"):
        options["lease"] = float(lease)
    return perdure.Engine(**options)


async def _until_stdin_closes() -> None:
    await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)


async def main(argv: list[str]) -> None:
    """Run the command ``argv`` names."""
    if argv[0] == "run":
        run_id, n = argv[1], int(argv[2])
        async with _engine() as engine:
            assert engine.worker is not None
            print("worker", engine.worker.id, flush=True)
            run = await engine.start(fan_parent, n, run_id=run_id)
            print("result", run.id, json.dumps(await run.result()), flush=True)
            await _until_stdin_closes()
    elif argv[0] == "queue-worker":
        async with _engine(queues=("children-slow",)) as engine:
            assert engine.worker is not None
            print("worker", engine.worker.id, flush=True)
            await _until_stdin_closes()
    else:
        raise SystemExit(f"unknown command {argv[0]!r}")


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1:]))
