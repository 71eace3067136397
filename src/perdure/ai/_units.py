"""pydantic-ai's durable operations as perdure steps: their names, inputs and errors.

pydantic-ai hands a durable backend each operation (a model request, a tool call, tool
discovery, an event for a handler) as an async callback, a name and the values the call
depends on (`CallableOperationBackend.execute`). Here each becomes one call of a step
made for it. Steps that run inline on the worker holding the run are found by the call,
not by a registry, so a step per call costs one `@step` wrapper and nothing stored: the
log knows it by its name and its per-name counter (``writer.model:gpt-5#2``), which
replay matches as it matches any step.

The callback's result is already JSON when it reaches the step (the engine spec's
`JSON_CODEC` dumps it with pydantic-ai's own TypeAdapters, `ModelResponse` among them),
so what the log holds is pydantic-ai's JSON form, read back with the same adapters: no
pickle, and a run stays readable by whatever reads perdure's log. The step's input is a
short description (the messages a request adds, a tool's name and arguments) made only
for the timeline: the callback carries the live values itself, which is possible
because an inline step runs in the process whose workflow code made it.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Awaitable, Callable
from typing import Any, Literal, TypedDict, assert_never

from pydantic_ai.durable_exec import (
    CallableOperationBackend,
    CapabilityOperationId,
    DurableOperationId,
    EventStreamHandlerId,
    JournalOperationNamer,
    ModelCancelSuspendedResponseId,
    ModelCompactMessagesId,
    ModelCountTokensId,
    ModelRequestId,
    RoleBasedOperationConfig,
    ToolsetCallToolId,
    ToolsetGetInstructionsId,
    ToolsetGetToolsId,
    ToolsetValidateToolArgumentsId,
    model_error_retry_after,
)
from pydantic_ai.exceptions import UserError
from pydantic_ai.messages import ModelMessagesTypeAdapter, ModelRequest, ModelResponse
from pydantic_core import to_jsonable_python

from perdure._errors import FatalError, RetryableError
from perdure._replay import Duration, RetryPolicy
from perdure._workflow import _in_workflow, step, step_context

__all__ = ["PerdureNamer", "PerdureOperationBackend", "StepOptions", "in_workflow", "run_as_step"]

MAX_RETRY_AFTER = 300.0
"""The longest wait (seconds) a provider's Retry-After may ask of a model step's retry."""


class StepOptions(TypedDict, total=False):
    """The options of the steps an agent's calls become: those of ``@step``."""

    max_retries: int
    timeout: Duration
    retry: RetryPolicy


def in_workflow() -> bool:
    """Whether the caller is workflow code (not a step, not outside a run)."""
    return _in_workflow() is not None


def in_step() -> bool:
    """Whether the caller runs inside a step attempt of some run."""
    return step_context.get() is not None


def _clean(text: str) -> str:
    # '#' separates a step's name from its counter in correlation ids.
    return text.replace("#", "_")


class PerdureNamer(JournalOperationNamer):
    """Step names: the agent, what the call is, and the model or the tool it is for.

    They are stored in the log and matched on replay, so they must not change for
    runs in flight: ``writer.model:gpt-5``, ``writer.tool:publish``.
    """

    def __init__(self, agent_name: str) -> None:
        super().__init__(agent_name)
        self._agent = agent_name

    def operation_name(self, operation_id: DurableOperationId) -> str:  # noqa: PLR0911 (one per kind)
        """The name of the step, without a per-call label."""
        agent = self._agent
        match operation_id:
            case ModelRequestId(model_name=model, streaming=streaming):
                return f"{agent}.{'model.stream' if streaming else 'model'}:{model}"
            case ModelCountTokensId(model_name=model):
                return f"{agent}.model.count_tokens:{model}"
            case ModelCompactMessagesId(model_name=model):
                return f"{agent}.model.compact:{model}"
            case ModelCancelSuspendedResponseId(model_name=model):
                return f"{agent}.model.cancel:{model}"
            case EventStreamHandlerId():
                return f"{agent}.event"
            case CapabilityOperationId(capability_id=capability, operation=operation):
                return f"{agent}.capability:{capability}.{operation}"
            case ToolsetGetToolsId(toolset_id=toolset):
                return f"{agent}.tools:{toolset}"
            case ToolsetGetInstructionsId(toolset_id=toolset):
                return f"{agent}.instructions:{toolset}"
            case ToolsetValidateToolArgumentsId(toolset_id=toolset):
                return f"{agent}.validate:{toolset}"
            case ToolsetCallToolId(toolset_id=toolset):
                return f"{agent}.tool:{toolset}"
        assert_never(operation_id)

    def invocation_name(self, operation_id: DurableOperationId, *, label: str | None) -> Any:
        """The step's name for one call: a tool call is named after its tool."""
        name = self.operation_name(operation_id)
        if label is not None and isinstance(
            operation_id, ToolsetCallToolId | ToolsetValidateToolArgumentsId
        ):
            kind = "tool" if isinstance(operation_id, ToolsetCallToolId) else "validate"
            name = f"{self._agent}.{kind}:{label}"
        # pydantic-ai's own value type, made by its namer and renamed: the type itself
        # is not among its public names.
        made = super().invocation_name(operation_id, label=label)
        return dataclasses.replace(made, operation_name=_clean(name), display_name=None)


