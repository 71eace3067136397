"""OpenTelemetry spans for runs and step attempts, when the ``otel`` extra is installed.

A run lives in many places: it is started by one process, executed by a worker,
perhaps replayed by another after a crash, and its hooks are resumed from anywhere.
All of its spans share one trace whose id is derived from the run id, so they join
up across processes without anything being stored; the span of the caller that
started the run (an HTTP request, say) *links* to that trace. A child run
(`perdure.start_child`) belongs to the trace of its root, the top of its tree of runs,
so a parent and all its children, to any depth, are one trace.

Spans:

- ``perdure.start_run`` (caller's trace, linked to the run's trace);
- ``perdure.run <workflow>``: one per life of the run in a worker process, ended when
  the run ends, is evicted, or is handed back; ``perdure.replayed`` says whether that
  life began with a replay;
- ``perdure.step <name>``: one per step attempt, a child of the run span, with the step
  id and attempt, the error recorded on failure; an attempt of a step routed to a queue
  runs on another worker, and its span is in the run's trace with the queue named;
- ``perdure.resume_hook`` (caller's trace, linked to the run's trace).

Without OpenTelemetry installed, or while no tracer provider is installed, every
function here is a no-op, and a cheap one: a step's span costs a couple of attribute
lookups and a run's span no object beyond three empty slots (a worker may hold a
hundred thousand runs). Whether a provider is installed is looked up at every span,
so tracing set up after an Engine started is honoured from the next span on.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Iterator

try:
    from opentelemetry import trace
    from opentelemetry.trace import (
        Link,
        NonRecordingSpan,
        NoOpTracerProvider,
        ProxyTracerProvider,
        SpanContext,
        SpanKind,
        Status,
        StatusCode,
        TraceFlags,
        Tracer,
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
_NO_SPAN: contextlib.nullcontext[None] = contextlib.nullcontext()
"""Every span while tracing is off: one reusable context manager, which yields None."""
_UNKNOWN = object()
"""What OpenTelemetry's global reads as should a release rename it."""
_UNSET = object()
"""What the cached tracer is for before the first span."""


class _TracerCache:
    """The tracer of perdure's spans, and the value of OpenTelemetry's global it is for."""

    __slots__ = ("made_for", "tracer")

    def __init__(self) -> None:
        self.made_for: object = _UNSET
        self.tracer: Tracer | None = None


_cache = _TracerCache()


def _tracer() -> Tracer | None:
    """The tracer of perdure's spans, or None while no real tracer provider is installed.

    ``trace.get_tracer_provider()`` tells, but costs about a microsecond while none is
    installed (it looks a variable up in ``os.environ`` each time), and that is the case
    every step attempt would pay for. OpenTelemetry keeps the installed provider in a
    module global, set once and never replaced: while it keeps its value, the answer
    stays the same, and reading it is one attribute lookup. Should a release rename
    it, the public call answers every time.
    """
    if not _ENABLED:
        return None
    installed = getattr(trace, "_TRACER_PROVIDER", _UNKNOWN)
    cache = _cache
    if installed is not cache.made_for or installed is _UNKNOWN:
        cache.tracer = _tracer_for(installed)
        cache.made_for = installed
    return cache.tracer


def _tracer_for(installed: object) -> Tracer | None:
    if installed is None and "OTEL_PYTHON_TRACER_PROVIDER" not in os.environ:
        return None
    # The public way; it also installs the provider that variable names, as OpenTelemetry
    # does on the first call (like its other settings, the variable is read once here).
    provider = trace.get_tracer_provider()
    if isinstance(provider, ProxyTracerProvider | NoOpTracerProvider):
        return None
    # A provider makes a new tracer at each call: keep this one.
    return provider.get_tracer(_TRACER_NAME)


def run_trace_id(run_id: str) -> int:
    """The trace id every span of ``run_id`` belongs to (never zero)."""
    return int.from_bytes(hashlib.sha256(run_id.encode()).digest()[:16], "big") or 1


