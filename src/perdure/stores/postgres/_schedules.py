"""The schedules of `PostgresStore` (`ScheduleStore`): the ``schedules`` table.

A mixin, so the store's run and log code stays one read. Each call is one statement
on the pool; the writes others act on (a schedule stored, paused, resumed or deleted)
notify ``perdure_changes`` in the same transaction, so every worker looks again at once
rather than at its next poll. Moving a schedule on (`advance_schedule`) does not: the
worker that does it already knows.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from perdure._schedules import ScheduleRecord
from perdure.stores._common import utc
from perdure.stores.postgres._rows import dumps, loads

if TYPE_CHECKING:
    from collections.abc import Collection
    from datetime import datetime

    from asyncpg import Pool, Record

__all__ = ["PostgresSchedules"]

_COLUMNS = (
    "id, workflow, cron, tz, input, overlap, catchup, start_at, end_at, paused, "
    "next_fire_at, last_tick_at, last_run_id, created_at, updated_at"
)
_NOTIFY = "notified AS (SELECT pg_notify('perdure_changes', 'schedule'))"
_PUT = f"""
    WITH stored AS (
        INSERT INTO schedules ({_COLUMNS})
        VALUES ($1, $2, $3, $4, $5::json, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15)
        ON CONFLICT (id) DO UPDATE SET
            workflow = excluded.workflow, cron = excluded.cron, tz = excluded.tz,
            input = excluded.input, overlap = excluded.overlap, catchup = excluded.catchup,
            start_at = excluded.start_at, end_at = excluded.end_at, paused = excluded.paused,
            next_fire_at = excluded.next_fire_at, updated_at = excluded.updated_at
        RETURNING {_COLUMNS}
    ), {_NOTIFY}
    SELECT stored.* FROM stored, notified
"""  # noqa: S608 - column names only, no values
_GET = f"SELECT {_COLUMNS} FROM schedules WHERE id = $1"  # noqa: S608
_LIST = f"SELECT {_COLUMNS} FROM schedules ORDER BY id"  # noqa: S608
_DELETE = f"""
    WITH gone AS (DELETE FROM schedules WHERE id = $1 RETURNING 1), {_NOTIFY}
    SELECT count(*) FROM gone, notified
"""  # noqa: S608 - no values
_DUE = f"""
    SELECT {_COLUMNS} FROM schedules
     WHERE NOT paused AND next_fire_at <= $1 AND ($2::text[] IS NULL OR workflow = ANY($2))
     ORDER BY next_fire_at, id LIMIT $3
"""  # noqa: S608
_NEXT = """
    SELECT min(next_fire_at) FROM schedules
     WHERE NOT paused AND ($1::text[] IS NULL OR workflow = ANY($1))
"""
_ADVANCE = """
    UPDATE schedules SET next_fire_at = $3, updated_at = $4,
           last_tick_at = coalesce($5, last_tick_at), last_run_id = coalesce($6, last_run_id)
     WHERE id = $1 AND next_fire_at = $2
"""
_NOTE = """
    UPDATE schedules SET last_tick_at = $2, last_run_id = $3, updated_at = $4 WHERE id = $1
"""


def _record(row: Record) -> ScheduleRecord:
    return ScheduleRecord(
        id=row["id"],
        workflow=row["workflow"],
        cron=row["cron"],
        tz=row["tz"],
        input=loads(row["input"]),
        overlap=row["overlap"],
        catchup=row["catchup"],
        start_at=row["start_at"],
        end_at=row["end_at"],
        paused=row["paused"],
        next_fire_at=row["next_fire_at"],
        last_tick_at=row["last_tick_at"],
        last_run_id=row["last_run_id"],
        created_at=row["created_at"],
        updated_at=row["updated_at"],
    )


def _utc(moment: datetime | None) -> datetime | None:
    return None if moment is None else utc(moment)


def _names(workflows: Collection[str] | None) -> list[str] | None:
    return None if workflows is None else sorted(workflows)


class PostgresSchedules:
    """`ScheduleStore` for `PostgresStore`, which supplies its pool as ``_db``."""

    if TYPE_CHECKING:

        @property
        def _db(self) -> Pool[Record]: ...

    async def put_schedule(self, schedule: ScheduleRecord) -> ScheduleRecord:
        """Create or update the schedule, durably, and notify; the row as stored."""
        row = await self._db.fetchrow(
            _PUT,
            schedule.id,
            schedule.workflow,
            schedule.cron,
            schedule.tz,
            dumps(schedule.input),
            schedule.overlap,
            schedule.catchup,
            _utc(schedule.start_at),
            _utc(schedule.end_at),
            schedule.paused,
            _utc(schedule.next_fire_at),
            _utc(schedule.last_tick_at),
            schedule.last_run_id,
            utc(schedule.created_at),
            utc(schedule.updated_at),
        )
        assert row is not None  # noqa: S101 - an upsert returns its row
        return _record(row)

    async def get_schedule(self, schedule_id: str) -> ScheduleRecord | None:
        """The schedule, or None."""
        row = await self._db.fetchrow(_GET, schedule_id)
        return None if row is None else _record(row)

    async def list_schedules(self) -> list[ScheduleRecord]:
        """Every schedule, by id."""
        return [_record(row) for row in await self._db.fetch(_LIST)]

    async def delete_schedule(self, schedule_id: str) -> bool:
        """Delete the schedule, durably, and notify; whether it existed."""
        return bool(await self._db.fetchval(_DELETE, schedule_id))

    async def due_schedules(
        self, now: datetime, *, workflows: Collection[str] | None = None, limit: int = 100
    ) -> list[ScheduleRecord]:
        """Unpaused schedules (of ``workflows``) due at ``now``, soonest first."""
        if workflows is not None and not workflows:
            return []
        found = await self._db.fetch(_DUE, utc(now), _names(workflows), max(limit, 0))
        return [_record(row) for row in found]

    async def next_fire_at(self, *, workflows: Collection[str] | None = None) -> datetime | None:
        """The earliest ``next_fire_at`` of the unpaused schedules (of ``workflows``)."""
        if workflows is not None and not workflows:
            return None
        moment: datetime | None = await self._db.fetchval(_NEXT, _names(workflows))
        return moment

    async def advance_schedule(
        self,
        schedule_id: str,
        expected: datetime,
        next_fire_at: datetime | None,
        now: datetime,
        *,
        last_run: tuple[datetime, str] | None = None,
    ) -> bool:
        """Move ``next_fire_at`` on, if it still is ``expected``."""
        tick, run_id = last_run if last_run is not None else (None, None)
        status = await self._db.execute(
            _ADVANCE, schedule_id, utc(expected), _utc(next_fire_at), utc(now), _utc(tick), run_id
        )
        return status.split()[-1] != "0"

    async def note_schedule_run(
        self, schedule_id: str, tick: datetime, run_id: str, now: datetime
    ) -> None:
        """Record a triggered run as the schedule's last."""
        await self._db.execute(_NOTE, schedule_id, utc(tick), run_id, utc(now))
