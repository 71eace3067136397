"""The SQLite store's aggregates for the Metrics page (`perdure._stats`), in four reads.

Each read is bounded by the window through an index that holds what it reads
(``runs_created``, ``runs_workflow_created``, ``runs_ended`` of migration 0011), and
buckets by integer division of the stored microseconds, so SQLite counts index entries
and reads no row; the step durations come from the steps of at most
`MAX_SAMPLED_RUNS` runs, each found by its primary key.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from perdure._stats import MAX_SAMPLED_RUNS, RunStats, StatsWindow, build_stats
from perdure.stores.sqlite._rows import to_us

if TYPE_CHECKING:
    import sqlite3

__all__ = ["stats"]

_MICROSECONDS = 1_000_000


def stats(conn: sqlite3.Connection, window: StatsWindow, workflow: str | None) -> RunStats:
    """`perdure.stores.RunStore.stats` on one read transaction (a consistent snapshot)."""
    since, until = to_us(window.since), to_us(window.until)
    width = int(window.bucket.total_seconds() * _MICROSECONDS)
    only = "" if workflow is None else "AND workflow = ?"
    extra: tuple[str, ...] = () if workflow is None else (workflow,)
    conn.execute("BEGIN")
    try:
        started = conn.execute(
            f"SELECT (created_at - ?) / ?, count(*) FROM runs "  # noqa: S608 - constant fragments
            f"WHERE created_at >= ? AND created_at < ? {only} GROUP BY 1",
            (since, width, since, until, *extra),
        ).fetchall()
        ended = conn.execute(
            "SELECT (completed_at - ?) / ?, workflow, status, count(*) "  # noqa: S608
            "FROM runs INDEXED BY runs_ended "
            f"WHERE completed_at >= ? AND completed_at < ? {only} GROUP BY 1, 2, 3",
            (since, width, since, until, *extra),
        ).fetchall()
        steps = conn.execute(
            "SELECT s.name, s.status, s.attempt, (s.updated_at - s.started_at) / 1e6 "  # noqa: S608
            "FROM (SELECT id FROM runs INDEXED BY runs_ended "
            f"WHERE completed_at >= ? AND completed_at < ? {only} "
            "ORDER BY completed_at DESC LIMIT ?) AS r "
            "JOIN steps AS s ON s.run_id = r.id WHERE s.status IN ('completed', 'failed')",
            (since, until, *extra, MAX_SAMPLED_RUNS),
        ).fetchall()
        # INDEXED BY: with statistics (ANALYZE), SQLite rather scans runs_workflow_created
        # whole, to group without a sort: all of a million runs, for a few pending ones.
        backlog = conn.execute(
            "SELECT workflow, status, count(*) FROM runs INDEXED BY runs_status_created "  # noqa: S608
            f"WHERE status IN ('pending', 'blocked') {only} GROUP BY 1, 2",
            extra,
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
        sampled_runs=min(MAX_SAMPLED_RUNS, sum(row[3] for row in ended)),
    )
