"""perdure.ai: pydantic-ai agents whose model requests and tool calls are perdure steps.

The agents here use pydantic-ai's FunctionModel (no network): its function decides each
response from the messages so far, and counts its calls, as the tools count theirs.
"""

from __future__ import annotations

import json
import sys
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from pydantic import TypeAdapter
from pydantic_ai import Agent
from pydantic_ai.capabilities import HandleDeferredToolCalls
from pydantic_ai.exceptions import ModelHTTPError
from pydantic_ai.messages import (
    ModelMessage,
    ModelRequest,
    ModelResponse,
    TextPart,
    ToolCallPart,
    ToolReturnPart,
)
from pydantic_ai.models.function import AgentInfo, FunctionModel
from pydantic_ai.tools import DeferredToolResults

from helpers import of_type, wait_until
from perdure import Engine, EventType, WorkflowFailed, workflow
from perdure._check import export_json
from perdure._serde import decode
from perdure.ai import (
    PerdureAgent,
    PerdureDurability,
    await_approval,
    fail_external_event,
    pending_waits,
    resolve_external_event,
)
from perdure.testing import check_replay

RESPONSE = TypeAdapter(ModelResponse)

effects: Counter[str] = Counter()
"""What ran, how often: model requests by kind, and tool calls."""

failures: Counter[str] = Counter()
"""How many more times a model request of each kind fails before it answers."""


@pytest.fixture(autouse=True)
def _fresh() -> None:
    effects.clear()
    failures.clear()


def tool_results(messages: list[ModelMessage]) -> list[ToolReturnPart]:
    return [
        part
        for message in messages
        if isinstance(message, ModelRequest)
        for part in message.parts
        if isinstance(part, ToolReturnPart)
    ]


def writer(messages: list[ModelMessage], info: AgentInfo) -> ModelResponse:
    """Looks the topic up, asks to publish a draft, then reports what happened."""
    done = tool_results(messages)
    kind = ["lookup", "publish", "report"][min(len(done), 2)]
    effects[f"model:{kind}"] += 1
    if failures[kind] > 0:
        failures[kind] -= 1
        raise ModelHTTPError(503, "writer", body="overloaded")
    if kind == "lookup":
        return ModelResponse(parts=[ToolCallPart("lookup", {"topic": "cats"}, tool_call_id="c1")])
    if kind == "publish":
        return ModelResponse(
            parts=[ToolCallPart("publish", {"draft": "Cats nap."}, tool_call_id="c2")]
        )
    return ModelResponse(parts=[TextPart(f"done: {done[-1].content}")])


agent = Agent(FunctionModel(writer), name="writer")


@agent.tool_plain
def lookup(topic: str) -> str:
    """Facts about the topic."""
    effects["lookup"] += 1
    return f"{topic} sleep a lot"


@agent.tool_plain
def publish(draft: str) -> str:
    """Publishes the draft."""
    effects["publish"] += 1
    return f"published {draft!r}"


durable = PerdureAgent(agent)


@workflow(name="ai-writer")
async def write(topic: str) -> str:
    result = await durable.run(f"Write about {topic}")
    output: str = result.output
    return output


async def test_each_model_request_and_tool_call_is_a_named_step(engine: Engine) -> None:
    """A run of the agent logs one step per model request (named after the model) and
    per tool call (named after the tool), with readable inputs and outputs."""
    run = await engine.start(write, "cats")

    assert "done: published 'Cats nap.'" == await run.result(timeout=20)

    events = await run.events()
    completed = of_type(events, EventType.STEP_COMPLETED)
    model = f"writer.model:{agent.model.model_name}"  # type: ignore[union-attr]
    assert [
        f"{model}#1",
        "writer.tool:lookup#1",
        f"{model}#2",
        "writer.tool:publish#1",
        f"{model}#3",
    ] == [e.correlation_id for e in completed]
    started = {e.correlation_id: e.data["input"] for e in of_type(events, EventType.STEP_STARTED)}
    assert {"call": {"tool": "lookup", "args": {"topic": "cats"}}} == started[
        "writer.tool:lookup#1"
    ]
    assert "Write about cats" in str(started[f"{model}#1"])
    assert Counter({"model:lookup": 1, "model:publish": 1, "model:report": 1}) == +Counter(
        {k: v for k, v in effects.items() if k.startswith("model")}
    )
    assert 1 == effects["lookup"] == effects["publish"]


