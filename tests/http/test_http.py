"""perdure.http: resuming hooks, webhooks and the runs API over HTTP, on memory and SQLite.

Requests go through `httpx.ASGITransport` to the app, in the test's own event loop. Bad
input must get a 4xx naming what was wrong and leave the store exactly as it was; a
schemathesis run against /openapi.json checks that no generated request gets a 5xx, and
that every answer matches the schema the document gives for it.
"""

from __future__ import annotations

import asyncio
import json
from typing import TYPE_CHECKING, Any, Literal

import httpx
import hypothesis
import pydantic
import pytest
import schemathesis
from fastapi_app import build_app, order
from schemathesis import GenerationMode
from schemathesis.checks import response_schema_conformance
from schemathesis.core.failures import FailureGroup
from schemathesis.core.result import Ok
from schemathesis.python import asgi

from conftest import EngineFactory
from helpers import (
    evicted,
    fake_clock,
    of_type,
    run_fresh_python,
    wait_for_event,
    wait_for_hook,
    wait_until,
)
from perdure import (
    Engine,
    EventType,
    HookNotFoundError,
    RunStatus,
    Webhook,
    WebhookRequest,
    WorkflowFailed,
    _hooks,
    create_webhook,
    define_hook,
    step,
    workflow,
)
from perdure.http import create_app
from perdure.testing import FakeClock

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Callable
    from pathlib import Path

    from starlette.applications import Starlette

PUBLIC = "https://shop.example/perdure"
API_TOKEN = "s3cret-api-token"


class Approval(pydantic.BaseModel):
    decision: Literal["approved", "changes"]
    notes: str | None = None


approval = define_hook(Approval, name="http-approval")
seen_urls: list[str] = []


@step
async def shout(text: str) -> str:
    return text.upper()


@step
async def remember_url(url: str) -> None:
    seen_urls.append(url)


@workflow(name="http-greet")
async def greet(name: str, times: int = 1) -> str:
    return await shout(" ".join([f"hello {name}"] * times))


@workflow(name="http-approve")
async def approve(doc: str) -> str:
    decision = await approval.create(token=f"approve-{doc}")
    return f"{doc}: {decision.decision}"


@workflow(name="http-webhook")
async def wait_for_webhook() -> dict[str, Any]:
    hook = create_webhook(respond_with=201, body={"ok": True})
    await remember_url(hook.url)
    request = await hook
    return {
        "token": hook.token,
        "is_webhook": isinstance(hook, Webhook),
        "method": request.method,
        "path": request.path,
        "query": request.query,
        "signature": request.headers.get("x-signature"),
        "json": request.json(),
    }


@workflow(name="http-webhook-many")
async def count_webhook_calls(expected: int) -> list[str]:
    hook = create_webhook(respond_with=200, body="thanks")
    await remember_url(hook.url)
    bodies: list[str] = []
    async with hook:
        async for request in hook:
            bodies.append(f"{request.method} {request.text}")
            if len(bodies) == expected:
                break
    return bodies


@workflow(name="http-webhook-token-only")
async def webhook_token_only() -> str:
    hook = create_webhook()
    try:
        hook.url  # noqa: B018 (the property raises without a public URL)
    except RuntimeError as exc:
        return f"{hook.token}|{exc}"
    return "no error"


@pytest.fixture(autouse=True)
def _reset() -> None:
    seen_urls.clear()


@pytest.fixture
async def engine(make_engine: EngineFactory) -> AsyncIterator[Engine]:
    """An Engine whose fake clock moves only when told: waiting runs stay put."""
    async with make_engine(clock=FakeClock(autojump=False), public_url=PUBLIC) as running:
        yield running


def client_for(app: Starlette) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://localhost")


@pytest.fixture
async def client(engine: Engine) -> AsyncIterator[httpx.AsyncClient]:
    async with client_for(create_app(engine, token=API_TOKEN, max_body=1024)) as http:
        http.headers["Authorization"] = f"Bearer {API_TOKEN}"
        yield http


async def snapshot(engine: Engine) -> Any:
    """Everything the store holds that a request could change: runs, logs, hooks, inbox."""
    store = engine.store
    runs = await store.list_runs(limit=1000)
    logs = {run.id: await store.events(run.id) for run in runs}
    assert engine.worker is not None
    return runs, logs, await store.list_hooks(), await store.inbox(engine.worker.id)


async def urls_seen() -> list[str]:
    return seen_urls


def token_of(url: str) -> str:
    return url.rsplit("/", 1)[1]


async def waiting_approval(engine: Engine, doc: str = "d1") -> str:
    await engine.start(approve, doc, run_id=f"approve-run-{doc}")
    await wait_for_hook(engine, f"approve-{doc}")
    return f"approve-{doc}"


async def waiting_webhook(engine: Engine, wf: Any = wait_for_webhook, *args: Any) -> str:
    """Start a webhook workflow and wait until it has settled on the webhook; its URL."""
    run = await engine.start(wf, *args)
    await wait_for_event(engine, run, EventType.STEP_COMPLETED)  # remember_url, then the wait
    return seen_urls[-1]


