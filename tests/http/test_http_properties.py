"""POST /hooks/{token}/resume under arbitrary bodies and tokens (hypothesis), on SQLite.

Never a 5xx: a valid payload gets 202 and is stored exactly once, an invalid one 422
(or 400 for a body that is not JSON) and nothing is stored, a token no live hook holds
404. What is valid is decided by `helpers.approval_outcome`, apart from perdure's own
checks. Examples are few and derandomized.
"""

from __future__ import annotations

import asyncio
import json
from typing import TYPE_CHECKING, Any, Literal
from urllib.parse import quote

import httpx
import pydantic
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from helpers import (
    REFUSED,
    approval_outcome,
    approval_payloads,
    holds_bad_text,
    of_type,
    wait_for_hook,
)
from perdure import Engine, EventType, _hooks, define_hook, workflow
from perdure.http import create_app
from perdure.testing import FakeClock

if TYPE_CHECKING:
    from collections.abc import Callable
    from pathlib import Path

TOKEN = "t-http-props"


class Approval(pydantic.BaseModel):
    """The hook's type."""

    decision: Literal["approved", "changes"]
    notes: str | None = None


approvals = define_hook(Approval, name="http-props-approval")


@workflow(name="http-props-collect")
async def collect(token: str) -> None:
    """Take approvals for ever: a payload it cannot decode would end it."""
    async for _ in approvals.create(token=token):
        pass


SETTINGS = settings(
    max_examples=60,
    derandomize=True,
    database=None,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)


def _path(token: str) -> str:
    return f"/hooks/{quote(token.encode('utf-8', 'surrogatepass'), safe='')}/resume"


async def _received(engine: Engine, run_id: str) -> list[Any]:
    events = await (await engine.get_run(run_id)).events()
    return [event.data["payload"] for event in of_type(events, EventType.HOOK_RECEIVED)]


def _served(
    tmp_path: Path,
    test: Callable[[Engine, httpx.AsyncClient, str], Callable[[], None]],
    runner: asyncio.Runner,
) -> None:
    """Run ``test`` (which returns a hypothesis-driven check) against a live app."""
    engine = Engine(f"sqlite:///{tmp_path}/t.db", clock=FakeClock())
    runner.run(engine.__aenter__())
    client = httpx.AsyncClient(
        transport=httpx.ASGITransport(app=create_app(engine, token=None)),
        base_url="http://localhost",
    )
    try:
        run = runner.run(engine.start(collect, TOKEN))
        runner.run(wait_for_hook(engine, TOKEN))
        test(engine, client, run.id)()
    finally:
        runner.run(client.aclose())
        runner.run(engine.__aexit__(None, None, None))


@pytest.mark.parametrize("typed", [True, False], ids=["typed", "schema-only"])
def test_any_json_body_gets_202_and_is_stored_once_or_gets_422_and_is_not(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, typed: bool
) -> None:
    """Any JSON body: 202 and stored once as expected, or 422 naming the problem and
    nothing stored; never a 5xx (schema-only: this process lacks the hook's type)."""
    if not typed:
        monkeypatch.delitem(_hooks._registry, approvals.name)

    statuses: list[int] = []
    with asyncio.Runner() as runner:

        def build(engine: Engine, client: httpx.AsyncClient, run_id: str) -> Callable[[], None]:
            @SETTINGS
            @given(payload=approval_payloads())
            @example(payload={"decision": "approved"})
            @example(payload={"decision": "changes", "notes": "fine", "extra": [1]})
            @example(payload={"decision": "maybe"})
            @example(payload={"decision": "approved", "notes": "\ud800"})
            def post(payload: Any) -> None:
                statuses.append(
                    runner.run(_post_once(engine, client, run_id, payload, typed=typed))
                )

            return post

        _served(tmp_path, build, runner)
    assert statuses.count(202) >= 10, statuses
    assert statuses.count(422) >= 10, statuses


async def _post_once(
    engine: Engine, client: httpx.AsyncClient, run_id: str, payload: Any, *, typed: bool
) -> int:
    """POST ``payload`` and check what the store holds after; the status."""
    assert engine.worker is not None
    before = await _received(engine, run_id)
    # The HTTP API refuses text no database keeps anywhere in the body, even where the
    # hook's type would drop it (an extra key).
    expected = REFUSED if holds_bad_text(payload) else approval_outcome(payload, typed=typed)
    response = await client.post(
        _path(TOKEN),
        content=json.dumps(payload),
        headers={"Content-Type": "application/json"},
    )
    if expected is REFUSED:
        assert 422 == response.status_code, (payload, response.text)
        assert response.json()["error"]
        assert [] == await engine.store.inbox(engine.worker.id)
        assert before == await _received(engine, run_id)
        return response.status_code
    assert 202 == response.status_code, (payload, response.text)
    async with asyncio.timeout(5):
        while len(after := await _received(engine, run_id)) == len(before):
            await engine.changed().wait()
    assert [*before, expected] == after
    return response.status_code


def test_any_token_or_raw_body_gets_a_4xx_and_stores_nothing(tmp_path: Path) -> None:
    """Any token but the live one is 404, and any body that is not JSON 400 (or 422 when
    it is JSON but no approval): never a 5xx, and nothing is stored."""
    tokens = st.text(max_size=20) | st.sampled_from(["\x00", "t\ud800", "a/b", "%2F", " "])
    bodies = st.binary(max_size=40) | st.just(b"") | st.just(b"\xff\xfe")

    with asyncio.Runner() as runner:

        def build(engine: Engine, client: httpx.AsyncClient, run_id: str) -> Callable[[], None]:
            @SETTINGS
            @given(token=tokens, body=bodies)
            def post(token: str, body: bytes) -> None:
                runner.run(_refused(engine, client, run_id, token, body))

            return post

        _served(tmp_path, build, runner)


async def _refused(
    engine: Engine, client: httpx.AsyncClient, run_id: str, token: str, body: bytes
) -> None:
    assert engine.worker is not None
    live = token == TOKEN
    response = await client.post(_path(token), content=body)
    assert response.status_code < 500, (token, body, response.text)
    if live:
        assert response.status_code in {400, 422}, (token, body, response.text)
    else:
        assert response.status_code in {400, 404, 422}, (token, body, response.text)
    assert [] == await engine.store.inbox(engine.worker.id)
    assert [] == await _received(engine, run_id)
