"""Flow control in view over HTTP: ``GET /limits``, and a pending run's ``waiting_for``."""

from __future__ import annotations

import httpx

from helpers import wait_for_hook
from perdure import Engine, define_hook, workflow
from perdure._flow import RunFlow
from perdure._records import NewRun
from perdure.http import create_app

WORKFLOW = "flow-http-unserved"
"""No worker here defines it: the test holds its runs by hand."""


async def _two_runs_one_slot(engine: Engine) -> tuple[str, str]:
    """Two runs of a limit of one slot; the first held (claimed) by a worker of the test's."""
    store, now = engine.store, engine.clock.now()
    flow = RunFlow(limit_key=f"{WORKFLOW}:customer=acme", limit_n=1)
    await store.create_flow_run(NewRun("run-1", WORKFLOW, {}), flow, now)
    await store.create_flow_run(NewRun("run-2", WORKFLOW, {}), flow, now)
    claimed = await store.claim_runs("test-worker", now, 10, workflows=[WORKFLOW])
    assert [run.id for run in claimed] == ["run-1"]  # the second waits for the slot
    return "run-1", "run-2"


async def test_limits_and_why_a_run_waits(engine: Engine) -> None:
    """GET /limits lists the key's use; GET /runs/{id} says why the pending run waits."""
    held, waiting = await _two_runs_one_slot(engine)
    transport = httpx.ASGITransport(app=create_app(engine, token=None))
    async with httpx.AsyncClient(transport=transport, base_url="http://localhost") as http:
        limits = (await http.get("/limits")).json()
        assert limits == {
            "limits": [
                {
                    "kind": "workflow",
                    "key": f"{WORKFLOW}:customer=acme",
                    "limit": 1,
                    "in_use": 1,
                    "waiting": 1,
                    "period": None,
                }
            ]
        }
        listed = {run["id"]: run for run in (await http.get("/runs")).json()["runs"]}
        assert listed[waiting]["waiting_for"] == "waiting for a slot: customer=acme, 1 of 1 in use"
        run = (await http.get(f"/runs/{waiting}")).json()
        assert run["status"] == "pending"
        assert run["waiting_for"] == "waiting for a slot: customer=acme, 1 of 1 in use"
        assert (await http.get(f"/runs/{held}")).json()["waiting_for"] is None
        document = (await http.get("/openapi.json")).json()
        assert "/limits" in document["paths"]
        assert "waiting_for" in document["components"]["schemas"]["RunDetail"]["properties"]


go = define_hook(dict, name="flow-http-go")


@workflow(name="flow-http-wait")
async def waits(note: str) -> str:
    """Waits for its hook: a live run to deduplicate against."""
    await go.create(token=f"flow-http-{note}")
    return note


async def test_post_runs_takes_flow_options(engine: Engine) -> None:
    """POST /runs with a dedupe key returns the live run; bad options are a 422 naming
    them, and start nothing."""
    transport = httpx.ASGITransport(app=create_app(engine, token=None))
    async with httpx.AsyncClient(transport=transport, base_url="http://localhost") as http:
        body = {"workflow": "flow-http-wait", "args": ["a"], "dedupe_key": "k", "priority": 3}
        first = await http.post("/runs", json=body)
        again = await http.post("/runs", json={**body, "args": ["b"]})
        assert first.status_code == 201
        assert again.json()["id"] == first.json()["id"]
        for bad, says in (
            ({"debounce": "10s"}, "'debounce' needs a 'dedupe_key'"),
            ({"priority": "high"}, "'priority'"),
            ({"priority": 2**40}, "'priority'"),
            ({"dedupe_key": ""}, "'dedupe_key'"),
            ({"dedupe_key": "k2", "debounce": "soon"}, "debounce"),
        ):
            refused = await http.post("/runs", json={"workflow": "flow-http-wait", **bad})
            assert refused.status_code == 422, bad
            assert says in refused.json()["error"]
        assert [run.id for run in await engine.list_runs()] == [first.json()["id"]]
        await wait_for_hook(engine, "flow-http-a")
        await go.resume("flow-http-a", {})
        assert await (await engine.get_run(first.json()["id"])).result(timeout=10) == "a"
