"""Blocked runs in view (issue 12): ``perdure runs --status blocked``, ``perdure show``,
``perdure unblock``, and the HTTP API's status filter and ``POST /runs/{id}/unblock``."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

import httpx
import pytest

from perdure import Engine, RunStatus, workflow
from perdure.http import create_app
from test_cli import DEADLINE, acli

if TYPE_CHECKING:
    from pathlib import Path

bug: list[bool] = [True]


@pytest.fixture
def url(tmp_path: Path) -> str:
    """A fresh database of this test's own."""
    return f"sqlite:///{tmp_path}/blocked.db"


@workflow(name="cli-blocked-bug")
async def has_a_bug(x: int) -> int:
    """An AttributeError while ``bug`` holds True: the run blocks."""
    if bug[0]:
        return x.nope  # type: ignore[attr-defined,no-any-return]
    return x + 1


async def blocked_run(engine: Engine) -> str:
    bug[0] = True
    run = await engine.start(has_a_bug, 1)
    async with asyncio.timeout(DEADLINE):
        while await run.status() is not RunStatus.BLOCKED:
            await asyncio.sleep(0.01)
    return run.id


async def test_blocked_runs_are_listed_shown_and_unblocked(url: str) -> None:
    """runs --status blocked lists it; show prints its reason; unblock tries it again,
    exits 1 for a run that is not blocked and 2 for an unknown id."""
    async with Engine(url) as engine:
        run_id = await blocked_run(engine)
        listed = await acli(url, "runs", "--status", "blocked", "--json")
        assert listed.code == 0, listed
        rows: Any = listed.json()
        assert [(r["id"], r["status"]) for r in rows] == [(run_id, "blocked")]
        assert "AttributeError" in rows[0]["blocked_reason"]
        shown = await acli(url, "show", run_id)
        assert shown.code == 0, shown
        assert "blocked" in shown.out
        assert "AttributeError" in shown.out
        assert (await acli(url, "runs", "--status", "blocked")).code == 0

        bug[0] = False
        unblocked = await acli(url, "unblock", run_id)
        assert unblocked.code == 0, unblocked
        assert await (await engine.get_run(run_id)).result(timeout=DEADLINE) == 2
        again = await acli(url, "unblock", run_id)
        assert again.code == 1, again
        assert "not blocked" in again.err
        assert (await acli(url, "unblock", "nope")).code == 2


async def test_the_http_api_filters_and_unblocks_blocked_runs(url: str) -> None:
    """GET /runs?status=blocked lists it with its reason; POST /runs/{id}/unblock tries it
    again (202), and an unknown id is a 404."""
    async with Engine(url) as engine:
        run_id = await blocked_run(engine)
        transport = httpx.ASGITransport(app=create_app(engine))
        async with httpx.AsyncClient(transport=transport, base_url="http://localhost") as http:
            listed = await http.get("/runs", params={"status": "blocked"})
            assert listed.status_code == 200, listed.text
            runs = listed.json()["runs"]
            assert [r["id"] for r in runs] == [run_id]
            assert "AttributeError" in runs[0]["blocked_reason"]
            bug[0] = False
            answer = await http.post(f"/runs/{run_id}/unblock")
            assert answer.status_code == 202, answer.text
            assert answer.json()["blocked_reason"] is None
            assert (await http.post("/runs/nope/unblock")).status_code == 404
        assert await (await engine.get_run(run_id)).result(timeout=DEADLINE) == 2
