"""`define_hook`: typed outside events a workflow waits for, and `resume` to send them.

`create_webhook` makes a hook that perdure's HTTP app (`perdure.http`) feeds with the
HTTP requests sent to its URL.
"""

from __future__ import annotations

import base64
import binascii
import functools
import json
import math
import secrets
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Generic, TypeVar
from urllib.parse import parse_qsl

import pydantic

from perdure import _current
from perdure._payload_schema import payload_schema, schema_problems
from perdure._replay import WEBHOOK, HookStream, current_instance
from perdure._serde import decode, encode, validator

if TYPE_CHECKING:
    from perdure._current import CurrentEngine
    from perdure._log import HookCreated
    from perdure._records import JSON, HookRecord

__all__ = [
    "WEBHOOK",
    "Hook",
    "RecentHooks",
    "Webhook",
    "WebhookRequest",
    "create_webhook",
    "define_hook",
    "lookup_hook",
    "payload_errors",
    "stored_payload",
    "unstorable",
    "webhook_response",
]

T = TypeVar("T")

_registry: dict[str, Hook[Any]] = {}
"""Every hook defined in this process, by name (a later definition replaces an earlier)."""


def lookup_hook(name: str) -> Hook[Any] | None:
    """The hook defined under ``name`` in this process, if any (the CLI validates with it)."""
    return _registry.get(name)


class Hook(Generic[T]):
    """A kind of outside event, with the schema its payloads must meet.

    Made by `define_hook`. In a workflow, `create` opens a hook under a token; anywhere
    (any process sharing the store), `resume` sends it a payload.
    """

    def __init__(self, schema: type[T], name: str | None = None) -> None:
        self.schema = schema
        self.name = name or getattr(schema, "__qualname__", None) or repr(schema)
        if self.name == WEBHOOK:
            raise ValueError(
                f"the hook name {WEBHOOK!r} is reserved for create_webhook(); "
                "pass define_hook(..., name=...) another name"
            )
        self._adapter = validator(schema)
        _registry[self.name] = self

    def __repr__(self) -> str:
        return f"<perdure hook {self.name!r}>"

    def create(self, *, token: str | None = None) -> HookStream[T]:
        """Open a hook in the running workflow under ``token`` (a fresh one by default).

        Await the result for one payload (the hook is then disposed), or iterate it
        with ``async for`` for many. A token is unique among live hooks: creating one
        that another live hook holds raises `HookConflictError` when awaited.

        Raises:
            RuntimeError: outside a workflow.
        """
        instance = current_instance()
        if instance is None:
            raise RuntimeError(f"{self.name}.create() must be called inside a workflow")
        if token is None:
            token = f"{self.name}-{instance.uuid4().hex}"
        elif not isinstance(token, str) or not token:
            raise ValueError(f"a hook token must be a non-empty string, got {token!r}")
        return instance.create_hook(self.name, token, "hook", self._decode, schema=self.json_schema)

    @functools.cached_property
    def json_schema(self) -> dict[str, Any] | None:
        """The JSON Schema stored with each hook this creates, which every resume passes.

        None when pydantic cannot describe the schema's type: such hooks take payloads
        checked only where the type is defined. Made at the first `create`, not at
        definition, when the types a model refers to may not all exist yet.
        """
        return payload_schema(self.schema)

    def _decode(self, data: Any) -> T:
        value: T = decode(data, self.schema, where=f"payload of hook {self.name!r}")
        return value

    def validate(self, payload: Any) -> T:
        """Check ``payload`` against the schema and return it as the schema's type.

        Raises:
            pydantic.ValidationError: (a ValueError) naming the fields that are wrong.
        """
        value: T = self._adapter.validate_python(payload)
        return value

    async def resume(
        self, token: str, payload: T | dict[str, Any], *, engine: CurrentEngine | None = None
    ) -> HookRecord:
        """Send ``payload`` to the live hook holding ``token``, waking its run.

        The payload is validated before anything is written; the call returns once it
        is stored durably. Works from any process sharing the store. This is
        `Engine.resume_hook` on ``engine`` (by default the current Engine) for a hook
        of this name.

        Raises:
            HookNotFoundError: no live hook holds the token (a LookupError).
            pydantic.ValidationError: the payload fails the schema (a ValueError).
        """
        # Checked here first, so that a bad payload is pydantic's error naming the
        # fields, raised before any Engine or store is asked (the Engine checks again).
        self.validate(payload)
        target = engine if engine is not None else _current.latest()
        return await target.resume_hook(token, payload, name=self.name)


