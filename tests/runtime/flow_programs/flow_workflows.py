"""The workflows the flow-control process tests (test_flow_cluster.py) run in workers.

Each step appends ``KIND KEY N PID MONOTONIC_NS`` lines to ``$FLOW_DIR/effects.log``
as it enters and as it leaves (one ``write`` of one line each, which appends whole
lines whatever the processes doing it at once), on the clock every process of the
machine shares, so the test can tell how many attempts overlapped.
"""

from __future__ import annotations

import asyncio
import os
import time
from pathlib import Path

from perdure import Limit, step, workflow

LOG = Path(os.environ.get("FLOW_DIR", ".")) / "effects.log"
HOLD = float(os.environ.get("FLOW_HOLD", "0.3"))


def note(kind: str, key: str, n: int) -> None:
    """Append one line to the effects log."""
    line = f"{kind} {key} {n} {os.getpid()} {time.monotonic_ns()}\n"
    fd = os.open(LOG, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, line.encode())
    finally:
        os.close(fd)


@step
async def cluster_hold_slot(customer: str, n: int) -> int:
    """Takes a while, between an enter and an exit line."""
    note("enter", customer, n)
    await asyncio.sleep(HOLD)
    note("exit", customer, n)
    return n


@workflow(concurrency=Limit(2, key="customer"))
async def cluster_per_customer(customer: str, n: int) -> int:
    """At most two runs per customer at once."""
    return await cluster_hold_slot(customer, n)


@step(concurrency=2)
async def cluster_scarce(n: int) -> int:
    """At most two attempts at once across all workers."""
    note("enter", "scarce", n)
    await asyncio.sleep(HOLD / 3)
    note("exit", "scarce", n)
    return n


@step
async def cluster_warm_up(n: int) -> int:
    """Holds its worker's one step slot a moment: the burst spreads over the workers."""
    await asyncio.sleep(HOLD)
    return n


@workflow
async def cluster_uses_scarce(n: int) -> int:
    """A step of the worker's own, then one scarce step."""
    return await cluster_scarce(await cluster_warm_up(n))


@step(rate="3/s")
async def cluster_rated(n: int) -> int:
    """At most three starts per second across all workers."""
    note("start", "rated", n)
    return n


@workflow
async def cluster_uses_rated(n: int) -> int:
    """One cluster_rated step."""
    return await cluster_rated(n)
