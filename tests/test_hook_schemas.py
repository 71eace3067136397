"""A hook's payload is checked against the JSON Schema stored with the hook, wherever it
is sent from, and a payload the workflow cannot decode is an error it may catch.

"A process that does not define the hook" is this one with the hooks' names taken out of
the registry (`elsewhere`): it then knows a hook by its name and its stored schema only,
as the command line without ``--module`` and an HTTP app of another service do. The
real processes are in tests/cli/test_cli.py and tests/http/test_http.py.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Literal, TypedDict

import pydantic
import pytest

from conftest import EngineFactory
from helpers import of_type, wait_for_hook, wait_until
from perdure import (
    Engine,
    EventType,
    Hook,
    HookNotFoundError,
    HookPayloadError,
    RunStatus,
    Workflow,
    _hooks,
    create_webhook,
    define_hook,
    workflow,
)
from perdure.stores import MemoryStore
from perdure.testing import FakeClock


class Decision(pydantic.BaseModel):
    """A pydantic schema."""

    decision: Literal["approved", "changes"]
    notes: str | None = None


class AnyDecision(pydantic.BaseModel):
    """Decision as a later deploy may loosen it."""

    decision: str


@dataclasses.dataclass
class Payment:
    """A dataclass schema."""

    amount: int
    currency: str = "EUR"


class Message(TypedDict):
    """A TypedDict schema."""

    text: str
    priority: int


decisions = define_hook(Decision, name="schemas-decision")
payments = define_hook(Payment, name="schemas-payment")
messages = define_hook(Message, name="schemas-message")
evolving = define_hook(Decision, name="schemas-evolving")
gates = define_hook(Decision, name="schemas-gate")
twin_payments = define_hook(Payment, name="schemas-twin")
twin_decisions = define_hook(Decision, name="schemas-twin")  # one name, two types
NAMES = (
    "schemas-decision",
    "schemas-payment",
    "schemas-message",
    "schemas-evolving",
    "schemas-twin",
)


@workflow(name="schemas-wait-decision")
async def wait_decision(token: str) -> str:
    """Wait for one decision."""
    return (await decisions.create(token=token)).decision


@workflow(name="schemas-wait-payment")
async def wait_payment(token: str) -> int:
    """Wait for one payment."""
    return (await payments.create(token=token)).amount


@workflow(name="schemas-wait-message")
async def wait_message(token: str) -> str:
    """Wait for one message."""
    return (await messages.create(token=token))["text"]


@workflow(name="schemas-wait-evolving")
async def wait_evolving(token: str) -> str:
    """Wait for one decision on the hook whose type a deploy changes."""
    return (await evolving.create(token=token)).decision


@workflow(name="schemas-tolerant")
async def tolerant(token: str) -> str:
    """Wait for one decision, and say so when it cannot be decoded."""
    try:
        decision = await decisions.create(token=token)
    except HookPayloadError as exc:
        return f"refused on {exc.token}: {exc}"
    return decision.decision


@workflow(name="schemas-tolerant-many")
async def tolerant_many(token: str) -> list[str]:
    """Take decisions until two decoded, noting each payload that was not one."""
    seen: list[str] = []
    taken = 0
    async with decisions.create(token=token) as stream:
        while taken < 2:
            try:
                decision = await stream.next()
            except HookPayloadError:
                seen.append("refused")
                continue
            seen.append(decision.decision)
            taken += 1
    return seen


@workflow(name="schemas-wait-twin-decision")
async def wait_twin_decision(token: str) -> str:
    """Wait for one decision on a hook whose name another type's hook shares."""
    return (await twin_decisions.create(token=token)).decision


@workflow(name="schemas-gated-twin-payment")
async def gated_twin_payment(gate: str, token: str) -> int:
    """Once the gate opens, wait for a payment on ``token``, under the same hook name."""
    await gates.create(token=gate)
    return (await twin_payments.create(token=token)).amount


@workflow(name="schemas-wait-webhook")
async def wait_webhook() -> str:
    """Wait for one request to a webhook."""
    return (await create_webhook()).method


@pytest.fixture
def elsewhere(monkeypatch: pytest.MonkeyPatch) -> None:
    """This process no longer defines the hooks: it knows them by name and stored schema."""
    for name in NAMES:
        monkeypatch.delitem(_hooks._registry, name)


async def hook_created_data(engine: Engine, run_id: str) -> dict[str, Any]:
    [created] = of_type(await (await engine.get_run(run_id)).events(), EventType.HOOK_CREATED)
    return created.data


