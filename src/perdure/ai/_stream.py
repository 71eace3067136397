"""The text a model produces, written to a perdure stream while the request runs.

pydantic-ai hands a durable engine's event handler the model's events live, inside the
model request's durable unit (here, its step). The handler made here writes each piece
of text to ``perdure.get_writable(name)`` as it arrives, so a reader of
``run.stream(name)`` sees the tokens while the run is live. Each request is still
recorded once, as its step; if an attempt fails midway, perdure's streams retract the
chunks that attempt wrote (``committed=True`` readers never see them), and the next
attempt writes its own.
"""

from __future__ import annotations

from collections.abc import AsyncIterable, AsyncIterator
from typing import Any

from pydantic_ai.agent import EventStreamHandler
from pydantic_ai.messages import (
    AgentStreamEvent,
    PartDeltaEvent,
    PartStartEvent,
    TextPart,
    TextPartDelta,
)
from pydantic_ai.tools import RunContext

from perdure._streams import StreamWriter, get_writable

__all__ = ["stream_text", "text_of"]


def text_of(event: AgentStreamEvent) -> str | None:
    """The text an event adds to the model's answer, if any."""
    if isinstance(event, PartStartEvent) and isinstance(event.part, TextPart):
        return event.part.content or None
    if isinstance(event, PartDeltaEvent) and isinstance(event.delta, TextPartDelta):
        return event.delta.content_delta or None
    return None


def stream_text(name: str, inner: EventStreamHandler[Any] | None = None) -> EventStreamHandler[Any]:
    """An event handler writing the text of ``name``'s model events, then calling ``inner``."""

    async def handler(ctx: RunContext[Any], events: AsyncIterable[AgentStreamEvent]) -> None:
        writer: StreamWriter | None = None

        async def written() -> AsyncIterator[AgentStreamEvent]:
            nonlocal writer
            async for event in events:
                text = text_of(event)
                if text is not None:
                    if writer is None:
                        writer = get_writable(name)
                    await writer.write(text)
                yield event

        if inner is not None:
            await inner(ctx, written())
        else:
            async for _ in written():
                pass

    return handler
