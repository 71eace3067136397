"""The OpenAPI 3.1 document of perdure's HTTP API, written by hand.

Kept next to the handlers it describes; a test feeds it to schemathesis, which calls
every operation with generated input and checks that none answers with a 5xx.
"""

from __future__ import annotations

from typing import Any

from perdure._records import EventType, RunStatus

__all__ = ["openapi_document"]

_REF = "#/components/schemas/"
_JSON = "application/json"


def _ref(name: str) -> dict[str, Any]:
    return {"$ref": f"{_REF}{name}"}


def _nullable(kind: str, **extra: Any) -> dict[str, Any]:
    return {"type": [kind, "null"], **extra}


_TIME = {"type": "string", "format": "date-time"}
_MAYBE_TIME = _nullable("string", format="date-time")

_SCHEMAS: dict[str, Any] = {
    "Error": {
        "type": "object",
        "required": ["error"],
        "properties": {"error": {"type": "string", "description": "What was wrong."}},
    },
    "RunSummary": {
        "type": "object",
        "required": ["id", "workflow", "status", "created_at"],
        "properties": {
            "id": {"type": "string"},
            "workflow": {"type": "string"},
            "status": {"type": "string", "enum": [s.value for s in RunStatus]},
            "created_at": _TIME,
            "updated_at": _TIME,
            "started_at": _MAYBE_TIME,
            "completed_at": _MAYBE_TIME,
            "version": _nullable("string"),
            "cancel_requested": {"type": "boolean"},
            "error": {
                "description": "A failed run's error type and message.",
                "type": ["object", "null"],
            },
        },
    },
    "Run": {
        "allOf": [
            _ref("RunSummary"),
            {
                "type": "object",
                "required": ["result"],
                "properties": {
                    "input": {"description": "The encoded call: arguments by name."},
                    "output": {"description": "The encoded return value, once completed."},
                    "result": {
                        "description": "The return value (encoded as stored) when the "
                        "run completed, else null."
                    },
                    "error": {
                        "description": "A failed run's error: type, message, traceback.",
                        "type": ["object", "null"],
                    },
                    "owner": _nullable("string"),
                    "wake_at": _MAYBE_TIME,
                },
            },
        ]
    },
    "RunList": {
        "type": "object",
        "required": ["runs"],
        "properties": {"runs": {"type": "array", "items": _ref("RunSummary")}},
    },
    "Event": {
        "type": "object",
        "required": ["seq", "type", "data", "created_at"],
        "properties": {
            "seq": {"type": "integer", "minimum": 1},
            "type": {"type": "string", "enum": [t.value for t in EventType]},
            "correlation_id": _nullable("string"),
            "data": {"type": "object"},
            "created_at": _TIME,
        },
    },
    "EventList": {
        "type": "object",
        "required": ["run_id", "events"],
        "properties": {
            "run_id": {"type": "string"},
            "events": {"type": "array", "items": _ref("Event")},
        },
    },
    "Hook": {
        "type": "object",
        "required": ["token", "name", "kind", "run_id"],
        "properties": {
            "token": {"type": "string"},
            "name": {"type": "string"},
            "kind": {"type": "string", "enum": ["hook", "webhook"]},
            "run_id": {"type": "string"},
            "correlation_id": {"type": "string"},
            "created_at": _TIME,
        },
    },
    "HookList": {
        "type": "object",
        "required": ["hooks"],
        "properties": {
            "hooks": {
                "type": "array",
                "items": {
                    "allOf": [
                        _ref("Hook"),
                        {
                            "type": "object",
                            "properties": {
                                "schema": {
                                    "description": "The payload's JSON Schema when this "
                                    "process defines the hook, else null.",
                                    "type": ["object", "null"],
                                }
                            },
                        },
                    ]
                },
            }
        },
    },
    "Span": {
        "type": "object",
        "description": "One step attempt, sleep or hook of a run, from its first event "
        "to its last (end is null while it lasts).",
        "required": ["kind", "call", "start", "end", "outcome", "payloads"],
        "properties": {
            "kind": {"type": "string", "enum": ["step", "sleep", "hook"]},
            "call": {"type": "string", "description": "The correlation id (name#n)."},
            "name": _nullable("string"),
            "start": _TIME,
            "end": _MAYBE_TIME,
            "outcome": {
                "type": "string",
                "enum": [
                    "running",
                    "completed",
                    "retrying",
                    "failed",
                    "sleeping",
                    "cancelled",
                    "waiting",
                    "received",
                    "disposed",
                    "conflict",
                ],
            },
            "attempt": _nullable("integer"),
            "detail": {"type": "string"},
            "token": _nullable("string"),
            "wake_at": _nullable(
                "string",
                description="When a sleep ends, or a retried step's next attempt starts.",
            ),
            "input": {"description": "A step's encoded call."},
            "output": {"description": "A completed step's encoded value."},
            "has_output": {"type": "boolean"},
            "error": {"type": ["object", "null"]},
            "payloads": {
                "type": "array",
                "items": {
                    "type": "object",
                    "required": ["at", "payload"],
                    "properties": {"at": _TIME, "payload": {}},
                },
            },
        },
    },
    "Timeline": {
        "type": "object",
        "required": ["run_id", "now", "spans"],
        "properties": {
            "run_id": {"type": "string"},
            "now": {**_TIME, "description": "The server's time, the end of open spans."},
            "spans": {"type": "array", "items": _ref("Span")},
        },
    },
    "StartRun": {
        "type": "object",
        "required": ["workflow"],
        "additionalProperties": False,
        "properties": {
            "workflow": {
                "type": "string",
                "minLength": 1,
                "description": "The name of a workflow this process defines.",
            },
            "args": {"type": "array", "description": "Positional arguments, as JSON."},
            "kwargs": {"type": "object", "description": "Keyword arguments, as JSON."},
            "run_id": {
                "type": ["string", "null"],
                "minLength": 1,
                "pattern": "^[^/]+$",
                "description": "An idempotency key: starting again with it returns that run.",
            },
        },
    },
}


