"""Child runs in view: the HTTP run detail, the runs filter, the timeline, and the CLI.

A parent with two children (one completed, one waiting on a hook) on each store; the
HTTP API answers through `httpx.ASGITransport`, and ``perdure show`` runs as a real
subprocess on SQLite.
"""

from __future__ import annotations

import asyncio
import json
import re
import subprocess
import sys
from typing import TYPE_CHECKING

import httpx
import pytest

import perdure
from helpers import wait_for_hook, wait_until
from perdure import Engine, define_hook, step, workflow
from perdure.http import create_app

if TYPE_CHECKING:
    from pathlib import Path

    from conftest import EngineFactory

waits = define_hook(str, name="views-children")


@step
async def shout(word: str) -> str:
    """The word, louder."""
    return word.upper()


@workflow(name="children-views-quick-child")
async def quick_child(word: str) -> str:
    """A child that ends at once."""
    return await shout(word)


@workflow(name="children-views-waiting-child")
async def waiting_child(token: str) -> str:
    """A child that waits on a hook."""
    return await waits.create(token=token)


@workflow(name="children-views-viewed-parent")
async def viewed_parent(token: str) -> list[str]:
    """Two children: one done at once, one waiting on a hook."""
    first = await quick_child("hi")
    pending = await perdure.start_child(waiting_child, token)
    return [first, await pending.result()]


async def _started(engine: Engine, token: str) -> tuple[str, str, str]:
    """The parent, its quick child and its waiting child, once the latter waits."""
    run = await engine.start(viewed_parent, token)
    await wait_for_hook(engine, token)

    async def both() -> list[perdure.Run[object]] | None:
        found = await engine.list_runs(parent_id=run.id)
        return found if len(found) == 2 else None

    children = {child.workflow: child.id for child in await wait_until(engine, both)}
    return run.id, children[quick_child.name], children[waiting_child.name]


async def test_the_run_detail_and_list_carry_parent_root_and_children(engine: Engine) -> None:
    """GET /runs/{id} names a parent's children with their status, and a child's parent
    and root; GET /runs?parent_id= lists the children; the timeline links child rows."""
    parent, quick, pending = await _started(engine, "view-1")
    app = create_app(engine, token=None)
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://localhost"
    ) as http:
        detail = (await http.get(f"/runs/{parent}")).json()
        assert (detail["parent_id"], detail["root_id"]) == (None, None)
        assert {(c["id"], c["status"]) for c in detail["children"]} == {
            (quick, "completed"),
            (pending, "running"),
        }
        child = (await http.get(f"/runs/{pending}")).json()
        assert (child["parent_id"], child["root_id"], child["children"]) == (parent, parent, [])
        listed = (await http.get("/runs", params={"parent_id": parent})).json()["runs"]
        assert {run["id"] for run in listed} == {quick, pending}
        assert all(run["parent_id"] == parent for run in listed)
        timeline = (await http.get(f"/runs/{parent}/timeline")).json()
        rows = [(s["kind"], s["run_id"], s["outcome"]) for s in timeline["spans"]]
        assert rows == [("child", quick, "completed"), ("child", pending, "running")]
    await waits.resume("view-1", "there")
    run = await engine.get_run(parent)
    assert await run.result(timeout=30) == ["HI", "there"]


@pytest.mark.slow
@pytest.mark.parametrize("store_kind", ["sqlite"])
async def test_perdure_show_prints_children_and_parent(
    make_engine: EngineFactory, tmp_path: Path
) -> None:
    """``perdure show`` of a parent lists its children with their status; of a child, its
    parent; ``--json`` carries both; ``perdure runs --parent`` lists the children."""
    url = f"sqlite:///{tmp_path}/t.db"
    async with make_engine() as engine:
        parent, quick, pending = await _started(engine, "view-2")
    shown = await _cli(url, "show", parent)
    assert "children (2)" in shown
    lines = [line for line in shown.splitlines() if quick in line or pending in line]
    assert any(quick in line and "completed" in line for line in lines), shown
    assert any(pending in line and "running" in line for line in lines), shown
    child_shown = await _cli(url, "show", pending)
    assert re.search(rf"^parent\s+{parent}\s*$", child_shown, re.MULTILINE), child_shown
    as_json = json.loads(await _cli(url, "show", parent, "--json"))
    assert {(c["id"], c["status"]) for c in as_json["children"]} == {
        (quick, "completed"),
        (pending, "running"),
    }
    child_json = json.loads(await _cli(url, "show", pending, "--json"))
    assert (child_json["parent_id"], child_json["root_id"]) == (parent, parent)
    listed = json.loads(await _cli(url, "runs", "--parent", parent, "--json"))
    assert {(run["id"], run["parent_id"]) for run in listed} == {(quick, parent), (pending, parent)}
    assert json.loads(await _cli(url, "runs", "--parent", quick, "--json")) == []


async def _cli(url: str, *args: str) -> str:
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "perdure",
        *args,
        "--database-url",
        url,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env={"NO_COLOR": "1", "COLUMNS": "200", "PATH": ""},
    )
    async with asyncio.timeout(30):
        out, err = await proc.communicate()
    assert proc.returncode == 0, err.decode()
    return out.decode()
