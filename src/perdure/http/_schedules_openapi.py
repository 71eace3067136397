"""The schedules' paths in the OpenAPI document (`perdure.http._openapi` adds them).

Written by hand beside the handlers (`perdure.http._schedules`), with the schedule's
JSON shape (`perdure._schedule_views.schedule_json`) spelled out once here. The error
responses come from `perdure.http._openapi`, passed in, so this module imports nothing
of it (it imports this one).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Callable

__all__ = ["schedule_paths"]

_JSON = "application/json"
_TIME = {"type": ["string", "null"], "format": "date-time"}
_LAST_RUN = {
    "type": "object",
    "properties": {
        "id": {"type": "string"},
        "status": {"type": "string"},
        "tick": {"type": ["string", "null"]},
        "created_at": {"type": "string", "format": "date-time"},
    },
    "required": ["id", "status", "tick", "created_at"],
}
SCHEDULE: dict[str, Any] = {
    "type": "object",
    "description": "A schedule: what it starts, when, and where it stands.",
    "properties": {
        "id": {"type": "string"},
        "workflow": {"type": "string"},
        "cron": {"type": "string", "description": "Five fields, or six with seconds first."},
        "tz": {"type": "string", "description": "The IANA time zone the cron is read in."},
        "input": {"description": "The encoded arguments of every run."},
        "overlap": {"enum": ["skip", "allow", "cancel_previous"]},
        "catchup": {"enum": ["latest", "none", "all"]},
        "start_at": _TIME,
        "end_at": _TIME,
        "paused": {"type": "boolean"},
        "next_fire_at": {**_TIME, "description": "The next tick (null: paused or ended)."},
        "last_tick_at": _TIME,
        "last_run_id": {"type": ["string", "null"]},
        "created_at": {"type": "string", "format": "date-time"},
        "updated_at": {"type": "string", "format": "date-time"},
        "last_runs": {
            "type": "array",
            "items": _LAST_RUN,
            "description": "The newest runs it started, newest first.",
        },
    },
    "required": ["id", "workflow", "cron", "tz", "paused", "next_fire_at"],
}
_ID = {
    "name": "schedule_id",
    "in": "path",
    "required": True,
    "schema": {"type": "string"},
    "description": "The schedule's id.",
}


def _body(description: str, schema: dict[str, Any]) -> dict[str, Any]:
    return {"description": description, "content": {_JSON: {"schema": schema}}}


def schedule_paths(
    error: Callable[[str], dict[str, Any]],
    auth_errors: dict[str, Any],
    body_errors: dict[str, Any],
) -> dict[str, Any]:
    """The ``/schedules`` paths, with the app's error responses."""
    unknown = {"404": error("No schedule has this id.")}

    def action(operation: str, summary: str, ok: dict[str, Any], code: str = "200") -> Any:
        return {
            "post": {
                "operationId": operation,
                "summary": summary,
                "tags": ["schedules"],
                "parameters": [_ID],
                "responses": {code: ok, **auth_errors, **unknown},
            }
        }

    started = {"type": "object", "properties": {"id": {"type": "string"}}, "required": ["id"]}
    return {
        "/schedules": {
            "get": {
                "operationId": "list_schedules",
                "summary": "Every schedule, with its next fire time and last runs",
                "description": "Schedules are created in code (engine.schedule, or "
                "@workflow(schedule=...) when a worker starts). A browser asking for HTML "
                "gets the dashboard's Schedules page.",
                "tags": ["schedules"],
                "responses": {
                    "200": _body(
                        "The schedules, by id.",
                        {
                            "type": "object",
                            "properties": {"schedules": {"type": "array", "items": SCHEDULE}},
                            "required": ["schedules"],
                        },
                    ),
                    **auth_errors,
                },
            }
        },
        "/schedules/{schedule_id}": {
            "get": {
                "operationId": "get_schedule",
                "summary": "One schedule, with its last runs",
                "tags": ["schedules"],
                "parameters": [_ID],
                "responses": {
                    "200": _body("The schedule.", SCHEDULE),
                    **auth_errors,
                    **unknown,
                },
            },
            "delete": {
                "operationId": "delete_schedule",
                "summary": "Delete a schedule; the runs it started are left alone",
                "tags": ["schedules"],
                "parameters": [_ID],
                "responses": {
                    "200": _body("Deleted.", {"type": "object"}),
                    **auth_errors,
                    **unknown,
                },
            },
        },
        "/schedules/{schedule_id}/pause": action(
            "pause_schedule",
            "Pause: ticks pass without runs until resumed",
            _body("The schedule.", SCHEDULE),
        ),
        "/schedules/{schedule_id}/resume": action(
            "resume_schedule",
            "Resume from the next tick (the ticks passed start nothing)",
            _body("The schedule.", SCHEDULE),
        ),
        "/schedules/{schedule_id}/trigger": action(
            "trigger_schedule",
            "Start one run of the schedule now",
            _body("The run started.", started),
            "201",
        ),
        "/schedules/{schedule_id}/backfill": {
            "post": {
                "operationId": "backfill_schedule",
                "summary": "One run per tick from start to end (both included); idempotent",
                "description": "Each tick's run has the id a live tick would have, so a "
                "tick that has a run already keeps it. Times without a zone are UTC.",
                "tags": ["schedules"],
                "parameters": [_ID],
                "requestBody": {
                    "required": True,
                    "content": {
                        _JSON: {
                            "schema": {
                                "type": "object",
                                "properties": {
                                    "start": {"type": "string", "format": "date-time"},
                                    "end": {"type": "string", "format": "date-time"},
                                },
                                "required": ["start", "end"],
                            }
                        }
                    },
                },
                "responses": {
                    "201": _body(
                        "The runs, one per tick, in order.",
                        {
                            "type": "object",
                            "properties": {"runs": {"type": "array", "items": started}},
                            "required": ["runs"],
                        },
                    ),
                    **auth_errors,
                    **unknown,
                    **body_errors,
                    "422": error(
                        "start or end is missing or not a time, end is before start, or "
                        "the range holds more than 10000 ticks."
                    ),
                },
            }
        },
    }