def describe(operation_id: DurableOperationId, values: tuple[object, ...]) -> dict[str, Any]:
    """What the timeline shows as a step's input: enough to read, not a replay key."""
    if isinstance(operation_id, ModelRequestId | ModelCountTokensId):
        messages = next((item for item in values if _is_messages(item)), [])
        assert isinstance(messages, list)  # noqa: S101 (_is_messages)
        start = max(
            (i + 1 for i, m in enumerate(messages) if isinstance(m, ModelResponse)), default=0
        )
        return {
            "history": start,
            "messages": ModelMessagesTypeAdapter.dump_python(messages[start:], mode="json"),
        }
    if isinstance(operation_id, ToolsetCallToolId | ToolsetValidateToolArgumentsId):
        name = next((item for item in values if isinstance(item, str)), None)
        args = next((item for item in values if isinstance(item, dict)), {})
        return {"tool": name, "args": to_jsonable_python(args, fallback=repr)}
    if isinstance(operation_id, EventStreamHandlerId) and values:
        return {"event": getattr(values[0], "event_kind", type(values[0]).__name__)}
    return {}


def _is_messages(item: object) -> bool:
    return isinstance(item, list) and all(isinstance(m, ModelRequest | ModelResponse) for m in item)


async def run_as_step(
    name: str, options: StepOptions, body: Callable[[], Awaitable[Any]], call: Any
) -> Any:
    """Run ``body`` as one call of a step named ``name``; ``call`` is its shown input.

    A pydantic-ai `UserError` (a mistake in the agent's set-up) fails the step at once,
    and a model error that says when to try again (a 429's Retry-After) sets the delay
    of the next attempt; any other error is retried with the step's backoff.
    """

    async def unit(call: Any) -> Any:  # noqa: ARG001 (the input is for the timeline)
        try:
            return await body()
        except (FatalError, RetryableError):
            raise
        except UserError as error:
            raise FatalError(f"{type(error).__name__}: {error}") from error
        except Exception as error:
            wait = model_error_retry_after(error, maximum=MAX_RETRY_AFTER)
            if wait is None:
                raise
            raise RetryableError(f"{type(error).__name__}: {error}", retry_after=wait) from error

    unit.__qualname__ = unit.__name__ = name
    return await step(name=_clean(name), **options)(unit)(call)


Role = Literal["model", "event", "capability", "tool"]


class PerdureOperationBackend(CallableOperationBackend[StepOptions]):
    """pydantic-ai's durable operations, run as perdure steps in workflow code."""

    def __init__(self, *, agent_name: str, options: dict[Role, StepOptions]) -> None:
        super().__init__(
            namer=PerdureNamer(agent_name),
            config=RoleBasedOperationConfig(
                model=options.get("model", {}),
                event=options.get("event", {}),
                capability=options.get("capability", {}),
                tool=options.get("tool", {}),
            ),
        )

    def execution_attempt(self) -> int:
        """The attempt of the step running now (1 for the first), for stream events."""
        current = step_context.get()
        return 1 if current is None else current[0].attempt

    async def execute(
        self,
        *,
        operation_id: DurableOperationId,
        name: str,
        body: Callable[[], Awaitable[object]],
        cache_key: tuple[object, ...],
        config: StepOptions,
    ) -> object:
        """Run ``body`` as a step, or as a plain call outside workflow code."""
        if not in_workflow():
            return await body()
        return await run_as_step(name, config or {}, body, describe(operation_id, cache_key))
