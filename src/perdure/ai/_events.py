"""Waits for the outside world inside an agent run (approvals, answers) as perdure hooks.

pydantic-ai lets a run wait for an external event: a tool that needs approval, with a
`HandleDeferredToolCalls` handler that takes a resume token, waits until someone
resolves the token with the answer (`wait_for_external_event`). A durable engine makes
that wait durable by installing an `ExternalEventWaiter`; perdure's is a hook:

1. the token is made from the run's deterministic uuid4, so a replay makes the same;
2. the handler (``ask``) runs once, in a step named ``<agent>.ask:<wait>``, which
   records its answer (a replay does not ask again);
3. unless it answered, the run waits on the hook ``pydantic-ai.external-event`` under
   that token, holding no worker (it may be evicted, and survives restarts), until
   `resolve_external_event` (or ``perdure resume-hook``, or the HTTP API) sends the
   answer from any process sharing the store.

Once the answer is in the log, the approved tool call runs as its own step, so it runs
once: a replay returns its recorded result, and a retry of another step reruns nothing
before it. `await_approval` is a handler that only waits, and records what it waits
for so that `pending_waits` can list it for whoever decides.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from contextvars import ContextVar
from dataclasses import dataclass
from datetime import timedelta
from typing import TYPE_CHECKING, Any

import pydantic
from pydantic import JsonValue
from pydantic_ai.durable_exec import ExternalEventError, ExternalEventWaiter
from pydantic_ai.tools import DeferredToolRequests, DeferredToolResults, RunContext
from pydantic_core import PydanticSerializationError, to_jsonable_python

from perdure._hooks import define_hook
from perdure._workflow import uuid4
from perdure.ai._units import StepOptions, run_as_step

if TYPE_CHECKING:
    from perdure._current import CurrentEngine
    from perdure._engine import Run
    from perdure._records import HookRecord

__all__ = [
    "EXTERNAL_EVENT_HOOK",
    "ExternalEventResolution",
    "HookWaiter",
    "PendingWait",
    "await_approval",
    "fail_external_event",
    "pending_waits",
    "resolve_external_event",
]

WAITING = "perdure.waiting"
"""The key of what a wait's step records when it must wait: "no answer yet; the question"."""

_questions: ContextVar[list[JsonValue] | None] = ContextVar("perdure_ai_questions", default=None)
"""Where `await_approval` leaves what it waits for, for the wait's step to record."""


class ExternalEventResolution(pydantic.BaseModel):
    """The payload of the hook a wait holds: the answer, or why there is none.

    Resuming the hook by hand (``perdure resume-hook TOKEN '{"payload": ...}'``) sends
    this shape; `resolve_external_event` and `fail_external_event` build it for you.
    """

    model_config = pydantic.ConfigDict(extra="forbid")

    payload: JsonValue = None
    error: str | None = None


EXTERNAL_EVENT_HOOK = define_hook(ExternalEventResolution, name="pydantic-ai.external-event")
"""The hook every wait of an agent run holds, under the wait's own token."""


class HookWaiter(ExternalEventWaiter):
    """pydantic-ai's external-event wait, on a perdure hook (installed per agent run)."""

    def __init__(self, agent_name: str, options: StepOptions) -> None:
        self._agent = agent_name
        self._options = options

    async def wait(
        self,
        name: str,
        *,
        ask: Callable[[str], Awaitable[JsonValue]],
        timeout: timedelta | None,
    ) -> JsonValue:
        """Ask once (a step), then wait on the hook unless the answer came at once."""
        token = f"{self._agent}.{name}-{uuid4().hex}"

        async def asking() -> JsonValue:
            questions: list[JsonValue] = []
            reset = _questions.set(questions)
            try:
                answer = await ask(token)
            finally:
                _questions.reset(reset)
            if answer is None and questions:
                # Recorded with the step, for `pending_waits` to read.
                return {WAITING: {"token": token, "requests": questions[-1]}}
            return answer

        answer: JsonValue = await run_as_step(
            f"{self._agent}.ask:{name}", self._options, asking, {"token": token, "wait": name}
        )
        if answer is not None and not _is_waiting(answer):
            return answer
        stream = EXTERNAL_EVENT_HOOK.create(token=token)
        try:
            seconds = None if timeout is None else timeout.total_seconds()
            resolution = await asyncio.wait_for(stream.next(), seconds)
        except TimeoutError:
            raise ExternalEventError(f"No resolution arrived within {timeout}.") from None
        finally:
            stream.dispose()
        if resolution.error is not None:
            raise ExternalEventError(resolution.error)
        return resolution.payload


