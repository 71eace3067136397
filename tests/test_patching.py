"""`perdure.patched` and `perdure.deprecate_patch` on every store, across restarts and evictions.

One process holds one definition per workflow name, so the three versions of the
change live in one workflow that reads which version is "deployed" from ``CODE``: v1
reserves, waits for a go-ahead, then charges; v2 charges first behind
``patched("charge-first")``; v3 has dropped v1's branch and calls ``deprecate_patch``.
A new version is deployed between two Engines, as a restart would (the real thing, two
processes with two versions of a module, is in ``tests/test_deploying.py``).
"""

from __future__ import annotations

from typing import Any

import pytest

import perdure
from conftest import EngineFactory
from helpers import evicted, of_type, wait_for_hook, wait_until
from perdure import Engine, EventType, define_hook, step, workflow
from perdure._views import spans

CODE = {"version": 1}
ran: list[str] = []
go = define_hook(dict, name="patching-go")


@pytest.fixture(autouse=True)
def _reset() -> None:
    CODE["version"] = 1
    ran.clear()


@step(name="patching.reserve")
async def reserve(order: str) -> str:
    ran.append(f"reserve {order}")
    return f"reserved {order}"


@step(name="patching.charge")
async def charge(order: str) -> str:
    ran.append(f"charge {order}")
    return f"charged {order}"


@workflow(name="patching-checkout")
async def checkout(order: str) -> list[str]:
    if CODE["version"] == 1:
        first = await reserve(order)
        await go.create(token=f"go-{order}")
        return [first, await charge(order)]
    if CODE["version"] == 2:
        if perdure.patched("charge-first"):
            first = await charge(order)
            await go.create(token=f"go-{order}")
            return [first, await reserve(order)]
        first = await reserve(order)
        await go.create(token=f"go-{order}")
        return [first, await charge(order)]
    perdure.deprecate_patch("charge-first")
    first = await charge(order)
    await go.create(token=f"go-{order}")
    return [first, await reserve(order)]


async def markers(engine: Engine, run_id: str) -> list[str]:
    events = await (await engine.get_run(run_id)).events()
    return [e.data["patch"] for e in of_type(events, EventType.PATCH_MARKED)]


async def test_runs_before_and_after_a_patch_take_their_own_branches_across_restarts(
    make_engine: EngineFactory,
) -> None:
    async with make_engine() as engine:  # v1 deployed
        await engine.start(checkout, "old", run_id="old")
        await wait_for_hook(engine, "go-old")

    CODE["version"] = 2
    async with make_engine() as engine:  # v2: the old run is replayed on it
        await engine.start(checkout, "new", run_id="new")
        await wait_for_hook(engine, "go-new")
        await go.resume("go-old", {})
        old = await (await engine.get_run("old")).result(timeout=10)
        assert ["reserved old", "charged old"] == old
        assert [] == await markers(engine, "old")

    CODE["version"] = 3
    async with make_engine() as engine:  # v3: the new run recorded the patch, replays
        await go.resume("go-new", {})
        new = await (await engine.get_run("new")).result(timeout=10)
        assert ["charged new", "reserved new"] == new
        assert ["charge-first"] == await markers(engine, "new")
        started = await engine.start(checkout, "v3", run_id="v3")
        await wait_for_hook(engine, "go-v3")
        await go.resume("go-v3", {})
        assert ["charged v3", "reserved v3"] == await started.result(timeout=10)
        assert [] == await markers(engine, "v3")  # a deprecated patch records nothing

    # Each step ran once per run: replays ran none of them again.
    assert sorted(ran) == sorted(
        ["reserve old", "charge old", "charge new", "reserve new", "charge v3", "reserve v3"]
    )


async def test_a_patched_run_replayed_after_eviction_keeps_its_branch(
    make_engine: EngineFactory,
) -> None:
    CODE["version"] = 2
    async with make_engine(evict_after="1s") as engine:
        run = await engine.start(checkout, "ev", run_id="ev")
        await wait_for_hook(engine, "go-ev")
        await wait_until(engine, lambda: _positive(evicted(engine)))
        await go.resume("go-ev", {})
        assert ["charged ev", "reserved ev"] == await run.result(timeout=10)
        assert ["charge-first"] == await markers(engine, "ev")
        statistics = engine.statistics()
        assert statistics is not None
        assert statistics.replays >= 1
    assert ["charge ev", "reserve ev"] == ran


async def _positive(count: Any) -> bool:
    return bool(await count)


async def test_a_marker_shows_in_the_timeline(make_engine: EngineFactory) -> None:
    CODE["version"] = 2
    async with make_engine() as engine:
        run = await engine.start(checkout, "tl", run_id="tl")
        await wait_for_hook(engine, "go-tl")
        found = spans(await run.events())
    patch = next(span for span in found if span.kind == "patch")
    assert ("patch.charge-first#1", "charge-first", "marked") == (
        patch.call,
        patch.name,
        patch.outcome,
    )
    assert patch.start == patch.end
    assert ["patch", "step", "hook"] == [span.kind for span in found]
