"""``perdure fork RUN --from-step ID`` (issue 12, item 4), run as a real subprocess."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

import cli_workflows as wf
from perdure import Engine, _log
from test_cli import DEADLINE, WORKFLOWS, acli

if TYPE_CHECKING:
    from pathlib import Path


@pytest.fixture
def url(tmp_path: Path) -> str:
    """A fresh database of this test's own."""
    return f"sqlite:///{tmp_path}/fork.db"


async def test_fork_prints_the_new_runs_id_and_the_fork_completes(url: str) -> None:
    """The new run replays the sleep, runs double#1 again, and names the original."""
    async with Engine(url) as engine:
        original = await engine.start(wf.double_it, 21)
        assert await original.result(timeout=DEADLINE) == 42

        result = await acli(url, "fork", original.id, "--from-step", "double#1", "-m", WORKFLOWS)

        assert result.code == 0, result
        new_id = result.out.strip()
        assert new_id not in {"", original.id}
        assert f"a fork of {original.id} from double#1" in result.err
        fork = await engine.get_run(new_id)
        assert await fork.result(timeout=DEADLINE) == 42
        first = (await engine.store.events(new_id))[0]
        assert _log.RunCreated.of(first).forked_from == original.id


async def test_fork_of_an_unknown_run_or_step_exits_2(url: str) -> None:
    """An unknown run id and a step id the log does not hold are wrong usage (exit 2);
    the message names the step ids the run's log holds."""
    async with Engine(url) as engine:
        original = await engine.start(wf.double_it, 1)
        await original.result(timeout=DEADLINE)

        unknown_run = await acli(url, "fork", "no-such-run", "--from-step", "double#1")
        unknown_step = await acli(url, "fork", original.id, "--from-step", "triple#1")

        assert unknown_run.code == 2, unknown_run
        assert "no-such-run" in unknown_run.err
        assert unknown_step.code == 2, unknown_step
        assert "sleep#1, double#1" in unknown_step.err
        assert len(await engine.list_runs()) == 1
