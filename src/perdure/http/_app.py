"""`create_app`: the Starlette app behind `perdure.http`.

Every handler either answers with what it was asked for or with a JSON
``{"error": "..."}`` and a 4xx naming what was wrong, having written nothing: input is
checked in full (size, JSON, shape, schema, what the store can hold) before the one
store call that writes, and that call either stores everything or raises. The request
is read and checked here; the action is the Engine's (`Engine.start`, ``cancel``,
``rerun``, ``resume_hook``), the same one the CLI and the Python API take, and answers
are built from the typed shapes of `perdure._views` that the OpenAPI document is
generated from.

What the app guards by itself, wherever it is served (the README's "Serving the HTTP
API" lists it with what is left to a proxy): the bearer token or the dashboard's
session (`perdure.http._dashboard`), cross-site requests to an open API, the Host
header (`perdure.http._guard`), a webhook's token kept apart from a hook's, the body's
size (``max_body``) and time (``body_timeout``), a client hanging up mid-body (the end
of its request, not a server error), and credentials in the webhook requests it
stores (`CREDENTIAL_HEADERS` and ``secret_headers``).
"""

from __future__ import annotations

import contextlib
import hmac
import inspect
import json
import logging
import os
from datetime import timedelta
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import pydantic
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response
from starlette.routing import Route

from perdure._durations import parse_duration
from perdure._errors import HookNotFoundError, RowFormatError, RunNotFoundError
from perdure._fleet import Fleet
from perdure._flow import check_priority
from perdure._flow_views import waiting_json
from perdure._hooks import WEBHOOK, WebhookRequest, lookup_hook, unstorable, webhook_response
from perdure._log import HookCreated, LogFormatError
from perdure._prometheus import registry as prometheus_registry
from perdure._records import RunStatus
from perdure._views import (
    EventList,
    HookDetail,
    HookList,
    RunList,
    event_json,
    hook_detail_json,
    hook_json,
    json_text,
    run_detail_json,
    run_json,
    timeline_json,
    with_fleet,
)
from perdure._workflow import Workflow, lookup_workflow
from perdure.http._dashboard import (
    SESSION_COOKIE,
    Dashboard,
    cross_site,
    session_problem,
    wants_html,
)
from perdure.http._guard import LOOPBACK_HOSTS, BodyTimeout, Guard, host_pattern
from perdure.http._limits import limits_endpoint
from perdure.http._metrics import metrics_endpoint, stats_endpoint
from perdure.http._openapi import AFTER, LIMIT, ApiError, IntQuery, StartRun, openapi_document
from perdure.http._schedules import schedule_routes
from perdure.http._streams import stream_endpoint, streams_endpoint
from perdure.http._workers import workers_endpoint

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Mapping

    from perdure._engine import Engine, Run
    from perdure._hooks import Hook
    from perdure._records import JSON, Event, HookRecord, RunRecord
    from perdure._replay import WorkflowSpec
    from perdure.stores import Store

__all__ = ["create_app"]

logger = logging.getLogger("perdure.http")

WEBHOOK_METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE")
MAX_CHILDREN = 1000
"""The child runs a run's detail lists at most (the newest; `GET /runs?parent_id=` pages)."""

CREDENTIAL_HEADERS = frozenset({"authorization", "cookie", "proxy-authorization"})
"""Request headers never stored with a webhook request.

A webhook's request is kept in its run's log, which everyone who may read runs reads
(the dashboard shows it). A browser opening a webhook's link sends its cookies, the
dashboard's session among them, and a client sends its credentials for this server;
neither is the webhook's business. `create_app`'s ``secret_headers`` adds more names.
"""

_START_KEYS = StartRun.__required_keys__ | StartRun.__optional_keys__