def _error(description: str) -> dict[str, Any]:
    return {"description": description, "content": {_JSON: {"schema": _ref("Error")}}}


def _ok(description: str, schema: str) -> dict[str, Any]:
    return {"description": description, "content": {_JSON: {"schema": _ref(schema)}}}


_AUTH_ERRORS = {
    "401": _error("No bearer token was sent (when the API has one)."),
    "403": _error("The bearer token is wrong."),
}
_BODY_ERRORS = {
    "400": _error("The body is not JSON."),
    "413": _error("The body is larger than the limit."),
    "422": _error("The body is JSON but not what the operation takes."),
}

_TOKEN = {
    "name": "token",
    "in": "path",
    "required": True,
    "schema": {"type": "string"},
    "description": "The hook's token.",
}
_RUN_ID = {
    "name": "run_id",
    "in": "path",
    "required": True,
    "schema": {"type": "string"},
    "description": "The run's id.",
}


def _webhook_operation(method: str) -> dict[str, Any]:
    operation: dict[str, Any] = {
        "operationId": f"webhook_{method}",
        "summary": f"Send a {method.upper()} request to a webhook",
        "description": "Stores the request (method, path, query, headers, body) for the "
        "webhook made with create_webhook() and answers with the status and body it "
        "was given. No bearer token: the token in the path is the secret.",
        "tags": ["webhooks"],
        "security": [],
        "parameters": [{**_TOKEN, "description": "The webhook's token."}],
        "responses": {
            "default": {
                "description": "The response given to create_webhook() (202 by default).",
                "content": {_JSON: {"schema": {}}, "text/plain": {"schema": {"type": "string"}}},
            },
            "404": _error("No live webhook has this token."),
            "413": _error("The body is larger than the limit."),
        },
    }
    if method in ("post", "put", "patch"):
        operation["requestBody"] = {
            "required": False,
            "content": {
                _JSON: {"schema": {}},
                "text/plain": {"schema": {"type": "string"}},
                "application/octet-stream": {"schema": {"type": "string", "format": "binary"}},
            },
        }
    return operation


