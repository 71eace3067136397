"""What `create_app` guards by itself, whoever serves it (issue 11): the Host header,
bodies that are too deep, too slow or cut off, credentials in stored webhook requests,
JSON any parser reads, the methods a 405 names, and the limits the OpenAPI document
states. In-process (httpx's ASGI transport, or the ASGI interface called by hand), on
a real SQLite file; `perdure web` itself is tests/http/test_web_hardening.py's.
"""

from __future__ import annotations

import asyncio
import json
import logging
import sqlite3
from typing import TYPE_CHECKING, Any

import httpx
import pytest

from helpers import wait_for_hook, wait_until
from perdure import Engine, create_webhook, define_hook, workflow
from perdure.http import create_app
from perdure.testing import FakeClock

if TYPE_CHECKING:
    from collections.abc import AsyncIterator
    from pathlib import Path

    from starlette.types import Message

API_TOKEN = "hardening-api-token"
PUBLIC = "https://shop.example/perdure"
DEADLINE = 5.0
"""Seconds an answer may take before the test fails."""

anything = define_hook(dict[str, Any], name="http-hardening-anything")


@workflow(name="http-hardening-webhook")
async def webhook_headers() -> dict[str, str]:
    """The headers of the one request its webhook receives."""
    request = await create_webhook()
    return request.headers


@workflow(name="http-hardening-anything")
async def take_anything(token: str) -> dict[str, Any]:
    return await anything.create(token=token)


@workflow(name="http-hardening-answer")
async def answer() -> int:
    return 42


@pytest.fixture
async def engine(tmp_path: Path) -> AsyncIterator[Engine]:
    async with Engine(
        f"sqlite:///{tmp_path}/t.db", clock=FakeClock(), public_url=PUBLIC
    ) as running:
        yield running


def client_for(app: Any, base_url: str = "http://localhost") -> httpx.AsyncClient:
    """A client that sees a server error as a 500, not as the app's exception."""
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    return httpx.AsyncClient(transport=transport, base_url=base_url, timeout=DEADLINE)


async def live_webhook(engine: Engine) -> tuple[str, str]:
    """A run waiting on a webhook: its id and the webhook's token."""
    run = await engine.start(webhook_headers)
    hooks = await wait_until(engine, lambda: engine.store.list_hooks(run_id=run.id))
    return run.id, hooks[0].token


def strict_json(text: str) -> Any:
    """JSON as a browser's ``JSON.parse`` reads it: NaN and the infinities refused."""

    def refuse(name: str) -> Any:
        raise AssertionError(f"{name} is not JSON: {text[:300]}")

    return json.loads(text, parse_constant=refuse)


# -- the Host header ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("host", "answered"),
    [
        ("localhost", True),
        ("localhost:8000", True),
        ("LOCALHOST.", True),
        ("127.0.0.1:8000", True),
        ("[::1]:8000", True),
        ("[::1]", True),
        ("shop.example", True),  # the host of the Engine's public_url
        ("evil.example", False),
        ("evil.example:8000", False),
        ("127.0.0.1.evil.example", False),
        ("[::1", False),
        ("localhost:port", False),
    ],
)
async def test_an_open_app_answers_only_requests_naming_this_machine(
    engine: Engine, host: str, answered: bool
) -> None:
    """Without a token (an open API), the app itself, under any server, answers only
    requests whose Host names this machine or the public URL's host; any other gets a
    JSON 400, as every refusal is (a page on another site cannot reach the open API
    through a visitor's browser by DNS rebinding)."""
    async with client_for(create_app(engine)) as http:
        response = await http.get("/runs", headers={"Host": host})

    if answered:
        assert 200 == response.status_code, response.text
    else:
        assert 400 == response.status_code
        assert response.headers["content-type"] == "application/json"
        assert "allowed_hosts" in response.json()["error"]