# -- hooks ----------------------------------------------------------------------------


async def test_resume_validates_the_payload_and_wakes_the_run(
    engine: Engine, client: httpx.AsyncClient
) -> None:
    """POST /hooks/{token}/resume with a valid payload answers 202 and the run gets it."""
    token = await waiting_approval(engine)

    response = await client.post(f"/hooks/{token}/resume", json={"decision": "approved"})

    assert 202 == response.status_code, response.text
    assert {"token": token, "name": "http-approval", "kind": "hook"}.items() <= (
        response.json().items()
    )
    run = await engine.get_run("approve-run-d1")
    assert "d1: approved" == await run.result(timeout=5)


async def test_a_hook_this_process_does_not_define_is_checked_against_its_stored_schema(
    engine: Engine, client: httpx.AsyncClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A payload for a hook whose type is not defined here must pass the JSON Schema its
    run stored: 422 naming the field and nothing stored, else 202 and stored as sent."""
    token = await waiting_approval(engine)
    hook = await engine.store.get_hook(token)
    assert hook is not None
    before = await snapshot(engine)
    monkeypatch.delitem(_hooks._registry, "http-approval")

    refused = await client.post(f"/hooks/{token}/resume", json={"anything": [1, 2]})
    assert 422 == refused.status_code, refused.text
    assert "hook 'http-approval': decision: Field required" in refused.json()["error"]
    assert before == await snapshot(engine)

    response = await client.post(f"/hooks/{token}/resume", json={"decision": "changes"})
    assert 202 == response.status_code, response.text
    received = await wait_for_event(
        engine, await engine.get_run(hook.run_id), EventType.HOOK_RECEIVED
    )
    assert {"decision": "changes"} == received.data["payload"]


_ELSEWHERE = """
import asyncio, json, sys
import httpx
from perdure import Engine
from perdure.http import create_app

async def main(url, token, payload):
    async with Engine(url, worker=False) as engine:
        transport = httpx.ASGITransport(app=create_app(engine, token=None))
        async with httpx.AsyncClient(transport=transport, base_url="http://localhost") as http:
            response = await http.post(f"/hooks/{token}/resume", content=payload)
    print(json.dumps([response.status_code, response.json()]))

asyncio.run(main(*ARGV))
"""


async def test_the_http_api_of_a_process_without_the_hooks_type_refuses_a_bad_payload(
    tmp_path: Path,
) -> None:
    """The HTTP app of another process, which never imported the hook's type, answers
    422 naming the field and stores nothing; a valid payload it stores, and the run
    decodes it (before, it stored the bad one and the run failed decoding it)."""
    async with Engine(f"sqlite:///{tmp_path}/t.db", clock=FakeClock()) as engine:
        assert engine.worker is not None
        token = await waiting_approval(engine, "elsewhere")
        run = await engine.get_run("approve-run-elsewhere")

        def post(payload: str) -> list[Any]:
            argv = [f"sqlite:///{tmp_path}/t.db", token, payload]
            printed = run_fresh_python(_ELSEWHERE.replace("ARGV", repr(argv)))
            answer: list[Any] = json.loads(printed.splitlines()[-1])
            return answer

        status, body = await asyncio.to_thread(post, '{"decision": "maybe"}')
        assert 422 == status, body
        assert "hook 'http-approval': decision: " in body["error"]
        assert [] == of_type(await run.events(), EventType.HOOK_RECEIVED)
        assert [] == await engine.store.inbox(engine.worker.id)

        status, body = await asyncio.to_thread(post, '{"decision": "approved"}')
        assert 202 == status, body
        assert "elsewhere: approved" == await run.result(timeout=10)


@pytest.mark.parametrize(
    ("body", "status", "message"),
    [
        (b'{"decision": "approved"', 400, "not valid JSON"),
        (b"", 400, "empty"),
        (b"NaN", 400, "not valid JSON"),
        (b'{"decision": "maybe"}', 422, "decision"),
        (b'{"notes": "no decision"}', 422, "decision: Field required"),
        (b'{"decision": "approved\\u0000"}', 422, "NUL"),
        (b'{"decision": "x" , "pad": "' + b"x" * 2000 + b'"}', 413, "1024 bytes"),
    ],
    ids=["truncated", "empty", "nan", "bad-literal", "missing-field", "nul", "too-big"],
)
async def test_bad_payloads_get_a_4xx_naming_the_problem_and_store_nothing(
    engine: Engine, client: httpx.AsyncClient, body: bytes, status: int, message: str
) -> None:
    """Malformed JSON, a schema failure or an oversized body is a 4xx; the store is unchanged."""
    token = await waiting_approval(engine)
    before = await snapshot(engine)

    response = await client.post(
        f"/hooks/{token}/resume", content=body, headers={"content-type": "application/json"}
    )

    assert status == response.status_code, response.text
    assert message in response.json()["error"]
    assert before == await snapshot(engine)


async def test_an_oversized_body_without_a_length_is_cut_off_at_the_limit(
    engine: Engine, client: httpx.AsyncClient
) -> None:
    """A chunked body past max_body gets 413 though it declared no Content-Length."""
    token = await waiting_approval(engine)
    before = await snapshot(engine)

    async def chunks() -> AsyncIterator[bytes]:
        yield b'{"decision": "approved", "notes": "'
        for _ in range(10):
            yield b"y" * 200
        yield b'"}'

    response = await client.post(f"/hooks/{token}/resume", content=chunks())

    assert "content-length" not in response.request.headers
    assert 413 == response.status_code
    assert "larger than the limit of 1024 bytes" in response.json()["error"]
    assert before == await snapshot(engine)


async def test_a_token_with_slashes_is_resumed_too(
    engine: Engine, client: httpx.AsyncClient
) -> None:
    """A hook token containing '/' is reachable at /hooks/{token}/resume."""
    token = await waiting_approval(engine, "orders/7")

    response = await client.post(f"/hooks/{token}/resume", json={"decision": "changes"})

    assert 202 == response.status_code, response.text
    assert "approve-orders/7" == response.json()["token"]
    run = await engine.get_run("approve-run-orders/7")
    assert "orders/7: changes" == await run.result(timeout=5)


async def test_an_unknown_token_is_404(engine: Engine, client: httpx.AsyncClient) -> None:
    """Resuming a token no live hook holds is a 404 naming the token; nothing is stored."""
    await waiting_approval(engine)
    before = await snapshot(engine)

    response = await client.post("/hooks/nobody-has-this/resume", json={"decision": "approved"})

    assert 404 == response.status_code
    assert "'nobody-has-this'" in response.json()["error"]
    assert before == await snapshot(engine)


async def test_the_bearer_token_guards_everything_but_webhooks_and_the_document(
    engine: Engine,
) -> None:
    """No token is a 401, a wrong one a 403; webhooks and /openapi.json need none."""
    token = await waiting_approval(engine)
    url = await waiting_webhook(engine)
    before = await snapshot(engine)

    async with client_for(create_app(engine, token=API_TOKEN)) as http:
        missing = await http.post(f"/hooks/{token}/resume", json={"decision": "approved"})
        wrong = await http.post(
            f"/hooks/{token}/resume",
            json={"decision": "approved"},
            headers={"Authorization": "Bearer not-it"},
        )
        basic = await http.get("/runs", headers={"Authorization": f"Basic {API_TOKEN}"})
        listing = await http.get("/runs")
        after_refusals = await snapshot(engine)
        document = await http.get("/openapi.json")
        right = await http.get("/runs", headers={"Authorization": f"Bearer {API_TOKEN}"})
        hook = await http.post(url.removeprefix(PUBLIC), json={"paid": True})

    assert (401, 403, 401, 401) == (
        missing.status_code,
        wrong.status_code,
        basic.status_code,
        listing.status_code,
    )
    assert "Bearer" in missing.json()["error"]
    assert missing.headers["www-authenticate"].startswith("Bearer")
    assert "wrong" in wrong.json()["error"]
    assert before == after_refusals
    assert (200, 200, 201) == (document.status_code, right.status_code, hook.status_code)
    assert [{"bearer": []}] == document.json()["security"]


async def test_the_api_token_defaults_to_the_environment(
    engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    """$PERDURE_API_TOKEN guards the API when create_app gets no token."""
    monkeypatch.setenv("PERDURE_API_TOKEN", "from-env")
    async with client_for(create_app(engine)) as http:
        refused = await http.get("/runs")
        allowed = await http.get("/runs", headers={"Authorization": "Bearer from-env"})

    assert (401, 200) == (refused.status_code, allowed.status_code)


# -- webhooks -----------------------------------------------------------------------------


async def test_a_webhook_end_to_end_keeps_its_token_across_a_replay(
    make_engine: EngineFactory,
) -> None:
    """A workflow gets the request sent to its webhook URL after eviction and replay."""
    async with make_engine(public_url=PUBLIC + "/") as engine:
        run = await engine.start(wait_for_webhook)
        await wait_until(engine, urls_seen)
        url = seen_urls[0]
        await wait_until(engine, lambda: evicted(engine))
        assert url.startswith(f"{PUBLIC}/webhooks/")
        assert len(token_of(url)) >= 32

        async with client_for(create_app(engine, token=API_TOKEN)) as http:
            response = await http.post(
                url.removeprefix(PUBLIC) + "?order=42&order=43&x=1",
                content=b'{"paid": 12.5}',
                headers={"X-Signature": "sig-1", "Content-Type": "application/json"},
            )

        assert 201 == response.status_code
        assert {"ok": True} == response.json()
        result = await run.result(timeout=5)
        statistics = engine.statistics()
        assert statistics is not None
        assert statistics.replays >= 1
        created = of_type(await run.events(), EventType.HOOK_CREATED)

    assert token_of(url) == result["token"]
    assert {
        "token": token_of(url),
        "is_webhook": True,
        "method": "POST",
        "path": f"/webhooks/{token_of(url)}",
        "query": {"order": "43", "x": "1"},
        "signature": "sig-1",
        "json": {"paid": 12.5},
    } == result
    assert [url] == seen_urls  # the step that saw the URL ran once
    assert [("webhook", token_of(url), 201, {"ok": True})] == [
        (e.data["kind"], e.data["token"], e.data["respond_with"], e.data["body"]) for e in created
    ]


async def test_an_iterated_webhook_takes_every_method_and_answers_each(
    engine: Engine, client: httpx.AsyncClient
) -> None:
    """GET, PUT, PATCH and DELETE reach an iterated webhook too, each answered as configured."""
    url = await waiting_webhook(engine, count_webhook_calls, 4)
    path = url.removeprefix(PUBLIC)
    run = (await engine.list_runs(workflow="http-webhook-many"))[0]
    client.headers.pop("Authorization")

    answers = []
    for method in ("GET", "PUT", "PATCH", "DELETE"):
        response = await client.request(method, path, content=method.lower().encode())
        answers.append((response.status_code, response.text, response.headers["content-type"]))

    assert [(200, "thanks", "text/plain; charset=utf-8")] * 4 == answers
    assert ["GET get", "PUT put", "PATCH patch", "DELETE delete"] == await run.result(timeout=5)
    assert [] == await engine.store.list_hooks(run_id=run.id)


async def test_an_oversized_webhook_request_is_413_and_stores_nothing(
    engine: Engine, client: httpx.AsyncClient
) -> None:
    """A webhook request over max_body gets 413 and the webhook receives nothing."""
    path = (await waiting_webhook(engine)).removeprefix(PUBLIC)
    before = await snapshot(engine)

    response = await client.put(path, content=b"z" * 1025)

    assert 413 == response.status_code
    assert "1024 bytes" in response.json()["error"]
    assert before == await snapshot(engine)


async def test_a_binary_webhook_body_arrives_intact() -> None:
    """A body that is not UTF-8 is stored in base64 and arrives as the same bytes."""
    sent = WebhookRequest("POST", "/w", {}, "", {"a": "b"}, bytes(range(256)))

    payload = sent.to_payload()

    assert "base64" == payload["body_encoding"]
    assert sent == WebhookRequest.from_payload(json.loads(json.dumps(payload)))
    with pytest.raises(TypeError, match="cannot deserialize a webhook request"):
        WebhookRequest.from_payload({"method": "POST"})


async def test_hook_and_webhook_tokens_never_cross(
    engine: Engine, client: httpx.AsyncClient
) -> None:
    """A hook.create() token is 404 at /webhooks/, a webhook token 404 at /hooks/ and in resume."""
    hook_token = await waiting_approval(engine)
    webhook_token = token_of(await waiting_webhook(engine))
    before = await snapshot(engine)

    as_webhook = await client.post(f"/webhooks/{hook_token}", json={"decision": "approved"})
    as_hook = await client.post(f"/hooks/{webhook_token}/resume", json={"decision": "approved"})
    with pytest.raises(HookNotFoundError):
        await approval.resume(webhook_token, {"decision": "approved"}, engine=engine)

    assert (404, 404) == (as_webhook.status_code, as_hook.status_code)
    assert hook_token in as_webhook.json()["error"]
    assert webhook_token in as_hook.json()["error"]
    assert before == await snapshot(engine)


async def test_a_webhook_url_needs_a_public_url_but_its_token_does_not(
    make_engine: EngineFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Without public_url or $PERDURE_PUBLIC_URL, .url raises a clear error; .token works."""
    monkeypatch.delenv("PERDURE_PUBLIC_URL", raising=False)
    async with make_engine() as engine:
        run = await engine.start(webhook_token_only)
        token, _, message = (await run.result(timeout=5)).partition("|")

    assert len(token) >= 32
    assert "Engine(public_url=" in message
    assert "PERDURE_PUBLIC_URL" in message


async def test_the_public_url_is_that_of_the_engine_running_the_workflow(
    make_engine: EngineFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A workflow's webhook URL uses its own Engine's public_url, not a later Engine's."""
    monkeypatch.setenv("PERDURE_PUBLIC_URL", "https://from-env.example")
    async with (
        make_engine(public_url="https://runner.example/") as runner,
        make_engine(worker=False, public_url="https://other.example") as other,
    ):
        await other.start(wait_for_webhook)
        await wait_until(runner, urls_seen)

    assert seen_urls[0].startswith("https://runner.example/webhooks/")


def test_webhooks_are_refused_outside_workflows_and_with_bad_responses() -> None:
    """create_webhook() needs a workflow; the reserved hook name 'webhook' is refused."""
    with pytest.raises(RuntimeError, match="inside a workflow"):
        create_webhook()
    with pytest.raises(ValueError, match="reserved"):
        define_hook(dict, name="webhook")


async def test_bad_webhook_responses_fail_the_workflow_before_anything_is_stored(
    engine: Engine,
) -> None:
    """A status out of range or a non-JSON body is refused where create_webhook is called."""

    @workflow(name="http-bad-webhooks")
    async def bad() -> list[str]:
        errors = []
        attempts: list[Callable[[], object]] = [
            lambda: create_webhook(respond_with=99),
            lambda: create_webhook(respond_with=204, body="x"),
            lambda: create_webhook(body={1j}),
        ]
        for attempt in attempts:
            try:
                attempt()
            except (TypeError, ValueError) as exc:
                errors.append(type(exc).__name__)
        return errors

    run = await engine.start(bad)

    assert ["ValueError", "ValueError", "TypeError"] == await run.result(timeout=5)
    assert [] == of_type(await run.events(), EventType.HOOK_CREATED)


# -- runs -----------------------------------------------------------------------------------


async def test_start_a_run_and_read_its_result(engine: Engine, client: httpx.AsyncClient) -> None:
    """POST /runs starts a run (201), GET /runs/{id} shows its result once completed."""
    response = await client.post(
        "/runs", json={"workflow": "http-greet", "args": ["ada"], "kwargs": {"times": 2}}
    )
    assert 201 == response.status_code, response.text
    started = response.json()
    assert ("http-greet", {"name": "ada", "times": 2}) == (started["workflow"], started["input"])

    run = await engine.get_run(started["id"])
    assert "HELLO ADA HELLO ADA" == await run.result(timeout=5)
    detail = await client.get(f"/runs/{run.id}")

    assert 200 == detail.status_code
    assert {"status": "completed", "result": "HELLO ADA HELLO ADA", "error": None}.items() <= (
        detail.json().items()
    )


async def test_starting_again_with_a_run_id_returns_the_same_run(
    engine: Engine, client: httpx.AsyncClient
) -> None:
    """POST /runs with an existing run_id returns that run (200) and starts nothing."""
    body = {"workflow": "http-greet", "args": ["bo"], "run_id": "greet-bo"}
    first = await client.post("/runs", json=body)
    second = await client.post("/runs", json=body)
    clash = await client.post(
        "/runs", json={"workflow": "http-approve", "args": ["x"], "run_id": "greet-bo"}
    )

    assert (201, 200, 409) == (first.status_code, second.status_code, clash.status_code)
    assert "greet-bo" == first.json()["id"] == second.json()["id"]
    assert "http-greet" in clash.json()["error"]
    assert 1 == len(await engine.list_runs())


@pytest.mark.parametrize(
    ("body", "status", "message"),
    [
        ({"workflow": "no-such-workflow"}, 404, "'no-such-workflow'"),
        ({"workflow": "http-greet"}, 422, "'name'"),
        ({"workflow": "http-greet", "args": ["a", "b", "c"]}, 422, "too many positional"),
        ({"workflow": "http-greet", "args": ["a"], "kwargs": {"times": "many"}}, 422, "times"),
        ({"workflow": "http-greet", "kwargs": {"nope": 1, "name": "a"}}, 422, "nope"),
        ({"workflow": "http-greet", "args": "ada"}, 422, "'args' must be a JSON array"),
        ({"workflow": "http-greet", "args": ["a"], "run_id": ""}, 422, "'run_id'"),
        ({"workflow": "http-greet", "args": ["a"], "extra": 1}, 422, "'extra'"),
        (["http-greet"], 422, "JSON object"),
        ({"workflow": 7}, 422, "'workflow' must be a non-empty string"),
    ],
    ids=[
        "unknown",
        "missing-arg",
        "too-many",
        "wrong-type",
        "unknown-kwarg",
        "args-not-list",
        "empty-run-id",
        "unknown-field",
        "not-object",
        "workflow-not-str",
    ],
)
async def test_bad_starts_get_a_4xx_and_start_nothing(
    engine: Engine, client: httpx.AsyncClient, body: Any, status: int, message: str
) -> None:
    """An unknown workflow is 404 and bad arguments 422, naming the problem; no run is made."""
    before = await snapshot(engine)

    response = await client.post("/runs", json=body)

    assert status == response.status_code, response.text
    assert message in response.json()["error"]
    assert before == await snapshot(engine)


async def test_list_runs_newest_first_with_filters(
    engine: Engine, client: httpx.AsyncClient
) -> None:
    """GET /runs lists newest first, filtered by status and workflow, up to limit."""
    done = await engine.start(greet, "a", run_id="r1")
    await done.result(timeout=5)
    fake_clock(engine).advance("1s")
    await waiting_approval(engine, "d2")
    fake_clock(engine).advance("1s")
    await engine.start(greet, "b", run_id="r3")
    await (await engine.get_run("r3")).result(timeout=5)

    every = (await client.get("/runs")).json()["runs"]
    running = (await client.get("/runs", params={"status": "running"})).json()["runs"]
    greets = (await client.get("/runs", params={"workflow": "http-greet", "limit": 1})).json()

    assert ["r3", "approve-run-d2", "r1"] == [r["id"] for r in every]
    assert {"id", "workflow", "status", "created_at"} <= every[0].keys()
    assert ["approve-run-d2"] == [r["id"] for r in running]
    assert ["r3"] == [r["id"] for r in greets["runs"]]


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ("status=sleeping", "'status' must be one of"),
        ("limit=0", "'limit' must be from 1 to 1000"),
        ("limit=ten", "'limit' must be an integer"),
    ],
)
async def test_bad_listing_parameters_are_400(
    client: httpx.AsyncClient, query: str, message: str
) -> None:
    """A status that does not exist or a limit out of range is a 400 naming the parameter."""
    response = await client.get(f"/runs?{query}")

    assert 400 == response.status_code
    assert message in response.json()["error"]


