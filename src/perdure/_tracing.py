"""OpenTelemetry spans for runs and step attempts, when the ``otel`` extra is installed.

A run lives in many places: it is started by one process, executed by a worker,
perhaps replayed by another after a crash, and its hooks are resumed from anywhere.
All of its spans share one trace whose id is derived from the run id, so they join
up across processes without anything being stored; the span of the caller that
started the run (an HTTP request, say) *links* to that trace.

Spans:

- ``perdure.start_run`` (caller's trace, linked to the run's trace);
- ``perdure.run <workflow>``: one per life of the run in a worker process, ended when
  the run ends, is evicted, or is handed back; ``perdure.replayed`` says whether that
  life began with a replay;
- ``perdure.step <name>``: one per step attempt, a child of the run span, with the step
  id and attempt, the error recorded on failure; an attempt of a step routed to a queue
  runs on another worker, and its span is in the run's trace with the queue named;
- ``perdure.resume_hook`` (caller's trace, linked to the run's trace).

Without OpenTelemetry installed, every function here is a no-op.
"""

from __future__ import annotations

import contextlib
import hashlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Iterator

try:
    from opentelemetry import trace
    from opentelemetry.trace import (
        Link,
        NonRecordingSpan,
        SpanContext,
        SpanKind,
        Status,
        StatusCode,
        TraceFlags,
    )

    _ENABLED = True
except ImportError:  # pragma: no cover (the otel extra is installed in the test suite)
    _ENABLED = False

__all__ = [
    "RunSpan",
    "link_current_span_to_run",
    "resume_hook_span",
    "run_trace_id",
    "start_run_span",
    "step_task_span",
]

_TRACER_NAME = "perdure"


def run_trace_id(run_id: str) -> int:
    """The trace id every span of ``run_id`` belongs to (never zero)."""
    return int.from_bytes(hashlib.sha256(run_id.encode()).digest()[:16], "big") or 1


def _run_parent(run_id: str) -> Any:
    digest = hashlib.sha256(run_id.encode()).digest()
    span_id = int.from_bytes(digest[16:24], "big") or 1
    context = SpanContext(
        trace_id=run_trace_id(run_id),
        span_id=span_id,
        is_remote=True,
        trace_flags=TraceFlags(TraceFlags.SAMPLED),
    )
    return trace.set_span_in_context(NonRecordingSpan(context))


def _link(run_id: str) -> Any:
    return Link(trace.get_current_span(_run_parent(run_id)).get_span_context())


@contextlib.contextmanager
def start_run_span(run_id: str, workflow: str) -> Iterator[None]:
    """Around `Engine.start`: a span in the caller's trace, linked to the run's."""
    if not _ENABLED:
        yield
        return
    tracer = trace.get_tracer(_TRACER_NAME)
    attributes = {"perdure.run_id": run_id, "perdure.workflow": workflow}
    with tracer.start_as_current_span(
        "perdure.start_run", kind=SpanKind.PRODUCER, attributes=attributes, links=[_link(run_id)]
    ):
        yield


@contextlib.contextmanager
def resume_hook_span(token: str) -> Iterator[None]:
    """Around a hook resume: the run is only known once the store has answered."""
    if not _ENABLED:
        yield
        return
    tracer = trace.get_tracer(_TRACER_NAME)
    with tracer.start_as_current_span(
        "perdure.resume_hook", kind=SpanKind.PRODUCER, attributes={"perdure.hook_token": token}
    ):
        yield


def link_current_span_to_run(run_id: str) -> None:
    """Tag the current span with the run it reached (used after a resume)."""
    if not _ENABLED:
        return
    span = trace.get_current_span()
    span.set_attribute("perdure.run_id", run_id)
    span.add_link(_link(run_id).context)


@contextlib.contextmanager
def step_task_span(run_id: str, name: str, step_id: str, attempt: int, queue: str) -> Iterator[Any]:
    """A span around one attempt of a step a queue's worker runs, in the run's trace."""
    if not _ENABLED:
        yield None
        return
    tracer = trace.get_tracer(_TRACER_NAME)
    attributes: dict[str, str | int] = {
        "perdure.run_id": run_id,
        "perdure.step": name,
        "perdure.step_id": step_id,
        "perdure.attempt": attempt,
        "perdure.queue": queue,
    }
    with tracer.start_as_current_span(
        f"perdure.step {name}",
        context=_run_parent(run_id),
        kind=SpanKind.CONSUMER,
        attributes=attributes,
        record_exception=True,
        set_status_on_exception=True,
    ) as span:
        yield span


class RunSpan:
    """The span of one life of a run in this worker; a no-op without OpenTelemetry."""

    def __init__(self, run_id: str, workflow: str, *, replayed: bool) -> None:
        self._span: Any = None
        self._context: Any = None
        if not _ENABLED:
            return
        tracer = trace.get_tracer(_TRACER_NAME)
        self._span = tracer.start_span(
            f"perdure.run {workflow}",
            context=_run_parent(run_id),
            kind=SpanKind.CONSUMER,
            attributes={
                "perdure.run_id": run_id,
                "perdure.workflow": workflow,
                "perdure.replayed": replayed,
            },
        )
        self._context = trace.set_span_in_context(self._span)

    def end(self, *, outcome: str, error: dict[str, Any] | None = None) -> None:
        """End the span: ``outcome`` is completed, failed, cancelled, evicted or handed back."""
        if self._span is None:
            return
        self._span.set_attribute("perdure.outcome", outcome)
        if error is not None:
            self._span.set_status(
                Status(StatusCode.ERROR, f"{error.get('type')}: {error.get('message')}")
            )
        self._span.end()
        self._span = None

    @contextlib.contextmanager
    def step(self, name: str, step_id: str, attempt: int) -> Iterator[Any]:
        """A span around one step attempt, a child of this run's span."""
        if self._context is None or not _ENABLED:
            yield None
            return
        tracer = trace.get_tracer(_TRACER_NAME)
        attributes: dict[str, str | int] = {
            "perdure.step": name,
            "perdure.step_id": step_id,
            "perdure.attempt": attempt,
        }
        with tracer.start_as_current_span(
            f"perdure.step {name}",
            context=self._context,
            kind=SpanKind.INTERNAL,
            attributes=attributes,
            record_exception=True,
            set_status_on_exception=True,
        ) as span:
            yield span
