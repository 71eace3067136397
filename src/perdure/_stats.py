"""Aggregates of the runs in a store over a window of time, decided once for every store.

The dashboard's Metrics page, ``GET /stats`` and ``perdure stats`` show what the store
holds, not what one process counted: they cover every worker and survive restarts
(OpenTelemetry's instruments, in `perdure._metrics`, are the per-process view).

A store answers `perdure.stores.RunStore.stats` with a few grouped counts, and this
module turns them into a `RunStats`, the same way for every store:

- runs started (created) and ended, by outcome, per time bucket of the window;
- per workflow: runs ended in the window by outcome, hence its failure rate;
- the slowest steps: p50, p95 and p99 of a step call's duration (first attempt's start
  to its outcome, retries and their delays included) and its retries, over the steps
  of the most recently ended runs of the window, at most `MAX_SAMPLED_RUNS` of them;
- the backlog: runs pending (created, not started yet) and blocked, per workflow.

Every query is bounded: the counts read an index over the window only (a week of a
million runs is a million index entries, counted without reading a row: BENCHMARKS.md,
"Metrics page"); the step durations read the steps of a bounded number of runs; the
backlog counts the pending and blocked runs, which a healthy system has few of.
"""

from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Iterable

__all__ = [
    "MAX_BUCKETS",
    "MAX_SAMPLED_RUNS",
    "OUTCOMES",
    "BacklogStats",
    "RunStats",
    "StatsWindow",
    "StepStats",
    "WorkflowStats",
    "build_stats",
    "parse_since",
    "percentile",
]

MAX_SAMPLED_RUNS = 2_000
"""The step durations are those of at most this many runs, the most recently ended."""
MAX_BUCKETS = 120
"""A window is cut into at most this many buckets (one minute each for up to two hours)."""
MAX_WINDOW = timedelta(days=31)
OUTCOMES = ("completed", "failed", "cancelled")
"""How a run ends, in the order they are shown."""
SLOWEST = 10
"""How many steps the slowest-steps table keeps."""
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def parse_since(text: str) -> timedelta:
    """``30m``, ``1h``, ``24h``, ``7d``, ``1w``: a window's length, at most 31 days.

    Raises:
        ValueError: naming the text, when it is not a positive whole number and a unit.
    """
    cleaned = text.strip().lower()
    unit = _UNITS.get(cleaned[-1:]) if cleaned else None
    number = cleaned[:-1]
    if unit is None or not number.isdigit() or int(number) <= 0:
        raise ValueError(
            f"since={text!r} is not a window: write a positive whole number and one of "
            "s, m, h, d, w (30m, 1h, 24h, 7d)"
        )
    window = timedelta(seconds=int(number) * unit)
    if window > MAX_WINDOW:
        raise ValueError(f"since={text!r} is longer than the 31 days a window may span")
    return window


@dataclass(frozen=True, slots=True)
class StatsWindow:
    """``[since, until)`` cut into buckets of ``bucket`` (a whole number of minutes)."""

    since: datetime
    until: datetime
    bucket: timedelta

    @classmethod
    def ending(cls, until: datetime, length: timedelta) -> StatsWindow:
        """The window of ``length`` up to ``until`` included, its buckets whole minutes.

        One minute per bucket up to two hours; longer windows get wider buckets, so
        a week is 120 buckets of 84 minutes rather than 10,080 points. ``until`` is
        counted (a run that ended at this very moment is in): the window stops a
        microsecond, the stores' resolution, after it.
        """
        if length <= timedelta(0):
            raise ValueError(f"a window must be longer than zero, not {length}")
        minutes = max(1, math.ceil(length / timedelta(minutes=1) / MAX_BUCKETS))
        end = until + timedelta(microseconds=1)
        return cls(end - length, end, timedelta(minutes=minutes))

    @property
    def count(self) -> int:
        """How many buckets the window has (the last one may be cut short)."""
        return max(0, math.ceil((self.until - self.since) / self.bucket))

    def index(self, moment: datetime) -> int:
        """The bucket ``moment`` (in the window) falls in."""
        return (moment - self.since) // self.bucket


@dataclass(frozen=True, slots=True)
class WorkflowStats:
    """The runs of one workflow that ended in the window."""

    workflow: str
    completed: int = 0
    failed: int = 0
    cancelled: int = 0

    @property
    def ended(self) -> int:
        """Runs that ended, whatever their outcome."""
        return self.completed + self.failed + self.cancelled

    @property
    def failure_rate(self) -> float:
        """Failed runs among those that ended (0 when none ended)."""
        return self.failed / self.ended if self.ended else 0.0


