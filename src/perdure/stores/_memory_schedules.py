"""The schedules of `MemoryStore`: the reference `ScheduleStore`, in a dict.

A mixin, so the reference store's run and log code stays one read; `MemoryStore`
inherits it and gives it its change notification (`_changed`).
"""

from __future__ import annotations

import json
from dataclasses import replace
from typing import TYPE_CHECKING

from perdure.stores._common import utc

if TYPE_CHECKING:
    from collections.abc import Collection
    from datetime import datetime

    from perdure._schedules import ScheduleRecord

__all__ = ["MemorySchedules"]


class MemorySchedules:
    """`ScheduleStore` on a dict of records; each call is atomic on the event loop."""

    _schedules: dict[str, ScheduleRecord]

    def _changed(self) -> None:  # pragma: no cover - MemoryStore's own is used
        raise NotImplementedError

    async def put_schedule(self, schedule: ScheduleRecord) -> ScheduleRecord:
        """Create or update the schedule; the row as stored."""
        stored = replace(
            schedule,
            input=json.loads(json.dumps(schedule.input)),  # as through a JSON column
            start_at=_utc(schedule.start_at),
            end_at=_utc(schedule.end_at),
            next_fire_at=_utc(schedule.next_fire_at),
            created_at=utc(schedule.created_at),
            updated_at=utc(schedule.updated_at),
            last_tick_at=_utc(schedule.last_tick_at),
        )
        existing = self._schedules.get(schedule.id)
        if existing is not None:
            stored = replace(
                stored,
                created_at=existing.created_at,
                last_tick_at=existing.last_tick_at,
                last_run_id=existing.last_run_id,
            )
        self._schedules[schedule.id] = stored
        self._changed()
        return stored

    async def get_schedule(self, schedule_id: str) -> ScheduleRecord | None:
        """The schedule, or None."""
        return self._schedules.get(schedule_id)

    async def list_schedules(self) -> list[ScheduleRecord]:
        """Every schedule, by id."""
        return [self._schedules[key] for key in sorted(self._schedules)]

    async def delete_schedule(self, schedule_id: str) -> bool:
        """Delete the schedule; whether it existed."""
        existed = self._schedules.pop(schedule_id, None) is not None
        if existed:
            self._changed()
        return existed

    async def due_schedules(
        self, now: datetime, *, workflows: Collection[str] | None = None, limit: int = 100
    ) -> list[ScheduleRecord]:
        """Unpaused schedules (of ``workflows``) due at ``now``, soonest first."""
        now = utc(now)
        due = [
            schedule
            for schedule in self._live(workflows)
            if schedule.next_fire_at is not None and schedule.next_fire_at <= now
        ]
        due.sort(key=lambda schedule: (schedule.next_fire_at, schedule.id))
        return due[: max(limit, 0)]

    async def next_fire_at(self, *, workflows: Collection[str] | None = None) -> datetime | None:
        """The earliest ``next_fire_at`` of the unpaused schedules (of ``workflows``)."""
        times = [s.next_fire_at for s in self._live(workflows) if s.next_fire_at is not None]
        return min(times, default=None)

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
        schedule = self._schedules.get(schedule_id)
        if schedule is None or schedule.next_fire_at != utc(expected):
            return False
        moved = replace(schedule, next_fire_at=_utc(next_fire_at), updated_at=utc(now))
        if last_run is not None:
            moved = replace(moved, last_tick_at=utc(last_run[0]), last_run_id=last_run[1])
        self._schedules[schedule_id] = moved
        return True

    async def note_schedule_run(
        self, schedule_id: str, tick: datetime, run_id: str, now: datetime
    ) -> None:
        """Record a triggered run as the schedule's last."""
        schedule = self._schedules.get(schedule_id)
        if schedule is not None:
            self._schedules[schedule_id] = replace(
                schedule, last_tick_at=utc(tick), last_run_id=run_id, updated_at=utc(now)
            )

    def _live(self, workflows: Collection[str] | None) -> list[ScheduleRecord]:
        return [
            schedule
            for schedule in self._schedules.values()
            if not schedule.paused and (workflows is None or schedule.workflow in workflows)
        ]


def _utc(moment: datetime | None) -> datetime | None:
    return None if moment is None else utc(moment)
