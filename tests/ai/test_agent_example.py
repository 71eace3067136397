"""examples/agent.py: the content pipeline agent, its approval and its SSE endpoint."""

from __future__ import annotations

import json

import agent as example
import httpx

from helpers import wait_until
from perdure import Engine
from perdure.ai import pending_waits
from perdure.testing import memory_engine


def events_of(body: str) -> list[dict[str, str]]:
    """The Server-Sent Events of a response body, each as its fields."""
    found = []
    for block in body.strip().split("\n\n"):
        fields = dict(line.split(": ", 1) for line in block.splitlines() if ": " in line)
        if fields:
            found.append(fields)
    return found


async def test_the_example_drafts_waits_for_approval_and_streams_over_sse() -> None:
    """Started over HTTP, the run streams its draft, waits for the approval, publishes
    once approved; perdure's SSE endpoint, mounted in the app, sends each chunk with
    its index as the event id, and resumes after Last-Event-ID."""
    engine: Engine = memory_engine()
    app = example.build_app(engine)
    async with (
        engine,
        httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://localhost"
        ) as client,
    ):
        run_id = (await client.post("/drafts/cats")).json()["run_id"]
        run = await engine.get_run(run_id)
        await wait_until(engine, lambda: pending_waits(run))

        assert {"approved": 1} == (await client.post(f"/drafts/{run_id}/approve")).json()
        assert "Done: published 29 words" == await run.result(timeout=20)

        url = f"/perdure/runs/{run_id}/streams/draft?committed=true"
        events = events_of((await client.get(url)).text)
        resumed = events_of((await client.get(url, headers={"Last-Event-ID": "3"})).text)

    chunks = [e for e in events if e.get("event") == "chunk"]
    assert [str(i) for i in range(len(chunks))] == [e["id"] for e in chunks]
    text = "".join(json.loads(e["data"])["value"] for e in chunks)
    assert text.startswith(example.DRAFT)
    assert {"event": "end", "data": "{}"} == events[-1]
    assert chunks[4:] == [e for e in resumed if e.get("event") == "chunk"]
