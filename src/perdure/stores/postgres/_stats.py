"""The PostgreSQL store's aggregates for the Metrics page (`perdure._stats`), in four reads.

Each read is bounded by the window through an index (``runs_created``,
``runs_workflow_created``, ``runs_ended`` of migration 0013, ``runs_workflow_ended`` of
0017 for one workflow's ended runs); the step durations come
from the steps of at most `MAX_SAMPLED_RUNS` runs, each found by its primary key. One
read-only, repeatable-read transaction: the four answers are of one snapshot.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from perdure._stats import MAX_SAMPLED_RUNS, RunStats, StatsWindow, build_stats
from perdure.stores._common import utc

if TYPE_CHECKING:
    from asyncpg import Pool, Record

__all__ = ["statements", "stats"]


def _bucket(column: str) -> str:
    return f"floor(extract(epoch FROM ({column} - $1)) / $2)::bigint"


def statements(
    window: StatsWindow, workflow: str | None
) -> dict[str, tuple[str, tuple[object, ...]]]:
    """The four reads `stats` makes, by name, each with its arguments.

    Apart so that ``bench/stats_query.py`` can EXPLAIN exactly what the store runs.
    """
    since, until = utc(window.since), utc(window.until)
    width = window.bucket.total_seconds()
    only = "" if workflow is None else "AND workflow = $4"
    extra: tuple[str, ...] = () if workflow is None else (workflow,)
    limit = "$3" if workflow is None else "$4"
    return {
        "started": (
            (
                f"SELECT {_bucket('created_at')}, count(*) FROM runs "  # noqa: S608 - constant fragments
                f"WHERE created_at >= $1 AND created_at < $3 {only} GROUP BY 1"
            ),
            (since, width, until, *extra),
        ),
        "ended": (
            (
                f"SELECT {_bucket('completed_at')}, workflow, status, count(*) FROM runs "  # noqa: S608
                f"WHERE completed_at >= $1 AND completed_at < $3 {only} GROUP BY 1, 2, 3"
            ),
            (since, width, until, *extra),
        ),
        "steps": (
            (
                "SELECT s.name, s.status, s.attempt, "  # noqa: S608 - constant fragments
                "extract(epoch FROM (s.updated_at - s.started_at))::float8 "
                "FROM (SELECT id FROM runs WHERE completed_at >= $1 AND completed_at < $2 "
                f"{only.replace('$4', '$3')} ORDER BY completed_at DESC LIMIT {limit}) AS r "
                "JOIN steps AS s ON s.run_id = r.id WHERE s.status IN ('completed', 'failed')"
            ),
            (since, until, *extra, MAX_SAMPLED_RUNS),
        ),
        "backlog": (
            (
                "SELECT workflow, status, count(*) FROM runs "  # noqa: S608 - constant fragments
                f"WHERE status IN ('pending', 'blocked') {only.replace('$4', '$1')} GROUP BY 1, 2"
            ),
            extra,
        ),
    }


async def stats(pool: Pool[Record], window: StatsWindow, workflow: str | None) -> RunStats:
    """`perdure.stores.RunStore.stats` on one snapshot."""
    reads = statements(window, workflow)
    rows = {}
    async with pool.acquire() as conn, conn.transaction(isolation="repeatable_read", readonly=True):
        for name, (sql, args) in reads.items():
            rows[name] = await conn.fetch(sql, *args)
    started, ended, steps, backlog = rows["started"], rows["ended"], rows["steps"], rows["backlog"]
    return build_stats(
        window,
        workflow,
        started=[(int(row[0]), int(row[1])) for row in started],
        ended=[(int(row[0]), row[1], row[2], int(row[3])) for row in ended],
        steps=[(row[0], row[1], int(row[2]), float(row[3])) for row in steps],
        backlog=[(row[0], row[1], int(row[2])) for row in backlog],
        sampled_runs=min(MAX_SAMPLED_RUNS, sum(int(row[3]) for row in ended)),
    )