async def test_allowed_hosts_is_an_option_and_a_token_opens_every_host(engine: Engine) -> None:
    """``allowed_hosts`` names the hosts (``*.domain`` for subdomains, ``::1`` as it is
    written); with a token and no ``allowed_hosts``, any host reaches the token check."""
    custom = create_app(engine, allowed_hosts=["*.example.com", "::1", "Dash.Internal"])
    async with client_for(custom) as http:
        answers = {
            host: (await http.get("/runs", headers={"Host": host})).status_code
            for host in ("a.example.com", "example.com", "[::1]:80", "dash.internal", "localhost")
        }
    async with client_for(create_app(engine, token=API_TOKEN)) as http:
        closed = await http.get("/runs", headers={"Host": "anything.example"})

    assert {
        "a.example.com": 200,
        "example.com": 400,
        "[::1]:80": 200,
        "dash.internal": 200,
        "localhost": 400,
    } == answers
    assert 401 == closed.status_code  # past the Host check, refused for want of a token


def test_a_malformed_allowed_host_is_refused_when_the_app_is_made(engine: Engine) -> None:
    """A wildcard anywhere but at the start of a domain is a mistake said at once."""
    for bad in ("ex*mple.com", "*example.com", "*.", ""):
        with pytest.raises(ValueError, match="is not a host name"):
            create_app(engine, allowed_hosts=[bad])


# -- request bodies ------------------------------------------------------------------------


@pytest.mark.parametrize("depth", [150, 400, 1000, 5000])
async def test_deeply_nested_bodies_are_refused_with_a_4xx(engine: Engine, depth: int) -> None:
    """Arrays nested 150 to 5,000 deep, as a hook's payload or a run's arguments: a 4xx
    naming the problem (before, 400 levels made a 500: the check recursed), and nothing
    stored. 150 levels parse, but no workflow could decode them."""
    await engine.start(take_anything, "deep")
    await wait_for_hook(engine, "deep")
    deep = "[" * depth + "]" * depth
    async with client_for(create_app(engine, max_body=100_000)) as http:
        resumed = await http.post(
            "/hooks/deep/resume", content='{"a": ' + deep + "}", headers={"Host": "localhost"}
        )
        started = await http.post(
            "/runs", content='{"workflow": "http-hardening-answer", "args": ' + deep + "}"
        )

    for response in (resumed, started):
        assert response.status_code in (400, 422), response.text
        assert "nested" in response.json()["error"]
    assert engine.worker is not None
    assert [] == await engine.store.inbox(engine.worker.id)
    assert 1 == len(await engine.list_runs())


async def _call(app: Any, method: str, path: str, receive: Any, **headers: str) -> list[Message]:
    """Call the ASGI app by hand, with this ``receive``; what it sent."""
    sent: list[Message] = []

    async def send(message: Message) -> None:
        sent.append(message)

    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": method,
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "root_path": "",
        "query_string": b"",
        "headers": [(b"host", b"localhost"), (b"content-length", b"1000")]
        + [(k.replace("_", "-").encode(), v.encode()) for k, v in headers.items()],
        "client": ("127.0.0.1", 50000),
        "server": ("127.0.0.1", 8000),
        "state": {},
    }
    async with asyncio.timeout(DEADLINE):
        await app(scope, receive, send)
    return sent


def hangs_up_mid_body() -> Any:
    """A ``receive`` whose client sends part of its body, then hangs up."""
    messages: list[Message] = [
        {"type": "http.request", "body": b'{"decision": "appr', "more_body": True},
        {"type": "http.disconnect"},
    ]

    async def receive() -> Message:
        return messages.pop(0) if len(messages) > 1 else messages[0]

    return receive


def never_sends_its_body(first: bytes = b"") -> Any:
    """A ``receive`` whose client sends ``first`` and then nothing, ever."""
    sent = False

    async def receive() -> Message:
        nonlocal sent
        if not sent and first:
            sent = True
            return {"type": "http.request", "body": first, "more_body": True}
        await asyncio.Event().wait()
        raise AssertionError("unreachable")

    return receive