async def test_a_run_and_its_events(engine: Engine, client: httpx.AsyncClient) -> None:
    """GET /runs/{id}/events shows the log, all or after a seq; an unknown run is 404."""
    run = await engine.start(greet, "c")
    await run.result(timeout=5)

    events = await client.get(f"/runs/{run.id}/events")
    later = await client.get(f"/runs/{run.id}/events", params={"after": 2})
    unknown = await client.get("/runs/nope")
    unknown_events = await client.get("/runs/nope/events")

    assert 200 == events.status_code
    types = [e["type"] for e in events.json()["events"]]
    assert [
        "run_created",
        "run_started",
        "step_started",
        "step_completed",
        "run_completed",
    ] == types
    assert types[2:] == [e["type"] for e in later.json()["events"]]
    assert (404, 404) == (unknown.status_code, unknown_events.status_code)
    assert "'nope'" in unknown.json()["error"]


async def test_a_failed_run_shows_its_error(engine: Engine, client: httpx.AsyncClient) -> None:
    """GET /runs/{id} of a failed run carries the error's type and message and no result."""

    @workflow(name="http-fails")
    async def fails() -> None:
        raise ValueError("bad input, sorry")

    run = await engine.start(fails)
    await wait_until(engine, lambda: _ended(engine, run.id))

    detail = (await client.get(f"/runs/{run.id}")).json()

    assert ("failed", None) == (detail["status"], detail["result"])
    assert ("builtins.ValueError", "bad input, sorry") == (
        detail["error"]["type"],
        detail["error"]["message"],
    )


