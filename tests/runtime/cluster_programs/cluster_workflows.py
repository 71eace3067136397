"""The workflows the cluster tests' worker processes run (imported, not collected).

``perdure worker cluster_workflows`` imports it (the test puts this folder on
``PYTHONPATH``): `chain`, of three steps, and `ticks`, of as many as it is told. Each
step appends ``RUN STEP PID`` to ``$CLUSTER_DIR/effects.log`` with one ``O_APPEND``
write as it begins, so the test counts how often each step of each run ran, and in
which process, across every worker. Per-test settings, from the
worker's environment:

- ``CLUSTER_STEP_SECONDS``: how long each step takes (default 0), so that kills and
  stops land on steps in flight;
- ``CLUSTER_GATED``: names of steps (comma-separated) that, after recording that they
  began, wait until the test creates ``$CLUSTER_DIR/gate-NAME`` or
  ``$CLUSTER_DIR/gate-NAME-ATTEMPT``. So the test holds runs mid-step, and can let one
  attempt of a step finish but not another.
"""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

from perdure import get_step_metadata, step, workflow


def _dir() -> Path:
    return Path(os.environ["CLUSTER_DIR"])


def record() -> None:
    """Append ``RUN STEP PID`` for the step attempt running now, in one write."""
    meta = get_step_metadata()
    cid = meta.step_id.removeprefix(f"{meta.run_id}:")
    fd = os.open(_dir() / "effects.log", os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, f"{meta.run_id} {cid} {os.getpid()}\n".encode())
    finally:
        os.close(fd)


async def behave(name: str) -> None:
    """Record the step, then take as long as this test's settings say."""
    record()
    if name in os.environ.get("CLUSTER_GATED", "").split(","):
        attempt = get_step_metadata().attempt
        gates = (_dir() / f"gate-{name}", _dir() / f"gate-{name}-{attempt}")
        while not any(gate.exists() for gate in gates):
            await asyncio.sleep(0.005)
    seconds = float(os.environ.get("CLUSTER_STEP_SECONDS") or 0)
    if seconds:
        await asyncio.sleep(seconds)


@step(name="first")
async def first(x: int) -> int:
    """Add 1."""
    await behave("first")
    return x + 1


@step(name="second")
async def second(x: int) -> int:
    """Double."""
    await behave("second")
    return x * 2


@step(name="third")
async def third(x: int) -> int:
    """Add 3."""
    await behave("third")
    return x + 3


@workflow(name="cluster-chain")
async def chain(x: int) -> int:
    """Three steps, one after the other: (x + 1) * 2 + 3."""
    return await third(await second(await first(x)))


def expected(x: int) -> int:
    """What `chain` returns for ``x``."""
    return (x + 1) * 2 + 3


@step(name="tick")
async def tick(x: int) -> int:
    """Add 1 (one of the many steps of `ticks`)."""
    await behave("tick")
    return x + 1


@workflow(name="cluster-ticks")
async def ticks(x: int, steps: int) -> int:
    """``steps`` steps, one after the other: x + steps."""
    for _ in range(steps):
        x = await tick(x)
    return x