async def test_a_client_hanging_up_mid_body_logs_no_error(
    engine: Engine, caplog: pytest.LogCaptureFixture
) -> None:
    """Hanging up mid-body (anyone can, at will) ends the request quietly, wherever a
    body is read: a webhook, a hook's resume, a start, the sign-in form. No ERROR, no
    traceback, nothing stored, and the app raises nothing to its server."""
    _, webhook = await live_webhook(engine)
    await engine.start(take_anything, "cut")
    await wait_for_hook(engine, "cut")
    open_app = create_app(engine)
    closed_app = create_app(engine, token=API_TOKEN)
    caplog.set_level(logging.DEBUG)

    for app, path in (
        (open_app, f"/webhooks/{webhook}"),
        (open_app, "/webhooks/no-such-token"),
        (open_app, "/hooks/cut/resume"),
        (open_app, "/runs"),
        (closed_app, "/login"),
    ):
        await _call(app, "POST", path, hangs_up_mid_body())

    assert [] == [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert engine.worker is not None
    assert [] == await engine.store.inbox(engine.worker.id)


async def test_a_webhook_token_is_looked_up_before_its_body_is_read(engine: Engine) -> None:
    """A request to a token no webhook has is a 404 at once, its body unread: sending a
    body that never ends costs an anonymous client's target nothing."""
    sent = await _call(
        create_app(engine), "POST", "/webhooks/no-such-token", never_sends_its_body()
    )

    assert 404 == sent[0]["status"]
    assert "no live webhook has token" in json.loads(sent[1]["body"])["error"]


async def test_a_body_that_does_not_arrive_in_time_is_a_408(engine: Engine) -> None:
    """A body not in full within ``body_timeout`` seconds (from the request's start) is
    answered 408, JSON, with ``Connection: close``; the webhook stores nothing."""
    _, webhook = await live_webhook(engine)
    app = create_app(engine, body_timeout=0.05)

    for path in (f"/webhooks/{webhook}", "/runs"):
        sent = await _call(app, "POST", path, never_sends_its_body(b'{"partial": '))
        headers = dict(sent[0]["headers"])
        assert 408 == sent[0]["status"], sent
        assert b"close" == headers[b"connection"]
        assert "did not arrive within 0.05 seconds" in json.loads(sent[1]["body"])["error"]
    assert engine.worker is not None
    assert [] == await engine.store.inbox(engine.worker.id)


# -- webhook requests keep no credentials ----------------------------------------------------


async def test_a_stored_webhook_request_holds_no_credentials(engine: Engine) -> None:
    """Authorization, Cookie (a signed-in browser's dashboard session among them) and
    Proxy-Authorization are never stored with a webhook's request, nor the headers
    named by ``secret_headers``; the others are, as sent."""
    run_id, token = await live_webhook(engine)
    app = create_app(engine, secret_headers=["X-API-Key"])
    async with client_for(app, "https://shop.example") as http:
        response = await http.post(
            f"/webhooks/{token}",
            json={"paid": True},
            headers={
                "Authorization": "Bearer secret-one",
                "Cookie": "perdure_session=secret-two; other=secret-three",
                "Proxy-Authorization": "Basic secret-four",
                "X-Api-Key": "secret-five",
                "X-Signature": "sha256=kept",
            },
        )
    headers = await (await engine.get_run(run_id)).result(timeout=DEADLINE)
    log = json.dumps([event.data for event in await engine.store.events(run_id)])

    assert 202 == response.status_code
    assert "sha256=kept" == headers["x-signature"]
    assert not {"authorization", "cookie", "proxy-authorization", "x-api-key"} & set(headers)
    assert "secret-" not in log


async def test_without_secret_headers_the_credential_headers_still_go(engine: Engine) -> None:
    """The three credential headers go whatever ``secret_headers`` says."""
    run_id, token = await live_webhook(engine)
    async with client_for(create_app(engine), "https://shop.example") as http:
        await http.get(
            f"/webhooks/{token}", headers={"Authorization": "Bearer x", "X-Custom": "kept"}
        )
    headers = await (await engine.get_run(run_id)).result(timeout=DEADLINE)

    assert "authorization" not in headers
    assert "kept" == headers["x-custom"]


# -- answers any parser reads ------------------------------------------------------------------


async def test_a_stored_nan_is_never_served_as_bare_nan(engine: Engine, tmp_path: Path) -> None:
    """A NaN or an infinity in a stored log (an older release, or a hand, wrote it) is
    served as the string "NaN" ("Infinity"): the run, its events and its timeline stay
    JSON a browser parses, so the dashboard can show that run."""
    run = await engine.start(answer)
    assert 42 == await run.result(timeout=DEADLINE)
    with sqlite3.connect(tmp_path / "t.db") as conn:
        conn.execute("UPDATE runs SET output = '[NaN, Infinity]' WHERE id = ?", (run.id,))
        conn.execute(
            "UPDATE events SET data = replace(data, '42', '-Infinity') "
            "WHERE run_id = ? AND type = 'run_completed'",
            (run.id,),
        )
    async with client_for(create_app(engine)) as http:
        detail = await http.get(f"/runs/{run.id}")
        events = await http.get(f"/runs/{run.id}/events")
        timeline = await http.get(f"/runs/{run.id}/timeline")

    assert ["NaN", "Infinity"] == strict_json(detail.text)["output"]
    assert "-Infinity" in json.dumps(strict_json(events.text)["events"][-1]["data"])
    strict_json(timeline.text)


# -- the document and the methods agree with the code -----------------------------------------


async def test_a_405_lists_the_methods_the_path_takes(engine: Engine) -> None:
    """For every path of the OpenAPI document, a method it does not take is a JSON 405
    whose ``Allow`` lists exactly the methods the document gives it (and HEAD with GET):
    ``/runs`` takes GET and POST, not POST alone."""
    async with client_for(create_app(engine)) as http:
        document = (await http.get("/openapi.json")).json()
        wrong: dict[str, tuple[set[str], set[str]]] = {}
        for template, operations in document["paths"].items():
            path = template.replace("{token}", "t").replace("{run_id}", "r")
            documented = {method.upper() for method in operations}
            untaken = {"GET", "POST", "PUT", "PATCH", "DELETE"} - documented
            if not untaken:
                continue  # a webhook takes every method
            response = await http.request(min(untaken), path)
            assert 405 == response.status_code, (path, response.text)
            assert "is not allowed" in response.json()["error"]
            allowed = {m.strip() for m in response.headers["allow"].split(",")}
            expected = documented | ({"HEAD"} if "GET" in documented else set())
            if allowed != expected:
                wrong[path] = (allowed, expected)

    assert {} == wrong


async def test_every_documented_limit_is_the_one_enforced(engine: Engine) -> None:
    """Each integer query parameter of the document states its minimum and maximum, and
    the server takes exactly that range (``?after=`` included); the body limits the
    document states are the app's."""
    await engine.start(answer, run_id="r1")
    app = create_app(engine, max_body=4096, body_timeout=12.5)
    async with client_for(app) as http:
        document = (await http.get("/openapi.json")).json()
        probed: list[str] = []
        for template, operations in document["paths"].items():
            path = template.replace("{run_id}", "r1").replace("{token}", "t")
            for method, operation in operations.items():
                for parameter in operation.get("parameters", []):
                    schema = parameter["schema"]
                    if parameter["in"] != "query" or schema.get("type") != "integer":
                        continue
                    name, low, high = parameter["name"], schema["minimum"], schema["maximum"]
                    for value, ok in (
                        (low, True),
                        (high, True),
                        (low - 1, False),
                        (high + 1, False),
                    ):
                        response = await http.request(method, path, params={name: value})
                        assert (response.status_code == 400) is not ok, (path, name, value)
                    probed.append(f"{path}?{name}")
        resume = document["paths"]["/hooks/{token}/resume"]["post"]["responses"]
        too_big = await http.post("/runs", content=b"[" + b" " * 4096 + b"]")

    assert {"/runs?limit", "/runs/r1/events?after"} <= set(probed)
    assert "4096 bytes" in resume["413"]["description"]
    assert "12.5 seconds" in resume["408"]["description"]
    assert 413 == too_big.status_code
