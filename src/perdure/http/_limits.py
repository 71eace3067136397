"""``GET /limits``: each concurrency and rate limit in use, across all workers.

The same list as ``perdure limits --json`` (`perdure._flow_views.LimitView`).
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from starlette.responses import Response

from perdure._flow_views import LimitList, limit_json

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable

    from starlette.requests import Request

    from perdure._engine import Engine

__all__ = ["limits_endpoint"]


def limits_endpoint(engine: Engine) -> Callable[[Request], Awaitable[Response]]:
    """The handler of ``GET /limits`` for ``engine``."""

    async def limits(request: Request) -> Response:
        """The limits in use: slots held and runs waiting, attempts running, starts."""
        del request
        found = await engine.limits()
        return _json(LimitList(limits=[limit_json(usage) for usage in found]))

    return limits


def _json(content: Any) -> Response:
    # ASCII escapes, as the rest of the API: a stored key may hold a lone surrogate.
    return Response(json.dumps(content), media_type="application/json")
