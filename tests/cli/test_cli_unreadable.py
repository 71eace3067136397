"""``perdure runs`` lists a run whose row cannot be read, flagged; ``perdure show`` names
what is wrong in one line (issue 11). Real ``perdure`` subprocesses, on SQLite and
PostgreSQL, the rows damaged with SQL through the store's own connection.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass
from typing import TYPE_CHECKING

import pytest

from helpers import damage, unreadable
from perdure import step, workflow
from perdure.stores import PostgresStore, SQLiteStore

if TYPE_CHECKING:
    from conftest import EngineFactory
    from perdure.stores import Store

pytestmark = [pytest.mark.slow, pytest.mark.parametrize("store_kind", ["sqlite", "postgres"])]

DEADLINE = 15.0
"""Seconds a command may take before the test fails."""


@workflow(name="cli-unreadable-noop")
async def noop(name: str) -> str:
    """A run that is never run here: the Engine has no worker."""
    return name


@step(name="cli-unreadable-double")
async def double(n: int) -> int:
    """A step whose row the test damages."""
    return 2 * n


@workflow(name="cli-unreadable-steps")
async def two_steps(n: int) -> int:
    """Two step rows: the first is damaged, the second stays readable."""
    return await double(n) + await double(n + 1)


@dataclass
class Result:
    code: int
    out: str
    err: str


def cli(url: str, *args: str) -> Result:
    """Run ``perdure ARGS --database-url URL`` in a subprocess and wait for it."""
    env = {k: v for k, v in os.environ.items() if k not in {"PERDURE_DATABASE_URL", "COLUMNS"}}
    done = subprocess.run(
        [sys.executable, "-m", "perdure", *args, "--database-url", url],
        capture_output=True,
        timeout=DEADLINE,
        env=env | {"NO_COLOR": "1"},
        check=False,
    )
    return Result(done.returncode, done.stdout.decode(), done.stderr.decode())


def url_of(store: Store) -> str:
    if isinstance(store, SQLiteStore):
        return f"sqlite:///{store.path}"
    assert isinstance(store, PostgresStore)
    return store.url


async def test_runs_lists_a_damaged_row_flagged_and_show_names_it(
    make_engine: EngineFactory,
) -> None:
    """No traceback: the list flags the run, ``show`` exits 1 with one line naming it."""
    async with make_engine(worker=False) as engine:
        await engine.start(noop, "fine", run_id="fine")
        await engine.start(noop, "newer", run_id="newer")
        await damage(engine.store, "UPDATE runs SET status = 'paused' WHERE id = 'newer'")
        url = url_of(engine.store)

    table = cli(url, "runs")
    assert table.code == 0, table
    assert "Traceback" not in table.err
    assert "fine" in table.out
    assert "newer" in table.out
    assert "unreadable" in table.out
    assert "run newer: status 'paused' is not a run status" in table.err, table

    listed = cli(url, "runs", "--json")
    assert listed.code == 0, listed
    runs = {run["id"]: run for run in json.loads(listed.out)}
    assert runs["fine"]["malformed"] is None
    assert runs["newer"]["status"] == "unreadable"
    assert "'paused'" in runs["newer"]["malformed"]

    shown = cli(url, "show", "newer")
    assert shown.code == 1, shown
    assert shown.err.startswith("error: runs row 'newer' cannot be read: status 'paused'"), shown
    assert shown.err.count("\n") == 1, shown
    assert cli(url, "show", "fine").code == 0


async def test_show_names_an_event_it_cannot_read(make_engine: EngineFactory) -> None:
    """``perdure show`` and ``perdure events`` name the unreadable event, in one line."""
    async with make_engine(worker=False) as engine:
        await engine.start(noop, "r1", run_id="r1")
        await damage(
            engine.store, "UPDATE events SET type = 'run_paused' WHERE run_id = 'r1' AND seq = 1"
        )
        url = url_of(engine.store)
    for command in ("show", "events"):
        result = cli(url, command, "r1")
        assert result.code == 1, result
        assert result.err.startswith("error: run 'r1', event #1 (run_paused)"), result
        assert result.err.count("\n") == 1, result


async def test_show_flags_a_damaged_step_row(make_engine: EngineFactory) -> None:
    """A step row that cannot be read (its output not JSON Python reads) leaves ``show``
    whole: the timeline from the log, one line naming the row and column, and ``--json``
    with that step flagged in ``malformed``; the other step reads as before."""
    async with make_engine() as engine:
        run = await engine.start(two_steps, 1, run_id="r1")
        assert await run.result(timeout=10) == 6
        await damage(
            engine.store,
            "UPDATE steps SET output = ? WHERE run_id = 'r1' AND correlation_id = ?",
            unreadable(engine.store),
            "cli-unreadable-double#1",
        )
        url = url_of(engine.store)

    shown = cli(url, "show", "r1")
    assert shown.code == 0, shown
    assert "Traceback" not in shown.err
    assert "completed" in shown.out
    lines = [line for line in shown.err.splitlines() if line.startswith("unreadable:")]
    assert len(lines) == 1, shown
    assert lines[0].startswith("unreadable: step cli-unreadable-double#1's row: output is"), shown

    as_json = cli(url, "show", "r1", "--json")
    assert as_json.code == 0, as_json
    steps = {row["correlation_id"]: row for row in json.loads(as_json.out)["steps"]}
    damaged, fine = steps["cli-unreadable-double#1"], steps["cli-unreadable-double#2"]
    assert damaged["malformed"].startswith("output is"), damaged
    assert damaged["output"] is None
    assert (damaged["name"], damaged["status"]) == ("cli-unreadable-double", "completed")
    assert (fine["malformed"], fine["output"]) == (None, 4)
