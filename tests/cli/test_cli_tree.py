"""``perdure runs --tree``: the top-level runs, each followed by its child runs,
indented, to any depth (issue 13's run tree, as the dashboard's Tree view shows it).
A real ``perdure`` subprocess on a SQLite file."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from typing import TYPE_CHECKING

import pytest

from perdure import Engine, step, workflow

if TYPE_CHECKING:
    from pathlib import Path

pytestmark = pytest.mark.slow


@step(name="cli-tree-wrap")
async def wrap(item: str) -> str:
    """The item, wrapped."""
    return f"[{item}]"


@workflow(name="cli-tree-leaf")
async def leaf(item: str) -> str:
    """The bottom of the tree."""
    return await wrap(item)


@workflow(name="cli-tree-branch")
async def branch(item: str) -> str:
    """The middle: one leaf child."""
    return await leaf(item)


@workflow(name="cli-tree-top")
async def top(items: list[str]) -> list[str]:
    """The top: a branch child per item, so the tree is three levels deep."""
    return [await branch(item) for item in items]


def cli(url: str, *args: str) -> str:
    """``perdure ARGS --database-url URL``'s output; the test fails if it fails."""
    env = {k: v for k, v in os.environ.items() if k not in {"PERDURE_DATABASE_URL", "COLUMNS"}}
    done = subprocess.run(
        [sys.executable, "-m", "perdure", *args, "--database-url", url],
        capture_output=True,
        timeout=30,
        env=env | {"NO_COLOR": "1", "COLUMNS": "200"},
        check=False,
    )
    assert done.returncode == 0, done.stderr.decode()
    return done.stdout.decode()


async def test_runs_tree_prints_every_level_indented(tmp_path: Path) -> None:
    """The tree lists the top-level run only at the top, each child right under its
    parent one level deeper (oldest first), in the table and nested in --json; with
    --parent, that run's children are the top."""
    url = f"sqlite:///{tmp_path}/t.db"
    async with Engine(url) as engine:
        run = await engine.start(top, ["a", "b"], run_id="tree-1")
        assert await run.result(timeout=10) == ["[a]", "[b]"]
        branches = sorted(
            await engine.list_runs(parent_id=run.id), key=lambda r: (r.record.created_at, r.id)
        )
        leaves = [(await engine.list_runs(parent_id=b.id))[0] for b in branches]
    shown = cli(url, "runs", "--tree")
    ids = [line.split()[0:2] for line in shown.splitlines() if "cli-tree-" in line]
    assert ids == [
        ["tree-1", "cli-tree-top"],
        ["└", branches[0].id],
        ["└", leaves[0].id],
        ["└", branches[1].id],
        ["└", leaves[1].id],
    ], shown
    depth = {line.split("└")[0].count(" ") for line in shown.splitlines() if "└" in line}
    assert depth == {0, 2}, shown  # a grandchild is indented further than a child
    flat = cli(url, "runs")
    assert "└" not in flat
    assert sum("cli-tree-" in line for line in flat.splitlines()) == 5
    nested = json.loads(cli(url, "runs", "--tree", "--json"))
    assert [r["id"] for r in nested] == ["tree-1"]
    assert [b["id"] for b in nested[0]["children"]] == [b.id for b in branches]
    assert [[c["id"] for c in b["children"]] for b in nested[0]["children"]] == [
        [leaf.id] for leaf in leaves
    ]
    assert nested[0]["children"][0]["children"][0]["children"] == []
    under = json.loads(cli(url, "runs", "--tree", "--parent", "tree-1", "--json"))
    assert sorted(b["id"] for b in under) == sorted(b.id for b in branches)
    assert all(len(b["children"]) == 1 for b in under)
