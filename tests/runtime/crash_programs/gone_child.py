"""A worker process for the prompt-recovery tests (run as a script, not collected).

Usage::

    gone_child.py URL LEASE_SECONDS start RUN_ID   # start the run, then run a worker
    gone_child.py URL LEASE_SECONDS worker         # only run a worker

It opens ``URL`` with a worker whose store has the given lease (PostgreSQL; ignored
elsewhere), prints ``worker ID`` once the Engine runs, and stays until killed or its
stdin closes. The workflow's step appends ``began PID`` to ``$CRASH_DIR/effects.log``
and then waits until the test creates ``$CRASH_DIR/gate-open``.
"""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path

import perdure
from perdure import step, workflow


def _dir() -> Path:
    return Path(os.environ["CRASH_DIR"])


@step
async def held() -> int:
    """Record that the step began, in which process, and wait for the gate."""
    fd = os.open(_dir() / "effects.log", os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, f"began {os.getpid()}\n".encode())
    finally:
        os.close(fd)
    while not (_dir() / "gate-open").exists():
        await asyncio.sleep(0.005)
    return os.getpid()


@workflow(name="gone_recovery")
async def gone_recovery() -> int:
    return await held()


async def main(url: str, lease: float, mode: str, run_ids: list[str]) -> None:
    async with perdure.Engine(url, lease=lease) as engine:
        assert engine.worker is not None
        print("worker", engine.worker.id, flush=True)
        if mode == "start":
            for run_id in run_ids:
                await engine.start(gone_recovery, run_id=run_id)
                print("started", run_id, flush=True)
        await asyncio.to_thread(sys.stdin.read)  # until the test closes stdin, or kills us


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], float(sys.argv[2]), sys.argv[3], sys.argv[4:]))
