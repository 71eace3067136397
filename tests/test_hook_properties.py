"""Engine.resume_hook under arbitrary JSON payloads and tokens (hypothesis), on every store.

Whatever is sent: an invalid payload is a ValueError and nothing is stored; a valid one
is stored exactly once, as the hook's type (or, where the type is not defined, the
stored schema) says, and the workflow decodes it; a token no live hook holds is
`HookNotFoundError`, never a database's own error. What is valid is decided by
`helpers.approval_outcome`, written apart from perdure's checks. Examples are few and
derandomized: the same ones on every run, a few seconds in all.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any, Literal

import pydantic
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from helpers import REFUSED, approval_outcome, approval_payloads, of_type, wait_for_hook
from perdure import Engine, EventType, HookNotFoundError, _hooks, define_hook, workflow
from perdure.testing import FakeClock

if TYPE_CHECKING:
    from conftest import EngineFactory

TOKEN = "t-props"


class Approval(pydantic.BaseModel):
    """The hook's type."""

    decision: Literal["approved", "changes"]
    notes: str | None = None


approvals = define_hook(Approval, name="props-approval")


@workflow(name="props-collect")
async def collect(token: str) -> None:
    """Take approvals for ever (the test cancels it): a payload it cannot decode ends it."""
    async for _ in approvals.create(token=token):
        pass


SETTINGS = settings(
    max_examples=60,
    derandomize=True,
    database=None,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)


async def _received(engine: Engine, run_id: str) -> list[Any]:
    events = await (await engine.get_run(run_id)).events()
    return [event.data["payload"] for event in of_type(events, EventType.HOOK_RECEIVED)]


async def _resume_once(engine: Engine, run_id: str, payload: Any, *, typed: bool) -> bool:
    """Resume with ``payload``; check it was refused, or stored once as expected; which."""
    assert engine.worker is not None
    before = await _received(engine, run_id)
    expected = approval_outcome(payload, typed=typed)
    try:
        await engine.resume_hook(TOKEN, payload)
    except ValueError:
        assert expected is REFUSED, f"a valid payload was refused: {payload!r}"
        assert [] == await engine.store.inbox(engine.worker.id)  # inbox first: see below
        assert before == await _received(engine, run_id)
        return False
    assert expected is not REFUSED, f"an invalid payload was stored: {payload!r}"
    # The worker moves the payload from the inbox into the log: wait for it there.
    async with asyncio.timeout(5):
        while len(after := await _received(engine, run_id)) == len(before):
            await engine.changed().wait()
    assert [*before, expected] == after
    assert await engine.store.get_hook(TOKEN) is not None  # the workflow decoded it
    return True


@pytest.mark.parametrize("typed", [True, False], ids=["typed", "schema-only"])
def test_a_resume_stores_a_valid_payload_once_and_nothing_else(
    make_engine: EngineFactory, monkeypatch: pytest.MonkeyPatch, typed: bool
) -> None:
    """Any JSON payload: refused with a ValueError and nothing stored, or stored once as
    the type encodes it (typed) or as sent (schema-only: this process lacks the type)."""
    if not typed:
        monkeypatch.delitem(_hooks._registry, approvals.name)
    stored: list[bool] = []
    with asyncio.Runner() as runner:
        engine = make_engine(clock=FakeClock())
        runner.run(engine.__aenter__())
        try:
            run = runner.run(engine.start(collect, TOKEN))
            runner.run(wait_for_hook(engine, TOKEN))

            @SETTINGS
            @given(payload=approval_payloads())
            @example(payload={"decision": "approved"})
            @example(payload={"decision": "changes", "notes": None, "extra": [1, {"a": 2.5}]})
            @example(payload={"decision": "approved", "notes": 3})
            @example(payload={"decision": "approved", "notes": "a\x00b"})
            @example(payload={"decision": "approved", "extra": "\ud800"})
            @example(payload=[{"decision": "approved"}])
            @example(payload={"decision": "approved", "extra": 2**200})
            def resume(payload: Any) -> None:
                stored.append(runner.run(_resume_once(engine, run.id, payload, typed=typed)))

            resume()
            runner.run(engine.cancel(run.id))
        finally:
            runner.run(engine.__aexit__(None, None, None))
    assert stored.count(True) >= 10, stored
    assert stored.count(False) >= 10, stored


def test_a_token_no_live_hook_holds_is_hook_not_found(make_engine: EngineFactory) -> None:
    """Any token but the live one, text no database keeps included, is HookNotFoundError
    (a LookupError), and nothing is stored."""
    with asyncio.Runner() as runner:
        engine = make_engine(clock=FakeClock())
        runner.run(engine.__aenter__())
        try:
            run = runner.run(engine.start(collect, TOKEN))
            runner.run(wait_for_hook(engine, TOKEN))

            @SETTINGS
            @given(token=st.text(max_size=20) | st.sampled_from(["\x00", "t\ud800", TOKEN + " "]))
            def resume(token: str) -> None:
                if token == TOKEN:
                    return
                with pytest.raises(HookNotFoundError):
                    runner.run(engine.resume_hook(token, {"decision": "approved"}))

            resume()
            assert [] == runner.run(_received(engine, run.id))
        finally:
            runner.run(engine.__aexit__(None, None, None))