async def test_a_transient_model_error_is_retried_as_a_step(engine: Engine) -> None:
    """A model request that fails (a 503) is attempted again by perdure; the tool calls
    before it are not repeated."""
    failures["publish"] = 2
    run = await engine.start(write, "cats")

    assert "done: published 'Cats nap.'" == await run.result(timeout=20)

    events = await run.events()
    retried = of_type(events, EventType.STEP_RETRYING)
    assert 2 == len(retried)
    assert {f"writer.model:{agent.model.model_name}#2"} == {  # type: ignore[union-attr]
        e.correlation_id for e in retried
    }
    assert "ModelHTTPError" in str(retried[0].data["error"])
    assert 3 == effects["model:publish"]
    assert 1 == effects["lookup"] == effects["publish"]


async def test_outside_a_workflow_the_agent_runs_plainly() -> None:
    """PerdureAgent.run outside a workflow is agent.run: no step, no store."""
    result = await durable.run("Write about dogs")

    assert "done: published 'Cats nap.'" == result.output
    assert 1 == effects["lookup"] == effects["publish"]


capability_agent = Agent(
    FunctionModel(writer), name="built-in", capabilities=[PerdureDurability(tool_step={})]
)
capability_agent.tool_plain(lookup)
capability_agent.tool_plain(publish)


@workflow(name="ai-capability-writer")
async def write_with_capability(topic: str) -> str:
    result = await capability_agent.run(f"Write about {topic}")
    output: str = result.output
    return output


async def test_the_capability_form_makes_agent_run_durable(engine: Engine) -> None:
    """An agent built with PerdureDurability runs durably by plain agent.run in a workflow."""
    run = await engine.start(write_with_capability, "cats")

    assert "done: published 'Cats nap.'" == await run.result(timeout=20)
    names = {e.data["name"] for e in of_type(await run.events(), EventType.STEP_COMPLETED)}
    assert {"built-in.tool:lookup", "built-in.tool:publish"} < names


def test_an_agent_without_a_name_is_refused() -> None:
    """The name prefixes the steps' names, so PerdureAgent needs one."""
    with pytest.raises(ValueError, match="named agent"):
        PerdureAgent(Agent(FunctionModel(writer)))


# -- approvals ----------------------------------------------------------------------

approving = Agent(
    FunctionModel(writer), name="approving", capabilities=[HandleDeferredToolCalls(await_approval)]
)
approving.tool_plain(lookup)
approving.tool_plain(requires_approval=True)(publish)
durable_approving = PerdureAgent(approving)


@workflow(name="ai-approved-writer")
async def write_approved(topic: str) -> str:
    result = await durable_approving.run(f"Write about {topic}")
    output: str = result.output
    return output


async def pending(engine: Engine, run_id: str) -> Any:
    run = await engine.get_run(run_id)

    async def waits() -> Any:
        return await pending_waits(run)

    return (await wait_until(engine, waits))[0]


async def test_an_approved_tool_call_waits_on_a_hook_and_runs_once(
    make_engine: Any,
) -> None:
    """The tool that needs approval waits on a perdure hook; once approved it runs once,
    although the run is then replayed by another worker and the model request after
    it fails once."""
    async with make_engine() as first:
        run = await first.start(write_approved, "cats")
        wait = await pending(first, run.id)
    assert ["publish"] == [call.tool_name for call in wait.requests.approvals]
    assert 0 == effects["publish"]

    failures["report"] = 1
    async with make_engine() as second:
        # This worker replays the run from its log: lookup and the first two model
        # requests come from the log, and the hook is still live.
        await resolve_external_event(
            wait.token, DeferredToolResults(approvals={"c2": True}), engine=second
        )
        result = await (await second.get_run(run.id)).result(timeout=20)

    assert "done: published 'Cats nap.'" == result
    assert Counter({"lookup": 1, "publish": 1, "model:lookup": 1, "model:publish": 1}) == (
        effects - Counter({"model:report": effects["model:report"]})
    )
    assert 2 == effects["model:report"]


