"""OpenTelemetry spans: one per run life and per step attempt, all in the run's trace."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import StatusCode

from conftest import EngineFactory
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