def define_hook(schema: type[T], *, name: str | None = None) -> Hook[T]:
    """Define a hook whose payloads follow ``schema``.

    Args:
        schema: a pydantic model, a dataclass or a TypedDict (anything pydantic
            validates).
        name: the name stored with hooks of this kind; defaults to the schema's name.
    """
    return Hook(schema, name)


# -- webhooks ---------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class WebhookRequest:
    """An HTTP request sent to a webhook's URL, as the workflow receives it.

    Attributes:
        method: ``GET``, ``POST``, ``PUT``, ``PATCH`` or ``DELETE``.
        path: the request's path, as the server saw it.
        query: the query parameters (the last value of a repeated one).
        query_string: the raw query string, for repeated parameters.
        headers: the headers, names in lower case (repeated ones joined by ``", "``).
        body: the body, as bytes.
    """

    method: str
    path: str
    query: dict[str, str] = field(default_factory=dict)
    query_string: str = ""
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""

    @property
    def text(self) -> str:
        """The body decoded as UTF-8 (undecodable bytes replaced)."""
        return self.body.decode("utf-8", errors="replace")

    def json(self) -> Any:
        """The body parsed as JSON.

        Raises:
            ValueError: the body is not JSON (`json.JSONDecodeError`).
        """
        return json.loads(self.body)

    def to_payload(self) -> dict[str, JSON]:
        """The JSON form stored in the log: a UTF-8 body as text, any other in base64."""
        try:
            body, encoding = self.body.decode("utf-8"), "utf-8"
        except UnicodeDecodeError:
            body, encoding = "", "base64"
        if encoding == "base64" or "\x00" in body:  # NUL: some databases refuse it in JSON
            body, encoding = base64.b64encode(self.body).decode("ascii"), "base64"
        return {
            "method": self.method,
            "path": self.path,
            "query_string": self.query_string,
            "headers": dict(self.headers),
            "body": body,
            "body_encoding": encoding,
        }

    @classmethod
    def from_payload(cls, data: Any) -> WebhookRequest:
        """Rebuild a request from `to_payload`'s JSON form.

        Raises:
            TypeError: ``data`` is not such a form (say, a payload sent by hand).
        """
        try:
            method, path = data["method"], data["path"]
            query_string = data.get("query_string", "")
            headers = data.get("headers", {})
            text, encoding = data.get("body", ""), data.get("body_encoding", "utf-8")
            if not (
                isinstance(method, str)
                and isinstance(path, str)
                and isinstance(query_string, str)
                and isinstance(text, str)
                and isinstance(headers, dict)
                and all(isinstance(v, str) for v in headers.values())
            ):
                raise TypeError("a field has the wrong type")  # noqa: TRY301
            if encoding == "base64":
                body = base64.b64decode(text.encode("ascii"), validate=True)
            elif encoding == "utf-8":
                body = text.encode("utf-8")
            else:
                raise TypeError(f"unknown body_encoding {encoding!r}")  # noqa: TRY301
        except (KeyError, TypeError, AttributeError, ValueError, binascii.Error) as exc:
            raise TypeError(f"cannot deserialize a webhook request from {data!r}: {exc}") from None
        return cls(
            method=method,
            path=path,
            query=dict(parse_qsl(query_string, keep_blank_values=True)),
            query_string=query_string,
            headers=headers,
            body=body,
        )


class Webhook(HookStream[WebhookRequest]):
    """A hook fed by HTTP requests to `url`: await it for one, iterate it for many.

    Made by `create_webhook`. Its ``token`` is random (192 bits) and stays the same
    when the run is replayed.
    """

    @property
    def url(self) -> str:
        """``{public_url}/webhooks/{token}``, where perdure's HTTP app accepts requests.

        Raises:
            RuntimeError: no public URL is configured (``Engine(public_url=...)`` or
                ``$PERDURE_PUBLIC_URL``); ``token`` still works.
        """
        base = _current.public_url()
        if base is None:
            raise RuntimeError(
                "a webhook URL needs the public URL of perdure's HTTP app: pass "
                "Engine(public_url='https://example.com/perdure') or set "
                f"$PERDURE_PUBLIC_URL (the token alone is {self.token!r})"
            )
        return f"{base}/webhooks/{self.token}"


