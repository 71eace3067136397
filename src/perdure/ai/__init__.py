"""pydantic-ai agents on perdure (the ``ai`` extra: ``pip install 'perdure[ai]'``).

Inside a ``@workflow``, every model request and every tool call of an agent becomes a
perdure step: recorded once, retried as steps are, shown in the timeline with its input
and output, so a run that crashes resumes the agent after its last recorded call::

    from perdure.ai import PerdureAgent

    agent = Agent("openai:gpt-5", name="writer", tools=[publish])
    durable = PerdureAgent(agent)

    @workflow
    async def write(topic: str) -> str:
        result = await durable.run_stream(f"Write about {topic}", stream="draft")
        return result.output

``PerdureDurability`` is the same as a pydantic-ai capability, for agents built with it
(``Agent(..., capabilities=[PerdureDurability()])``). Both are built on pydantic-ai's
public durable-execution API (``pydantic_ai.durable_exec``), the one its Temporal, DBOS
and Prefect integrations use.
"""

from __future__ import annotations

try:
    import pydantic_ai as _pydantic_ai  # noqa: F401 (probe: a clear error without the extra)
except ImportError as _error:  # pragma: no cover (the dev extra installs it)
    raise ImportError(
        "perdure.ai needs pydantic-ai, which the 'ai' extra installs: pip install 'perdure[ai]'"
    ) from _error

from perdure.ai._agent import PerdureAgent
from perdure.ai._durability import PerdureDurability
from perdure.ai._events import (
    EXTERNAL_EVENT_HOOK,
    ExternalEventResolution,
    PendingWait,
    await_approval,
    fail_external_event,
    pending_waits,
    resolve_external_event,
)
from perdure.ai._units import StepOptions

__all__ = [
    "EXTERNAL_EVENT_HOOK",
    "ExternalEventResolution",
    "PendingWait",
    "PerdureAgent",
    "PerdureDurability",
    "StepOptions",
    "await_approval",
    "fail_external_event",
    "pending_waits",
    "resolve_external_event",
]
