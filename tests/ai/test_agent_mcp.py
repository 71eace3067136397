"""perdure.ai with an MCP toolset: listing its tools and calling one are steps.

The server is ``agent_programs/facts_server.py``, a tiny MCP server on stdio, started
by the MCP client (pydantic-ai's `MCPToolset`, on fastmcp) for each step that needs it.
The test is skipped where the MCP client is not installed (``pydantic-ai-slim[mcp]``).
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

pytest.importorskip("fastmcp")
pytest.importorskip("mcp.server.mcpserver")

from fastmcp.client.transports import StdioTransport
from pydantic_ai import Agent
from pydantic_ai.mcp import MCPToolset
from pydantic_ai.messages import (
    ModelMessage,
    ModelRequest,
    ModelResponse,
    TextPart,
    ToolCallPart,
    ToolReturnPart,
)
from pydantic_ai.models.function import AgentInfo, FunctionModel

from helpers import of_type
from perdure import Engine, EventType, workflow
from perdure.ai import PerdureAgent

SERVER = Path(__file__).resolve().parent / "agent_programs" / "facts_server.py"


def model(messages: list[ModelMessage], info: AgentInfo) -> ModelResponse:
    del info
    done = [
        part
        for message in messages
        if isinstance(message, ModelRequest)
        for part in message.parts
        if isinstance(part, ToolReturnPart)
    ]
    if not done:
        return ModelResponse(parts=[ToolCallPart("fact", {"topic": "cats"})])
    return ModelResponse(parts=[TextPart(f"learned: {done[0].content}")])


def durable_agent(folder: Path) -> PerdureAgent[None]:
    transport = StdioTransport(sys.executable, [str(SERVER)], env={"CRASH_DIR": str(folder)})
    agent = Agent(
        FunctionModel(model), name="mcp-reader", toolsets=[MCPToolset(transport, id="facts")]
    )
    return PerdureAgent(agent)


current: dict[str, PerdureAgent[None]] = {}


@workflow(name="ai-mcp-reader")
async def read_facts(topic: str) -> str:
    result = await current["agent"].run(f"Tell me about {topic}")
    output: str = result.output
    return output


@pytest.mark.slow
async def test_an_mcp_tool_call_is_a_step_made_once(engine: Engine, tmp_path: Path) -> None:
    """Listing the MCP server's tools and calling one are steps of the run; the server
    sees the call once."""
    current["agent"] = durable_agent(tmp_path)
    run = await engine.start(read_facts, "cats")

    assert "learned: cats purr at 25 Hz" == await run.result(timeout=60)

    names = [e.correlation_id for e in of_type(await run.events(), EventType.STEP_COMPLETED)]
    assert "mcp-reader.tools:facts#1" in names
    assert "mcp-reader.tool:fact#1" in names
    assert ["cats"] == (tmp_path / "mcp-calls.log").read_text().splitlines()
