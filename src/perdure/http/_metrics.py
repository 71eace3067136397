"""``GET /metrics`` (Prometheus, this process) and ``GET /stats`` (the store, every worker).

Both sit behind the API's bearer token like every other read (`create_app` wraps them
in its ``endpoint``): the figures say what runs, how often it fails and what waits.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from starlette.responses import Response

from perdure._prometheus import CONTENT_TYPE, exposition
from perdure._stats_view import read_stats, stats_json

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable

    from starlette.requests import Request

    from perdure._engine import Engine

__all__ = ["metrics_endpoint", "stats_endpoint"]


async def metrics_endpoint(request: Request) -> Response:
    """This process's OpenTelemetry metrics, in Prometheus' text format."""
    del request
    return Response(exposition(), media_type=CONTENT_TYPE)


def stats_endpoint(engine: Engine) -> Callable[[Request], Awaitable[Response]]:
    """The handler of ``GET /stats?since=1h&workflow=W`` for ``engine``."""

    async def stats(request: Request) -> Response:
        """Runs started and ended per bucket, failure rates, slowest steps, the backlog."""
        since = request.query_params.get("since", "1h")
        workflow = request.query_params.get("workflow") or None
        try:
            found = await read_stats(engine.store, engine.clock.now(), since, workflow)
        except ValueError as exc:
            return _json({"error": f"query parameter: {exc}"}, 400)
        return _json(stats_json(found))

    return stats


def _json(content: Any, status: int = 200) -> Response:
    # ASCII escapes, as the rest of the API: a stored name may hold a lone surrogate.
    return Response(json.dumps(content), status, media_type="application/json")