def _run_parent(run_id: str, root_id: str | None = None) -> Any:
    """The stand-in parent of a run's spans: in its root's trace (its own, unless a child)."""
    digest = hashlib.sha256(run_id.encode()).digest()
    span_id = int.from_bytes(digest[16:24], "big") or 1
    context = SpanContext(
        trace_id=run_trace_id(root_id or run_id),
        span_id=span_id,
        is_remote=True,
        trace_flags=TraceFlags(TraceFlags.SAMPLED),
    )
    return trace.set_span_in_context(NonRecordingSpan(context))


def _link(run_id: str) -> Any:
    return Link(trace.get_current_span(_run_parent(run_id)).get_span_context())


def start_run_span(run_id: str, workflow: str) -> contextlib.AbstractContextManager[object]:
    """Around `Engine.start`: a span in the caller's trace, linked to the run's."""
    tracer = _tracer()
    if tracer is None:
        return _NO_SPAN
    attributes = {"perdure.run_id": run_id, "perdure.workflow": workflow}
    return tracer.start_as_current_span(
        "perdure.start_run", kind=SpanKind.PRODUCER, attributes=attributes, links=[_link(run_id)]
    )


def resume_hook_span(token: str) -> contextlib.AbstractContextManager[object]:
    """Around a hook resume: the run is only known once the store has answered."""
    tracer = _tracer()
    if tracer is None:
        return _NO_SPAN
    return tracer.start_as_current_span(
        "perdure.resume_hook", kind=SpanKind.PRODUCER, attributes={"perdure.hook_token": token}
    )


def link_current_span_to_run(run_id: str) -> None:
    """Tag the current span with the run it reached (used after a resume)."""
    if not _ENABLED:
        return
    span = trace.get_current_span()
    span.set_attribute("perdure.run_id", run_id)
    span.add_link(_link(run_id).context)


@contextlib.contextmanager
def step_task_span(
    run_id: str,
    name: str,
    step_id: str,
    attempt: int,
    queue: str,
    *,
    root_id: str | None = None,
) -> Iterator[Any]:
    """A span around one attempt of a step a queue's worker runs, in the run's trace."""
    tracer = _tracer()
    if tracer is None:
        yield None
        return
    attributes: dict[str, str | int] = {
        "perdure.run_id": run_id,
        "perdure.step": name,
        "perdure.step_id": step_id,
        "perdure.attempt": attempt,
        "perdure.queue": queue,
    }
    with tracer.start_as_current_span(
        f"perdure.step {name}",
        context=_run_parent(run_id, root_id),
        kind=SpanKind.CONSUMER,
        attributes=attributes,
        record_exception=True,
        set_status_on_exception=True,
    ) as span:
        yield span


class RunSpan:
    """The span of one life of a run in this worker; a no-op while tracing is off.

    A life that began while tracing was off has no span of its own; should tracing be
    turned on meanwhile, its steps' spans still join the run's trace.
    """

    __slots__ = ("_context", "_root_id", "_run_id", "_span")

    def __init__(
        self, run_id: str, workflow: str, *, replayed: bool, trace_of: str | None = None
    ) -> None:
        self._run_id = run_id
        self._root_id = trace_of
        """The root of a child run's tree, whose trace it joins (None: its own)."""
        self._span: Any = None
        self._context: Any = None
        tracer = _tracer()
        if tracer is None:
            return
        self._span = tracer.start_span(
            f"perdure.run {workflow}",
            context=_run_parent(run_id, trace_of),
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

    def step(self, name: str, step_id: str, attempt: int) -> contextlib.AbstractContextManager[Any]:
        """A span around one step attempt, a child of this run's span.

        It yields the span (None while tracing is off). Not a generator: on the step
        hot path, the no-op case must not build one.
        """
        tracer = _tracer()
        if tracer is None:
            return _NO_SPAN
        attributes: dict[str, str | int] = {
            "perdure.step": name,
            "perdure.step_id": step_id,
            "perdure.attempt": attempt,
        }
        return tracer.start_as_current_span(
            f"perdure.step {name}",
            context=(
                self._context
                if self._context is not None
                else _run_parent(self._run_id, self._root_id)
            ),
            kind=SpanKind.INTERNAL,
            attributes=attributes,
            record_exception=True,
            set_status_on_exception=True,
        )