async def _ended(engine: Engine, run_id: str) -> bool:
    record = await engine.store.get_run(run_id)
    return record is not None and record.status.is_terminal


async def test_cancel_a_waiting_run(engine: Engine, client: httpx.AsyncClient) -> None:
    """POST /runs/{id}/cancel is stored (202) and the run ends cancelled; unknown is 404."""
    await waiting_approval(engine)

    response = await client.post("/runs/approve-run-d1/cancel")
    unknown = await client.post("/runs/nope/cancel")

    assert 202 == response.status_code
    assert response.json()["cancel_requested"] or response.json()["status"] == "cancelled"
    await wait_until(engine, lambda: _ended(engine, "approve-run-d1"))
    assert RunStatus.CANCELLED == (await engine.get_run("approve-run-d1")).record.status
    assert 404 == unknown.status_code


async def test_live_hooks_are_listed_with_their_payload_schema(
    engine: Engine, client: httpx.AsyncClient
) -> None:
    """GET /hooks lists live hooks (?run= narrows), with the schema this process knows."""
    token = await waiting_approval(engine)
    url = await waiting_webhook(engine)

    every = await client.get("/hooks")
    mine = await client.get("/hooks", params={"run": "approve-run-d1"})
    unknown = await client.get("/hooks", params={"run": "nope"})

    assert 200 == every.status_code
    assert {token, token_of(url)} == {h["token"] for h in every.json()["hooks"]}
    [hook] = mine.json()["hooks"]
    assert {"token": token, "name": "http-approval", "kind": "hook"}.items() <= hook.items()
    assert ["approved", "changes"] == hook["schema"]["properties"]["decision"]["enum"]
    webhook = next(h for h in every.json()["hooks"] if h["kind"] == "webhook")
    assert webhook["schema"] is None
    assert 404 == unknown.status_code
    assert "'nope'" in unknown.json()["error"]


