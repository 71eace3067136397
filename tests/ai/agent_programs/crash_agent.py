"""An agent run by a worker process that the crash test kills (imported, not collected).

The tool and the model append a line per call to ``$CRASH_DIR/effects.log``
(``what pid``); the model's second request waits at the gate file ``gate-report`` until
the test creates it, so the test can kill the process while that request is in flight.
"""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

from pydantic_ai import Agent
from pydantic_ai.messages import (
    ModelMessage,
    ModelRequest,
    ModelResponse,
    TextPart,
    ToolCallPart,
    ToolReturnPart,
)
from pydantic_ai.models.function import AgentInfo, FunctionModel

from perdure import workflow
from perdure.ai import PerdureAgent

FOLDER = Path(os.environ.get("CRASH_DIR", "."))


def effect(what: str) -> None:
    with (FOLDER / "effects.log").open("a") as out:
        out.write(f"{what} {os.getpid()}\n")


async def model(messages: list[ModelMessage], info: AgentInfo) -> ModelResponse:
    results = [
        part
        for message in messages
        if isinstance(message, ModelRequest)
        for part in message.parts
        if isinstance(part, ToolReturnPart)
    ]
    if not results:
        effect("model:lookup")
        return ModelResponse(parts=[ToolCallPart("lookup", {"topic": "cats"}, tool_call_id="c1")])
    effect("model:report")
    while not (FOLDER / "gate-report").exists():  # the test opens it after the kill
        await asyncio.sleep(0.01)
    return ModelResponse(parts=[TextPart(f"report: {results[0].content}")])


agent = Agent(FunctionModel(model), name="crashing")


@agent.tool_plain
def lookup(topic: str) -> str:
    """The one tool: its calls are counted in the effects file."""
    effect("lookup")
    return f"{topic} sleep a lot"


durable = PerdureAgent(agent)


@workflow(name="ai-crash")
async def pipeline(topic: str) -> str:
    result = await durable.run(f"Report on {topic}")
    output: str = result.output
    return output
