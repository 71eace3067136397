"""Deploys under runs in flight (issue 12): blocked, never failed; unblocked by the fix.

Each code version runs in a real process of its own (one process holds one definition
per name), on a SQLite file and on a PostgreSQL database: ``crash_programs/`` holds the
versions (``changing_v1``..``v3``, ``buggy_v1``, ``buggy_v2``, ``buggy_v2_same_label``)
and `test_crash.Lab` starts them.
"""

from __future__ import annotations

import os
from collections import Counter
from typing import TYPE_CHECKING

import pytest

from perdure import Engine, EventType, RunStatus
from pg import fresh_database
from test_crash import Lab, eventually, wait_for_event

if TYPE_CHECKING:
    from collections.abc import AsyncIterator
    from pathlib import Path

DEADLINE = 30.0
"""Seconds to wait for a run's end: each test starts three or four Python processes."""


@pytest.fixture(params=["sqlite", "postgres"])
async def lab(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Lab]:
    """A Lab on a SQLite file or a fresh PostgreSQL database; its children killed at the end."""
    if request.param == "sqlite":
        async for made in _lab(tmp_path, f"sqlite:///{tmp_path}/deploys.db"):
            yield made
        return
    async with fresh_database() as url:
        async for made in _lab(tmp_path, url):
            yield made


async def _lab(tmp_path: Path, url: str) -> AsyncIterator[Lab]:
    env = {
        **os.environ,
        "PERDURE_DATABASE_URL": url,
        "CRASH_DIR": str(tmp_path),
        "PYTHONUNBUFFERED": "1",
    }
    made = Lab(tmp_path, url, env)
    try:
        yield made
    finally:
        for child in made.children:
            child.close()


async def status_of(engine: Engine, run_id: str, status: RunStatus) -> str:
    """Wait until the run has ``status``; its blocked_reason (or "")."""

    async def reached() -> str | None:
        record = await engine.store.get_run(run_id)  # None until the run is started
        if record is None or record.status is not status:
            return None
        return record.blocked_reason or "-"

    return await eventually(reached, f"run {run_id} to be {status.value}", DEADLINE)


async def start_on_v1_and_exit_mid_run(lab: Lab, engine: Engine) -> None:
    """Version 1 starts run c1, and its process dies while step charge#1 runs."""
    first = lab.worker("v1", "run", "changing_v1:changing", "c1", '["o-7"]')
    await wait_for_event(engine, "c1", EventType.STEP_STARTED, "charge#1")
    await lab.wait_effects(lambda seen: seen["charge"] == 1, "charge to begin")
    first.kill()
    lab.open_gate("charge")


async def test_a_compatible_deploy_continues_a_run_in_flight(lab: Lab) -> None:
    """A run begun on v1 continues on v3 (other source, the same durable calls) after v1's
    process exits mid-run: fetch is not run again."""
    async with lab.engine() as engine:
        await start_on_v1_and_exit_mid_run(lab, engine)
        lab.worker("v3", "worker", "changing_v3")
        run = await engine.get_run("c1")
        assert "charged item-o-7" == await run.result(timeout=DEADLINE)
        assert 1 == lab.effects()["fetch"]


async def test_an_incompatible_deploy_blocks_and_a_compatible_one_continues(lab: Lab) -> None:
    """v2 (refund instead of charge) blocks the v1 run, naming both sides and both
    versions; v3, compatible again, continues it with no command."""
    async with lab.engine() as engine:
        await start_on_v1_and_exit_mid_run(lab, engine)
        version_1 = (await engine.get_run("c1")).record.version
        second = lab.worker("v2", "worker", "changing_v2")
        reason = await status_of(engine, "c1", RunStatus.BLOCKED)
        assert "durable call #2 is step 'refund' (refund#1)" in reason
        assert "the log holds step 'charge' (charge#1," in reason
        assert f"started on code version {version_1}" in reason
        assert "this worker's code of workflow 'changing' is version" in reason
        record = (await engine.get_run("c1")).record
        assert (record.owner, record.error, record.completed_at) == (None, None, None)
        assert not lab.effects()["refund"]
        second.kill()

        lab.worker("v3", "worker", "changing_v3")
        run = await engine.get_run("c1")
        assert "charged item-o-7" == await run.result(timeout=DEADLINE)
        assert Counter({"fetch": 1, "charge": 2}) == lab.effects()  # charge#1 was in flight


async def test_a_bug_blocks_and_the_fix_completes_while_a_refusal_fails(lab: Lab) -> None:
    """v1's AttributeError blocks its run (a ValueError on purpose still fails its own);
    v2, the fix, completes the blocked run by itself."""
    async with lab.engine() as engine:
        first = lab.worker("b1", "run", "buggy_v1:buggy", "bug", '["o-1"]')
        reason = await status_of(engine, "bug", RunStatus.BLOCKED)
        assert "AttributeError" in reason
        assert "no_such_method" in reason
        first.kill()
        refusing = lab.worker("b1-refuse", "run", "buggy_v1:buggy", "refuse", '["refuse"]')
        assert (await refusing.line("failed refuse")).endswith("refused on purpose")
        assert RunStatus.FAILED == (await engine.get_run("refuse")).record.status
        refusing.kill()

        lab.worker("b2", "worker", "buggy_v2")
        run = await engine.get_run("bug")
        assert "refunded ITEM-O-1" == await run.result(timeout=DEADLINE)
        assert Counter({"fetch": 2, "refund": 1}) == lab.effects()  # a fetch per run, once


async def test_engine_unblock_tries_a_blocked_run_again_now(lab: Lab) -> None:
    """A fix deployed under the same version label does not retry by itself;
    engine.unblock does, and the run completes."""
    async with lab.engine() as engine:
        first = lab.worker("b1", "run", "buggy_v1:buggy", "bug", '["o-1"]')
        await status_of(engine, "bug", RunStatus.BLOCKED)
        first.kill()
        fixed = lab.worker("b1-fixed", "worker", "buggy_v2_same_label")
        await fixed.line("worker")
        assert RunStatus.BLOCKED == (await engine.get_run("bug")).record.status
        await engine.unblock("bug")
        run = await engine.get_run("bug")
        assert "refunded ITEM-O-1" == await run.result(timeout=DEADLINE)
