"""perdure.ai streaming: the model's text reaches a perdure stream while the run is live.

The model is pydantic-ai's FunctionModel with a stream function that yields a few words
and then waits on an event the test sets, so the test reads the first words while the
model request (its step) is still in flight.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import AsyncIterator
from typing import Any

import pytest
from pydantic_ai import Agent
from pydantic_ai.exceptions import ModelHTTPError
from pydantic_ai.messages import ModelMessage
from pydantic_ai.models.function import AgentInfo, FunctionModel

from helpers import of_type
from perdure import Engine, EventType, RunStatus, StreamItem, workflow
from perdure.ai import PerdureAgent

state: dict[str, Any] = {}
effects: Counter[str] = Counter()


@pytest.fixture(autouse=True)
def _fresh() -> None:
    effects.clear()
    state["release"] = asyncio.Event()
    state["fail"] = 0


async def words(messages: list[ModelMessage], info: AgentInfo) -> AsyncIterator[str]:
    effects["request"] += 1
    yield "Cats "
    yield "nap "
    if state["fail"] > 0:
        state["fail"] -= 1
        raise ModelHTTPError(503, "words", body="overloaded")
    await state["release"].wait()
    yield "a lot."


agent = Agent(FunctionModel(stream_function=words), name="drafter")
durable = PerdureAgent(agent)


@workflow(name="ai-drafter")
async def draft(topic: str) -> str:
    result = await durable.run_stream(f"Draft about {topic}", stream="draft")
    output: str = result.output
    return output


async def test_text_deltas_reach_a_reader_while_the_request_is_in_flight(engine: Engine) -> None:
    """A reader of the run's stream receives the model's first words before the model
    request's step has completed, then the rest; the request is recorded once."""
    run = await engine.start(draft, "cats")
    reader = run.stream("draft")

    first = [await anext(reader), await anext(reader)]
    assert [StreamItem(0, "Cats "), StreamItem(1, "nap ")] == first
    assert RunStatus.RUNNING == await run.status()
    assert [] == of_type(await run.events(), EventType.STEP_COMPLETED)

    state["release"].set()
    rest = [item async for item in reader]

    assert [StreamItem(2, "a lot.")] == rest
    assert "Cats nap a lot." == await run.result(timeout=20)
    completed = of_type(await run.events(), EventType.STEP_COMPLETED)
    assert [f"drafter.model.stream:{agent.model.model_name}#1"] == [  # type: ignore[union-attr]
        e.correlation_id for e in completed
    ]
    assert 1 == effects["request"]


async def test_a_retried_request_streams_its_text_once_to_committed_readers(
    engine: Engine,
) -> None:
    """A streamed request that fails midway is retried; the failed attempt's words are
    retracted, so a committed reader sees the answer's text once."""
    state["fail"] = 1
    state["release"].set()
    run = await engine.start(draft, "cats")

    assert "Cats nap a lot." == await run.result(timeout=20)

    committed = [
        item.value
        async for item in run.stream("draft", committed=True)
        if isinstance(item, StreamItem)
    ]
    assert ["Cats ", "nap ", "a lot."] == committed
    assert 2 == effects["request"]
    assert 1 == len(of_type(await run.events(), EventType.STEP_RETRYING))
