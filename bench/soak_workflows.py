"""The workflows of the soak (`soak.py`): what its worker processes run.

``perdure worker bench/soak_workflows.py --queue soak`` imports this file; the soak's
driver imports it too, to start runs and resume hooks. Each step attempt appends one
line, ``RUN STEP ATTEMPT PID TIME``, to ``$SOAK_DIR/effects/PID.log`` as it begins:
that is the side effect the soak counts, so it knows which step attempts began, how
often, in which process and when, whatever the database says. One file per process,
one ``O_APPEND`` write per line: lines never interleave, and a process killed mid-write
loses at most its own last line.

The workflows cover what a production worker meets: chains of steps (``async`` and
``def``) with a `gather`, durable sleeps, hooks resumed from other processes, steps
routed to a queue, steps that fail once and are retried, and long runs that the soak
cancels. Each returns a value the driver can predict from its input (`expected`), so a
run that completed with a wrong result is caught too.
"""

from __future__ import annotations

import asyncio
import os
import random
import time
import zlib
from pathlib import Path
from typing import Any, Literal

import pydantic

from perdure import RetryableError, define_hook, get_step_metadata, sleep, step, workflow

QUEUE = "soak"
"""The queue `remote` is routed to; every soak worker serves it."""


def effect() -> None:
    """Append ``RUN STEP ATTEMPT PID TIME`` for the step attempt beginning now."""
    meta = get_step_metadata()
    cid = meta.step_id.removeprefix(f"{meta.run_id}:")
    folder = Path(os.environ["SOAK_DIR"]) / "effects"
    line = f"{meta.run_id} {cid} {meta.attempt} {os.getpid()} {time.time():.6f}\n"
    fd = os.open(folder / f"{os.getpid()}.log", os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, line.encode())
    finally:
        os.close(fd)


async def busy() -> None:
    """Take 10 to 80 ms, so that faults land on steps in flight."""
    await asyncio.sleep(random.uniform(0.01, 0.08))


@step(name="soak.work")
async def work(x: int) -> int:
    """Add 1."""
    effect()
    await busy()
    return x + 1


@step(name="soak.work_sync")
def work_sync(x: int) -> int:
    """Add 10, in the worker's thread pool."""
    effect()
    time.sleep(0.01)
    return x + 10


@step(name="soak.flaky", max_retries=3)
async def flaky(x: int) -> int:
    """Add 1; a third of the calls fail their first attempt (decided by the step id)."""
    effect()
    await busy()
    meta = get_step_metadata()
    if meta.attempt == 1 and zlib.crc32(meta.step_id.encode()) % 3 == 0:
        raise RetryableError("soak: a planned first-attempt failure", retry_after=0.2)
    return x + 1


@step(name="soak.remote", queue=QUEUE)
async def remote(x: int) -> int:
    """Double, on a worker serving the queue."""
    effect()
    await busy()
    return x * 2


class Decision(pydantic.BaseModel):
    """A hook's payload: a reviewer's decision."""

    decision: Literal["approved", "changes"]
    nonce: str
    """Unique per resume, so the soak can tell which payload the log holds."""


decision = define_hook(Decision, name="SoakDecision")


@workflow(name="soak-chain")
async def chain(steps: int, seed: int) -> int:
    """``steps`` steps in a row, one in the thread pool, then two at once."""
    x = seed
    for _ in range(steps):
        x = await work(x)
    x = await work_sync(x)
    a, b = await asyncio.gather(work(x), work(x))
    return a + b


@workflow(name="soak-sleeper")
async def sleeper(seconds: float, seed: int) -> int:
    """A step, a durable sleep, a step."""
    x = await work(seed)
    await sleep(seconds)
    return await work(x)


@workflow(name="soak-approval")
async def approval(token: str) -> str:
    """A step, a hook that another process resumes, a step; returns the decision."""
    x = await work(0)
    received = await decision.create(token=token)
    await work(x)
    return received.decision


@workflow(name="soak-queued")
async def queued(seed: int) -> int:
    """A step, a step on the queue's workers, a step that may fail once."""
    x = await work(seed)
    y = await remote(x)
    return await flaky(y)


@workflow(name="soak-long")
async def long(steps: int) -> int:
    """Many steps with short sleeps between: the runs the soak cancels midway."""
    x = 0
    for n in range(steps):
        x = await work(x)
        if n % 4 == 3:
            await sleep(0.5)
    return x


def expected(workflow: str, args: list[Any]) -> Any:
    """What a run of ``workflow`` with ``args`` returns (for soak-approval: None, the
    payload decides)."""
    match workflow:
        case "soak-chain":
            steps, seed = args
            return 2 * (seed + steps + 10 + 1)
        case "soak-sleeper":
            return args[1] + 2
        case "soak-queued":
            return 2 * (args[0] + 1) + 1
        case "soak-long":
            return args[0]
    return None