@dataclass(frozen=True, slots=True)
class StepStats:
    """One step's calls in the sampled runs: how long they took, how often retried."""

    name: str
    calls: int
    failed: int
    retries: int
    p50: float
    p95: float
    p99: float
    """Durations in seconds."""


@dataclass(frozen=True, slots=True)
class BacklogStats:
    """Runs of one workflow waiting now: pending (not started yet) and blocked."""

    workflow: str
    pending: int = 0
    blocked: int = 0


@dataclass(frozen=True, slots=True)
class RunStats:
    """What `perdure.stores.RunStore.stats` answers: see the module's docstring."""

    window: StatsWindow
    workflow: str | None
    started: list[int]
    """Runs created, per bucket."""
    ended: dict[str, list[int]]
    """Runs ended, per outcome (`OUTCOMES`), per bucket."""
    workflows: list[WorkflowStats]
    steps: list[StepStats]
    """The slowest steps, by p95, at most `SLOWEST`."""
    backlog: list[BacklogStats]
    sampled_runs: int
    """How many ended runs the step durations come from (at most `MAX_SAMPLED_RUNS`)."""
    totals: dict[str, int] = field(default_factory=dict)
    """Runs started and ended (by outcome) in the window, and pending and blocked now."""


def percentile(ordered: list[float], p: float) -> float:
    """The nearest-rank ``p``-th percentile of ``ordered`` (sorted, not empty)."""
    rank = max(1, math.ceil(p / 100 * len(ordered)))
    return ordered[rank - 1]


def build_stats(
    window: StatsWindow,
    workflow: str | None,
    *,
    started: Iterable[tuple[int, int]],
    ended: Iterable[tuple[int, str, str, int]],
    steps: Iterable[tuple[str, str, int, float]],
    backlog: Iterable[tuple[str, str, int]],
    sampled_runs: int,
) -> RunStats:
    """The `RunStats` of what a store counted.

    Args:
        window: the window counted.
        workflow: the one workflow counted, or None for all.
        started: (bucket, runs created).
        ended: (bucket, workflow, outcome, runs ended).
        steps: (name, status, attempt, seconds) of each ended step call sampled.
        backlog: (workflow, status, runs) of the pending and blocked runs.
        sampled_runs: how many ended runs ``steps`` are of.
    """
    count = window.count
    started_per = [0] * count
    for bucket, runs in started:
        if 0 <= bucket < count:
            started_per[bucket] += runs
    ended_per = {outcome: [0] * count for outcome in OUTCOMES}
    by_workflow: dict[str, dict[str, int]] = defaultdict(dict)
    for bucket, name, outcome, runs in ended:
        if outcome not in ended_per or not 0 <= bucket < count:
            continue
        ended_per[outcome][bucket] += runs
        by_workflow[name][outcome] = by_workflow[name].get(outcome, 0) + runs
    workflows = sorted(
        (WorkflowStats(name, **counts) for name, counts in by_workflow.items()),
        key=lambda stats: (-stats.failure_rate, -stats.ended, stats.workflow),
    )
    waiting: dict[str, dict[str, int]] = defaultdict(dict)
    for name, status, runs in backlog:
        if status in {"pending", "blocked"}:
            waiting[name][status] = waiting[name].get(status, 0) + runs
    backlogs = sorted(
        (BacklogStats(name, **counts) for name, counts in waiting.items()),
        key=lambda stats: (-(stats.pending + stats.blocked), stats.workflow),
    )
    totals = {"started": sum(started_per)}
    totals.update({outcome: sum(per) for outcome, per in ended_per.items()})
    totals["pending"] = sum(stats.pending for stats in backlogs)
    totals["blocked"] = sum(stats.blocked for stats in backlogs)
    return RunStats(
        window,
        workflow,
        started_per,
        ended_per,
        workflows,
        _slowest(steps),
        backlogs,
        sampled_runs,
        totals,
    )


def _slowest(steps: Iterable[tuple[str, str, int, float]]) -> list[StepStats]:
    durations: dict[str, list[float]] = defaultdict(list)
    failed: dict[str, int] = defaultdict(int)
    retries: dict[str, int] = defaultdict(int)
    for name, status, attempt, seconds in steps:
        durations[name].append(max(0.0, seconds))
        failed[name] += status == "failed"
        retries[name] += max(0, attempt - 1)
    made = []
    for name, values in durations.items():
        values.sort()
        made.append(
            StepStats(
                name,
                len(values),
                failed[name],
                retries[name],
                percentile(values, 50),
                percentile(values, 95),
                percentile(values, 99),
            )
        )
    made.sort(key=lambda stats: (-stats.p95, stats.name))
    return made[:SLOWEST]
