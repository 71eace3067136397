"""The schedules of `SQLiteStore` (`ScheduleStore`): the ``schedules`` table.

A mixin, so the store's run and log code stays one read. Writes go through the store's
writer (its group commit), reads through its reader thread, like every other call.
Other processes notice a change by the file's ``data_version``, as for any commit.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, TypeVar

from perdure._schedules import ScheduleRecord
from perdure.stores.sqlite._rows import dumps, from_us, loads, to_us

if TYPE_CHECKING:
    import sqlite3
    from collections.abc import Callable, Collection
    from datetime import datetime

__all__ = ["SQLiteSchedules"]

T = TypeVar("T")

_COLUMNS = (
    "id, workflow, cron, tz, input, overlap, catchup, start_at, end_at, paused, "
    "next_fire_at, last_tick_at, last_run_id, created_at, updated_at"
)
_UPSERT = f"""
    INSERT INTO schedules ({_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
    ON CONFLICT (id) DO UPDATE SET
        workflow = excluded.workflow, cron = excluded.cron, tz = excluded.tz,
        input = excluded.input, overlap = excluded.overlap, catchup = excluded.catchup,
        start_at = excluded.start_at, end_at = excluded.end_at, paused = excluded.paused,
        next_fire_at = excluded.next_fire_at, updated_at = excluded.updated_at
"""  # noqa: S608 - column names only, no values


def _us(moment: datetime | None) -> int | None:
    return None if moment is None else to_us(moment)


def _time(value: int | None) -> datetime | None:
    return None if value is None else from_us(value)


def _record(row: tuple[Any, ...]) -> ScheduleRecord:
    (schedule_id, workflow, cron, tz, schedule_input, overlap, catchup, start_at, end_at,
     paused, next_fire_at, last_tick_at, last_run_id, created_at, updated_at) = row  # fmt: skip
    return ScheduleRecord(
        id=schedule_id,
        workflow=workflow,
        cron=cron,
        tz=tz,
        input=loads(schedule_input),
        overlap=overlap,
        catchup=catchup,
        start_at=_time(start_at),
        end_at=_time(end_at),
        paused=bool(paused),
        next_fire_at=_time(next_fire_at),
        last_tick_at=_time(last_tick_at),
        last_run_id=last_run_id,
        created_at=from_us(created_at),
        updated_at=from_us(updated_at),
    )


def _workflow_clause(workflows: Collection[str] | None) -> tuple[str, list[str]]:
    if workflows is None:
        return "", []
    names = sorted(workflows)
    return f" AND workflow IN ({', '.join('?' * len(names))})", names


def _get(conn: sqlite3.Connection, schedule_id: str) -> ScheduleRecord | None:
    row = conn.execute(
        f"SELECT {_COLUMNS} FROM schedules WHERE id = ?",  # noqa: S608
        (schedule_id,),
    ).fetchone()
    return None if row is None else _record(row)


def _put(conn: sqlite3.Connection, schedule: ScheduleRecord) -> ScheduleRecord:
    conn.execute(
        _UPSERT,
        (
            schedule.id,
            schedule.workflow,
            schedule.cron,
            schedule.tz,
            dumps(schedule.input),
            schedule.overlap,
            schedule.catchup,
            _us(schedule.start_at),
            _us(schedule.end_at),
            int(schedule.paused),
            _us(schedule.next_fire_at),
            _us(schedule.last_tick_at),
            schedule.last_run_id,
            to_us(schedule.created_at),
            to_us(schedule.updated_at),
        ),
    )
    stored = _get(conn, schedule.id)
    assert stored is not None  # noqa: S101 - written just above
    return stored


def _advance(
    conn: sqlite3.Connection,
    schedule_id: str,
    expected: datetime,
    next_fire_at: datetime | None,
    now: datetime,
    last_run: tuple[datetime, str] | None,
) -> bool:
    tick, run_id = last_run if last_run is not None else (None, None)
    return bool(
        conn.execute(
            "UPDATE schedules SET next_fire_at = ?, updated_at = ?, "
            "last_tick_at = coalesce(?, last_tick_at), last_run_id = coalesce(?, last_run_id) "
            "WHERE id = ? AND next_fire_at = ?",
            (_us(next_fire_at), to_us(now), _us(tick), run_id, schedule_id, to_us(expected)),
        ).rowcount
    )


class SQLiteSchedules:
    """`ScheduleStore` for `SQLiteStore`, which supplies ``_write`` and ``_read``."""

    if TYPE_CHECKING:

        async def _write(
            self, fn: Callable[[sqlite3.Connection], T], *, durable: bool = False
        ) -> T: ...

        async def _read(self, fn: Callable[[sqlite3.Connection], T]) -> T: ...

    async def put_schedule(self, schedule: ScheduleRecord) -> ScheduleRecord:
        """Create or update the schedule, durably; the row as stored."""
        return await self._write(lambda conn: _put(conn, schedule), durable=True)

    async def get_schedule(self, schedule_id: str) -> ScheduleRecord | None:
        """The schedule, or None."""
        return await self._read(lambda conn: _get(conn, schedule_id))

    async def list_schedules(self) -> list[ScheduleRecord]:
        """Every schedule, by id."""

        def read(conn: sqlite3.Connection) -> list[ScheduleRecord]:
            found = conn.execute(f"SELECT {_COLUMNS} FROM schedules ORDER BY id")  # noqa: S608
            return [_record(row) for row in found]

        return await self._read(read)

    async def delete_schedule(self, schedule_id: str) -> bool:
        """Delete the schedule, durably; whether it existed."""

        def delete(conn: sqlite3.Connection) -> bool:
            return bool(conn.execute("DELETE FROM schedules WHERE id = ?", (schedule_id,)).rowcount)

        return await self._write(delete, durable=True)

    async def due_schedules(
        self, now: datetime, *, workflows: Collection[str] | None = None, limit: int = 100
    ) -> list[ScheduleRecord]:
        """Unpaused schedules (of ``workflows``) due at ``now``, soonest first."""
        if workflows is not None and not workflows:
            return []
        clause, names = _workflow_clause(workflows)

        def read(conn: sqlite3.Connection) -> list[ScheduleRecord]:
            found = conn.execute(
                f"SELECT {_COLUMNS} FROM schedules WHERE paused = 0 "  # noqa: S608
                f"AND next_fire_at <= ?{clause} ORDER BY next_fire_at, id LIMIT ?",
                (to_us(now), *names, max(limit, 0)),
            )
            return [_record(row) for row in found]

        return await self._read(read)

    async def next_fire_at(self, *, workflows: Collection[str] | None = None) -> datetime | None:
        """The earliest ``next_fire_at`` of the unpaused schedules (of ``workflows``)."""
        if workflows is not None and not workflows:
            return None
        clause, names = _workflow_clause(workflows)

        def read(conn: sqlite3.Connection) -> datetime | None:
            (value,) = conn.execute(
                "SELECT min(next_fire_at) FROM schedules "  # noqa: S608
                f"WHERE paused = 0 AND next_fire_at IS NOT NULL{clause}",
                names,
            ).fetchone()
            return _time(value)

        return await self._read(read)

    async def advance_schedule(
        self,
        schedule_id: str,
        expected: datetime,
        next_fire_at: datetime | None,
        now: datetime,
        *,
        last_run: tuple[datetime, str] | None = None,
    ) -> bool:
        """Move ``next_fire_at`` on, if it still is ``expected`` (not synced at once)."""
        return await self._write(
            lambda conn: _advance(conn, schedule_id, expected, next_fire_at, now, last_run)
        )

    async def note_schedule_run(
        self, schedule_id: str, tick: datetime, run_id: str, now: datetime
    ) -> None:
        """Record a triggered run as the schedule's last."""

        def note(conn: sqlite3.Connection) -> None:
            conn.execute(
                "UPDATE schedules SET last_tick_at = ?, last_run_id = ?, updated_at = ? "
                "WHERE id = ?",
                (to_us(tick), run_id, to_us(now), schedule_id),
            )

        await self._write(note)
