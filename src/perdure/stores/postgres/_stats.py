"""The PostgreSQL store's aggregates for the Metrics page (`perdure._stats`), in four reads.

Each read is bounded by the window through an index (``runs_created``,
``runs_workflow_created``, ``runs_ended`` of migration 0013); the step durations come
from the steps of at most `MAX_SAMPLED_RUNS` runs, each found by its primary key. One
read-only, repeatable-read transaction: the four answers are of one snapshot.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from perdure._stats import MAX_SAMPLED_RUNS, RunStats, StatsWindow, build_stats
from perdure.stores._common import utc

if TYPE_CHECKING:
    from asyncpg import Pool, Record

__all__ = ["stats"]


def _bucket(column: str) -> str:
    return f"floor(extract(epoch FROM ({column} - $1)) / $2)::bigint"


async def stats(pool: Pool[Record], window: StatsWindow, workflow: str | None) -> RunStats:
    """`perdure.stores.RunStore.stats` on one snapshot."""
    since, until = utc(window.since), utc(window.until)
    width = window.bucket.total_seconds()
    only = "" if workflow is None else "AND workflow = $4"
    extra: tuple[str, ...] = () if workflow is None else (workflow,)
    async with pool.acquire() as conn, conn.transaction(isolation="repeatable_read", readonly=True):
        started = await conn.fetch(
            f"SELECT {_bucket('created_at')}, count(*) FROM runs "  # noqa: S608 - constant fragments
            f"WHERE created_at >= $1 AND created_at < $3 {only} GROUP BY 1",
            since, width, until, *extra,
        )  # fmt: skip
        ended = await conn.fetch(
            f"SELECT {_bucket('completed_at')}, workflow, status, count(*) FROM runs "  # noqa: S608
            f"WHERE completed_at >= $1 AND completed_at < $3 {only} GROUP BY 1, 2, 3",
            since, width, until, *extra,
        )  # fmt: skip
        limit = "$3" if workflow is None else "$4"
        steps = await conn.fetch(
            "SELECT s.name, s.status, s.attempt, "  # noqa: S608 - constant fragments
            "extract(epoch FROM (s.updated_at - s.started_at))::float8 "
            "FROM (SELECT id FROM runs WHERE completed_at >= $1 AND completed_at < $2 "
            f"{only.replace('$4', '$3')} ORDER BY completed_at DESC LIMIT {limit}) AS r "
            "JOIN steps AS s ON s.run_id = r.id WHERE s.status IN ('completed', 'failed')",
            since, until, *extra, MAX_SAMPLED_RUNS,
        )  # fmt: skip
        backlog = await conn.fetch(
            "SELECT workflow, status, count(*) FROM runs "  # noqa: S608 - constant fragments
            f"WHERE status IN ('pending', 'blocked') {only.replace('$4', '$1')} GROUP BY 1, 2",
            *extra,
        )
    return build_stats(
        window,
        workflow,
        started=[(int(row[0]), int(row[1])) for row in started],
        ended=[(int(row[0]), row[1], row[2], int(row[3])) for row in ended],
        steps=[(row[0], row[1], int(row[2]), float(row[3])) for row in steps],
        backlog=[(row[0], row[1], int(row[2])) for row in backlog],
        sampled_runs=min(MAX_SAMPLED_RUNS, sum(int(row[3]) for row in ended)),
    )
