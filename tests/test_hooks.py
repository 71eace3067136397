"""Hooks: one payload or many, typed schemas, validation, unknown and conflicting tokens."""

from __future__ import annotations

import dataclasses
from typing import Any, Literal, TypedDict

import pydantic
import pytest

from conftest import EngineFactory
from helpers import of_type, types, wait_for_hook, wait_until
from perdure import (
    Engine,
    EventType,
    Hook,
    HookConflictError,
    HookNotFoundError,
    RunStatus,
    Workflow,
    WorkflowFailed,
    create_webhook,
    define_hook,
    workflow,
)
from perdure._replay import WEBHOOK
from perdure.testing import FakeClock


class Decision(pydantic.BaseModel):
    """A pydantic schema."""

    decision: Literal["approved", "changes"]
    notes: str | None = None


@dataclasses.dataclass
class Payment:
    """A dataclass schema."""

    amount: int
    currency: str = "EUR"


class Message(TypedDict):
    """A TypedDict schema."""

    text: str
    priority: int


decision_hook = define_hook(Decision)
payment_hook = define_hook(Payment)
message_hook = define_hook(Message)
other_hook = define_hook(Decision, name="other")


@workflow
async def wait_once(token: str) -> Decision:
    """Wait for one decision."""
    return await decision_hook.create(token=token)


@workflow
async def wait_twice_same_token(token: str) -> list[str]:
    """Wait for one decision, then open the same token again for another."""
    first = await decision_hook.create(token=token)
    second = await decision_hook.create(token=token)
    return [first.decision, second.decision]


@workflow
async def once_then_next(token: str, next_token: str) -> list[str]:
    """Wait for one decision on each of two tokens, one after the other."""
    first = await decision_hook.create(token=token)
    second = await decision_hook.create(token=next_token)
    return [first.decision, second.decision]


@workflow
async def collect(token: str) -> list[str]:
    """Collect messages until one has priority 0."""
    texts: list[str] = []
    async for message in message_hook.create(token=token):
        texts.append(message["text"])
        if message["priority"] == 0:
            break
    return texts


@workflow
async def wait_payment(token: str) -> Payment:
    """Wait for one payment."""
    return await payment_hook.create(token=token)


@workflow
async def wait_message(token: str) -> Message:
    """Wait for one message."""
    return await message_hook.create(token=token)


@workflow
async def conflicting(token: str) -> str:
    """Open a hook under a token that may already be held, reporting a conflict."""
    try:
        await decision_hook.create(token=token)
    except HookConflictError as exc:
        return f"conflict: {exc}"
    return "no conflict"


@workflow
async def opens_free_and_taken(free: str, taken: str) -> str:
    """Open two hooks in one go, the second under a token another run holds."""
    first = decision_hook.create(token=free)
    second = decision_hook.create(token=taken)
    try:
        await second
    except HookConflictError as exc:
        outcome = f"conflict on {exc.token}"
    else:
        outcome = "no conflict"
    decision = await first
    return f"{outcome}; {free} got {decision.decision}"


@workflow
async def opens_then_fails(token: str) -> None:
    """Open a hook without waiting on it, then fail."""
    decision_hook.create(token=token)
    raise RuntimeError("gave up")


async def test_awaiting_a_hook_takes_one_payload_and_disposes_it(engine: Engine) -> None:
    """An awaited hook returns the first payload; the hook is then gone from the store."""
    run = await engine.start(wait_once, "t-once")
    await wait_for_hook(engine, "t-once")

    await decision_hook.resume("t-once", {"decision": "approved", "notes": "ok"})

    assert Decision(decision="approved", notes="ok") == await run.result(timeout=5)
    assert await engine.store.get_hook("t-once") is None
    events = await run.events()
    assert ["hook_created", "hook_received", "hook_disposed"] == [
        t for t in types(events) if t.startswith("hook_")
    ]
    assert {"hook.Decision#1"} == {
        e.correlation_id for e in events if e.type.value.startswith("hook_")
    }


async def test_a_disposed_hook_no_longer_takes_payloads(engine: Engine) -> None:
    """Once its one payload has been taken, a resume of the token is HookNotFoundError."""
    run = await engine.start(once_then_next, "t-first", "t-second")
    await wait_for_hook(engine, "t-first")
    await decision_hook.resume("t-first", {"decision": "approved"})
    await wait_for_hook(engine, "t-second")

    with pytest.raises(HookNotFoundError):
        await decision_hook.resume("t-first", {"decision": "changes"})

    await decision_hook.resume("t-second", {"decision": "changes"})
    assert ["approved", "changes"] == await run.result(timeout=5)


async def test_a_token_can_be_used_again_after_its_hook_is_disposed(engine: Engine) -> None:
    """A workflow may open the same token again once its first hook is disposed."""
    run = await engine.start(wait_twice_same_token, "t-again")
    first = await wait_for_hook(engine, "t-again")
    await decision_hook.resume("t-again", {"decision": "approved"})

    async def reopened() -> object:
        hook = await engine.store.get_hook("t-again")
        return hook is not None and hook.correlation_id != first.correlation_id

    await wait_until(engine, reopened)
    await decision_hook.resume("t-again", {"decision": "changes"})

    assert ["approved", "changes"] == await run.result(timeout=5)
    assert ["hook.Decision#1", "hook.Decision#2"] == [
        e.correlation_id for e in of_type(await run.events(), EventType.HOOK_CREATED)
    ]


