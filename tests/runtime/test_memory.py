"""What a sleeping run costs the worker holding it (a hundred thousand must fit in 300 MB)."""

from __future__ import annotations

from helpers import run_fresh_python

BUDGET = 2_500
"""Bytes of objects a sleeping run may hold of its own; it held 10,500 before issue 5."""

# In a process of its own: the tracing tests install a tracer provider in this one, and a
# run's span (some 3 KB) is not what this measures.
_MEASURE = """
import asyncio, gc, sys
import perdure
from perdure.testing import FakeClock, memory_engine

RUNS = 200

@perdure.workflow(name="memory-nap")
async def nap(i: int) -> int:
    await perdure.sleep("1h")
    return i

def new_bytes(roots, old):
    # The size of the objects reachable from roots without going through an old one.
    seen, total, todo = set(old), 0, list(roots)
    while todo:
        obj = todo.pop()
        if id(obj) in seen:
            continue
        seen.add(id(obj))
        total += sys.getsizeof(obj)
        todo.extend(gc.get_referents(obj))
    return total

async def main():
    async with memory_engine(clock=FakeClock(autojump=False), evict_after="2h") as engine:
        gc.collect()
        existing = gc.get_objects()  # kept alive: no new object may take an old one's id
        for i in range(RUNS):
            await engine.start(nap, i)
        async with asyncio.timeout(10):
            while engine.statistics().suspended_runs < RUNS:  # counted, not announced
                await asyncio.sleep(0.01)
        for _ in range(3):  # the callbacks of tasks that just ended run first
            await asyncio.sleep(0)
        gc.collect()
        actors = list(engine.worker._actors.values())
        print(new_bytes(actors, {id(o) for o in existing}) / RUNS)

asyncio.run(main())
"""


def test_a_sleeping_run_holds_little_memory_of_its_own() -> None:
    """A worker holding sleeping runs (tracing off) keeps at most BUDGET bytes of
    objects per run beyond what existed before them: the worker, the store, the clock
    and the workflow."""
    per_run = float(run_fresh_python(_MEASURE))

    assert per_run <= BUDGET
