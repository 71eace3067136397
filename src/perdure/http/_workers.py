"""``GET /workers``: the live workers, and the workflows and versions each defines.

The same list as ``perdure workers --json`` (`perdure._worker_views.WorkerView`); the
dashboard's Workers page reads it.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from starlette.responses import Response

from perdure._worker_views import WorkerList, worker_json

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable

    from starlette.requests import Request

    from perdure._engine import Engine

__all__ = ["workers_endpoint"]


def workers_endpoint(engine: Engine) -> Callable[[Request], Awaitable[Response]]:
    """The handler of ``GET /workers`` for ``engine``."""

    async def workers(request: Request) -> Response:
        """The live workers, oldest first."""
        del request
        found = await engine.list_workers()
        return _json(WorkerList(workers=[worker_json(worker) for worker in found]))

    return workers


def _json(content: Any) -> Response:
    # ASCII escapes, as the rest of the API: a stored name may hold a lone surrogate.
    return Response(json.dumps(content), media_type="application/json")