async def test_a_token_is_free_again_for_another_run_when_its_run_ends(engine: Engine) -> None:
    """After a run took its payload, another run may open a hook with the same token."""
    for decision in ("approved", "changes"):
        run = await engine.start(wait_once, "t-shared-later")
        await wait_for_hook(engine, "t-shared-later")
        await decision_hook.resume("t-shared-later", {"decision": decision})
        assert decision == (await run.result(timeout=5)).decision


async def test_async_for_receives_many_payloads_in_order(engine: Engine) -> None:
    """Iterating a hook receives every payload, in the order they were sent."""
    run = await engine.start(collect, "t-many")
    await wait_for_hook(engine, "t-many")

    for text, priority in [("a", 2), ("b", 1), ("c", 3), ("d", 0)]:
        await message_hook.resume("t-many", {"text": text, "priority": priority})

    assert ["a", "b", "c", "d"] == await run.result(timeout=5)
    assert 4 == len(of_type(await run.events(), EventType.HOOK_RECEIVED))
    assert await engine.store.get_hook("t-many") is None


async def test_a_dataclass_schema(engine: Engine) -> None:
    """A dataclass hook validates its payload and hands the workflow a dataclass."""
    run = await engine.start(wait_payment, "t-pay")
    await wait_for_hook(engine, "t-pay")

    await payment_hook.resume("t-pay", {"amount": 12})

    assert Payment(amount=12, currency="EUR") == await run.result(timeout=5)


async def test_a_dataclass_instance_is_a_valid_payload(engine: Engine) -> None:
    """resume accepts an instance of the schema as well as a dict."""
    run = await engine.start(wait_payment, "t-pay-obj")
    await wait_for_hook(engine, "t-pay-obj")

    await payment_hook.resume("t-pay-obj", Payment(amount=3, currency="USD"))

    assert Payment(amount=3, currency="USD") == await run.result(timeout=5)


async def test_a_typeddict_schema(engine: Engine) -> None:
    """A TypedDict hook (typing.TypedDict, also on Python 3.11) hands the workflow a dict."""
    run = await engine.start(wait_message, "t-msg")
    await wait_for_hook(engine, "t-msg")

    await message_hook.resume("t-msg", {"text": "hi", "priority": 1})

    assert {"text": "hi", "priority": 1} == await run.result(timeout=5)


@pytest.mark.parametrize(
    ("hook", "waiter", "payload", "field", "valid"),
    [
        (decision_hook, wait_once, {"decision": "maybe"}, "decision", {"decision": "approved"}),
        (decision_hook, wait_once, {"notes": "none"}, "decision", {"decision": "approved"}),
        (payment_hook, wait_payment, {"amount": "lots"}, "amount", {"amount": 1}),
        (message_hook, wait_message, {"text": "hi"}, "priority", {"text": "x", "priority": 1}),
    ],
)
async def test_an_invalid_payload_is_refused_and_nothing_is_written(
    make_engine: EngineFactory,
    hook: Hook[Any],
    waiter: Workflow[[str], Any],
    payload: dict[str, Any],
    field: str,
    valid: dict[str, Any],
) -> None:
    """An invalid payload raises a ValidationError naming the field; nothing is stored."""
    async with make_engine(clock=FakeClock(autojump=False)) as engine:
        assert engine.worker is not None
        run = await engine.start(waiter, "t-bad")
        await wait_for_hook(engine, "t-bad")
        before = await run.events()

        with pytest.raises(pydantic.ValidationError, match=field) as caught:
            await hook.resume("t-bad", payload)

        assert isinstance(caught.value, ValueError)
        assert before == await run.events()
        assert [] == await engine.store.inbox(engine.worker.id)
        assert RunStatus.RUNNING == await run.status()
        assert await engine.store.get_hook("t-bad") is not None

        await hook.resume("t-bad", valid)
        await run.result(timeout=5)
        assert RunStatus.COMPLETED == await run.status()


async def test_an_unknown_token_is_hook_not_found(engine: Engine) -> None:
    """Resuming a token no live hook holds raises HookNotFoundError, a LookupError."""
    with pytest.raises(HookNotFoundError) as caught:
        await decision_hook.resume("nobody-holds-this", {"decision": "approved"})

    assert isinstance(caught.value, LookupError)


async def test_a_hook_of_another_kind_does_not_take_the_payload(engine: Engine) -> None:
    """A token held by a hook of another name is not found by this hook's resume."""
    run = await engine.start(wait_once, "t-kind")
    await wait_for_hook(engine, "t-kind")

    with pytest.raises(HookNotFoundError):
        await other_hook.resume("t-kind", {"decision": "approved"})

    await decision_hook.resume("t-kind", {"decision": "approved"})
    await run.result(timeout=5)