async def test_a_hook_stores_the_json_schema_of_its_payload_type(engine: Engine) -> None:
    """hook_created carries the payload type's JSON Schema (pydantic's, draft 2020-12);
    a webhook, whose payloads the HTTP app makes, carries none."""
    run = await engine.start(wait_decision, "t-schema")
    await wait_for_hook(engine, "t-schema")
    webhook_run = await engine.start(wait_webhook)
    await wait_until(engine, lambda: engine.store.list_hooks(run_id=webhook_run.id))

    schema = (await hook_created_data(engine, run.id))["schema"]

    assert "https://json-schema.org/draft/2020-12/schema" == schema["$schema"]
    assert {"$ref": "#/$defs/Decision"}.items() <= schema.items()
    assert pydantic.TypeAdapter(Decision).json_schema() == schema["$defs"]["Decision"]
    assert "schema" not in await hook_created_data(engine, webhook_run.id)


@pytest.mark.usefixtures("elsewhere")
@pytest.mark.parametrize(
    ("waiter", "payload", "field", "valid", "result"),
    [
        (wait_decision, {"decision": "maybe"}, "decision", {"decision": "approved"}, "approved"),
        (wait_decision, {"notes": "none"}, "decision", {"decision": "changes"}, "changes"),
        (wait_payment, {"amount": "lots"}, "amount", {"amount": 7}, 7),
        (wait_payment, [7], "payload", {"amount": 7, "currency": "USD"}, 7),
        (wait_message, {"text": "hi"}, "priority", {"text": "hi", "priority": 1}, "hi"),
        (wait_message, {"text": 1, "priority": 2}, "text", {"text": "1", "priority": 2}, "1"),
    ],
    ids=["literal", "missing", "type", "not-an-object", "typeddict-missing", "typeddict-type"],
)
async def test_a_process_without_the_hooks_type_refuses_what_its_schema_refuses(
    make_engine: EngineFactory,
    waiter: Workflow[[str], Any],
    payload: Any,
    field: str,
    valid: dict[str, Any],
    result: object,
) -> None:
    """A payload failing the stored schema is a ValueError naming the hook and the field,
    and nothing is written; a valid one reaches the run, which decodes it."""
    async with make_engine(clock=FakeClock(autojump=False)) as engine:
        assert engine.worker is not None
        run = await engine.start(waiter, "t-elsewhere")
        hook = await wait_for_hook(engine, "t-elsewhere")
        assert None is _hooks.lookup_hook(hook.name)
        before = await run.events()

        with pytest.raises(ValueError, match=f"hook '{hook.name}': {field}: "):
            await engine.resume_hook("t-elsewhere", payload)

        assert before == await run.events()
        assert [] == await engine.store.inbox(engine.worker.id)
        assert RunStatus.RUNNING == await run.status()
        assert await engine.store.get_hook("t-elsewhere") is not None
        await engine.resume_hook("t-elsewhere", valid)
        assert result == await run.result(timeout=5)


