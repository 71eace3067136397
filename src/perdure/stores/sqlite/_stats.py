"""The SQLite store's aggregates for the Metrics page (`perdure._stats`), as index ranges.

SQLite groups by sorting the rows it counts, which costs about a microsecond a row: a
week of a million runs took 1.3 s grouped by bucket. Counting one range of an index
instead costs a seek and a step per entry, reading no row. So every count here is a
range: runs started per bucket on ``runs_created`` (``runs_workflow_created`` for one
workflow); runs ended per (outcome, workflow, bucket) on ``runs_ended``, whose order
(status, workflow, completed_at) makes each of those one range. The workflows are
found by skipping along the same index (one seek each), so the number of queries is
bounded by buckets times outcomes times workflows, and the entries visited by the runs in the
window. The step durations come from the steps of the `MAX_SAMPLED_RUNS` most
recently ended runs, each found by its primary key. All in one read transaction.
"""

from __future__ import annotations

import heapq
import json
from typing import TYPE_CHECKING

from perdure._stats import MAX_SAMPLED_RUNS, OUTCOMES, RunStats, StatsWindow, build_stats
from perdure.stores.sqlite._rows import to_us

if TYPE_CHECKING:
    import sqlite3

__all__ = ["stats"]

_MICROSECONDS = 1_000_000
_NEXT_WORKFLOW = (
    "SELECT workflow FROM runs INDEXED BY runs_ended "
    "WHERE status = ? AND workflow > ? AND completed_at IS NOT NULL "
    "ORDER BY workflow LIMIT 1"
)
_ENDED_IN = (
    "SELECT count(*) FROM runs INDEXED BY runs_ended "
    "WHERE status = ? AND workflow = ? AND completed_at >= ? AND completed_at < ?"
)
_LATEST = (
    "SELECT completed_at, id FROM runs INDEXED BY runs_ended "
    "WHERE status = ? AND workflow = ? AND completed_at >= ? AND completed_at < ? "
    "ORDER BY completed_at DESC LIMIT ?"
)
_STEPS_OF = (
    "SELECT s.name, s.status, s.attempt, (s.updated_at - s.started_at) / 1e6 "
    "FROM json_each(?) AS r JOIN steps AS s ON s.run_id = r.value "
    "WHERE s.status IN ('completed', 'failed')"
)


def stats(conn: sqlite3.Connection, window: StatsWindow, workflow: str | None) -> RunStats:
    """`perdure.stores.RunStore.stats` on one read transaction (a consistent snapshot)."""
    since, until = to_us(window.since), to_us(window.until)
    width = int(window.bucket.total_seconds() * _MICROSECONDS)
    edges = [(since + i * width, min(until, since + (i + 1) * width)) for i in range(window.count)]
    conn.execute("BEGIN")
    try:
        started = _started(conn, edges, workflow)
        ended: list[tuple[int, str, str, int]] = []
        latest: list[tuple[int, str]] = []
        for outcome in OUTCOMES:
            for name in [workflow] if workflow is not None else _workflows(conn, outcome):
                any_ended = False
                for bucket, (low, high) in enumerate(edges):
                    (count,) = conn.execute(_ENDED_IN, (outcome, name, low, high)).fetchone()
                    if count:
                        ended.append((bucket, name, outcome, count))
                        any_ended = True
                if any_ended:
                    found = conn.execute(_LATEST, (outcome, name, since, until, MAX_SAMPLED_RUNS))
                    latest.extend(found.fetchall())
        sampled = [run_id for _, run_id in heapq.nlargest(MAX_SAMPLED_RUNS, latest)]
        steps = conn.execute(_STEPS_OF, (json.dumps(sampled),)).fetchall()
        # INDEXED BY: with statistics (ANALYZE), SQLite rather scans runs_workflow_created
        # whole, to group without a sort: all of a million runs, for a few pending ones.
        only = "" if workflow is None else "AND workflow = ?"
        backlog = conn.execute(
            "SELECT workflow, status, count(*) FROM runs INDEXED BY runs_status_created "  # noqa: S608
            f"WHERE status IN ('pending', 'blocked') {only} GROUP BY 1, 2",
            () if workflow is None else (workflow,),
        ).fetchall()
    finally:
        conn.execute("COMMIT")
    return build_stats(
        window,
        workflow,
        started=started,
        ended=ended,
        steps=steps,
        backlog=backlog,
        sampled_runs=len(sampled),
    )


def _started(
    conn: sqlite3.Connection, edges: list[tuple[int, int]], workflow: str | None
) -> list[tuple[int, int]]:
    """Runs created per bucket: one range of an index each."""
    extra: tuple[str, ...] = ()
    if workflow is None:
        query = "SELECT count(*) FROM runs WHERE created_at >= ? AND created_at < ?"
    else:
        query = (
            "SELECT count(*) FROM runs INDEXED BY runs_workflow_created "
            "WHERE workflow = ? AND created_at >= ? AND created_at < ?"
        )
        extra = (workflow,)
    return [
        (bucket, conn.execute(query, (*extra, low, high)).fetchone()[0])
        for bucket, (low, high) in enumerate(edges)
    ]


def _workflows(conn: sqlite3.Connection, outcome: str) -> list[str]:
    """The workflows with a run ended so, one seek each along ``runs_ended``."""
    found: list[str] = []
    while row := conn.execute(_NEXT_WORKFLOW, (outcome, found[-1] if found else "")).fetchone():
        found.append(row[0])
    return found