async def test_a_second_live_hook_with_the_same_token_conflicts(engine: Engine) -> None:
    """A run opening a token another run's live hook holds gets HookConflictError."""
    holder = await engine.start(wait_once, "t-taken")
    held = await wait_for_hook(engine, "t-taken")

    late = await engine.start(conflicting, "t-taken")

    message = await late.result(timeout=5)
    assert message.startswith("conflict: ")
    assert "t-taken" in message
    assert held == await engine.store.get_hook("t-taken")
    (created,) = of_type(await late.events(), EventType.HOOK_CREATED)
    assert "error" in created.data

    await decision_hook.resume("t-taken", {"decision": "approved"})
    assert "approved" == (await holder.result(timeout=5)).decision


async def test_a_conflict_marks_only_the_hook_whose_token_is_taken(engine: Engine) -> None:
    """Of two hooks opened together, only the one whose token is taken fails; the other
    is live and receives its payload."""
    holder = await engine.start(wait_once, "t-held")
    await wait_for_hook(engine, "t-held")

    both = await engine.start(opens_free_and_taken, "t-free", "t-held")
    await wait_for_hook(engine, "t-free")
    await decision_hook.resume("t-free", {"decision": "changes"})

    assert "conflict on t-held; t-free got changes" == await both.result(timeout=5)
    created = {
        e.data["token"]: e.data for e in of_type(await both.events(), EventType.HOOK_CREATED)
    }
    assert "error" not in created["t-free"]
    assert "error" in created["t-held"]
    await decision_hook.resume("t-held", {"decision": "approved"})
    assert "approved" == (await holder.result(timeout=5)).decision


async def test_hooks_are_disposed_when_their_run_ends(engine: Engine) -> None:
    """A run that ends (here: fails) with a hook still open leaves no live hook behind."""
    run = await engine.start(opens_then_fails, "t-left-open")

    with pytest.raises(WorkflowFailed, match="gave up"):
        await run.result(timeout=5)

    assert await engine.store.get_hook("t-left-open") is None
    assert [] == await engine.store.list_hooks(run_id=run.id)


async def test_hooks_iterated_and_left_are_disposed_when_the_run_completes(
    engine: Engine,
) -> None:
    """Leaving an async for over a hook early still frees its token when the run ends."""
    run = await engine.start(collect, "t-break")
    await wait_for_hook(engine, "t-break")

    await message_hook.resume("t-break", {"text": "only", "priority": 0})

    assert ["only"] == await run.result(timeout=5)
    assert await engine.store.get_hook("t-break") is None


def test_creating_a_hook_outside_a_workflow_is_a_runtime_error() -> None:
    """hook.create() needs a running workflow."""
    with pytest.raises(RuntimeError, match="inside a workflow"):
        decision_hook.create(token="x")


@workflow
async def wait_webhook() -> str:
    """Wait for one request to a webhook."""
    request = await create_webhook()
    return request.method


async def test_engine_resume_hook_validates_json_for_the_hooks_this_process_defines(
    make_engine: EngineFactory,
) -> None:
    """Engine.resume_hook, behind the CLI and the HTTP API, validates JSON with the hook's
    schema and stores it encoded; a payload that fails is a ValueError naming the hook
    and the field, and a NUL is refused: nothing is written either way."""
    async with make_engine(clock=FakeClock(autojump=False)) as engine:
        assert engine.worker is not None
        run = await engine.start(wait_payment, "t-json")
        await wait_for_hook(engine, "t-json")
        before = await run.events()

        with pytest.raises(ValueError, match="hook 'Payment': amount: ") as wrong:
            await engine.resume_hook("t-json", {"amount": "lots"})
        with pytest.raises(ValueError, match="NUL") as nul:
            await engine.resume_hook("t-json", {"amount": 1, "currency": "E\x00R"})

        assert isinstance(wrong.value.__cause__, pydantic.ValidationError)
        assert not isinstance(nul.value, pydantic.ValidationError)
        assert before == await run.events()
        assert [] == await engine.store.inbox(engine.worker.id)
        hook = await engine.resume_hook("t-json", {"amount": 5})
        assert (run.id, "Payment") == (hook.run_id, hook.name)
        assert Payment(amount=5) == await run.result(timeout=5)


async def test_engine_resume_hook_leaves_webhooks_to_the_http_app(engine: Engine) -> None:
    """A webhook's token takes a payload only with name=WEBHOOK: its payloads are the
    requests the HTTP app stores."""
    run = await engine.start(wait_webhook)
    [hook] = await wait_until(engine, lambda: engine.store.list_hooks(run_id=run.id))

    with pytest.raises(HookNotFoundError):
        await engine.resume_hook(hook.token, {"method": "POST", "path": "/"})
    with pytest.raises(HookNotFoundError):
        await engine.resume_hook(hook.token, {"method": "POST", "path": "/"}, name="elsewhere")

    await engine.resume_hook(hook.token, {"method": "PUT", "path": "/"}, name=WEBHOOK)
    assert "PUT" == await run.result(timeout=5)