_NO_BODY_STATUSES = frozenset({204, 205, 304})
_MIN_STATUS, _MAX_STATUS = 200, 599


def create_webhook(*, respond_with: int = 202, body: Any = None) -> Webhook:
    """Open a webhook in the running workflow: a hook fed by HTTP requests to its URL.

    Any ``GET``, ``POST``, ``PUT``, ``PATCH`` or ``DELETE`` to ``webhook.url`` (served
    by `perdure.http.create_app`) is stored and delivered as a `WebhookRequest`; the
    sender gets ``respond_with`` and ``body`` back at once. Await the webhook for one
    request, or iterate it with ``async for`` for many.

    Args:
        respond_with: the HTTP status sent back, 200 to 599.
        body: what is sent back: None (no body), a str (``text/plain``), or any other
            JSON value (``application/json``). Not allowed with 204, 205 and 304.

    Raises:
        RuntimeError: outside a workflow.
        TypeError: ``body`` is not JSON, or ``respond_with`` is not an int.
        ValueError: ``respond_with`` is out of range, or forbids a body.
    """
    instance = current_instance()
    if instance is None:
        raise RuntimeError("create_webhook() must be called inside a workflow")
    if not isinstance(respond_with, int) or isinstance(respond_with, bool):
        raise TypeError(f"create_webhook(respond_with=...) takes an int, got {respond_with!r}")
    if not _MIN_STATUS <= respond_with <= _MAX_STATUS:
        raise ValueError(
            f"create_webhook(respond_with=...) must be an HTTP status from {_MIN_STATUS} "
            f"to {_MAX_STATUS}, got {respond_with}"
        )
    if body is not None and respond_with in _NO_BODY_STATUSES:
        raise ValueError(f"an HTTP {respond_with} response has no body; pass body=None")
    try:
        stored = json.loads(json.dumps(body, allow_nan=False))
    except (TypeError, ValueError) as exc:
        raise TypeError(
            f"create_webhook(body=...) must be None, a str or a JSON value: {exc}"
        ) from None
    token = secrets.token_urlsafe(24)  # not the run's seeded generator: it must be unguessable
    stream = instance.create_hook(
        WEBHOOK,
        token,
        WEBHOOK,
        WebhookRequest.from_payload,
        respond_with=respond_with,
        body=stored,
        stream_type=Webhook,
    )
    assert isinstance(stream, Webhook)  # noqa: S101 (made with stream_type=Webhook)
    return stream


def webhook_response(created: HookCreated) -> tuple[int, JSON]:
    """The status and body a webhook answers with, from its ``hook_created`` event."""
    status = created.respond_with
    if status is None or not _MIN_STATUS <= status <= _MAX_STATUS:
        status = 202
    return status, created.body


def payload_errors(exc: pydantic.ValidationError) -> str:
    """A payload's schema failure as one line naming each wrong field and why."""
    parts = []
    for problem in exc.errors():
        where = ".".join(str(part) for part in problem["loc"]) or "payload"
        parts.append(f"{where}: {problem['msg']}")
    return "; ".join(parts)


def stored_payload(name: str, payload: Any, schema: dict[str, Any] | None = None) -> JSON:
    """What is stored when ``payload`` is sent to a hook named ``name``: every resume's check.

    A hook this process defines (`define_hook`) takes the payload validated against its
    type and encoded, as the workflow decodes it; a hook defined elsewhere, and a
    webhook, take it as given. Either way it must be JSON that every database can keep,
    and pass ``schema``, the JSON Schema stored with the live hook (None for a webhook
    and for a hook created without one), whichever process sends it.

    Raises:
        ValueError: naming the hook and each wrong field, or what cannot be stored;
            nothing has been written.
    """
    definition = _registry.get(name)  # never a webhook: no definition takes its name
    if definition is None:
        encoded: JSON = payload
    else:
        try:
            value = definition.validate(payload)
        except pydantic.ValidationError as exc:
            raise ValueError(
                f"payload does not match hook {name!r}: {payload_errors(exc)}"
            ) from exc
        except (ValueError, TypeError) as exc:
            raise ValueError(f"payload does not match hook {name!r}: {exc}") from exc
        try:
            encoded = encode(value, definition.schema, where=f"payload of hook {name!r}")
        except TypeError as exc:
            raise ValueError(str(exc)) from exc
    try:
        problem = unstorable(encoded, "payload")
    except RecursionError:
        problem = "payload is nested too deeply to be stored"
    if problem is not None:
        raise ValueError(problem)
    if schema is not None and (problems := schema_problems(schema, encoded)):
        raise ValueError(f"payload does not match hook {name!r}: {'; '.join(problems)}")
    return encoded


