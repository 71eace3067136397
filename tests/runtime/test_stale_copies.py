"""A worker never drives two copies of one run.

A worker taken for dead (its heartbeat late past the lease, a database outage) has its
runs released by whoever reaps it; the same worker may then claim one of them back
before it hears that it was reaped. Writes are fenced by the worker's id, so the copy it
still held in memory and the copy the claim starts would both be accepted: the soak
(RELIABILITY.md) saw a step run twice in one process that way. A claim of a run the
worker still holds drops the stale copy first.
"""

from __future__ import annotations

from pathlib import Path

import perdure
from conftest import EngineFactory
from helpers import fake_clock, wait_for_event
from perdure import EventType, step, workflow
from perdure.testing import FakeClock

EFFECTS: list[str] = []


@step
async def note(what: str) -> str:
    EFFECTS.append(what)
    return what


@workflow
async def note_sleep_note(tag: str) -> list[str]:
    first = await note(f"{tag}:before")
    await perdure.sleep("1h")
    second = await note(f"{tag}:after")
    return [first, second]


async def test_a_claim_of_a_run_still_held_drops_the_stale_copy(
    make_engine: EngineFactory, tmp_path: Path
) -> None:
    """The run's steps after the sleep run once, though a second copy was begun."""
    tag = tmp_path.name
    async with make_engine(clock=FakeClock(autojump=False)) as engine:
        run = await engine.start(note_sleep_note, tag)
        await wait_for_event(engine, run, EventType.SLEEP_STARTED)
        worker = engine.worker
        assert worker is not None
        record = await run.refresh()

        # What a claim does when the store hands back a run this worker still holds.
        worker._adopt(record)
        await wait_for_event(engine, run, EventType.SLEEP_STARTED)  # the replay is done
        fake_clock(engine).advance("1h")

        assert [f"{tag}:before", f"{tag}:after"] == await run.result(timeout=10)
        events = await run.events()

    assert [f"{tag}:before", f"{tag}:after"] == [e for e in EFFECTS if e.startswith(tag)]
    assert 1 == sum(1 for e in events if e.type is EventType.SLEEP_COMPLETED)
