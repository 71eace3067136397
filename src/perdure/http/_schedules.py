"""The schedules' HTTP endpoints (the OpenAPI document describes each).

- ``GET /schedules``: every schedule with its next fire time and last runs (the
  dashboard's Schedules page for a browser that asks for HTML);
- ``GET /schedules/{id}``: one;
- ``POST /schedules/{id}/pause``, ``/resume``: 200 and the schedule;
- ``POST /schedules/{id}/trigger``: 201 and the run started;
- ``POST /schedules/{id}/backfill`` with ``{"start": ISO, "end": ISO}``: 201 and the runs;
- ``DELETE /schedules/{id}``: 200.

Each acts through the Engine (`perdure._schedule_api`), as the CLI does; an unknown id
is a 404, bad input a 422 naming it. Schedules are created in code (``engine.schedule``
or ``@workflow(schedule=...)``), where the workflow and its arguments' types are known.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from starlette.responses import Response
from starlette.routing import Route

from perdure._schedule_views import last_runs, schedule_json
from perdure._views import json_text

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable

    from starlette.requests import Request

    from perdure._engine import Engine
    from perdure._records import JSON

__all__ = ["schedule_routes"]


def _json(content: JSON, status: int = 200) -> Response:
    return Response(json_text(content), status, media_type="application/json")


def _error(status: int, message: str) -> Response:
    return _json({"error": message}, status)


def _moment(body: Any, name: str) -> datetime:
    text = body.get(name) if isinstance(body, dict) else None
    if not isinstance(text, str):
        raise ValueError(  # noqa: TRY004 - a bad request body: 422 like the other checks
            f'send {{"start": TIME, "end": TIME}} (ISO 8601); {name} is missing'
        )
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise ValueError(f"{name} must be an ISO 8601 time, got {text!r}") from None
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


class _Schedules:
    """The handlers, on one Engine."""

    def __init__(self, engine: Engine, read_json: Callable[[Request], Awaitable[JSON]]) -> None:
        self.engine = engine
        self.read_json = read_json

    async def list_schedules(self, request: Request) -> Response:
        """Every schedule, by id, with its next fire time and last runs."""
        del request
        found = [
            schedule_json(schedule, await last_runs(self.engine, schedule.id))
            for schedule in await self.engine.schedules()
        ]
        return _json({"schedules": found})

    async def get_schedule(self, request: Request) -> Response:
        """One schedule with its last runs."""
        return await self._act(request, self._get)

    async def pause(self, request: Request) -> Response:
        """Pause the schedule: its ticks pass without runs until resumed."""
        return await self._act(request, self._pause)

    async def resume(self, request: Request) -> Response:
        """Resume the schedule from its next tick."""
        return await self._act(request, self._resume)

    async def trigger(self, request: Request) -> Response:
        """Start one run of the schedule now."""
        return await self._act(request, self._trigger)

    async def backfill(self, request: Request) -> Response:
        """One run per tick from ``start`` to ``end`` (both included); idempotent."""
        return await self._act(request, self._backfill)

    async def delete(self, request: Request) -> Response:
        """Delete the schedule; its runs are left alone."""
        return await self._act(request, self._delete)

    async def _act(
        self, request: Request, action: Callable[[Request, str], Awaitable[Response]]
    ) -> Response:
        schedule_id = request.path_params["schedule_id"]
        try:
            return await action(request, schedule_id)
        except LookupError:
            return _error(404, f"no schedule with id {schedule_id!r}")
        except ValueError as exc:
            return _error(422, str(exc))

    async def _get(self, request: Request, schedule_id: str) -> Response:
        del request
        schedule = await self.engine.get_schedule(schedule_id)
        return _json(schedule_json(schedule, await last_runs(self.engine, schedule_id)))

    async def _pause(self, request: Request, schedule_id: str) -> Response:
        del request
        return _json(schedule_json(await self.engine.pause_schedule(schedule_id)))

    async def _resume(self, request: Request, schedule_id: str) -> Response:
        del request
        return _json(schedule_json(await self.engine.resume_schedule(schedule_id)))

    async def _trigger(self, request: Request, schedule_id: str) -> Response:
        del request
        started = await self.engine.trigger_schedule(schedule_id)
        return _json({"id": started.id, "schedule": schedule_id}, 201)

    async def _backfill(self, request: Request, schedule_id: str) -> Response:
        body = await self.read_json(request)
        start, end = _moment(body, "start"), _moment(body, "end")
        runs = await self.engine.backfill_schedule(schedule_id, start, end)
        shown = [{"id": run.id, "status": run.record.status.value} for run in runs]
        return _json({"runs": shown}, 201)

    async def _delete(self, request: Request, schedule_id: str) -> Response:
        del request
        await self.engine.delete_schedule(schedule_id)
        return _json({"id": schedule_id, "deleted": True})


def schedule_routes(
    engine: Engine,
    endpoint: Callable[[Callable[[Request], Awaitable[Response]]], Callable[..., Any]],
    read_json: Callable[[Request], Awaitable[JSON]],
    html_page: Callable[[Request], Awaitable[Response]] | None,
    wants_html: Callable[[Request], bool],
) -> list[Route]:
    """The routes, each handler wrapped by ``endpoint`` (the app's auth and checks).

    ``html_page`` serves the dashboard's Schedules page to browsers (None: no dashboard).
    """
    handlers = _Schedules(engine, read_json)
    listed = endpoint(handlers.list_schedules)

    async def schedules(request: Request) -> Response:
        """The schedules as JSON, or the Schedules page for a browser."""
        if html_page is not None and wants_html(request):
            return await html_page(request)
        response: Response = await listed(request)
        if html_page is not None:
            response.headers["Vary"] = "Accept"
        return response

    read_one, delete_one = endpoint(handlers.get_schedule), endpoint(handlers.delete)

    async def schedule(request: Request) -> Response:
        """One schedule: read it, or delete it (one route, so a 405 lists both methods)."""
        handler = delete_one if request.method == "DELETE" else read_one
        response: Response = await handler(request)
        return response

    one = "/schedules/{schedule_id}"
    return [
        Route("/schedules", schedules, methods=["GET"]),
        Route(one, schedule, methods=["GET", "DELETE"]),
        Route(f"{one}/pause", endpoint(handlers.pause), methods=["POST"]),
        Route(f"{one}/resume", endpoint(handlers.resume), methods=["POST"]),
        Route(f"{one}/trigger", endpoint(handlers.trigger), methods=["POST"]),
        Route(f"{one}/backfill", endpoint(handlers.backfill), methods=["POST"]),
    ]