class RecentHooks:
    """The ``hook_created`` of the hooks an Engine resumed lately, by token.

    A resume checks the payload against the hook's stored schema, which it reads with
    the hook's ``hook_created`` event; finding that event scans the run's log back from
    its end, so a hook iterated for thousands of payloads would make each resume cost
    more than the last. A hook's ``hook_created`` never changes, and the store writes a
    payload only to the hook it was checked against (``created_by``), so a resume may
    check against the one remembered here and read the store only when that hook is
    gone: then the write is refused, and the caller forgets it and reads again.
    """

    def __init__(self, size: int = 256) -> None:
        self._size = size
        self._hooks: OrderedDict[str, tuple[str, HookCreated]] = OrderedDict()

    def get(self, token: str) -> tuple[str, HookCreated] | None:
        """The run id and ``hook_created`` remembered for ``token``, if any."""
        found = self._hooks.get(token)
        if found is not None:
            self._hooks.move_to_end(token)
        return found

    def remember(self, token: str, run_id: str, created: HookCreated) -> None:
        """Remember the live hook holding ``token`` (the least recently used goes)."""
        self._hooks[token] = (run_id, created)
        self._hooks.move_to_end(token)
        if len(self._hooks) > self._size:
            self._hooks.popitem(last=False)

    def forget(self, token: str) -> None:
        """``token``'s hook is gone, or another holds it now."""
        self._hooks.pop(token, None)


MAX_DEPTH = 100
"""The deepest nesting of arrays and objects a payload may have.

A workflow decodes what it receives with pydantic, whose JSON parser stops at 200
levels (a payload is read inside a wrapper or two): deeper JSON, stored, would fail the
run that reads it. Nothing legitimate comes near 100.
"""


def unstorable(value: Any, where: str) -> str | None:
    r"""Where ``value`` is not JSON every database can keep, if anywhere: what is wrong.

    NUL characters and lone surrogates (``\ud800``-``\udfff``) are text JSON may
    carry but PostgreSQL and UTF-8 cannot, NaN and the infinities are numbers Python
    writes but JSON has not, and nesting deeper than `MAX_DEPTH` is more than a
    workflow reads back: all are refused before anything is written. The walk keeps
    its own stack, so no nesting makes it raise `RecursionError`; the problem reported
    is the first in document order.
    """
    # Values to look at, last first: (value, where, depth); a key's check rides along as
    # (problem, None, -1), so it is reported in its place in the document.
    pending: list[tuple[Any, str | None, int]] = [(value, where, 0)]
    while pending:
        item, at, depth = pending.pop()
        problem = item if at is None else _unstorable_value(item, at, depth)
        if problem is not None:
            return str(problem)
        if isinstance(item, list) and at is not None:
            pending.extend(
                (child, f"{at}[{index}]", depth + 1)
                for index, child in reversed(list(enumerate(item)))
            )
        elif isinstance(item, dict) and at is not None:
            for key, child in reversed(list(item.items())):
                pending.append((child, f"{at}.{key}", depth + 1))
                pending.append((_unstorable_key(key, at), None, -1))
    return None


def _unstorable_value(value: Any, where: str, depth: int) -> str | None:
    """What is wrong with ``value`` itself (not its items), if anything."""
    if isinstance(value, str):
        return _unstorable_text(value, where)
    if isinstance(value, list | dict):
        if depth >= MAX_DEPTH:
            return f"{where} is nested more than {MAX_DEPTH} arrays or objects deep"
        return None
    if isinstance(value, float) and not math.isfinite(value):
        return f"{where} is {value}, which JSON cannot hold"
    if value is None or isinstance(value, bool | int | float):
        return None
    return f"{where} is a {type(value).__name__}, not JSON"


def _unstorable_key(key: object, where: str) -> str | None:
    if not isinstance(key, str):
        return f"a key in {where} is {key!r}, not a string"
    return _unstorable_text(key, f"a key in {where}")


def _unstorable_text(text: str, where: str) -> str | None:
    if "\x00" in text:
        return f"{where} contains a NUL character, which cannot be stored"
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return rf"{where} contains a lone surrogate (\ud800-\udfff), which cannot be stored"
    return None
