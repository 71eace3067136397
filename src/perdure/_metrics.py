"""OpenTelemetry metrics of this process: runs, steps, wake-ups, hooks, store commits.

These count what this process did (the dashboard's Metrics page and ``perdure stats``
count what the store holds, across every worker: `perdure._stats`). Instruments, all
with a ``perdure.`` prefix (OpenTelemetry's conventions name none of these things),
durations in seconds as the conventions ask:

- ``perdure.runs.started``, ``.completed``, ``.failed``, ``.cancelled``, ``.blocked``
  (counters, ``perdure.workflow``); ``perdure.runs.duration`` (histogram, from
  ``run_started`` to the end, ``perdure.workflow`` and ``perdure.outcome``);
- ``perdure.steps.attempts`` (counter, ``perdure.step`` and ``perdure.outcome``:
  succeeded or failed), ``perdure.steps.attempt.duration`` (histogram, the same),
  ``perdure.steps.retries`` and ``perdure.steps.failures`` (steps failed for good);
- ``perdure.wakeup.latency`` (histogram): from the moment a run was due (created, its
  timer's time, a payload stored for its hook: ``perdure.wakeup`` start, timer, hook) to
  its worker acting on it;
- ``perdure.worker.runs.held``, ``.sleeping``, ``.waiting`` (gauges: held in memory,
  waiting on a timer, waiting on hooks) and ``perdure.runs.pending`` /
  ``perdure.runs.blocked.now`` (gauges per ``perdure.workflow``, from the store, read by
  the worker's maintenance every `BACKLOG_EVERY` seconds);
- ``perdure.hook.resumes`` and ``perdure.webhook.requests`` (counters,
  ``perdure.outcome``); ``perdure.store.commits`` and ``perdure.store.commit.duration``
  (``perdure.store``: sqlite or postgres).

Labels are bounded: workflow and step names, outcomes, never a run id or a token.

Where they go: OpenTelemetry's global meter provider, when one is installed, and
perdure's own provider once ``create_app(metrics=True)`` or ``perdure worker
--metrics-port`` asked for ``/metrics`` (`perdure._prometheus`). Without either, every
call site pays one function call that answers None (`recorder`), looked up as
`perdure._tracing` looks up its tracer: no measurable cost (BENCHMARKS.md, "Metrics").
"""

from __future__ import annotations

import os
import weakref
from typing import TYPE_CHECKING, Any

try:
    from opentelemetry.metrics import CallbackOptions, NoOpMeterProvider, Observation
    from opentelemetry.metrics import _internal as _otel_metrics

    _ENABLED = True
except ImportError:  # pragma: no cover (the otel extra is installed in the test suite)
    _ENABLED = False

if TYPE_CHECKING:
    from collections.abc import Iterable

    from opentelemetry.metrics import Meter, MeterProvider

__all__ = [
    "BACKLOG_EVERY",
    "Recorder",
    "add_provider",
    "recorder",
    "resume_outcome",
    "set_backlog",
    "watch_worker",
]

BACKLOG_EVERY = 15.0
"""Seconds between two reads of the backlog gauges from the store, per worker."""
_METER_NAME = "perdure"
_SHORT = (0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300)
"""Buckets of steps, wake-ups and commits: OpenTelemetry's advice for HTTP durations,
widened at both ends (a trivial step takes well under a millisecond)."""
_LONG = (0.01, 0.1, 1, 10, 60, 300, 1800, 3600, 6 * 3600, 86400, 7 * 86400, 30 * 86400)
"""Buckets of whole runs, which may sleep for weeks."""
_UNKNOWN = object()
_UNSET = object()