def _paths() -> dict[str, Any]:
    return {
        "/hooks/{token}/resume": {
            "post": {
                "operationId": "resume_hook",
                "summary": "Resume a hook made with hook.create()",
                "description": "The body is the payload. It is validated against the "
                "hook's schema when this process defines the hook, else stored as given.",
                "tags": ["hooks"],
                "parameters": [_TOKEN],
                "requestBody": {
                    "required": True,
                    "content": {_JSON: {"schema": {}}},
                },
                "responses": {
                    "202": _ok("The payload is stored; the run wakes.", "Hook"),
                    **_BODY_ERRORS,
                    **_AUTH_ERRORS,
                    "404": _error("No live hook (webhooks excluded) holds this token."),
                },
            }
        },
        "/hooks": {
            "get": {
                "operationId": "list_hooks",
                "summary": "List live hooks, oldest first",
                "tags": ["hooks"],
                "parameters": [
                    {
                        "name": "run",
                        "in": "query",
                        "required": False,
                        "description": "Only this run's hooks.",
                        "schema": {"type": "string"},
                    }
                ],
                "responses": {
                    "200": _ok("The live hooks.", "HookList"),
                    **_AUTH_ERRORS,
                    "404": _error("No run has this id."),
                },
            }
        },
        "/webhooks/{token}": {
            method: _webhook_operation(method)
            for method in ("get", "post", "put", "patch", "delete")
        },
        "/runs": {
            "post": {
                "operationId": "start_run",
                "summary": "Start a run of a workflow this process defines",
                "tags": ["runs"],
                "requestBody": {
                    "required": True,
                    "content": {_JSON: {"schema": _ref("StartRun")}},
                },
                "responses": {
                    "201": _ok("The run was created.", "Run"),
                    "200": _ok("A run with this run_id existed: it is returned.", "Run"),
                    **_BODY_ERRORS,
                    **_AUTH_ERRORS,
                    "404": _error("No workflow has this name in this process."),
                    "409": _error("The run_id belongs to a run of another workflow."),
                },
            },
            "get": {
                "operationId": "list_runs",
                "summary": "List runs, newest first",
                "tags": ["runs"],
                "parameters": [
                    {
                        "name": "status",
                        "in": "query",
                        "required": False,
                        "schema": {"type": "string", "enum": [s.value for s in RunStatus]},
                    },
                    {
                        "name": "workflow",
                        "in": "query",
                        "required": False,
                        "schema": {"type": "string"},
                    },
                    {
                        "name": "limit",
                        "in": "query",
                        "required": False,
                        "schema": {"type": "integer", "minimum": 1, "maximum": 1000},
                    },
                ],
                "responses": {
                    "200": _ok("The runs.", "RunList"),
                    "400": _error("A query parameter is invalid."),
                    **_AUTH_ERRORS,
                },
            },
        },
        "/runs/{run_id}": {
            "get": {
                "operationId": "get_run",
                "summary": "One run: status, and result or error once ended",
                "description": "A browser asking for HTML (Accept: text/html) gets the "
                "run's dashboard page instead.",
                "tags": ["runs"],
                "parameters": [_RUN_ID],
                "responses": {
                    "200": _ok("The run.", "Run"),
                    **_AUTH_ERRORS,
                    "404": _error("No run has this id."),
                },
            }
        },
        "/runs/{run_id}/events": {
            "get": {
                "operationId": "run_events",
                "summary": "A run's event log, oldest first",
                "tags": ["runs"],
                "parameters": [
                    _RUN_ID,
                    {
                        "name": "after",
                        "in": "query",
                        "required": False,
                        "description": "Only events with a greater sequence number.",
                        "schema": {"type": "integer", "minimum": 0},
                    },
                ],
                "responses": {
                    "200": _ok("The events.", "EventList"),
                    "400": _error("A query parameter is invalid."),
                    **_AUTH_ERRORS,
                    "404": _error("No run has this id."),
                },
            }
        },
        "/runs/{run_id}/timeline": {
            "get": {
                "operationId": "run_timeline",
                "summary": "A run's steps, sleeps and hooks in time",
                "description": "Built from the run's log: one span per step attempt, per "
                "sleep and per hook, in the order they began.",
                "tags": ["runs"],
                "parameters": [_RUN_ID],
                "responses": {
                    "200": _ok("The timeline.", "Timeline"),
                    **_AUTH_ERRORS,
                    "404": _error("No run has this id."),
                },
            }
        },
        "/runs/{run_id}/rerun": {
            "post": {
                "operationId": "rerun_run",
                "summary": "Start a new run of the same workflow with the same input",
                "description": "The new run records the version of the workflow this "
                "process defines (the latest code), else the original run's version. A "
                "worker serving the workflow runs it.",
                "tags": ["runs"],
                "parameters": [_RUN_ID],
                "responses": {
                    "201": _ok("The new run.", "Run"),
                    **_AUTH_ERRORS,
                    "404": _error("No run has this id."),
                },
            }
        },
        "/runs/{run_id}/cancel": {
            "post": {
                "operationId": "cancel_run",
                "summary": "Ask for a run to be cancelled",
                "description": "Stored before the answer; the run stops at its next await. "
                "Cancelling an ended run changes nothing.",
                "tags": ["runs"],
                "parameters": [_RUN_ID],
                "responses": {
                    "202": _ok("The request is stored; the run as it now stands.", "Run"),
                    **_AUTH_ERRORS,
                    "404": _error("No run has this id."),
                },
            }
        },
        "/openapi.json": {
            "get": {
                "operationId": "openapi",
                "summary": "This document",
                "tags": ["meta"],
                "security": [],
                "responses": {
                    "200": {
                        "description": "The OpenAPI 3.1 document.",
                        "content": {_JSON: {"schema": {"type": "object"}}},
                    }
                },
            }
        },
    }


def openapi_document(*, secured: bool) -> dict[str, Any]:
    """The OpenAPI 3.1 document; ``secured`` when the API requires a bearer token."""
    document: dict[str, Any] = {
        "openapi": "3.1.0",
        "info": {
            "title": "perdure",
            "version": "1",
            "description": "Resume hooks, feed webhooks, and start, inspect, cancel "
            'and rerun runs of durable workflows. Errors are JSON: {"error": "..."}. '
            "The web dashboard's pages (/, and /runs/{run_id} for browsers) call this "
            "API with a session cookie set by /login and an X-Perdure-Dashboard header.",
        },
        "paths": _paths(),
        "components": {
            "schemas": _SCHEMAS,
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
        },
    }
    if secured:
        document["security"] = [{"bearer": []}]
    return document
