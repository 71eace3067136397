"""`PerdureAgent`: an existing pydantic-ai agent, run durably inside perdure workflows.

It adds `PerdureDurability` to each run (pydantic-ai's per-run ``capabilities=``), so
the agent itself is left as it is and still runs plainly outside workflows. A run that
streams gets a capability of its own that writes the model's text to the stream named.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Generic

from pydantic_ai.agent import AbstractAgent, EventStreamHandler
from pydantic_ai.models import Model
from pydantic_ai.run import AgentRunResult
from pydantic_ai.tools import AgentDepsT

from perdure.ai._durability import PerdureDurability
from perdure.ai._units import StepOptions

__all__ = ["PerdureAgent"]


class PerdureAgent(Generic[AgentDepsT]):
    """Runs ``agent`` with each model request and tool call as a perdure step.

    Inside a ``@workflow``::

        durable = PerdureAgent(agent)
        result = await durable.run("Summarize this", deps=deps)         # or
        result = await durable.run_stream("Draft a post", stream="draft")

    A crash resumes the agent after its last recorded call: recorded model responses
    and tool results are returned from the log, not asked again. Outside a workflow
    both methods run the agent plainly.

    Args:
        agent: the pydantic-ai agent; it needs a ``name`` (or pass ``name=``).
        name: the prefix of the steps' names (stored in the log: keep it stable).
        models: other models a run may switch to, by id.
        event_stream_handler: a handler of the agent's events, called inside steps.
        model_step: options of the model request steps (``max_retries``, ``timeout``,
            ``retry``).
        tool_step: options of the tool steps.
        event_step: options of the steps that hand tool events to the handler.
    """

    def __init__(
        self,
        agent: AbstractAgent[AgentDepsT, Any],
        *,
        name: str | None = None,
        models: Mapping[str, Model] | None = None,
        event_stream_handler: EventStreamHandler[AgentDepsT] | None = None,
        model_step: StepOptions | None = None,
        tool_step: StepOptions | None = None,
        event_step: StepOptions | None = None,
    ) -> None:
        self.agent = agent
        self.name = name or agent.name
        if not self.name:
            raise ValueError(
                "PerdureAgent needs a named agent (Agent(..., name=...)) or name=...: "
                "the name prefixes its steps' names, which the log stores"
            )
        self._options: dict[str, Any] = {
            "name": self.name,
            "models": models,
            "event_stream_handler": event_stream_handler,
            "model_step": model_step,
            "tool_step": tool_step,
            "event_step": event_step,
        }
        self._built_in = PerdureDurability.from_agent(agent) is not None
        """Whether the agent was built with the capability: it is then not added again."""
        self.durability: PerdureDurability[AgentDepsT] = PerdureDurability(**self._options)
        self._streaming: dict[str, PerdureDurability[AgentDepsT]] = {}

    def __repr__(self) -> str:
        return f"<PerdureAgent {self.name!r}>"

    async def run(self, user_prompt: Any = None, **options: Any) -> AgentRunResult[Any]:
        """``agent.run(user_prompt, **options)``, durably in a workflow.

        Takes what `Agent.run` takes (``deps``, ``message_history``, ``output_type``,
        ``deferred_tool_results``, ...), but toolsets only at the agent's construction.
        """
        if self._built_in:
            return await self.agent.run(user_prompt, **options)
        return await self._run(self.durability, user_prompt, options)

    async def run_stream(
        self, user_prompt: Any = None, *, stream: str = "default", **options: Any
    ) -> AgentRunResult[Any]:
        """Like `run`, writing the model's text to the perdure stream ``stream`` as it comes.

        Readers follow it live with ``run.stream(stream)`` (or over HTTP as Server-Sent
        Events) in any process. Each model request is still recorded once; the result
        is returned when the agent run ends, as `run` returns it.
        """
        if self._built_in:
            raise ValueError(
                f"agent {self.name!r} was built with PerdureDurability, and an agent takes "
                "one: build it with PerdureDurability(stream=...) and call agent.run, or "
                "wrap an agent built without it"
            )
        durability = self._streaming.get(stream)
        if durability is None:
            durability = PerdureDurability(stream=stream, **self._options)
            self._streaming[stream] = durability
        return await self._run(durability, user_prompt, options)

    async def _run(
        self,
        durability: PerdureDurability[AgentDepsT],
        user_prompt: Any,
        options: dict[str, Any],
    ) -> AgentRunResult[Any]:
        extra: Sequence[Any] = options.pop("capabilities", None) or ()
        return await self.agent.run(user_prompt, capabilities=[*extra, durability], **options)