class _Instruments:
    """perdure's instruments made by one meter."""

    def __init__(self, meter: Meter) -> None:
        counter, histogram = meter.create_counter, meter.create_histogram
        self.runs = {
            outcome: counter(f"perdure.runs.{outcome}", "{run}", f"Runs {outcome}")
            for outcome in ("started", "completed", "failed", "cancelled", "blocked")
        }
        self.run_duration = histogram(
            "perdure.runs.duration", "s", "From a run's start to its end",
            explicit_bucket_boundaries_advisory=_LONG,
        )  # fmt: skip
        self.attempts = counter("perdure.steps.attempts", "{attempt}", "Step attempts")
        self.attempt_duration = histogram(
            "perdure.steps.attempt.duration", "s", "How long one step attempt ran",
            explicit_bucket_boundaries_advisory=_SHORT,
        )  # fmt: skip
        self.retries = counter("perdure.steps.retries", "{retry}", "Step attempts retried")
        self.failures = counter("perdure.steps.failures", "{step}", "Steps failed for good")
        self.wakeup = histogram(
            "perdure.wakeup.latency", "s", "From a run's due moment to its worker acting on it",
            explicit_bucket_boundaries_advisory=_SHORT,
        )  # fmt: skip
        self.hook_resumes = counter("perdure.hook.resumes", "{resume}", "Hook resumes")
        self.webhook_requests = counter("perdure.webhook.requests", "{request}", "Webhook requests")
        self.commits = counter("perdure.store.commits", "{commit}", "Store transactions")
        self.commit_duration = histogram(
            "perdure.store.commit.duration", "s", "How long a store transaction took",
            explicit_bucket_boundaries_advisory=_SHORT,
        )  # fmt: skip
        gauge = meter.create_observable_gauge
        gauge("perdure.worker.runs.held", [_held], "{run}", "Runs held in memory")
        gauge("perdure.worker.runs.sleeping", [_sleeping], "{run}", "Held runs on a timer")
        gauge("perdure.worker.runs.waiting", [_waiting], "{run}", "Held runs waiting on hooks")
        gauge("perdure.runs.pending", [_pending], "{run}", "Runs created, not started")
        gauge("perdure.runs.blocked.now", [_blocked], "{run}", "Runs blocked now")


class Recorder:
    """Records into every meter provider perdure reports to; made only when there is one.

    Methods take plain values: the call sites build no attribute dict unless recording.
    """

    __slots__ = ("_sets",)

    def __init__(self, sets: list[_Instruments]) -> None:
        self._sets = sets

    def run_started(self, workflow: str, latency: float) -> None:
        """A worker started a run ``latency`` seconds after it was created."""
        attributes = {"perdure.workflow": workflow}
        wake = {"perdure.workflow": workflow, "perdure.wakeup": "start"}
        for each in self._sets:
            each.runs["started"].add(1, attributes)
            each.wakeup.record(max(0.0, latency), wake)

    def run_ended(self, workflow: str, outcome: str, duration: float | None) -> None:
        """A run ended here (completed, failed, cancelled) or was blocked."""
        attributes = {"perdure.workflow": workflow}
        timed = {"perdure.workflow": workflow, "perdure.outcome": outcome}
        for each in self._sets:
            each.runs[outcome].add(1, attributes)
            if duration is not None:
                each.run_duration.record(max(0.0, duration), timed)

    def woke(self, workflow: str, kind: str, latency: float) -> None:
        """A held run acted on a timer or a hook's payload ``latency`` s after it was due."""
        attributes = {"perdure.workflow": workflow, "perdure.wakeup": kind}
        for each in self._sets:
            each.wakeup.record(max(0.0, latency), attributes)

    def attempt(self, step: str, outcome: str, duration: float, *, retried: bool) -> None:
        """One step attempt ended: ``outcome`` succeeded or failed (then retried or not)."""
        attributes = {"perdure.step": step, "perdure.outcome": outcome}
        named = {"perdure.step": step}
        for each in self._sets:
            each.attempts.add(1, attributes)
            each.attempt_duration.record(duration, attributes)
            if outcome == "failed":
                (each.retries if retried else each.failures).add(1, named)

    def hook_resume(self, outcome: str, *, webhook: bool = False) -> None:
        """A resume (``webhook``: a webhook request) ended with ``outcome``."""
        attributes = {"perdure.outcome": outcome}
        for each in self._sets:
            (each.webhook_requests if webhook else each.hook_resumes).add(1, attributes)

    def commit(self, store: str, duration: float, writes: int) -> None:  # noqa: ARG002
        """A store committed one transaction of ``writes`` writes."""
        attributes = {"perdure.store": store}
        for each in self._sets:
            each.commits.add(1, attributes)
            each.commit_duration.record(duration, attributes)


