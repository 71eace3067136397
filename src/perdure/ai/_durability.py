"""`PerdureDurability`: the pydantic-ai capability that makes an agent's runs durable.

Built the way pydantic-ai asks a durable engine to be built (its
``durable_exec/AGENTS.md``): a `BaseDurabilityCapability` subclass that declares the
engine (`DurabilityEngineSpec`) and hands its operations to a callable backend
(`perdure.ai._units`). Everything else (which calls are durable units, how a model is
rebuilt inside a unit, toolset lifecycles, replaying tool results) is pydantic-ai's.

What the engine declares, and why:

- ``JSON_CODEC``: perdure stores JSON, so pydantic-ai reduces each result to its JSON
  form with its own TypeAdapters (a `ModelResponse` is stored as pydantic-ai writes it).
- function, MCP and dynamic toolsets are all wrapped: each tool call is a step. Each MCP
  step opens its own session with the server (``enter-outside-durable``, as on
  Temporal): steps run on the worker's event loop and workflow code on its own, so a
  session one step opened could not be closed by the workflow at the run's end. A
  stdio server is therefore started once per MCP step; prefer an HTTP server when
  the agent calls it often.
- toolsets added per run are refused inside a workflow: they were not wrapped when the
  capability was bound, so their calls would run in workflow code, unrecorded.

In workflow code, the clock, the run id, the run's start and its sleeps are perdure's
deterministic ones (`perdure.now`, `perdure.uuid4`, `perdure.sleep`), so a replay
makes the same decisions. Outside a workflow the capability changes nothing.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from pydantic_ai.agent import EventStreamHandler
from pydantic_ai.capabilities.abstract import WrapRunHandler
from pydantic_ai.durable_exec import (
    JSON_CODEC,
    BaseDurabilityCapability,
    DurabilityEngineSpec,
    DurableOperationBackend,
    conversation_id_from_run_id,
    external_event_scope,
)
from pydantic_ai.models import Model
from pydantic_ai.run import AgentRunResult
from pydantic_ai.tools import AgentDepsT, RunContext

from perdure._errors import FatalError
from perdure._workflow import now, sleep, uuid4
from perdure.ai._events import HookWaiter
from perdure.ai._stream import stream_text
from perdure.ai._units import PerdureOperationBackend, Role, StepOptions, in_step, in_workflow

__all__ = ["PerdureDurability"]


def _cannot_store(error: Exception) -> BaseException:
    # A value without a JSON form will not have one on the next attempt either.
    return FatalError(f"a result of the agent's call has no JSON form: {error}")


@dataclass(init=False, kw_only=True)
class PerdureDurability(BaseDurabilityCapability[AgentDepsT]):
    """Makes an agent durable in perdure workflows: each model request and tool call a step.

    Attach it when building the agent, then call ``agent.run`` inside a ``@workflow``::

        agent = Agent("openai:gpt-5", name="writer", capabilities=[PerdureDurability()])

    (`PerdureAgent` attaches it for you, per run.) The agent needs a ``name``, or pass
    ``name=``: it prefixes the steps' names, which are stored in the log and must stay
    stable for runs in flight.

    Args:
        name: the prefix of the steps' names; defaults to the agent's name.
        models: other models the run may switch to, by id (pydantic-ai rebuilds the
            model inside each step from its id).
        event_stream_handler: a handler of the agent's events; model events reach it
            live inside the model request's step, tool events each in a step.
        stream: the perdure stream (``perdure.get_writable(stream)``) that the text the
            model produces is written to, as it arrives; None writes none. A retried
            request's partial text is retracted by perdure's streams.
        model_step: options of the model request steps (``max_retries``, ``timeout``,
            ``retry``, as ``@step`` takes them).
        tool_step: options of the tool call and tool discovery steps.
        event_step: options of the steps that hand tool events to the handler.
    """

    engine_spec = DurabilityEngineSpec(
        engine_name="perdure",
        durable_unit_noun="step",
        durable_container_noun="workflow",
        codec=JSON_CODEC,
        serialization_failure=_cannot_store,
        wrapped_toolset_kinds=frozenset({"function", "mcp", "dynamic"}),
        toolset_lifecycles={
            "function": "enter-always",
            "mcp": "enter-outside-durable",
            "dynamic": "enter-never",
        },
        unsupported_runtime_toolset_kinds=frozenset({"function", "mcp", "dynamic"}),
        journal_discovery=True,
        sequential_tools_in_durable_context=False,
    )

    def __init__(
        self,
        *,
        name: str | None = None,
        models: Mapping[str, Model] | None = None,
        event_stream_handler: EventStreamHandler[AgentDepsT] | None = None,
        stream: str | None = None,
        model_step: StepOptions | None = None,
        tool_step: StepOptions | None = None,
        event_step: StepOptions | None = None,
    ) -> None:
        if stream is not None:
            event_stream_handler = stream_text(stream, event_stream_handler)
        super().__init__(models=models, event_stream_handler=event_stream_handler, name=name)
        self.stream = stream
        self._options: dict[Role, StepOptions] = {
            "model": dict(model_step or {}),  # type: ignore[dict-item]
            "tool": dict(tool_step or {}),  # type: ignore[dict-item]
            "event": dict(event_step or {}),  # type: ignore[dict-item]
            "capability": dict(tool_step or {}),  # type: ignore[dict-item]
        }

    # -- the engine ------------------------------------------------------------------

    @property
    def in_durable_context(self) -> bool:
        """Whether the caller is workflow code (steps and plain code are not)."""
        return in_workflow()

    @property
    def in_durable_unit(self) -> bool:
        """Whether the caller runs in a step: pydantic-ai's own, or a user's ``@step``."""
        return in_step() or super().in_durable_unit

    def get_durable_operation_backend(self) -> DurableOperationBackend[Any]:
        """The backend that runs each operation as a step."""
        return PerdureOperationBackend(agent_name=self.name, options=self._options)

    async def wrap_run(
        self, ctx: RunContext[AgentDepsT], *, handler: WrapRunHandler
    ) -> AgentRunResult[Any]:
        """In a workflow, waits for external events (approvals) are perdure hooks."""
        if not self.in_durable_context:
            return await super().wrap_run(ctx, handler=handler)
        with external_event_scope(HookWaiter(self.name, self._options["tool"])):
            return await super().wrap_run(ctx, handler=handler)

    async def durable_sleep(self, seconds: float) -> None:
        """A durable timer: the wait survives restarts and holds no worker."""
        await sleep(max(seconds, 0.0))

    # -- deterministic identity and time ---------------------------------------------

    def get_default_run_id(self) -> str | None:
        """In a workflow, an id from the run's seeded generator: a replay gets the same."""
        return str(uuid4()) if in_workflow() else None

    def get_default_conversation_id(self, run_id: str) -> str | None:
        """Derived from the run id, so as stable as it."""
        return conversation_id_from_run_id(run_id) if in_workflow() else None

    def get_run_clock(self) -> Callable[[], datetime] | None:
        """The workflow's clock (the time in its log), for the run's deadline."""
        return now if in_workflow() else None

    async def get_run_start_time(self, run_id: str) -> datetime | None:  # noqa: ARG002
        """The run's start on the workflow's clock, so ``timeout=`` counts from the first start."""
        return now() if in_workflow() else None
