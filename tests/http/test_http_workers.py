"""The workers registry over HTTP (issue 12): ``GET /workers``, and runs' versions in view."""

from __future__ import annotations

import httpx

from perdure import Engine, workflow
from perdure._records import NewRun
from perdure.http import create_app


@workflow(name="http-workers-listed", version="h3")
async def listed(x: int) -> int:
    """Defined by this process: the Engine's worker lists it."""
    return x


async def test_workers_and_what_they_say_of_runs(engine: Engine) -> None:
    """GET /workers lists this Engine's worker with its versions; a run's views carry
    the live versions of its workflow, why none can take it, and its fork's origin."""
    assert engine.worker is not None
    store, now = engine.store, engine.clock.now()
    await store.create_run(NewRun("lost", "http-workers-gone", {"x": 1}), now)
    await store.fork_run(NewRun("copy", "http-workers-gone", {"x": 1}), "lost", [], now)
    transport = httpx.ASGITransport(app=create_app(engine, token=None))
    async with httpx.AsyncClient(transport=transport, base_url="http://localhost") as http:
        workers = (await http.get("/workers")).json()["workers"]
        (me,) = [w for w in workers if w["id"] == engine.worker.id]
        assert me["workflows"]["http-workers-listed"] == "h3"
        assert set(me) == {"id", "host", "pid", "started_at", "heartbeat_at", "workflows"}

        run = (await http.get("/runs/lost")).json()
        assert run["stranded"] == "no live worker defines workflow 'http-workers-gone'"
        assert (run["live_versions"], run["worker_version"]) == ([], None)
        copy = (await http.get("/runs/copy")).json()
        assert copy["forked_from"] == "lost"
        listed_runs = {r["id"]: r for r in (await http.get("/runs")).json()["runs"]}
        assert listed_runs["copy"]["forked_from"] == "lost"
        assert listed_runs["lost"]["stranded"] is not None

        document = (await http.get("/openapi.json")).json()
        assert "/workers" in document["paths"]
        detail = document["components"]["schemas"]["RunDetail"]["properties"]
        assert {"forked_from", "live_versions", "worker_version", "stranded"} <= set(detail)
