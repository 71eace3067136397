"""The workflows whose recorded logs are the golden histories, and how each was driven.

Each golden file in this folder is the log of one run of one workflow below, recorded
by ``record.py``. ``test_golden.py`` replays every file against these workflows as
today's code defines them, the way a worker replays a run in flight after an upgrade.

**Never edit a workflow, step or scenario here.** A golden file holds what the code
did when it was recorded; change the code and the file no longer says anything about
the log format. A new behaviour to pin gets a new workflow (a new name) and a new
scenario, recorded into a new file beside the old ones.

The steps decide from their attempt number and arguments, never from the wall clock
or shared state, so a recording is the same whichever machine makes it (but for the
retry jitter, which the log records).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Any, Literal

import httpx
import pydantic

import perdure
from perdure import (
    Engine,
    FatalError,
    HookPayloadError,
    RetryableError,
    create_webhook,
    define_hook,
    get_step_metadata,
    sleep,
    step,
    workflow,
)
from perdure.http import create_app

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable

    from perdure import Run

__all__ = ["SCENARIOS", "Scenario"]

# -- steps ------------------------------------------------------------------------------


@step(name="golden.flaky", max_retries=3)
async def flaky(label: str, failures: int) -> str:
    """Fails its first ``failures`` attempts (retryable, with a set delay), then returns."""
    attempt = get_step_metadata().attempt
    if attempt <= failures:
        raise RetryableError(f"attempt {attempt} of {label} failed", retry_after=30)
    return f"{label} after {attempt} attempts"


@step(name="golden.double")
async def double(n: int) -> int:
    """A plain async step."""
    return n * 2


@step(name="golden.square")
def square(n: int) -> int:
    """A plain sync step (run in the thread pool)."""
    return n * n


@step(name="golden.charge", max_retries=0)
async def charge(amount: int) -> str:
    """Refuses amounts over 100 for good (FatalError: no retry)."""
    if amount > 100:
        raise FatalError(f"card declined for {amount}")
    return f"charged {amount}"


@step(name="golden.embed", queue="golden-gpu", max_retries=2)
async def embed(text: str) -> list[int]:
    """A step routed to the workers serving the ``golden-gpu`` queue; fails once."""
    if get_step_metadata().attempt == 1:
        raise RetryableError("the GPU was busy", retry_after=5)
    return [len(text), text.count(" ")]


@dataclass(frozen=True)
class Invoice:
    """A typed value crossing a step boundary: its encoding is part of the log format."""

    number: str
    issued: date
    amount: Decimal
    tags: frozenset[str]
    at: datetime


@step(name="golden.invoice")
async def make_invoice(number: str, amount: Decimal) -> Invoice:
    """Returns a dataclass holding a date, a Decimal, a frozenset and an aware datetime."""
    return Invoice(
        number=number,
        issued=date(2030, 1, 1),
        amount=amount,
        tags=frozenset({"b2b", "eu"}),
        at=datetime(2030, 1, 1, 9, 30, tzinfo=UTC),
    )


# -- hooks ------------------------------------------------------------------------------


class Review(pydantic.BaseModel):
    """A reviewer's verdict, sent to the ``golden.review`` hook."""

    decision: Literal["approved", "changes", "done"]
    notes: str | None = None


review = define_hook(Review, name="golden.review")


# -- workflows --------------------------------------------------------------------------


@workflow(name="golden-steps-with-retries")
async def steps_with_retries(label: str) -> dict[str, Any]:
    """Two steps, the first retried twice; the deterministic helpers in the result."""
    first = await flaky(label, 2)
    second = await double(21)
    return {
        "first": first,
        "second": second,
        "now": perdure.now().isoformat(),
        "random": perdure.random(),
        "uuid": str(perdure.uuid4()),
    }


@workflow(name="golden-gather")
async def gather(numbers: list[int]) -> list[int]:
    """asyncio.gather of steps: two names, one of them called twice, a sync one among them."""
    return list(await asyncio.gather(double(numbers[0]), square(numbers[1]), double(numbers[2])))


@workflow(name="golden-sleep")
async def sleeper(n: int) -> int:
    """A step, a seven-day sleep, a sleep until a set time, another step."""
    before = await double(n)
    await sleep("7 days")
    await sleep(until=datetime(2030, 2, 1, tzinfo=UTC))
    return await double(before)


@workflow(name="golden-hook-many-events")
async def reviewed(doc: str) -> list[str]:
    """A hook iterated for many payloads, until one says done."""
    seen = []
    async for verdict in review.create(token=f"review-{doc}"):
        seen.append(f"{verdict.decision}: {verdict.notes}")
        if verdict.decision == "done":
            break
    return seen


@workflow(name="golden-webhook")
async def webhook_flow(ticket: str) -> dict[str, Any]:
    """A webhook awaited for one request, and a step on what it carried."""
    hook = create_webhook(respond_with=201, body={"ticket": ticket})
    request = await hook
    length = await double(len(request.body))
    return {"method": request.method, "query": request.query, "doubled": length}


