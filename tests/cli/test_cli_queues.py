"""`perdure worker --queue`: a process serving a queue runs its steps for other workers."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
from typing import TYPE_CHECKING

import queue_steps
from perdure import Engine, EventType, workflow
from test_cli import DEADLINE, TESTS, _argv, _env, cli

if TYPE_CHECKING:
    from pathlib import Path


@workflow(name="cli-gpu-flow")
async def gpu_flow(x: int) -> list[int]:
    """Double ``x`` on whichever process serves queue cli-gpu."""
    return await queue_steps.gpu_double(x)


async def test_worker_serves_the_queues_it_is_given(tmp_path: Path) -> None:
    """`perdure worker --queue cli-gpu queue_steps` runs that queue's step for a run this
    process holds, and says which queues it serves; the step ran in the subprocess."""
    url = f"sqlite:///{tmp_path}/queues.db"
    async with Engine(url) as engine:
        run = await engine.start(gpu_flow, 21)
        proc = await asyncio.create_subprocess_exec(
            *_argv(url, ("worker", "--queue", "cli-gpu", "queue_steps")),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=_env(),
            cwd=TESTS,
        )
        try:
            assert proc.stdout is not None
            async with asyncio.timeout(DEADLINE):
                ready = (await proc.stdout.readline()).decode()
            assert "queues: cli-gpu" in ready, ready
            assert await run.result(timeout=DEADLINE) == [42, proc.pid]
            assert proc.pid != os.getpid()
            proc.send_signal(signal.SIGTERM)
            async with asyncio.timeout(DEADLINE):
                _, err = await proc.communicate()
        finally:
            if proc.returncode is None:
                proc.kill()
                await proc.wait()
        assert proc.returncode == 0, err.decode()
        (started,) = [e for e in await run.events() if e.type is EventType.STEP_STARTED]
        assert started.data["queue"] == "cli-gpu"


def test_worker_with_nothing_to_serve_exits_2(tmp_path: Path) -> None:
    """A module with no workflow and no step of the queues asked for is a usage error."""
    url = f"sqlite:///{tmp_path}/nothing.db"
    result = cli(url, "worker", "--queue", "other", str(TESTS / "queue_steps.py"))
    assert result.code == 2, result
    assert "nothing to serve" in result.err
    assert "other" in result.err