def resume_outcome(error: Exception) -> str:
    """The ``perdure.outcome`` of a resume that raised ``error``.

    not_found (`perdure.HookNotFoundError`, a LookupError), invalid (a payload the
    hook's schema refuses: ValueError), or error (the store failed, say).
    """
    if isinstance(error, LookupError):
        return "not_found"
    if isinstance(error, ValueError):
        return "invalid"
    return "error"


class _Cache:
    __slots__ = ("made_for", "recorder")

    def __init__(self) -> None:
        self.made_for: object = _UNSET
        self.recorder: Recorder | None = None


_cache = _Cache()
_own: list[tuple[MeterProvider, _Instruments | None]] = []
"""perdure's own providers (`add_provider`), each with its instruments once made."""
_global_sets: dict[int, _Instruments] = {}
"""The instruments made on OpenTelemetry's global provider, by its id: made once."""


def recorder() -> Recorder | None:
    """Where to record, or None while no meter provider would take it.

    One attribute lookup and a comparison while nothing changes, as for
    `perdure._tracing._tracer`: the global provider is set once and never replaced.
    """
    if not _ENABLED:
        return None
    installed = getattr(_otel_metrics, "_METER_PROVIDER", _UNKNOWN)
    cache = _cache
    if installed is not cache.made_for or installed is _UNKNOWN:
        cache.recorder = _recorder_for(installed)
        cache.made_for = installed
    return cache.recorder


def _recorder_for(installed: object) -> Recorder | None:
    sets: list[_Instruments] = []
    # As OpenTelemetry does, the variable names a provider to install on the first call.
    if installed is not None or "OTEL_PYTHON_METER_PROVIDER" in os.environ:
        provider: Any = _otel_metrics.get_meter_provider()
        proxy = getattr(_otel_metrics, "_ProxyMeterProvider", NoOpMeterProvider)
        if not isinstance(provider, proxy | NoOpMeterProvider):
            made = _global_sets.get(id(provider))
            if made is None:
                made = _global_sets[id(provider)] = _Instruments(provider.get_meter(_METER_NAME))
            sets.append(made)
    for position, (own, made_here) in enumerate(_own):
        made_here_now = made_here or _Instruments(own.get_meter(_METER_NAME))
        _own[position] = (own, made_here_now)
        sets.append(made_here_now)
    return Recorder(sets) if sets else None


def add_provider(provider: MeterProvider) -> None:
    """Report to ``provider`` too, besides the global one (perdure's Prometheus reader)."""
    if any(own is provider for own, _ in _own):
        return
    _own.append((provider, None))
    _cache.made_for = _UNSET  # the next `recorder` call makes the new instruments


# -- gauges: what the workers of this process hold, and the store's backlog ------------


_workers: weakref.WeakSet[Any] = weakref.WeakSet()
_backlog: dict[str, tuple[int, int]] = {}
"""Per workflow, the pending and blocked runs the store held at the last look."""


def watch_worker(worker: object) -> None:
    """Count ``worker``'s held runs in the gauges while it lives (it has ``gauges()``)."""
    _workers.add(worker)


def set_backlog(backlog: Iterable[tuple[str, int, int]]) -> None:
    """The pending and blocked runs per workflow, as a worker last read them."""
    _backlog.clear()
    for workflow, pending, blocked in backlog:
        _backlog[workflow] = (pending, blocked)


def _held_counts() -> tuple[int, int, int]:
    held = sleeping = waiting = 0
    for worker in list(_workers):
        h, s, w = worker.gauges()
        held, sleeping, waiting = held + h, sleeping + s, waiting + w
    return held, sleeping, waiting


def _held(_: CallbackOptions) -> Iterable[Observation]:
    return [Observation(_held_counts()[0])]


def _sleeping(_: CallbackOptions) -> Iterable[Observation]:
    return [Observation(_held_counts()[1])]


def _waiting(_: CallbackOptions) -> Iterable[Observation]:
    return [Observation(_held_counts()[2])]


def _pending(_: CallbackOptions) -> Iterable[Observation]:
    return [Observation(p, {"perdure.workflow": w}) for w, (p, _b) in sorted(_backlog.items())]


def _blocked(_: CallbackOptions) -> Iterable[Observation]:
    return [Observation(b, {"perdure.workflow": w}) for w, (_p, b) in sorted(_backlog.items())]
