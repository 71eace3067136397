"""``perdure limits``, and why a pending run waits in ``perdure show`` and ``perdure runs``.

Real subprocesses on a real SQLite file; the runs are held by hand (a claim by a worker
id of the test's), so what the commands print is exactly what the store holds.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from typing import TYPE_CHECKING

import pytest

from perdure import Engine
from perdure._flow import RunFlow
from perdure._records import NewRun

if TYPE_CHECKING:
    from pathlib import Path

pytestmark = pytest.mark.slow

WORKFLOW = "flow-cli-unserved"
REASON = "waiting for a slot: customer=acme, 1 of 1 in use"


def perdure(url: str, *args: str) -> str:
    """``perdure ARGS --database-url URL``'s output; it must exit 0."""
    return _perdure(url, *args).stdout


def perdure_stderr(url: str, *args: str) -> str:
    """What ``perdure ARGS`` says on stderr (its notes); it must exit 0."""
    return _perdure(url, *args).stderr


def _perdure(url: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in {"PERDURE_DATABASE_URL", "COLUMNS"}}
    done = subprocess.run(
        [sys.executable, "-m", "perdure", *args, "--database-url", url],
        capture_output=True,
        text=True,
        timeout=60,
        env={**env, "NO_COLOR": "1", "COLUMNS": "200"},
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return done


async def test_limits_show_and_runs_say_why_a_run_waits(tmp_path: Path) -> None:
    """The key's use in ``limits``; the reason in ``show`` and ``runs``, text and JSON."""
    url = f"sqlite:///{tmp_path}/limits.db"
    async with Engine(url, worker=False) as engine:
        store, now = engine.store, engine.clock.now()
        flow = RunFlow(limit_key=f"{WORKFLOW}:customer=acme", limit_n=1)
        await store.create_flow_run(NewRun("run-1", WORKFLOW, {}), flow, now)
        await store.create_flow_run(NewRun("run-2", WORKFLOW, {}), flow, now)
        await store.claim_runs("test-worker", now, 10, workflows=[WORKFLOW])

    assert json.loads(perdure(url, "limits", "--json")) == [
        {
            "kind": "workflow",
            "key": f"{WORKFLOW}:customer=acme",
            "limit": 1,
            "in_use": 1,
            "waiting": 1,
            "period": None,
        }
    ]
    table = perdure(url, "limits")
    assert f"{WORKFLOW}:customer=acme" in table
    assert "1 of 1" in table
    assert json.loads(perdure(url, "show", "run-2", "--json"))["waiting_for"] == REASON
    assert json.loads(perdure(url, "show", "run-1", "--json"))["waiting_for"] is None
    assert REASON in perdure(url, "show", "run-2")
    listed = {run["id"]: run for run in json.loads(perdure(url, "runs", "--json"))}
    assert listed["run-2"]["waiting_for"] == REASON
    assert f"run run-2: {REASON}" in " ".join(perdure_stderr(url, "runs").split())