async def test_a_denied_tool_call_never_runs(engine: Engine) -> None:
    """A wait ended with a reason denies the call: the tool never runs, the model hears why."""
    run = await engine.start(write_approved, "cats")
    wait = await pending(engine, run.id)

    await fail_external_event(wait.token, "not today", engine=engine)

    assert "not today" in await run.result(timeout=20)
    assert 0 == effects["publish"]


# -- bad input ----------------------------------------------------------------------


def _opaque_model(messages: list[ModelMessage], info: AgentInfo) -> ModelResponse:
    return ModelResponse(parts=[ToolCallPart("lookup_opaque", {"topic": "cats"})])


opaque = Agent(FunctionModel(_opaque_model), name="opaque")


@opaque.tool_plain
def lookup_opaque(topic: str) -> object:
    """Returns what has no JSON form."""
    effects["lookup"] += 1
    return object()


@workflow(name="ai-opaque")
async def write_opaque() -> str:
    result = await PerdureAgent(opaque).run("x")
    output: str = result.output
    return output


async def test_a_result_without_a_json_form_fails_its_step_at_once(engine: Engine) -> None:
    """A tool result perdure cannot store fails the step without retries, saying so."""
    run = await engine.start(write_opaque)

    with pytest.raises(WorkflowFailed, match="JSON"):
        await run.result(timeout=20)
    assert 1 == effects["lookup"]


@pytest.mark.slow
def test_perdure_ai_without_pydantic_ai_names_the_extra() -> None:
    """Without pydantic-ai, importing perdure.ai says which extra installs it."""
    import subprocess  # noqa: PLC0415

    code = "import sys; sys.modules['pydantic_ai'] = None; import perdure.ai"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)

    assert 0 != done.returncode
    assert "perdure[ai]" in done.stderr


async def test_a_finished_agent_run_replays_from_its_log_alone(
    engine: Engine, tmp_path: Path
) -> None:
    """The log holds every model response as pydantic-ai's JSON form; replaying the run
    from it (as a worker does after a crash) asks no model and calls no tool."""
    run = await engine.start(write, "cats")
    await run.result(timeout=20)
    events = await run.events()
    model_step = of_type(events, EventType.STEP_COMPLETED)[0]
    stored = decode(model_step.data["output"], Any)
    assert "lookup" == RESPONSE.validate_python(stored).parts[0].tool_name  # type: ignore[union-attr]

    path = tmp_path / "run.json"
    path.write_text(json.dumps(export_json(await run.refresh(), events), default=str))
    effects.clear()

    check_replay(write, path)

    assert Counter() == effects


async def test_an_agent_built_with_the_capability_is_not_given_a_second(engine: Engine) -> None:
    """PerdureAgent of an agent that has PerdureDurability runs it as it is (an agent
    takes one durability), and refuses to stream through a second, saying how to."""
    wrapped = PerdureAgent(capability_agent)

    @workflow(name="ai-wrapped-capability")
    async def wrapped_run() -> str:
        result = await wrapped.run("Write about cats")
        output: str = result.output
        return output

    run = await engine.start(wrapped_run)

    assert "done: published 'Cats nap.'" == await run.result(timeout=20)
    with pytest.raises(ValueError, match=r"PerdureDurability\(stream=...\)"):
        await wrapped.run_stream("Write about cats")


async def test_a_model_error_that_outlasts_the_retries_fails_the_run(engine: Engine) -> None:
    """After the model step's last attempt fails, the run fails with the model's error."""
    failures["lookup"] = 10
    run = await engine.start(write, "cats")

    with pytest.raises(WorkflowFailed, match=r"ModelHTTPError.*503"):
        await run.result(timeout=20)
    assert 4 == effects["model:lookup"]  # the first attempt and max_retries=3
    assert 0 == effects["lookup"]
