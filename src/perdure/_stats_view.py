"""The aggregates of `perdure._stats` for a caller: read from a store, as JSON.

``GET /stats`` (and the dashboard's Metrics page it feeds) and ``perdure stats`` show
the same thing, so both read it here: the window ending now (the Engine's clock, or
the CLI's), through the outage-aware `perdure._store_calls.read`, and one JSON shape.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from typing_extensions import TypedDict

from perdure._stats import RunStats, StatsWindow, parse_since
from perdure._store_calls import read

if TYPE_CHECKING:
    from datetime import datetime

    from perdure.stores._protocol import RunStore

__all__ = ["RunStatsBody", "read_stats", "stats_json"]


class WorkflowStatsBody(TypedDict):
    """The runs of one workflow that ended in the window."""

    workflow: str
    completed: int
    failed: int
    cancelled: int
    failure_rate: float


class StepStatsBody(TypedDict):
    """One step's calls in the sampled runs; durations in seconds, first attempt to outcome."""

    name: str
    calls: int
    failed: int
    retries: int
    p50: float
    p95: float
    p99: float


class BacklogBody(TypedDict):
    """The runs of one workflow pending (not started) and blocked, now."""

    workflow: str
    pending: int
    blocked: int


class RunStatsBody(TypedDict):
    """``GET /stats``: runs over a window ending now, per bucket of ``bucket_seconds``."""

    since: str
    until: str
    bucket_seconds: int
    workflow: str | None
    started: list[int]
    ended: dict[str, list[int]]
    totals: dict[str, int]
    workflows: list[WorkflowStatsBody]
    steps: list[StepStatsBody]
    backlog: list[BacklogBody]
    sampled_runs: int


async def read_stats(
    store: RunStore, now: datetime, since: str = "1h", workflow: str | None = None
) -> RunStats:
    """The aggregates over the last ``since`` (``30m``, ``1h``, ``24h``, ``7d``) up to ``now``.

    Raises:
        ValueError: ``since`` is not a window, or ``workflow`` holds a NUL character.
    """
    length = parse_since(since)
    if workflow is not None and "\x00" in workflow:
        raise ValueError("workflow contains a NUL character")
    window = StatsWindow.ending(now, length)
    return await read(lambda: store.stats(window, workflow=workflow), "reading stats")


def stats_json(stats: RunStats) -> RunStatsBody:
    """``GET /stats``'s body (its schema is ``RunStats`` in the OpenAPI document)."""
    window = stats.window
    return {
        "since": window.since.isoformat(),
        "until": window.until.isoformat(),
        "bucket_seconds": int(window.bucket.total_seconds()),
        "workflow": stats.workflow,
        "started": stats.started,
        "ended": stats.ended,
        "totals": stats.totals,
        "workflows": [
            {
                "workflow": each.workflow,
                "completed": each.completed,
                "failed": each.failed,
                "cancelled": each.cancelled,
                "failure_rate": each.failure_rate,
            }
            for each in stats.workflows
        ],
        "steps": [
            {
                "name": each.name,
                "calls": each.calls,
                "failed": each.failed,
                "retries": each.retries,
                "p50": each.p50,
                "p95": each.p95,
                "p99": each.p99,
            }
            for each in stats.steps
        ],
        "backlog": [
            {"workflow": each.workflow, "pending": each.pending, "blocked": each.blocked}
            for each in stats.backlog
        ],
        "sampled_runs": stats.sampled_runs,
    }