class _Refused(Exception):
    """A request answered with a 4xx (or 503) and ``{"error": message}``."""

    def __init__(self, status: int, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.headers = headers


def _json(content: JSON, status: int = 200, headers: Mapping[str, str] | None = None) -> Response:
    # ASCII escapes: stored text may hold lone surrogates, which UTF-8 cannot encode; and
    # never a bare NaN (json_text), which no JSON parser reads.
    return Response(json_text(content), status, headers, media_type="application/json")


def _error(status: int, message: str, headers: Mapping[str, str] | None = None) -> Response:
    return _json(ApiError(error=message), status, headers)


# -- reading requests ---------------------------------------------------------------


async def _read_body(request: Request, max_body: int) -> bytes:
    too_big = f"the request body is larger than the limit of {max_body} bytes"
    declared = request.headers.get("content-length")
    if declared is not None:
        try:
            size = int(declared)
        except ValueError:
            raise _Refused(400, f"Content-Length {declared!r} is not a number") from None
        if size > max_body:
            raise _Refused(413, too_big)
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > max_body:
            raise _Refused(413, too_big)
    return bytes(body)


def _no_constants(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


async def _read_json(request: Request, max_body: int) -> JSON:
    body = await _read_body(request, max_body)
    if not body.strip():
        raise _Refused(400, "the request body is empty; send JSON")
    try:
        value = json.loads(body, parse_constant=_no_constants)
    except RecursionError:
        raise _Refused(400, "the request body is not valid JSON: nested too deeply") from None
    except ValueError as exc:  # JSONDecodeError and UnicodeDecodeError are ValueErrors
        raise _Refused(400, f"the request body is not valid JSON: {exc}") from None
    problem = unstorable(value, "$")  # NaN, NUL, lone surrogates, nesting over 100 deep
    if problem is not None:
        raise _Refused(422, problem)
    return value


def _plain_key(value: str, what: str) -> None:
    """Refuse a token or run id that no store could hold (it names nothing): 404."""
    if not value or "\x00" in value:
        raise _Refused(404, f"no {what} {value!r}")


def _attribute_terms(request: Request) -> dict[str, str]:
    """The ``attr=key:value`` query parameters (repeatable, all must match) as terms."""
    terms: dict[str, str] = {}
    for term in request.query_params.getlist("attr"):
        key, colon, value = term.partition(":")
        if not colon:
            raise _Refused(400, f"query parameter 'attr' must be key:value, got {term!r}")
        terms[key] = value
    return terms


def _query_int(request: Request, query: IntQuery) -> int:
    """The parameter's value, in the range the OpenAPI document states (`IntQuery`)."""
    name, text = query.name, request.query_params.get(query.name)
    if text is None:
        return query.default
    try:
        number = int(text)
    except ValueError:
        raise _Refused(400, f"query parameter {name!r} must be an integer, got {text!r}") from None
    if not query.low <= number <= query.high:
        raise _Refused(
            400,
            f"query parameter {name!r} must be from {query.low} to {query.high}, got {number}",
        )
    return number


# -- the app ------------------------------------------------------------------------


class _Api:
    def __init__(
        self, engine: Engine, token: str | None, max_body: int, secret_headers: frozenset[str]
    ) -> None:
        self.engine = engine
        self.token = token
        self.max_body = max_body
        self.secret_headers = secret_headers

    @property
    def store(self) -> Store:
        return self.engine.store

    # -- plumbing -------------------------------------------------------------------

    def endpoint(
        self,
        handler: Callable[[Request], Awaitable[Response]],
        *,
        auth: bool = True,
        needs_engine: bool = True,
    ) -> Callable[[Request], Awaitable[Response]]:
        async def run(request: Request) -> Response:
            try:
                if auth:
                    self.authorize(request)
                if needs_engine and not self.engine.running:
                    return _error(503, "the perdure Engine is not running")
                return await handler(request)
            except _Refused as refused:
                return _error(refused.status, refused.message, refused.headers)
            except (RowFormatError, LogFormatError) as unreadable:
                # A run's row or log this release cannot read (damaged, or a newer
                # release's): say what, rather than a bare 500 (issue 11).
                return _error(409, str(unreadable))

        run.__name__ = handler.__name__
        run.__doc__ = handler.__doc__
        return run

    def authorize(self, request: Request) -> None:
        if self.token is None:
            refused = cross_site(request)
            if refused is not None:
                raise _Refused(
                    403,
                    f"{refused}: with no API token, changes are accepted only from this "
                    "server's own pages and from clients that are not browsers",
                )
            return
        header = request.headers.get("authorization")
        challenge = {"WWW-Authenticate": 'Bearer realm="perdure"'}
        if header is None and SESSION_COOKIE in request.cookies:
            problem = session_problem(request, self.token)
            if problem is not None:
                raise _Refused(*problem)
            return
        if header is None:
            raise _Refused(401, "missing Authorization: Bearer <token> header", challenge)
        scheme, _, given = header.partition(" ")
        if scheme.lower() != "bearer" or not given.strip():
            raise _Refused(401, "the Authorization header must be 'Bearer <token>'", challenge)
        if not hmac.compare_digest(given.strip().encode(), self.token.encode()):
            raise _Refused(403, "the bearer token is wrong")

    # -- hooks and webhooks ----------------------------------------------------------

    async def resume_hook(self, request: Request) -> Response:
        """Resume the live hook holding ``token`` with the JSON body as its payload."""
        token = request.path_params["token"]
        payload = await _read_json(request, self.max_body)
        _plain_key(token, "live hook holds token")
        try:
            record = await self.engine.resume_hook(token, payload)
        except HookNotFoundError:
            raise _Refused(404, f"no live hook holds token {token!r}") from None
        except ValueError as exc:
            raise _Refused(422, str(exc)) from None
        return _json(hook_json(record), 202)

    async def webhook(self, request: Request) -> Response:
        """Store the request for the webhook holding ``token``; answer as it was told.

        The token is looked up before the body is read: a request to a token no webhook
        has costs no body, whoever sends it.
        """
        token = request.path_params["token"]
        _plain_key(token, "webhook has token")
        created = _webhook_created(await self.store.hook_event(token))
        if created is None:
            raise _Refused(404, f"no live webhook has token {token!r}")
        body = await _read_body(request, self.max_body)
        sent = WebhookRequest(
            method=request.method,
            path=request.url.path,
            query=dict(request.query_params),
            query_string=request.url.query,
            headers={
                name: ", ".join(request.headers.getlist(name))
                for name in request.headers
                if name not in self.secret_headers
            },
            body=body,
        )
        try:
            await self.engine.resume_hook(token, sent.to_payload(), name=WEBHOOK)
        except HookNotFoundError:
            raise _Refused(404, f"no live webhook has token {token!r}") from None
        except ValueError as exc:
            raise _Refused(422, str(exc)) from None
        status, content = webhook_response(created)
        if content is None:
            return Response(None, status)
        if isinstance(content, str):
            return Response(content, status, media_type="text/plain; charset=utf-8")
        return _json(content, status)

    # -- runs ---------------------------------------------------------------------------

    async def start_run(self, request: Request) -> Response:
        """Start a run of a workflow this process defines."""
        body = await _read_json(request, self.max_body)
        name, args, kwargs, run_id = _start_request(body)
        flow = _flow_options(body)
        spec = lookup_workflow(name)
        if spec is None:
            raise _Refused(404, f"no workflow named {name!r} is defined in this process")
        call_args, call_kwargs = _bind(spec, args, kwargs)
        existing = await self.store.get_run(run_id) if run_id is not None else None
        try:
            run: Run[Any] = await self.engine.start(
                Workflow(spec), *call_args, run_id=run_id, **flow, **call_kwargs
            )
        except TypeError as exc:
            raise _Refused(422, f"bad arguments for workflow {name!r}: {exc}") from None
        except ValueError as exc:
            raise _Refused(409, str(exc)) from None
        return _json(run_detail_json(run.record), 200 if existing is not None else 201)

    async def list_runs(self, request: Request) -> Response:
        """Runs, newest first."""
        status_text = request.query_params.get("status")
        status: RunStatus | None = None
        if status_text is not None:
            try:
                status = RunStatus(status_text)
            except ValueError:
                choices = ", ".join(s.value for s in RunStatus)
                raise _Refused(
                    400, f"query parameter 'status' must be one of {choices}; got {status_text!r}"
                ) from None
        workflow = request.query_params.get("workflow")
        if workflow is not None and "\x00" in workflow:
            raise _Refused(400, "query parameter 'workflow' contains a NUL character")
        parent_id = request.query_params.get("parent_id")
        if parent_id is not None and "\x00" in parent_id:
            raise _Refused(400, "query parameter 'parent_id' contains a NUL character")
        limit = _query_int(request, LIMIT)
        try:
            page = await self.engine.list_runs_page(
                status=status,
                workflow=workflow,
                limit=limit,
                parent_id=parent_id,
                attributes=_attribute_terms(request),
                after=request.query_params.get("after"),
            )
        except (TypeError, ValueError) as exc:  # a bad attribute term or cursor
            raise _Refused(400, str(exc)) from None
        fleet = Fleet(await self.engine.list_workers())
        views = [with_fleet(run_json(run.record), run.record, fleet) for run in page.runs]
        for view, run in zip(views, page.runs, strict=True):  # why a pending run waits
            if run.record.status is RunStatus.PENDING and run.record.owner is None:
                wait = await self.engine.limit_wait(run.id)
                view["waiting_for"] = waiting_json(wait)["waiting_for"]
        return _json(RunList(runs=views, next=page.next))

    async def get_run(self, request: Request) -> Response:
        """One run: its status, its result or error once it ended, and its children."""
        record = await self._run(request)
        children = await self.engine.list_runs(parent_id=record.id, limit=MAX_CHILDREN)
        wait = None  # why a pending run waits on its workflow's concurrency limit
        if record.status is RunStatus.PENDING and record.owner is None:
            wait = await self.engine.limit_wait(record.id)
        detail = run_detail_json(record, [child.record for child in children])
        with_fleet(detail, record, Fleet(await self.engine.list_workers()))
        return _json({**detail, **waiting_json(wait)})

    async def run_events(self, request: Request) -> Response:
        """The run's log, oldest first (after ``after``, a sequence number)."""
        after = _query_int(request, AFTER)
        record = await self._run(request)
        events = await self.store.events(record.id, after_seq=after)
        return _json(EventList(run_id=record.id, events=[event_json(e) for e in events]))

    async def cancel_run(self, request: Request) -> Response:
        """Ask for the run to be cancelled; the request is stored before the answer."""
        run_id = _run_id(request)
        try:
            record = await self.engine.cancel(run_id)
        except RunNotFoundError:
            raise _Refused(404, f"no run with id {run_id!r}") from None
        return _json(run_detail_json(record), 202)

    async def unblock_run(self, request: Request) -> Response:
        """Try a blocked run again now; a run that is not blocked is left as it is."""
        run_id = _run_id(request)
        try:
            record = await self.engine.unblock(run_id)
        except RunNotFoundError:
            raise _Refused(404, f"no run with id {run_id!r}") from None
        return _json(run_detail_json(record), 202)

    async def rerun(self, request: Request) -> Response:
        """Start a new run of the run's workflow with the same stored input."""
        run_id = _run_id(request)
        try:
            run = await self.engine.rerun(run_id)
        except RunNotFoundError:
            raise _Refused(404, f"no run with id {run_id!r}") from None
        return _json(run_detail_json(run.record), 201)

    async def fork(self, request: Request) -> Response:
        """Start a new run with the run's log up to a step, then today's code."""
        run_id = _run_id(request)
        body = await _read_json(request, self.max_body)
        from_step = body.get("from_step") if isinstance(body, dict) else None
        if not isinstance(from_step, str) or not from_step:
            raise _Refused(422, 'send {"from_step": "ID"}, a step id such as "charge#1"')
        try:
            run = await self.engine.fork(run_id, from_step=from_step)
        except RunNotFoundError:
            raise _Refused(404, f"no run with id {run_id!r}") from None
        except ValueError as exc:  # a step the log does not hold, or a live hook
            raise _Refused(422, str(exc)) from None
        return _json(run_detail_json(run.record), 201)

    async def run_timeline(self, request: Request) -> Response:
        """The run's steps, sleeps and hooks in time, built from its log."""
        record = await self._run(request)
        events = await self.store.events(record.id)
        return _json(timeline_json(record.id, events, self.engine.clock.now()))

    async def list_hooks(self, request: Request) -> Response:
        """Live hooks, oldest first; with ``run``, only that run's."""
        run_id = request.query_params.get("run")
        if run_id is not None:
            await self._find(run_id)
        hooks = await self.store.list_hooks(run_id=run_id)
        return _json(HookList(hooks=[_hook_detail(hook) for hook in hooks]))

    async def _run(self, request: Request) -> RunRecord:
        return await self._find(_run_id(request))

    async def _find(self, run_id: str) -> RunRecord:
        _plain_key(run_id, "run with id")
        try:
            run = await self.engine.get_run(run_id)
        except RunNotFoundError:
            raise _Refused(404, f"no run with id {run_id!r}") from None
        return run.record


def _run_id(request: Request) -> str:
    """The path's run id, refused at once if no store could hold it."""
    run_id: str = request.path_params["run_id"]
    _plain_key(run_id, "run with id")
    return run_id


def _hook_detail(hook: HookRecord) -> HookDetail:
    definition = lookup_hook(hook.name) if hook.kind != WEBHOOK else None
    return hook_detail_json(hook, _json_schema(definition) if definition is not None else None)


def _webhook_created(event: Event | None) -> HookCreated | None:
    """A live webhook's ``hook_created`` event, read; None for any other (or none)."""
    if event is None:
        return None
    try:
        created = HookCreated.of(event)
    except LogFormatError:
        return None
    return created if created.kind == WEBHOOK else None


_schemas: dict[int, tuple[Hook[Any], JSON]] = {}


def _json_schema(definition: Hook[Any]) -> JSON:
    """The JSON Schema of a hook's payload type, or None when pydantic cannot say."""
    cached = _schemas.get(id(definition))
    if cached is not None and cached[0] is definition:
        return cached[1]
    try:
        document: JSON = pydantic.TypeAdapter(definition.schema).json_schema()
    except Exception:  # a type pydantic cannot describe: the form goes without a hint
        document = None
    _schemas[id(definition)] = (definition, document)
    return document


def _start_request(body: JSON) -> tuple[str, list[Any], dict[str, Any], str | None]:
    if not isinstance(body, dict):
        raise _Refused(422, "the body must be a JSON object with 'workflow' (and 'args', ...)")
    unknown = sorted(set(body) - _START_KEYS)
    if unknown:
        raise _Refused(
            422, f"unknown field(s) {', '.join(map(repr, unknown))}; expected {sorted(_START_KEYS)}"
        )
    name = body.get("workflow")
    if not isinstance(name, str) or not name:
        raise _Refused(422, "'workflow' must be a non-empty string naming a workflow")
    args = body.get("args", [])
    if not isinstance(args, list):
        raise _Refused(422, "'args' must be a JSON array of positional arguments")
    kwargs = body.get("kwargs", {})
    if not isinstance(kwargs, dict):
        raise _Refused(422, "'kwargs' must be a JSON object of keyword arguments")
    run_id = body.get("run_id")
    if run_id is not None and (not isinstance(run_id, str) or not run_id.strip() or "/" in run_id):
        raise _Refused(422, "'run_id' must be a non-empty string without '/', or null")
    return name, args, kwargs, run_id


def _flow_options(body: dict[str, Any]) -> dict[str, Any]:
    """``POST /runs``'s flow control, checked: a 422 names what is wrong.

    `Engine.start`'s ``priority``, ``dedupe_key`` and ``debounce``; nothing is started
    when one is wrong.
    """
    options: dict[str, Any] = {}
    priority = body.get("priority", 0)
    try:
        check_priority(priority)
    except ValueError as exc:
        raise _Refused(422, f"'priority': {exc}") from None
    if priority:
        options["priority"] = priority
    dedupe_key = body.get("dedupe_key")
    if dedupe_key is not None:
        if not isinstance(dedupe_key, str) or not dedupe_key.strip() or unstorable(dedupe_key, "x"):
            raise _Refused(422, "'dedupe_key' must be a non-empty string, or null")
        options["dedupe_key"] = dedupe_key
    debounce = body.get("debounce")
    if debounce is not None:
        if dedupe_key is None:
            raise _Refused(422, "'debounce' needs a 'dedupe_key': the starts it folds share it")
        try:
            window = parse_duration(debounce, what="'debounce'")
        except (TypeError, ValueError) as exc:
            raise _Refused(422, str(exc)) from None
        if window <= timedelta(0) or window > timedelta(days=366):
            raise _Refused(422, "'debounce' must be positive, and at most a year")
        options["debounce"] = window
    return options


def _bind(
    spec: WorkflowSpec, args: list[Any], kwargs: dict[str, Any]
) -> tuple[tuple[Any, ...], dict[str, Any]]:
    """The call the JSON arguments stand for, typed by the workflow's annotations."""
    try:
        bound = inspect.signature(spec.fn).bind(*args, **kwargs)
    except TypeError as exc:
        raise _Refused(422, f"bad arguments for workflow {spec.name!r}: {exc}") from None
    data: dict[str, Any] = {}
    for name, value in bound.arguments.items():
        data[name] = list(value) if isinstance(value, tuple) else value
    try:
        return spec.codec.decode_args(data)
    except TypeError as exc:
        raise _Refused(422, f"bad arguments for workflow {spec.name!r}: {exc}") from None


async def _not_found(request: Request, exc: Exception) -> Response:
    del exc
    return _error(404, f"no such endpoint: {request.method} {request.url.path}")


async def _http_error(request: Request, exc: Exception) -> Response:
    if not isinstance(exc, HTTPException):  # pragma: no cover (registered for HTTPException)
        raise exc
    if exc.status_code == 405:  # noqa: PLR2004
        return _error(
            405, f"method {request.method} is not allowed on {request.url.path}", exc.headers
        )
    return _error(exc.status_code, str(exc.detail), exc.headers)


async def _client_gone(request: Request, exc: Exception) -> Response:
    """The client hung up before its body was in: nobody is left to answer.

    Not a server error: anyone can do it, at will, so it must not log a traceback.
    """
    del exc
    logger.debug("perdure HTTP: %s %s: the client hung up", request.method, request.url.path)
    return Response(None, 400)  # never sent: the connection is gone


async def _body_timeout(request: Request, exc: Exception) -> Response:
    """The body did not arrive in time: 408, and the connection is closed."""
    del request
    return _error(408, str(exc), {"Connection": "close"})


async def _server_error(request: Request, exc: Exception) -> Response:
    logger.error("perdure HTTP: %s %s failed", request.method, request.url.path, exc_info=exc)
    return _error(500, "internal error; the server's log has the details")


def _by_method(
    path: str, handlers: Mapping[str, Callable[[Request], Awaitable[Response]]]
) -> Route:
    """One route for a path served by several handlers, one per method.

    One route per method would answer a wrong method with the first route's methods
    alone in ``Allow`` (``POST`` for ``/runs``, which takes GET too).
    """

    async def dispatch(request: Request) -> Response:
        return await handlers[request.method if request.method != "HEAD" else "GET"](request)

    dispatch.__name__ = "_".join(handler.__name__ for handler in handlers.values())
    return Route(path, dispatch, methods=list(handlers))


def _default_hosts(engine: Engine, token: str | None) -> list[str]:
    """The Host names an app answers to when ``allowed_hosts`` is not given."""
    if token is not None:
        return ["*"]
    hosts = list(LOOPBACK_HOSTS)
    public = urlsplit(engine.public_url).hostname if engine.public_url else None
    if public:
        hosts.append(public)
    return hosts


def create_app(
    engine: Engine,
    *,
    token: str | None = None,
    max_body: int = 1_048_576,
    dashboard: bool = True,
    allowed_hosts: Iterable[str] | None = None,
    secret_headers: Iterable[str] = (),
    body_timeout: float = 30.0,
    metrics: bool = False,
) -> Starlette:
    """Perdure's HTTP API, webhooks and web dashboard as an ASGI app (see `perdure.http`).

    Args:
        engine: the Engine whose store the app reads and writes. Served on its own, the
            app enters it for its lifetime when it is not running yet; mounted in
            another app, enter it in that app's lifespan.
        token: the bearer token every endpoint but the webhooks and ``/openapi.json``
            requires; defaults to ``$PERDURE_API_TOKEN``; None (and no variable) leaves
            the API open. Browsers sign in to the dashboard with it at ``/login``.
        max_body: the largest request body accepted, in bytes (413 above it).
        dashboard: serve the web dashboard (``/``, ``/runs/{id}`` for browsers,
            ``/static/...``, ``/login``); False serves the API alone.
        allowed_hosts: the names in the ``Host`` header the app answers to (400 for
            any other): names, addresses (``::1``), ``*.example.com`` for a domain's
            subdomains, ``"*"`` for any. By default, with a token, any; without one (an
            open API), only this machine's names (``localhost``, ``127.0.0.1``,
            ``[::1]``) and the host of the Engine's ``public_url``, so that no page on
            another site can reach the open API through a visitor's browser by DNS
            rebinding. Behind a proxy that passes its own name on, name it here.
        secret_headers: request headers, besides ``Authorization``, ``Cookie`` and
            ``Proxy-Authorization``, that are never stored with a webhook's request
            (names in any case): the headers that carry your clients' credentials.
        body_timeout: the seconds a request's body may take to arrive in full,
            counted from the request's start (408 after them).
        metrics: serve ``GET /metrics``: this process's OpenTelemetry metrics in
            Prometheus' text format (the ``metrics`` extra), behind the token like the
            API. ``GET /stats``, the store's aggregates, is always served.
    """
    if max_body < 0:
        raise ValueError(f"max_body must be >= 0, got {max_body}")
    if not body_timeout > 0:
        raise ValueError(f"body_timeout must be > 0 seconds, got {body_timeout}")
    if metrics:  # counting starts now, not at the first scrape; a missing extra is said now
        prometheus_registry()
    secret = token if token is not None else (os.environ.get("PERDURE_API_TOKEN") or None)
    hidden = CREDENTIAL_HEADERS | {name.strip().lower() for name in secret_headers}
    api = _Api(engine, secret, max_body, frozenset(hidden))
    document = openapi_document(
        secured=secret is not None, max_body=max_body, body_timeout=body_timeout
    )
    hosts = list(allowed_hosts) if allowed_hosts is not None else _default_hosts(engine, secret)
    hosts = [host_pattern(host) for host in hosts]  # a mistake is said now, not at a request
    guard = Middleware(Guard, allowed_hosts=hosts, body_timeout=body_timeout)

    async def openapi(request: Request) -> Response:
        """This API's OpenAPI 3.1 document."""
        del request
        return _json(document)

    pages = Dashboard(secret) if dashboard else None
    get_run_json = api.endpoint(api.get_run)

    async def get_run(request: Request) -> Response:
        """One run as JSON, or its dashboard page for a browser that asks for HTML."""
        if pages is not None and wants_html(request):
            return await pages.run_page(request)
        response = await get_run_json(request)
        if pages is not None:
            response.headers["Vary"] = "Accept"
        return response

    get_stats_json = api.endpoint(stats_endpoint(engine))

    async def stats(request: Request) -> Response:
        """The store's aggregates as JSON, or the Metrics page for a browser."""
        if pages is not None and wants_html(request):
            return await pages.metrics_page(request)
        response = await get_stats_json(request)
        if pages is not None:
            response.headers["Vary"] = "Accept"
        return response

    routes = [
        Route(
            "/openapi.json",
            api.endpoint(openapi, auth=False, needs_engine=False),
            methods=["GET"],
        ),
        Route("/hooks/{token:path}/resume", api.endpoint(api.resume_hook), methods=["POST"]),
        Route(
            "/webhooks/{token}",
            api.endpoint(api.webhook, auth=False),
            methods=list(WEBHOOK_METHODS),
        ),
        Route("/hooks", api.endpoint(api.list_hooks), methods=["GET"]),
        _by_method(
            "/runs", {"GET": api.endpoint(api.list_runs), "POST": api.endpoint(api.start_run)}
        ),
        Route("/runs/{run_id}", get_run, methods=["GET"]),
        Route("/runs/{run_id}/events", api.endpoint(api.run_events), methods=["GET"]),
        Route("/runs/{run_id}/timeline", api.endpoint(api.run_timeline), methods=["GET"]),
        Route("/runs/{run_id}/streams", api.endpoint(streams_endpoint(engine)), methods=["GET"]),
        Route(
            "/runs/{run_id}/streams/{name:path}",
            api.endpoint(stream_endpoint(engine)),
            methods=["GET"],
        ),
        Route("/runs/{run_id}/cancel", api.endpoint(api.cancel_run), methods=["POST"]),
        Route("/runs/{run_id}/unblock", api.endpoint(api.unblock_run), methods=["POST"]),
        Route("/runs/{run_id}/rerun", api.endpoint(api.rerun), methods=["POST"]),
        Route("/runs/{run_id}/fork", api.endpoint(api.fork), methods=["POST"]),
        Route("/stats", stats, methods=["GET"]),
        Route("/limits", api.endpoint(limits_endpoint(engine)), methods=["GET"]),
        Route("/workers", api.endpoint(workers_endpoint(engine)), methods=["GET"]),
        *schedule_routes(
            engine,
            api.endpoint,
            lambda request: _read_json(request, max_body),
            pages.schedules_page if pages is not None else None,
            wants_html,
        ),
        *(
            [Route("/metrics", api.endpoint(metrics_endpoint, needs_engine=False))]
            if metrics
            else []
        ),
        *(pages.routes() if pages is not None else []),
    ]

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        del app
        if engine.running:
            yield
            return
        async with engine:
            yield

    app = Starlette(
        routes=routes,
        middleware=[guard],
        exception_handlers={
            404: _not_found,
            HTTPException: _http_error,
            ClientDisconnect: _client_gone,
            BodyTimeout: _body_timeout,
            Exception: _server_error,
        },
        lifespan=lifespan,
    )
    app.state.perdure_engine = engine
    return app