@workflow(name="golden-cancelled")
async def cancelled(n: int) -> int:
    """A step, then a thirty-day sleep during which the run is cancelled."""
    first = await double(n)
    await sleep("30 days")
    return await double(first)  # never reached: the run is cancelled while it sleeps


@workflow(name="golden-queue-steps")
async def queued(texts: list[str]) -> list[list[int]]:
    """Steps on a queue (one retried by the queue's worker), gathered, then an inline one."""
    vectors = list(await asyncio.gather(*(embed(text) for text in texts)))
    total = await double(sum(v[0] for v in vectors))
    return [*vectors, [total]]


@workflow(name="golden-failed-run")
async def failed_run(amount: int) -> str:
    """A step that fails for good, not caught: the run fails with its error."""
    await double(amount)
    return await charge(amount)


@workflow(name="golden-caught-step-failure")
async def caught_failure(amount: int) -> str:
    """A step that fails for good, caught by the workflow, which goes on with another."""
    try:
        return await charge(amount)
    except FatalError as exc:
        fallback = await charge(amount // 10)
        return f"{exc} -> {fallback}"


@workflow(name="golden-race-step-sleep")
async def race(n: int) -> str:
    """A step raced against a one-hour sleep (the step wins) and a wait_for on a step."""
    quick = asyncio.ensure_future(double(n))
    timer = asyncio.ensure_future(sleep("1h"))
    done, _ = await asyncio.wait({quick, timer}, return_when=asyncio.FIRST_COMPLETED)
    timer.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await timer
    winner = "step" if quick in done else "sleep"
    squared = await asyncio.wait_for(square(n), timeout=60)
    return f"{winner} won with {quick.result()}; then {squared}"


@workflow(name="golden-typed-values")
async def typed(number: str) -> Invoice:
    """A dataclass of typed values out of a step and out of the run."""
    invoice = await make_invoice(number, Decimal("19.99"))
    return dataclasses.replace(invoice, tags=invoice.tags | {"paid"})


@workflow(name="golden-hook-schema")
async def reviewed_with_schema(doc: str) -> list[str]:
    """A hook whose hook_created carries its payloads' JSON Schema; a payload stored
    without that check (as by an older perdure) is refused at the await, and the
    workflow takes the next one."""
    seen: list[str] = []
    async with review.create(token=f"schema-{doc}") as stream:
        while not seen or seen[-1] != "done":
            try:
                verdict = await stream.next()
            except HookPayloadError:
                seen.append("undecodable")
                continue
            seen.append(verdict.decision)
    return seen


@workflow(name="golden-patched")
async def patched_flow(n: int) -> list[int]:
    """A run that takes a patch's new branch (a patch_marked event) and passes a
    deprecated patch, which logs nothing."""
    first = await double(n)
    if perdure.patched("golden-square-first"):
        rest = [await square(first), await double(first)]
    else:
        rest = [await double(first), await square(first)]
    perdure.deprecate_patch("golden-retired")
    return [first, *rest]


# -- scenarios --------------------------------------------------------------------------


async def _until(check: Callable[[], Awaitable[bool]], what: str, timeout: float = 10.0) -> None:
    """Wait (polling) until ``check()`` holds; the recording fails if it never does."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not await check():
        if loop.time() > deadline:
            raise TimeoutError(f"gave up waiting for {what}")
        await asyncio.sleep(0.01)


async def _waiting_hook(engine: Engine, run: Run[Any]) -> str:
    """The token of the run's live hook, once it has one."""

    async def has_hook() -> bool:
        return bool(await engine.store.list_hooks(run_id=run.id))

    await _until(has_hook, f"a live hook in run {run.id}")
    (hook,) = await engine.store.list_hooks(run_id=run.id)
    return hook.token


_BUGGY: list[bool] = []
"""Set while `blocked_then_fixed` is recorded: its first life has a bug."""


@workflow(name="golden-blocked-then-fixed")
async def blocked_then_fixed(x: int) -> int:
    """A bug (an AttributeError) blocks the run; the fix, unblocked, completes it."""
    y = await double(x)
    if _BUGGY:
        return y.bug  # type: ignore[attr-defined,no-any-return]
    return await square(y)


async def _fix_and_unblock(engine: Engine, run: Run[Any]) -> None:
    async def blocked() -> bool:
        return (await run.status()).value == "blocked"

    await _until(blocked, f"run {run.id} to block")
    _BUGGY.clear()
    await engine.unblock(run.id)


async def _send_reviews(engine: Engine, run: Run[Any]) -> None:
    token = await _waiting_hook(engine, run)
    for decision, notes in [("changes", "tighten the intro"), ("approved", None), ("done", "ok")]:
        await review.resume(token, {"decision": decision, "notes": notes})


async def _send_undecodable_then_done(engine: Engine, run: Run[Any]) -> None:
    token = await _waiting_hook(engine, run)
    await engine.store.resume_hook(token, {"decision": "maybe"}, engine.clock.now())
    await review.resume(token, {"decision": "done"})


async def _call_webhook(engine: Engine, run: Run[Any]) -> None:
    token = await _waiting_hook(engine, run)
    transport = httpx.ASGITransport(app=create_app(engine))
    async with httpx.AsyncClient(transport=transport, base_url="http://golden") as client:
        response = await client.post(f"/webhooks/{token}?source=golden", content=b"paid in full")
        response.raise_for_status()


async def _cancel_while_sleeping(engine: Engine, run: Run[Any]) -> None:
    async def sleeping() -> bool:
        return any(e.type.value == "sleep_started" for e in await run.events())

    await _until(sleeping, f"run {run.id} to sleep")
    await engine.cancel(run.id)


@workflow(name="golden-child")
async def golden_child(n: int) -> int:
    """A child run: doubles ``n`` in a step."""
    return await double(n)


@workflow(name="golden-failing-child")
async def golden_failing_child(amount: int) -> str:
    """A child run that fails (its charge is declined for good)."""
    return await charge(amount)


@step(name="golden.hang", max_retries=0)
async def hang() -> None:
    """Runs until its run is cancelled."""
    await asyncio.Event().wait()


@workflow(name="golden-children")
async def children_flow(n: int) -> str:
    """Children gathered, a failing child caught, a handle awaited later, and a running
    step cancelled with the run (child_started, child_completed, step_cancelled)."""
    first, second = await asyncio.gather(golden_child(n), golden_child(n + 1))
    try:
        await golden_failing_child(500)
    except perdure.WorkflowFailed as exc:
        caught = exc.message
    handle = await perdure.start_child(golden_child, 100)
    third = await handle.result()
    await hang()
    return f"{first} {second} {third} {caught}"


async def _cancel_while_hanging(engine: Engine, run: Run[Any]) -> None:
    async def hanging() -> bool:
        return any(e.correlation_id == "golden.hang#1" for e in await run.events())

    await _until(hanging, f"run {run.id} to start golden.hang")
    await engine.cancel(run.id)


@workflow(name="golden.attributes")
async def attributes_flow(customer: str) -> int:
    """Set attributes before and after a step and a sleep (issue 13: attributes_set)."""
    perdure.set_attributes(customer=customer, tier="gold", items=3, ratio=0.5, vip=True)
    total = await double(21)
    await perdure.sleep(10)
    perdure.set_attributes(tier="platinum")
    return total


@step(name="golden.speak")
async def speak(words: list[str]) -> int:
    out = perdure.get_writable("tokens")
    for word in words:
        await out.write(word)
    return len(words)


@workflow(name="golden.streams")
async def streams_flow(topic: str) -> int:
    """Write to durable streams in the body, around a step that writes (issue 14:
    stream_written); close one."""
    status = perdure.get_writable("status")
    await status.write({"topic": topic, "phase": "drafting"})
    said = await speak(["Once", " upon", " a time"])
    await perdure.sleep(5)
    await status.write({"phase": "done", "words": said})
    await status.close()
    return said


@dataclass(frozen=True)
class Scenario:
    """One golden history: the workflow, its arguments, and what is done to the run."""

    name: str
    """The golden file's name (``{name}.json``); never reused for another recording."""
    workflow: Any
    args: tuple[Any, ...]
    drive: Callable[[Engine, Run[Any]], Awaitable[None]] | None = None
    """What happens to the run from outside while it runs (hooks resumed, a cancel)."""
    engine_options: dict[str, Any] = field(default_factory=dict)
    autojump: bool = True
    """Whether the fake clock jumps to the next timer when the worker is idle."""
    setup: Callable[[], None] | None = None
    """Called before the run starts (a bug to deploy, that `drive` then fixes)."""


SCENARIOS: dict[str, Scenario] = {
    s.name: s
    for s in [
        Scenario("steps_with_retries", steps_with_retries, ("invoice-7",)),
        Scenario("gather", gather, ([3, 4, 5],)),
        Scenario("sleep", sleeper, (5,)),
        Scenario("hook_many_events", reviewed, ("doc-1",), drive=_send_reviews),
        Scenario("webhook", webhook_flow, ("T-42",), drive=_call_webhook),
        Scenario("cancelled", cancelled, (3,), drive=_cancel_while_sleeping, autojump=False),
        Scenario(
            "queue_steps",
            queued,
            (["a cat", "two small dogs"],),
            engine_options={"queues": ("golden-gpu",)},
        ),
        Scenario("failed_run", failed_run, (250,)),
        Scenario("caught_step_failure", caught_failure, (500,)),
        Scenario("race_step_sleep", race, (6,)),
        Scenario("typed_values", typed, ("INV-2030-001",)),
        Scenario(
            "hook_schema", reviewed_with_schema, ("doc-2",), drive=_send_undecodable_then_done
        ),
        Scenario("patched", patched_flow, (3,)),
        Scenario(
            "blocked_then_fixed",
            blocked_then_fixed,
            (3,),
            drive=_fix_and_unblock,
            setup=lambda: _BUGGY.append(True),
        ),
        Scenario("children", children_flow, (3,), drive=_cancel_while_hanging),
        Scenario("attributes", attributes_flow, ("acme",)),
        Scenario("streams", streams_flow, ("cats",)),
    ]
}
"""Every golden history, by the name of its file."""