async def test_a_run_timeline_shows_steps_and_hooks_with_their_values(
    engine: Engine, client: httpx.AsyncClient
) -> None:
    """GET /runs/{id}/timeline gives one span per step attempt and hook, values included."""
    greeted = await engine.start(greet, "ada")
    await greeted.result(timeout=5)
    token = await waiting_approval(engine)
    waiting = (await client.get("/runs/approve-run-d1/timeline")).json()
    await approval.resume(token, {"decision": "changes", "notes": "shorter"}, engine=engine)
    approved = await engine.get_run("approve-run-d1")
    await approved.result(timeout=5)

    steps = await client.get(f"/runs/{greeted.id}/timeline")
    hooks = await client.get("/runs/approve-run-d1/timeline")
    unknown = await client.get("/runs/nope/timeline")

    assert 200 == steps.status_code
    [step_span] = steps.json()["spans"]
    assert {
        "kind": "step",
        "call": "shout#1",
        "name": "shout",
        "outcome": "completed",
        "attempt": 1,
        "output": "HELLO ADA",
        "has_output": True,
    }.items() <= step_span.items()
    assert step_span["end"] is not None
    [open_hook] = waiting["spans"]
    assert ("waiting", None, token) == (open_hook["outcome"], open_hook["end"], open_hook["token"])
    assert waiting["now"] == fake_clock(engine).now().isoformat()
    [hook_span] = hooks.json()["spans"]
    assert "received" == hook_span["outcome"]
    assert [{"decision": "changes", "notes": "shorter"}] == [
        p["payload"] for p in hook_span["payloads"]
    ]
    assert 404 == unknown.status_code


