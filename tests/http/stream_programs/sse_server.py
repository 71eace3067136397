"""Serve perdure's HTTP app with uvicorn, with a worker, for the SSE test (a script).

Usage: ``sse_server.py PORT`` with ``$PERDURE_DATABASE_URL`` set. It imports the
stream tests' workflows (``tests/runtime/stream_programs``), so its worker runs them.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "runtime" / "stream_programs"))

import stream_workflows  # noqa: F401 (the workflows its worker runs)
import uvicorn

import perdure
from perdure.http import create_app


def main() -> None:
    app = create_app(perdure.Engine(), token="sse-test-token")
    uvicorn.run(app, host="127.0.0.1", port=int(sys.argv[1]), log_level="info")


if __name__ == "__main__":
    main()