async def test_resume_checks_the_schema_the_run_stored_not_only_todays_type(
    make_engine: EngineFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    """After a deploy loosened the hook's type, a payload the new type takes but the
    run's stored schema refuses is refused, by Hook.resume too; nothing is written."""
    async with make_engine(clock=FakeClock(autojump=False)) as engine:
        assert engine.worker is not None
        run = await engine.start(wait_evolving, "t-deploy")
        await wait_for_hook(engine, "t-deploy")
        before = await run.events()
        monkeypatch.setitem(_hooks._registry, "schemas-evolving", _hooks._registry[evolving.name])
        loosened = Hook(AnyDecision, name="schemas-evolving")  # what the new code defines

        with pytest.raises(ValueError, match="hook 'schemas-evolving': decision: ") as caught:
            await loosened.resume("t-deploy", {"decision": "maybe"})
        with pytest.raises(ValueError, match="decision: "):
            await engine.resume_hook("t-deploy", {"decision": "maybe"})

        assert not isinstance(caught.value, pydantic.ValidationError)  # today's type took it
        assert before == await run.events()
        assert [] == await engine.store.inbox(engine.worker.id)
        await loosened.resume("t-deploy", {"decision": "approved"})
        assert "approved" == await run.result(timeout=5)


async def test_a_payload_the_workflow_cannot_decode_is_an_error_it_catches_at_the_await(
    engine: Engine,
) -> None:
    """A payload stored without the schema's check (by an older perdure, or checked
    against a schema a deploy has since changed) raises HookPayloadError, a TypeError,
    where the workflow awaits the hook: it catches it and completes."""
    run = await engine.start(tolerant, "t-undecodable")
    await wait_for_hook(engine, "t-undecodable")

    await engine.store.resume_hook("t-undecodable", {"decision": "maybe"}, engine.clock.now())

    outcome = await run.result(timeout=5)
    assert outcome.startswith("refused on t-undecodable: hook token 't-undecodable': ")
    assert "decision" in outcome
    assert issubclass(HookPayloadError, TypeError)
    assert RunStatus.COMPLETED == await run.status()


async def test_an_iterated_hook_stays_live_after_a_payload_it_cannot_decode(
    engine: Engine,
) -> None:
    """The undecodable payload is consumed; the next payload reaches the same stream."""
    run = await engine.start(tolerant_many, "t-many")
    await wait_for_hook(engine, "t-many")

    await engine.resume_hook("t-many", {"decision": "approved"})
    await engine.store.resume_hook("t-many", {"decision": 3}, engine.clock.now())
    await engine.resume_hook("t-many", {"decision": "changes"})

    assert ["approved", "refused", "changes"] == await run.result(timeout=5)


@pytest.mark.usefixtures("elsewhere")
async def test_a_hook_created_without_a_schema_takes_payloads_as_before(
    engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A hook whose hook_created has no schema (made by an older perdure) takes any
    JSON where its type is not defined, and the workflow judges it when decoding."""
    monkeypatch.setitem(decisions.__dict__, "json_schema", None)  # as before schemas
    run = await engine.start(tolerant, "t-old")
    await wait_for_hook(engine, "t-old")
    assert "schema" not in await hook_created_data(engine, run.id)

    await engine.resume_hook("t-old", {"anything": [1, 2]})

    assert (await run.result(timeout=5)).startswith("refused on t-old")
    [received] = of_type(await run.events(), EventType.HOOK_RECEIVED)
    assert {"anything": [1, 2]} == received.data["payload"]


@pytest.mark.parametrize("token", ["", "nul\x00token", "lone\ud800surrogate"])
async def test_a_token_no_store_can_hold_is_hook_not_found(engine: Engine, token: str) -> None:
    """A token no live hook could hold (empty, a NUL, a lone surrogate) is not found on
    every store, never a database's own error."""
    with pytest.raises(HookNotFoundError):
        await engine.resume_hook(token, {"decision": "approved"})


class _SwapAfterRead(MemoryStore):
    """A store on which, right after the resume reads the hook's schema, the token
    passes to another run's hook of another type."""

    swap: Any = None

    async def hook_event(self, token: str) -> Any:
        event = await super().hook_event(token)
        swap, self.swap = self.swap, None
        if swap is not None:
            await swap()
        return event


@pytest.mark.usefixtures("elsewhere")
async def test_a_token_that_changes_hands_after_the_check_is_checked_again() -> None:
    """The payload goes only to the hook whose schema it passed: when the token passes
    to another hook (of the same name) between the check and the write, the payload is
    checked against that hook's schema instead."""
    store = _SwapAfterRead()
    async with Engine(store=store, clock=FakeClock(autojump=False)) as engine:
        assert engine.worker is not None
        first = await engine.start(wait_twin_decision, "t-swap")
        second = await engine.start(gated_twin_payment, "t-gate", "t-swap")
        await wait_for_hook(engine, "t-swap")
        await wait_for_hook(engine, "t-gate")

        async def swap() -> None:
            await engine.cancel(first.id)
            await wait_until(engine, lambda: _no_hook(engine, "t-swap"))
            await engine.resume_hook("t-gate", {"decision": "approved"})
            await wait_until(engine, lambda: engine.store.get_hook("t-swap"))

        store.swap = swap
        with pytest.raises(ValueError, match="hook 'schemas-twin': amount: Field required"):
            await engine.resume_hook("t-swap", {"decision": "approved"})

        received = of_type(await second.events(), EventType.HOOK_RECEIVED)
        assert ["t-gate"] == [event.data["token"] for event in received]
        assert [] == await engine.store.inbox(engine.worker.id)
        await engine.resume_hook("t-swap", {"amount": 3})
        assert 3 == await second.result(timeout=5)


async def _no_hook(engine: Engine, token: str) -> bool:
    return await engine.store.get_hook(token) is None


class _CountingReads(MemoryStore):
    """A memory store that counts the reads of a hook's hook_created."""

    reads = 0

    async def hook_event(self, token: str) -> Any:
        self.reads += 1
        return await super().hook_event(token)


async def test_a_live_hook_is_read_once_and_read_again_when_its_token_changes_hands() -> None:
    """Resumes of a hook its Engine resumed before check against what it read then (a
    long-lived hook's later resumes cost no scan of its log); once another hook holds
    the token, the write is refused and the new hook is read and checked against."""
    store = _CountingReads()
    async with Engine(store=store, clock=FakeClock(autojump=False)) as engine:
        first = await engine.start(tolerant_many, "t-reads")
        await wait_for_hook(engine, "t-reads")
        await engine.resume_hook("t-reads", {"decision": "approved"})
        await engine.resume_hook("t-reads", {"decision": "changes"})
        assert 1 == store.reads
        assert ["approved", "changes"] == await first.result(timeout=5)

        second = await engine.start(wait_payment, "t-reads")
        await wait_for_hook(engine, "t-reads")
        with pytest.raises(ValueError, match="hook 'schemas-payment': amount: "):
            await engine.resume_hook("t-reads", {"decision": "approved"})
        assert 2 == store.reads
        await engine.resume_hook("t-reads", {"amount": 4})
        assert 2 == store.reads
        assert 4 == await second.result(timeout=5)