async def test_a_hook_conflict_is_a_span_with_an_error_like_any_other(
    engine: Engine, client: httpx.AsyncClient
) -> None:
    """A hook whose token another run holds is a ``conflict`` span whose error has a type
    and a message, as every error in a timeline has (it was a bare string)."""
    await waiting_approval(engine, "dup")
    second = await engine.start(approve, "dup")
    with pytest.raises(WorkflowFailed):
        await second.result(timeout=5)

    response = await client.get(f"/runs/{second.id}/timeline")

    [span] = [span for span in response.json()["spans"] if span["kind"] == "hook"]
    assert ("conflict", "perdure.HookConflictError") == (span["outcome"], span["error"]["type"])
    assert "'approve-dup'" in span["error"]["message"]


async def test_rerun_starts_a_new_run_with_the_same_input(
    engine: Engine, client: httpx.AsyncClient
) -> None:
    """POST /runs/{id}/rerun makes a new run of the workflow with the stored input (201)."""
    first = await engine.start(greet, "bo", 2)
    await first.result(timeout=5)

    response = await client.post(f"/runs/{first.id}/rerun")
    unknown = await client.post("/runs/nope/rerun")

    assert 201 == response.status_code, response.text
    again = response.json()
    assert again["id"] != first.id
    assert ("http-greet", first.record.input, first.record.version) == (
        again["workflow"],
        again["input"],
        again["version"],
    )
    assert "HELLO BO HELLO BO" == await (await engine.get_run(again["id"])).result(timeout=5)
    assert 404 == unknown.status_code
    assert 2 == len(await engine.list_runs())


