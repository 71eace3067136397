"""A tiny MCP server on stdio, for the MCP test (run as a script by the MCP client).

Its one tool, ``fact``, appends a line to ``$CRASH_DIR/mcp-calls.log`` per call, so the
test counts the calls the agent's steps made.
"""

from __future__ import annotations

import os
from pathlib import Path

from mcp.server.mcpserver import MCPServer

server = MCPServer("facts")


@server.tool()
def fact(topic: str) -> str:
    """A fact about the topic."""
    with (Path(os.environ.get("CRASH_DIR", ".")) / "mcp-calls.log").open("a") as out:
        out.write(f"{topic}\n")
    return f"{topic} purr at 25 Hz"


if __name__ == "__main__":
    server.run()
