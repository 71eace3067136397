"""A run whose row or log cannot be read is listed flagged, and named in a 409 (issue 11).

One damaged row (changed by hand, or written by a newer release) used to make
``GET /runs``, the dashboard's home page, answer 500 for every run. The rows are
damaged with SQL through the store's own connection, on SQLite and PostgreSQL.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import httpx
import pytest

from helpers import damage, unreadable
from perdure import workflow
from perdure.http import create_app

if TYPE_CHECKING:
    from conftest import EngineFactory

pytestmark = pytest.mark.parametrize("store_kind", ["sqlite", "postgres"])


@workflow(name="http-unreadable-noop")
async def noop(name: str) -> str:
    """A run that is never run here: the Engines have no worker."""
    return name


async def test_runs_are_listed_with_the_unreadable_one_flagged(make_engine: EngineFactory) -> None:
    """GET /runs lists every run; a damaged one says what, its status shown unreadable."""
    async with make_engine(worker=False) as engine:
        for run_id in ("ok", "bad-input", "new-status"):
            await engine.start(noop, run_id, run_id=run_id)
        await damage(
            engine.store,
            "UPDATE runs SET input = ? WHERE id = 'bad-input'",
            unreadable(engine.store),
        )
        await damage(engine.store, "UPDATE runs SET status = 'paused' WHERE id = 'new-status'")
        transport = httpx.ASGITransport(app=create_app(engine), raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, base_url="http://localhost") as client:
            listed = await client.get("/runs")
            assert listed.status_code == 200, listed.text
            runs = {run["id"]: run for run in listed.json()["runs"]}
            assert set(runs) == {"ok", "bad-input", "new-status"}
            assert runs["ok"]["malformed"] is None
            assert runs["ok"]["status"] == "pending"
            assert runs["bad-input"]["status"] == "pending"
            assert runs["bad-input"]["malformed"].startswith("input "), runs["bad-input"]
            assert runs["new-status"]["status"] == "unreadable"
            assert "'paused'" in runs["new-status"]["malformed"]

            one = await client.get("/runs/bad-input")
            assert one.status_code == 409, one.text
            assert "input" in one.json()["error"]
            assert "bad-input" in one.json()["error"]
            assert (await client.get("/runs/ok")).status_code == 200
            assert (await client.post("/runs/bad-input/rerun")).status_code == 409


async def test_an_unreadable_event_is_named_in_a_409(make_engine: EngineFactory) -> None:
    """GET /runs/{id}/events and /timeline name the event this release cannot read."""
    async with make_engine(worker=False) as engine:
        await engine.start(noop, "r1", run_id="r1")
        await damage(
            engine.store, "UPDATE events SET data = ? WHERE run_id = 'r1'", unreadable(engine.store)
        )
        transport = httpx.ASGITransport(app=create_app(engine), raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, base_url="http://localhost") as client:
            assert (await client.get("/runs/r1")).status_code == 200
            for path in ("/runs/r1/events", "/runs/r1/timeline"):
                answer = await client.get(path)
                assert answer.status_code == 409, answer.text
                error = answer.json()["error"]
                assert "event #1 (run_created)" in error, error
                assert "'data'" in error, error
