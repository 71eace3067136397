"""The JSON shape of a schedule, shared by ``perdure schedules --json`` and the HTTP API.

One shape, so a script that reads one reads the other. Times are ISO 8601 in UTC, or
null; ``last_runs`` (when asked for) are the schedule's newest runs, found by the
``schedule`` attribute every run it starts carries.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from datetime import datetime

    from perdure._engine import Engine
    from perdure._records import JSON
    from perdure._schedules import ScheduleRecord

__all__ = ["LAST_RUNS", "last_runs", "schedule_json"]

LAST_RUNS = 5
"""How many of a schedule's newest runs the CLI and the dashboard show."""


def _iso(moment: datetime | None) -> str | None:
    return None if moment is None else moment.isoformat()


def schedule_json(
    schedule: ScheduleRecord, runs: list[dict[str, JSON]] | None = None
) -> dict[str, JSON]:
    """A schedule as JSON; with ``runs``, its last runs (`last_runs`) too."""
    shape: dict[str, JSON] = {
        "id": schedule.id,
        "workflow": schedule.workflow,
        "cron": schedule.cron,
        "tz": schedule.tz,
        "input": schedule.input,
        "overlap": schedule.overlap,
        "catchup": schedule.catchup,
        "start_at": _iso(schedule.start_at),
        "end_at": _iso(schedule.end_at),
        "paused": schedule.paused,
        "next_fire_at": None if schedule.paused else _iso(schedule.next_fire_at),
        "last_tick_at": _iso(schedule.last_tick_at),
        "last_run_id": schedule.last_run_id,
        "created_at": _iso(schedule.created_at),
        "updated_at": _iso(schedule.updated_at),
    }
    if runs is not None:
        shape["last_runs"] = runs
    return shape


async def last_runs(
    engine: Engine, schedule_id: str, limit: int = LAST_RUNS
) -> list[dict[str, Any]]:
    """The schedule's newest runs: id, status, tick, created_at."""
    found = await engine.list_runs(attributes={"schedule": schedule_id}, limit=limit)
    return [
        {
            "id": run.id,
            "status": run.record.status.value,
            "tick": (run.record.attributes or {}).get("tick"),
            "created_at": run.record.created_at.isoformat(),
        }
        for run in found
    ]