_REQUESTS = pydantic.TypeAdapter(DeferredToolRequests)


def _is_waiting(answer: object) -> bool:
    return isinstance(answer, dict) and WAITING in answer


async def await_approval(
    ctx: RunContext[Any],  # noqa: ARG001 (pydantic-ai's handler signature)
    requests: DeferredToolRequests,
    token: str,  # noqa: ARG001
) -> DeferredToolResults | None:
    """A `HandleDeferredToolCalls` handler that waits for a person to decide.

    Use it as ``HandleDeferredToolCalls(await_approval)``: the run waits on a perdure
    hook until `resolve_external_event` sends the `DeferredToolResults` (or
    `fail_external_event` a reason to deny). The calls it waits for (each one's id,
    tool and arguments) are recorded with the wait's step, so that `pending_waits`
    lists them with the token.
    """
    questions = _questions.get()
    if questions is not None:
        questions.append(to_jsonable_python(requests, fallback=repr))
    return None


@dataclass(frozen=True, slots=True)
class PendingWait:
    """A wait of an agent run that no answer has ended yet (see `pending_waits`).

    Attributes:
        token: what `resolve_external_event` takes.
        requests: the calls waiting for approval (or external results), when the wait
            was made by `await_approval`; else None.
    """

    token: str
    requests: DeferredToolRequests | None


async def pending_waits(run: Run[Any]) -> list[PendingWait]:
    """The waits of ``run`` that are still open, oldest first, with what each asks.

    Read from the run's log: the hooks of `EXTERNAL_EVENT_HOOK` it created and has not
    received a payload for, and what the `await_approval` step of each recorded.
    """
    from perdure import _log  # noqa: PLC0415 (the log's parsers, for this reader only)
    from perdure._serde import decode  # noqa: PLC0415

    questions: dict[str, DeferredToolRequests] = {}
    open_tokens: dict[str, str] = {}
    for event in await run.events():
        entry = _log.parse(event)
        if isinstance(entry, _log.StepCompleted) and ".ask:" in entry.name:
            output = decode(entry.output, Any, where=f"output of step {entry.name}")
            if _is_waiting(output):
                waiting = output[WAITING]
                questions[waiting["token"]] = _REQUESTS.validate_python(waiting["requests"])
        elif isinstance(entry, _log.HookCreated) and entry.name == EXTERNAL_EVENT_HOOK.name:
            open_tokens[entry.correlation_id] = entry.token
        elif isinstance(entry, _log.HookReceived | _log.HookDisposed):
            open_tokens.pop(entry.correlation_id, None)
    return [PendingWait(token, questions.get(token)) for token in open_tokens.values()]


async def resolve_external_event(
    token: str,
    payload: DeferredToolResults | JsonValue,
    *,
    engine: CurrentEngine | None = None,
) -> HookRecord:
    """Answer the wait holding ``token``: for approvals, the `DeferredToolResults`.

    From any process sharing the store; the run wakes and goes on.

    Raises:
        HookNotFoundError: no live wait holds the token.
        TypeError: ``payload`` has no JSON form.
    """
    resolution = ExternalEventResolution(payload=_json(payload))
    return await EXTERNAL_EVENT_HOOK.resume(token, resolution, engine=engine)


async def fail_external_event(
    token: str, reason: str, *, engine: CurrentEngine | None = None
) -> HookRecord:
    """End the wait holding ``token`` without an answer: the run sees `reason`.

    For an approval, pydantic-ai denies the pending calls with ``reason`` as the
    message to the model.
    """
    return await EXTERNAL_EVENT_HOOK.resume(
        token, ExternalEventResolution(error=reason), engine=engine
    )


def _json(payload: object) -> JsonValue:
    try:
        value: JsonValue = to_jsonable_python(payload)
    except PydanticSerializationError as error:
        raise TypeError(f"the answer to an external event has no JSON form: {error}") from error
    return value
