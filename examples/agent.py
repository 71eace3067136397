"""The seeds' content pipeline as a durable pydantic-ai agent that streams its draft.

The agent researches a topic (a tool), writes a draft whose words stream to readers as
the model produces them, and asks to publish it: ``publish`` needs a person's approval,
so the run waits on a perdure hook (for days if need be, holding no worker) until
someone approves. Every model request and tool call is a perdure step: kill the
process at any point and the run resumes after its last recorded call, and the
approved ``publish`` runs once.

Offline (pydantic-ai's FunctionModel plays the model), in this process::

    make demo-agent            # or: .venv/bin/python examples/agent.py

With a real model, set its API key (and install its client, e.g.
``pip install 'pydantic-ai-slim[openai]'``): ``OPENAI_API_KEY`` selects
``openai:gpt-4o-mini``, ``ANTHROPIC_API_KEY`` ``anthropic:claude-sonnet-4-5``;
``PERDURE_AGENT_MODEL`` names any other.

As a web app, with the draft streamed to a browser over Server-Sent Events by perdure's
own HTTP API (mounted under /perdure)::

    .venv/bin/uvicorn agent:app --app-dir examples
    # open http://127.0.0.1:8000/ , or:
    curl -X POST localhost:8000/drafts/cats                              # {"run_id": ...}
    curl -N 'localhost:8000/perdure/runs/RUN_ID/streams/draft?committed=true'   # live (SSE)
    curl -X POST localhost:8000/drafts/RUN_ID/approve                    # publish it
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import sys
from collections.abc import AsyncIterator
from typing import Any

from fastapi import FastAPI
from fastapi.responses import HTMLResponse
from pydantic_ai import Agent
from pydantic_ai.capabilities import HandleDeferredToolCalls
from pydantic_ai.messages import ModelMessage, ModelRequest, ToolReturnPart
from pydantic_ai.models import Model
from pydantic_ai.models.function import AgentInfo, DeltaToolCall, DeltaToolCalls, FunctionModel
from pydantic_ai.tools import DeferredToolResults

import perdure
from perdure import Engine, StreamItem, workflow
from perdure.ai import PerdureAgent, await_approval, pending_waits, resolve_external_event
from perdure.http import create_app

DRAFT = (
    "Cats sleep twelve to sixteen hours a day. They save their energy for short bursts "
    "of hunting, which is why a house cat naps in the sun between zooms."
)


def _tool_results(messages: list[ModelMessage]) -> list[ToolReturnPart]:
    return [
        part
        for message in messages
        if isinstance(message, ModelRequest)
        for part in message.parts
        if isinstance(part, ToolReturnPart)
    ]


async def offline_model(
    messages: list[ModelMessage], info: AgentInfo
) -> AsyncIterator[str | DeltaToolCalls]:
    """Plays the model: research, then a draft (streamed word by word), then publish."""
    del info
    done = _tool_results(messages)
    if not done:
        yield {0: DeltaToolCall("research", json.dumps({"topic": "cats"}), tool_call_id="r1")}
    elif len(done) == 1:
        for word in DRAFT.split(" "):
            yield word + " "
            await asyncio.sleep(0.02)  # a model takes its time
        yield {1: DeltaToolCall("publish", json.dumps({"draft": DRAFT}), tool_call_id="p1")}
    else:
        yield f"Done: {done[-1].content}"


def choose_model() -> Model | str:
    """A real model when an API key is set, else the offline one."""
    if named := os.environ.get("PERDURE_AGENT_MODEL"):
        return named
    if os.environ.get("OPENAI_API_KEY"):
        return "openai:gpt-4o-mini"
    if os.environ.get("ANTHROPIC_API_KEY"):
        return "anthropic:claude-sonnet-4-5"
    return FunctionModel(stream_function=offline_model)


writer = Agent(
    choose_model(),
    name="content-writer",
    instructions=(
        "Research the topic with the research tool, write a short draft about it, "
        "then publish the draft with the publish tool."
    ),
    capabilities=[HandleDeferredToolCalls(await_approval)],
)


@writer.tool_plain
def research(topic: str) -> str:
    """Facts about the topic (a stand-in for a search API)."""
    return f"{topic}: sleep 12-16 hours a day; hunt in short bursts"


@writer.tool_plain(requires_approval=True)
def publish(draft: str) -> str:
    """Publishes the draft (a stand-in for a CMS call); a person must approve it first."""
    return f"published {len(draft.split())} words"


durable_writer = PerdureAgent(writer)


@workflow(name="ai-agent-content")
async def ai_agent_content(topic: str) -> str:
    """Research, draft (streamed to the run's "draft" stream), approval, publish."""
    result = await durable_writer.run_stream(f"Write about {topic}", stream="draft")
    output: str = result.output
    return output


async def approve(run: perdure.Run[Any]) -> None:
    """Approve every call the run waits on (what a person does in a real app)."""
    for wait in await pending_waits(run):
        calls = wait.requests.approvals if wait.requests is not None else []
        results = DeferredToolResults(approvals={call.tool_call_id: True for call in calls})
        await resolve_external_event(wait.token, results)


async def wait_and_approve(run: perdure.Run[Any], engine: Engine) -> None:
    """Wait until the run asks for approval, show what it asks, and approve it."""
    while not await run_is_over(run):
        changed = engine.changed(run.id)
        waits = await pending_waits(run)
        if waits:
            for wait in waits:
                for call in wait.requests.approvals if wait.requests else []:
                    print(f"\n[approval] {call.tool_name}({call.args_as_dict()}): approved")
            await approve(run)
            return
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(changed.wait(), 0.5)


async def run_is_over(run: perdure.Run[Any]) -> bool:
    return (await run.status()).value in {"completed", "failed", "cancelled"}


async def main(topic: str = "cats") -> str:
    """Run the pipeline in this process: print the draft as it streams, then approve."""
    async with Engine() as engine:
        run = await engine.start(ai_agent_content, topic)
        print(f"run {run.id}: the draft, as the model writes it:\n")
        approver = asyncio.create_task(wait_and_approve(run, engine))
        async for item in run.stream("draft", committed=False):
            if isinstance(item, StreamItem):
                print(item.value, end="", flush=True)
        await approver
        output = await run.result()
        print(f"\n\nresult: {output}")
        return output


# -- the web app: start a draft, follow it over SSE, approve it ------------------------

PAGE = """<!doctype html><meta charset="utf-8"><title>perdure agent</title>
<button id="go">Write about cats</button> <button id="ok" disabled>Approve</button>
<pre id="out" style="white-space: pre-wrap"></pre>
<script>
let run = null;
go.onclick = async () => {
  run = (await (await fetch("/drafts/cats", {method: "POST"})).json()).run_id;
  out.textContent = ""; ok.disabled = false;
  // perdure's SSE: one "chunk" event per piece of text, its index the event id (a
  // reconnecting EventSource sends Last-Event-ID and resumes after it); "end" at the end.
  const source = new EventSource(`/perdure/runs/${run}/streams/draft?committed=true`);
  source.addEventListener("chunk", (e) => { out.textContent += JSON.parse(e.data).value; });
  source.addEventListener("end", () => source.close());
};
ok.onclick = async () => {
  const r = await (await fetch(`/drafts/${run}/approve`, {method: "POST"})).json();
  ok.disabled = true;
};
</script>"""


def build_app(engine: Engine) -> FastAPI:
    """The page, starting and approving drafts, and perdure's HTTP API under /perdure.

    The tokens reach the browser through perdure's ``GET /perdure/runs/{id}/streams/draft``
    (Server-Sent Events, resumable with Last-Event-ID). A mounted app gets no lifespan of
    its own, so this app enters the Engine in its.
    """

    @contextlib.asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        async with engine:
            yield

    app = FastAPI(title="perdure agent", lifespan=lifespan)
    app.mount("/perdure", create_app(engine))

    @app.get("/", response_class=HTMLResponse)
    async def page() -> str:
        return PAGE

    @app.post("/drafts/{topic}")
    async def start(topic: str) -> dict[str, str]:
        run = await engine.start(ai_agent_content, topic)
        return {"run_id": run.id}

    @app.post("/drafts/{run_id}/approve")
    async def approve_draft(run_id: str) -> dict[str, int]:
        run = await engine.get_run(run_id)
        waits = await pending_waits(run)
        await approve(run)
        return {"approved": len(waits)}

    return app


def create() -> FastAPI:
    """The app uvicorn serves (``agent:app``), on $PERDURE_DATABASE_URL or the default file."""
    return build_app(Engine())


app = create()

if __name__ == "__main__":
    asyncio.run(main(*sys.argv[1:2]))
