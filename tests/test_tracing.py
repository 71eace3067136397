"""OpenTelemetry spans: one per run life and per step attempt, all in the run's trace."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import StatusCode

from conftest import EngineFactory
from helpers import run_fresh_python
from perdure import RetryPolicy, sleep, step, workflow
from perdure._tracing import run_trace_id

_exporter = InMemorySpanExporter()
_provider = TracerProvider()
_provider.add_span_processor(SimpleSpanProcessor(_exporter))
trace.set_tracer_provider(_provider)

attempts: dict[str, int] = {}


@step(name="traced-flaky", retry=RetryPolicy(max_retries=2, initial_delay=0.01))
async def flaky(key: str) -> str:
    attempts[key] = attempts.get(key, 0) + 1
    if attempts[key] == 1:
        raise ConnectionError("first attempt fails")
    return key.upper()


@step(name="traced-fatal", max_retries=0)
async def fatal(key: str) -> str:
    raise ValueError(f"bad {key}")


@workflow(name="traced")
async def traced(key: str) -> str:
    return await flaky(key)


@workflow(name="traced-failing")
async def traced_failing(key: str) -> str:
    return await fatal(key)


@workflow(name="traced-sleeper")
async def sleeper(key: str) -> str:
    await sleep("1h")
    return await flaky(key)


@pytest.fixture
def spans() -> Iterator[InMemorySpanExporter]:
    attempts.clear()
    _exporter.clear()
    yield _exporter
    _exporter.clear()


def named(spans: InMemorySpanExporter, prefix: str) -> list[ReadableSpan]:
    return [span for span in spans.get_finished_spans() if span.name.startswith(prefix)]


def attr(span: ReadableSpan, key: str) -> object:
    return (span.attributes or {}).get(key)


async def test_a_run_and_each_step_attempt_get_spans_in_the_runs_trace(
    make_engine: EngineFactory, spans: InMemorySpanExporter
) -> None:
    """Starting links to the run's trace; the run span and one span per step attempt
    (the failed one marked as an error) all carry the trace id derived from the run id."""
    async with make_engine() as engine:
        run = await engine.start(traced, "a", run_id="traced-1")
        assert "A" == await run.result(timeout=10)

    (start,) = named(spans, "perdure.start_run")
    (run_span,) = named(spans, "perdure.run traced")
    steps = named(spans, "perdure.step traced-flaky")
    trace_id = run_trace_id("traced-1")

    assert [trace_id] == [link.context.trace_id for link in start.links]
    assert trace_id == run_span.context.trace_id
    assert "completed" == attr(run_span, "perdure.outcome")
    assert [1, 2] == [attr(span, "perdure.attempt") for span in steps]
    assert {trace_id} == {span.context.trace_id for span in steps}
    assert {run_span.context.span_id} == {span.parent.span_id for span in steps if span.parent}
    assert [StatusCode.ERROR, StatusCode.UNSET] == [span.status.status_code for span in steps]
    assert "traced-1:traced-flaky#1" == attr(steps[0], "perdure.step_id")


@workflow(name="traced-parent")
async def traced_parent(key: str) -> str:
    return await traced(key)


async def test_a_child_runs_spans_join_its_parents_trace(
    make_engine: EngineFactory, spans: InMemorySpanExporter
) -> None:
    """A child run's span and its steps' spans are in its root's trace, not their own."""
    async with make_engine() as engine:
        run = await engine.start(traced_parent, "c", run_id="traced-parent-1")
        assert "C" == await run.result(timeout=10)
        (child,) = await engine.list_runs(parent_id=run.id)

    trace_id = run_trace_id("traced-parent-1")
    (parent_span,) = named(spans, "perdure.run traced-parent")
    (child_span,) = [s for s in named(spans, "perdure.run traced") if s.name.endswith(" traced")]
    steps = named(spans, "perdure.step traced-flaky")
    assert trace_id == parent_span.context.trace_id == child_span.context.trace_id
    assert run_trace_id(child.id) != trace_id
    assert attr(child_span, "perdure.run_id") == child.id
    assert {trace_id} == {span.context.trace_id for span in steps}


