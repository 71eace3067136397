"""Temporal's workflows and activities for `workloads_temporal.py`, in a module of their own.

Temporal's Python SDK runs workflow code in a sandbox that imports the workflow's
module afresh; a script run as ``__main__`` cannot be imported that way, so the
definitions live here. This module imports only the standard library and
``temporalio``, which the sandbox lets through.

Every step of the other libraries is an activity here (`workflow.execute_activity`,
Temporal's unit of work that is retried and whose result is recorded), unless a
workflow is asked for local activities (`workflow.execute_local_activity`: run in
the worker that runs the workflow, their results recorded with the workflow task's
completion), which is closer to what a step is in perdure and DBOS.
"""

from __future__ import annotations

import asyncio
import os
import time
from datetime import timedelta
from typing import Any

from temporalio import activity, workflow

STEP_TIMEOUT = timedelta(seconds=60)
"""start_to_close_timeout of a trivial activity: Temporal requires one; none is reached."""


class Counter:
    """Counts activity starts in this process, and notes the first and the last."""

    def __init__(self) -> None:
        self.count = 0
        self.target = -1
        self.first_at = 0.0
        self.last_at = 0.0
        self.reached = asyncio.Event()

    def hit(self) -> None:
        self.count += 1
        self.last_at = time.time()
        if self.count == 1:
            self.first_at = self.last_at
        if self.count == self.target:
            self.reached.set()


STARTED = Counter()
"""Attempts of `hang` that began in this process (workload f)."""


# -- activities ----------------------------------------------------------------------


@activity.defn(name="noop")
async def noop(i: int) -> int:
    """An activity that does nothing: all that is measured is the library's own cost."""
    return i


@activity.defn(name="clock")
async def clock(i: int) -> float:
    """A trivial activity that says when it ran (this process's perf_counter)."""
    del i
    return time.perf_counter()


@activity.defn(name="stamp")
async def stamp(round_: int) -> float:
    """The wall time this activity began."""
    del round_
    return time.time()


@activity.defn(name="hang")
async def hang(i: int) -> int:
    """In the process to be killed, never return (heartbeating, as a long activity
    should, so that its worker's death is seen); after recovery, return at once."""
    STARTED.hit()
    while os.environ.get("BENCH_PHASE") == "load":
        activity.heartbeat()
        await asyncio.sleep(1.0)
    return i


ACTIVITIES = [noop, clock, stamp, hang]


async def step(fn: Any, arg: int, *, local: bool = False) -> Any:
    """Run one trivial activity, remote (the default) or local."""
    if local:
        return await workflow.execute_local_activity(fn, arg, start_to_close_timeout=STEP_TIMEOUT)
    return await workflow.execute_activity(fn, arg, start_to_close_timeout=STEP_TIMEOUT)


# -- workflows -----------------------------------------------------------------------


@workflow.defn(name="sequential")
class Sequential:
    """N trivial activities, one after the other."""

    @workflow.run
    async def run(self, n: int, local: bool) -> int:
        total = 0
        for i in range(n):
            total += await step(noop, i, local=local)
        return total


@workflow.defn(name="timed-sequential")
class TimedSequential:
    """N trivial activities, one after the other; when each of them ran."""

    @workflow.run
    async def run(self, n: int, local: bool) -> list[float]:
        return [await step(clock, i, local=local) for i in range(n)]


@workflow.defn(name="one-step")
class OneStep:
    """One trivial activity."""

    @workflow.run
    async def run(self, i: int) -> int:
        return int(await step(noop, i))


@workflow.defn(name="waiter")
class Waiter:
    """Announce round i (a query answers it), wait for signal i, then stamp the time."""

    def __init__(self) -> None:
        self.round = -1
        self.pings = 0

    @workflow.signal(name="ping")
    def ping(self, i: int) -> None:
        """One more round may go on."""
        del i
        self.pings += 1

    @workflow.query(name="round")
    def current_round(self) -> int:
        """The round the workflow waits in."""
        return self.round

    @workflow.run
    async def run(self, rounds: int) -> list[float]:
        stamps = []
        for i in range(rounds):
            self.round = i
            await workflow.wait_condition(lambda: self.pings > self.round)
            stamps.append(await step(stamp, i))
        return stamps


@workflow.defn(name="sleeper")
class Sleeper:
    """Sleep ``times`` times; how late each woke after the call, then after its deadline.

    Reads the wall clock in workflow code, which the sandbox forbids unless told (a
    replay would read it again); no run here is replayed.
    """

    @workflow.run
    async def run(self, seconds: float, times: int) -> list[float]:
        late, late_deadline = [], []
        for _ in range(times):
            with workflow.unsafe.sandbox_unrestricted():
                before = time.time()
            # The timer's deadline counts from the workflow task's time, which may be a
            # little before the call (as perdure's workflow clock).
            deadline = workflow.now().timestamp() + seconds
            await asyncio.sleep(seconds)  # a durable timer in a workflow
            with workflow.unsafe.sandbox_unrestricted():
                after = time.time()
            late.append(after - before - seconds)
            late_deadline.append(after - deadline)
        return late + late_deadline


@workflow.defn(name="recoverable")
class Recoverable:
    """One activity that the first process never finishes.

    Temporal learns that an activity's worker died only when a timeout of the activity
    passes: here its heartbeat timeout, ``timeout_s`` after the last heartbeat the
    server received (the SDK sends them at most every 0.8 x that timeout), as a lease;
    a start-to-close timeout would count from the attempt's start, so runs started
    early in a long load would time out before their worker is killed. Then it retries
    the activity after the default retry policy's first interval (1 s).
    """

    @workflow.run
    async def run(self, i: int, timeout_s: float) -> int:
        return int(
            await workflow.execute_activity(
                hang,
                i,
                start_to_close_timeout=timedelta(hours=1),
                heartbeat_timeout=timedelta(seconds=timeout_s),
            )
        )


@workflow.defn(name="fan-child")
class FanChild:
    """A child workflow of one trivial activity."""

    @workflow.run
    async def run(self, i: int) -> int:
        return int(await step(noop, i))


@workflow.defn(name="fan-out")
class FanOut:
    """N child workflows started at once (gathered), and the sum of their results."""

    @workflow.run
    async def run(self, n: int) -> int:
        results = await asyncio.gather(
            *(workflow.execute_child_workflow(FanChild.run, i) for i in range(n))
        )
        return sum(results)


WORKFLOWS = [Sequential, TimedSequential, OneStep, Waiter, Sleeper, Recoverable, FanChild, FanOut]