async def test_fork_starts_a_new_run_from_a_step_of_the_log(
    engine: Engine, client: httpx.AsyncClient
) -> None:
    """POST /runs/{id}/fork with {"from_step": ...} makes a new run (201) that names the
    original; an unknown run is 404, a step the log does not hold or a bad body 422."""
    first = await engine.start(greet, "bo", 2)
    await first.result(timeout=5)

    response = await client.post(f"/runs/{first.id}/fork", json={"from_step": "shout#1"})
    unknown_run = await client.post("/runs/nope/fork", json={"from_step": "shout#1"})
    unknown_step = await client.post(f"/runs/{first.id}/fork", json={"from_step": "nope#1"})
    no_step = await client.post(f"/runs/{first.id}/fork", json={"step": "shout#1"})

    assert 201 == response.status_code, response.text
    forked = response.json()
    assert forked["id"] != first.id
    assert "HELLO BO HELLO BO" == await (await engine.get_run(forked["id"])).result(timeout=5)
    created = (await engine.store.events(forked["id"]))[0]
    assert first.id == created.data["forked_from"]
    assert 404 == unknown_run.status_code
    assert (422, True) == (unknown_step.status_code, "shout#1" in unknown_step.json()["error"])
    assert 422 == no_step.status_code
    assert 2 == len(await engine.list_runs())


async def test_unknown_paths_and_methods_get_json_errors(client: httpx.AsyncClient) -> None:
    """A path or method the API does not have is a JSON 404 or 405, not HTML."""
    missing = await client.get("/nowhere")
    wrong_method = await client.delete("/runs")

    assert (404, 405) == (missing.status_code, wrong_method.status_code)
    assert "/nowhere" in missing.json()["error"]
    assert "DELETE" in wrong_method.json()["error"]


async def test_requests_before_the_engine_runs_get_503(tmp_path: Path) -> None:
    """A mounted app whose Engine was never entered answers 503, not 500."""
    engine = Engine(f"sqlite:///{tmp_path}/t.db", clock=FakeClock())
    async with client_for(create_app(engine)) as http:
        response = await http.get("/runs")
        document = await http.get("/openapi.json")

    assert 503 == response.status_code
    assert "not running" in response.json()["error"]
    assert 200 == document.status_code


# -- FastAPI ------------------------------------------------------------------------------


