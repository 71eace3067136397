"""Workers record what they define, and runs no live worker can take are blocked (issue 12).

On every store: an Engine's worker is listed by `Engine.list_workers` with the
workflows (and versions) this process defines; a run whose workflow no live worker
defines is blocked with that as its reason (`perdure._runtime._orphans`), and a worker
that defines it later tries it again by itself; a poison run (its recoveries at
``poison_after``) is blocked when claimed instead of run. The real processes a poison
run kills are in ``runtime/test_poison_runs.py``.
"""

from __future__ import annotations

import os
import socket
import uuid
from datetime import timedelta

import pytest

from conftest import EngineFactory
from helpers import wait_until
from perdure import Engine, RunStatus, workflow
from perdure._records import NewRun
from perdure._runtime._orphans import block_stranded, poison_reason

TIMEOUT = 10.0


@workflow(name="registry-listed", version="r7")
async def listed(x: int) -> int:
    """Defined by this process, under a version label of its own."""
    return x + 1


async def test_a_worker_is_listed_with_the_workflows_it_defines(engine: Engine) -> None:
    """list_workers shows this Engine's worker: host, pid, each workflow's version."""
    assert engine.worker is not None
    (me,) = [w for w in await engine.list_workers() if w.id == engine.worker.id]
    assert (me.host, me.pid) == (socket.gethostname(), os.getpid())
    assert me.workflows["registry-listed"] == "r7"
    assert "registry-gone" not in me.workflows


async def test_a_worker_that_left_is_not_listed(make_engine: EngineFactory) -> None:
    """Leaving the Engine unregisters its worker; a watcher no longer lists it."""
    async with make_engine(worker=False) as watcher:
        async with make_engine() as working:
            assert working.worker is not None
            gone = working.worker.id
            assert gone in [w.id for w in await watcher.list_workers()]
        assert gone not in [w.id for w in await watcher.list_workers()]


async def test_a_run_no_live_worker_defines_is_blocked_and_tried_again(engine: Engine) -> None:
    """A run of a workflow nobody defines, due for longer than orphan_after, is blocked
    naming it; once the workflow is defined, a worker tries it again by itself."""
    name = f"registry-gone-{uuid.uuid4().hex[:8]}"  # defined below, in this test only
    now = engine.clock.now()
    await engine.store.create_run(NewRun("stranded", name, {"x": 1}), now)
    await engine.store.create_run(NewRun("fresh", name, {"x": 2}), now + timedelta(seconds=20))
    later = now + timedelta(seconds=31)  # "fresh" is due for 11 s only: left to a deploy
    assert await block_stranded(engine.store, "w-test", later, timedelta(seconds=30)) == 1
    record = (await engine.get_run("stranded")).record
    assert record.status is RunStatus.BLOCKED
    assert record.blocked_reason is not None
    assert f"no live worker defines workflow {name!r}" in record.blocked_reason
    fresh = (await engine.get_run("fresh")).record
    assert (fresh.status, fresh.owner) == (RunStatus.PENDING, None)

    async def back(x: int) -> int:
        return x * 10

    workflow(name=name, version="g2")(back)

    async def ended() -> bool:
        run = (await engine.get_run("stranded")).record
        return run.status is RunStatus.COMPLETED

    assert await wait_until(engine, ended, TIMEOUT)
    assert await (await engine.get_run("stranded")).result() == 10


async def test_a_poison_run_is_blocked_when_claimed(
    make_engine: EngineFactory, store_kind: str
) -> None:
    """A claimed run whose recoveries reached poison_after is blocked with that reason,
    and its workflow does not run."""
    if store_kind == "memory":
        pytest.skip("a memory store's workers live in its process: none can die alone")
    async with make_engine(worker=False) as watcher:
        store, now = watcher.store, watcher.clock.now()
        await store.create_run(NewRun("poisoned", "registry-listed", {"x": 1}), now)
        for n in range(3):  # three workers claim it, and are found dead
            await store.register_worker(f"dead-{n}", now)
            await store.claim_runs(f"dead-{n}", now, 1, workflows=["registry-listed"])
            now += timedelta(hours=1)
            await store.register_worker("reaper", now)
            assert await store.reap_dead_workers("reaper", now) == 1
            await store.unregister_worker("reaper", now)
        record = await store.get_run("poisoned")
        assert record is not None
        assert record.recoveries == 3
    async with make_engine(poison_after=3) as engine:

        async def blocked() -> str | None:
            run = (await engine.get_run("poisoned")).record
            return run.blocked_reason if run.status is RunStatus.BLOCKED else None

        assert await wait_until(engine, blocked, TIMEOUT) == poison_reason(3)
        events = await (await engine.get_run("poisoned")).events()
        assert "run_started" not in [e.type.value for e in events]


def test_poison_after_must_be_a_whole_number_of_at_least_one() -> None:
    """A bad poison_after is refused when the Engine is made, naming the option."""
    for bad in (0, -1, 2.5, True, "5"):
        with pytest.raises(ValueError, match="poison_after"):
            Engine("memory://", poison_after=bad)  # type: ignore[arg-type]