async def test_a_failed_run_marks_its_span_as_an_error(
    make_engine: EngineFactory, spans: InMemorySpanExporter
) -> None:
    """A run that fails ends its span with an error status naming the error."""
    async with make_engine() as engine:
        run = await engine.start(traced_failing, "b", run_id="traced-2")
        with pytest.raises(Exception, match="bad b"):
            await run.result(timeout=10)

    (run_span,) = named(spans, "perdure.run traced-failing")
    assert "failed" == attr(run_span, "perdure.outcome")
    assert StatusCode.ERROR == run_span.status.status_code
    assert "ValueError: bad b" in (run_span.status.description or "")


async def test_a_replayed_life_of_a_run_joins_the_same_trace(
    make_engine: EngineFactory, spans: InMemorySpanExporter
) -> None:
    """A run evicted while it sleeps and replayed when it wakes has one span per life,
    both in the run's trace, the second marked as replayed."""
    async with make_engine(evict_after="1s") as engine:
        run = await engine.start(sleeper, "c", run_id="traced-3")
        assert "C" == await run.result(timeout=10)
        assert 1 <= (engine.statistics() or pytest.fail("no worker")).replays

    lives = named(spans, "perdure.run traced-sleeper")
    assert [("released", False), ("completed", True)] == [
        (attr(span, "perdure.outcome"), attr(span, "perdure.replayed")) for span in lives
    ]
    assert {run_trace_id("traced-3")} == {span.context.trace_id for span in lives}


async def test_resuming_a_hook_links_to_the_runs_trace(
    make_engine: EngineFactory, spans: InMemorySpanExporter
) -> None:
    """A resume's span names the run it reached and links to the run's trace."""
    from seed_workflows import ai_approval, approval_hook  # noqa: PLC0415

    from helpers import wait_for_hook  # noqa: PLC0415

    async with make_engine() as engine:
        run = await engine.start(ai_approval, "otters", "traced-token", run_id="traced-4")
        await wait_for_hook(engine, "traced-token")
        await approval_hook.resume("traced-token", {"decision": "approved"})
        await run.result(timeout=10)

    (resume,) = named(spans, "perdure.resume_hook")
    assert "traced-4" == attr(resume, "perdure.run_id")
    assert [run_trace_id("traced-4")] == [link.context.trace_id for link in resume.links]


_TRACING_SET_UP_LATE = """
import asyncio, json
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
import perdure
from perdure.testing import FakeClock, memory_engine

@perdure.step(name="late-step")
async def work(n: int) -> int:
    return n

@perdure.workflow(name="late-quick")
async def quick() -> int:
    return await work(1)

@perdure.workflow(name="late-sleeper")
async def sleeper() -> int:
    await perdure.sleep("1h")
    return await work(2)

async def main() -> None:
    clock = FakeClock(autojump=False)
    async with memory_engine(clock=clock) as engine:
        await (await engine.start(quick, run_id="before")).result(timeout=10)
        asleep = await engine.start(sleeper, run_id="asleep")
        while not any(e.type.value == "sleep_started" for e in await asleep.events()):
            await engine.changed().wait()
        exporter = InMemorySpanExporter()
        provider = TracerProvider()
        provider.add_span_processor(SimpleSpanProcessor(exporter))
        trace.set_tracer_provider(provider)
        clock.advance("1h")
        await asleep.result(timeout=10)
        await (await engine.start(quick, run_id="after")).result(timeout=10)
    print(json.dumps([
        {
            "name": s.name,
            "trace_id": s.context.trace_id,
            "run_id": (s.attributes or {}).get("perdure.run_id"),
        }
        for s in exporter.get_finished_spans()
    ]))

asyncio.run(main())
"""


def test_tracing_set_up_while_an_engine_runs_is_honoured_from_then_on() -> None:
    """A tracer provider installed after the Engine started (in a fresh process, where
    none was) gets spans at once: the step of a run that was asleep, in its run's trace,
    and every span of a run started after; nothing from before it was installed."""
    spans = json.loads(run_fresh_python(_TRACING_SET_UP_LATE))
    after = run_trace_id("after")

    assert [{"name": "perdure.step late-step", "trace_id": run_trace_id("asleep")}] == [
        {"name": s["name"], "trace_id": s["trace_id"]}
        for s in spans
        if s["trace_id"] == run_trace_id("asleep")
    ]
    assert ["perdure.run late-quick", "perdure.step late-step"] == sorted(
        s["name"] for s in spans if s["trace_id"] == after
    )
    assert ["after"] == [s["run_id"] for s in spans if s["name"] == "perdure.start_run"]
    assert run_trace_id("before") not in {s["trace_id"] for s in spans}