async def test_the_fastapi_example_mounts_the_api_under_a_prefix(tmp_path: Path) -> None:
    """examples/fastapi_app.py serves perdure under /perdure, webhooks included."""
    engine = Engine(
        f"sqlite:///{tmp_path}/t.db", clock=FakeClock(), public_url="http://testserver/perdure"
    )
    app = build_app(engine)
    async with (
        engine,
        httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://testserver"
        ) as http,
    ):
        placed = await http.post("/orders/7")
        run = await engine.get_run(placed.json()["run_id"])
        hook = await wait_until(engine, lambda: engine.store.list_hooks(run_id=run.id))
        answer = await http.post(f"/perdure/webhooks/{hook[0].token}", json={"paid": 7})
        result = await run.result(timeout=5)
        document = await http.get("/perdure/openapi.json")

    assert (200, {"received": True}) == (answer.status_code, answer.json())
    assert {"order": "7", "payment": {"paid": 7}} == result
    assert "/runs" in document.json()["paths"]
    assert "fastapi-order" == order.name


# -- schemathesis ---------------------------------------------------------------------------


def _checked(case: Any, failures: list[str]) -> int:
    """Send ``case``; note a 5xx or an answer its schema does not describe. Its status."""
    response = case.call()
    where = f"{case.method} {case.formatted_path} -> {response.status_code}"
    if response.status_code >= 500:
        failures.append(f"{where}: {response.text[:200]}")
    try:
        case.validate_response(response, checks=[response_schema_conformance])
    except FailureGroup as failed:  # what the answer does that its schema does not allow
        failures.append(f"{where}: {failed}"[:2000])
    status: int = response.status_code
    return status


def test_generated_requests_never_get_a_server_error(tmp_path: Path) -> None:
    """Schemathesis calls every operation in /openapi.json with generated input, and on
    the paths where something exists: no answer is a 5xx, and each matches its schema."""
    engine = Engine(f"sqlite:///{tmp_path}/t.db", clock=FakeClock(), public_url="http://testserver")
    app: Any = create_app(engine, max_body=4096)
    schema = schemathesis.openapi.from_asgi("/openapi.json", app)  # starts the app: the Engine
    failures: list[str] = []
    negated: list[str] = []
    try:
        with asgi.get_client(app) as http:  # something to find: a waiting hook, a webhook
            for body in (
                {"workflow": "http-approve", "args": ["st"], "run_id": "st-1"},
                {"workflow": "http-webhook"},
                {"workflow": "http-greet", "args": ["st"], "run_id": "st-2"},
            ):
                assert http.post("/runs", json=body).status_code == 201
            webhook = next(h for h in http.get("/hooks").json()["hooks"] if h["kind"] == "webhook")
        results = list(schema.get_all_operations())
        operations = {
            result.ok().label: result.ok() for result in results if isinstance(result, Ok)
        }
        assert len(operations) == 28  # every path of every issue so far: GET /limits among them
        for operation in operations.values():
            for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):

                @hypothesis.given(case=operation.as_strategy(generation_mode=mode))
                @hypothesis.settings(
                    max_examples=30,
                    derandomize=True,
                    database=None,
                    deadline=None,
                    suppress_health_check=list(hypothesis.HealthCheck),
                    phases=[hypothesis.Phase.explicit, hypothesis.Phase.generate],
                )
                def call(case: Any) -> None:
                    _checked(case, failures)

                try:
                    call()
                except hypothesis.errors.Unsatisfiable:
                    # Nothing to make invalid: an operation without parameters or body.
                    if mode is GenerationMode.POSITIVE:
                        raise
                else:
                    if mode is GenerationMode.NEGATIVE:
                        negated.append(operation.label)

        # Generated ids and tokens name nothing: reach each operation's success too.
        run = {"run_id": "st-1"}
        happy_paths: list[tuple[str, dict[str, Any]]] = [
            ("GET /runs", {"query": {"status": "running", "limit": 5}}),
            ("GET /runs/{run_id}", {"path_parameters": {"run_id": "st-2"}}),
            ("GET /runs/{run_id}/events", {"path_parameters": run}),
            ("GET /runs/{run_id}/timeline", {"path_parameters": run}),
            ("GET /hooks", {"query": {"run": "st-1"}}),
            ("GET /stats", {"query": {"since": "24h", "workflow": "http-greet"}}),
            ("POST /runs", {"body": {"workflow": "http-greet", "args": ["again"]}}),
            ("POST /runs/{run_id}/rerun", {"path_parameters": run}),
            (
                "POST /runs/{run_id}/fork",
                {"path_parameters": {"run_id": "st-2"}, "body": {"from_step": "shout#1"}},
            ),
            ("POST /webhooks/{token}", {"path_parameters": {"token": webhook["token"]}}),
            (
                "POST /hooks/{token}/resume",
                {"path_parameters": {"token": "approve-st"}, "body": {"decision": "changes"}},
            ),
            ("POST /runs/{run_id}/cancel", {"path_parameters": {"run_id": "st-2"}}),
        ]
        succeeded = {
            label: _checked(operations[label].Case(**case), failures) for label, case in happy_paths
        }
    finally:
        asgi.shutdown_lifespans()

    assert [] == failures
    assert {label: status for label, status in succeeded.items() if status >= 300} == {}
    # Invalid input exists where the document constrains it (a bare string or any JSON
    # cannot be made invalid): those operations got negative cases too.
    assert {"POST /runs", "GET /runs", "GET /runs/{run_id}/events"} <= set(negated)
