"""Flow control in view over HTTP: ``GET /limits``, and a pending run's ``waiting_for``."""

from __future__ import annotations

import httpx

from perdure import Engine
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
