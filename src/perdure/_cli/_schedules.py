"""``perdure schedules``: list schedules, and pause, resume, trigger, backfill, delete one.

Each acts through an Engine without a worker (`perdure._cli._common.engine`), as the
HTTP API does, so the checks are the Engine's own. An unknown schedule id is wrong
usage (exit 2), as an unknown run id is everywhere else.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING, Annotated

import typer
from rich import box
from rich.table import Table

from perdure._cli._common import (
    USAGE,
    CliError,
    DatabaseUrl,
    JsonFlag,
    engine,
    reporting,
    resolve_url,
    run,
    shown_url,
)
from perdure._cli._output import note, out, print_json, when
from perdure._schedule_views import last_runs, schedule_json

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable

    from perdure._engine import Engine
    from perdure._records import JSON
    from perdure._schedules import ScheduleRecord

__all__ = ["schedules_app"]

schedules_app = typer.Typer(
    help="List schedules, or pause, resume, trigger, backfill or delete one. Without a "
    "command: the list, with each schedule's next fire time and its last runs.",
    no_args_is_help=False,
    invoke_without_command=True,
)

ScheduleId = Annotated[
    str, typer.Argument(metavar="SCHEDULE", help="The schedule's id.", show_default=False)
]


@schedules_app.callback()
def schedules(
    ctx: typer.Context, as_json: JsonFlag = False, database_url: DatabaseUrl = None
) -> None:
    """List the schedules: cron, zone, next fire time (UTC), state, and the last runs."""
    if ctx.invoked_subcommand is not None:
        return
    url = resolve_url(database_url)

    async def main() -> list[tuple[ScheduleRecord, list[dict[str, JSON]]]]:
        async with engine(url) as steering:
            return [
                (schedule, await last_runs(steering, schedule.id))
                for schedule in await steering.schedules()
            ]

    found = run(main())
    if as_json:
        print_json([schedule_json(schedule, runs) for schedule, runs in found])
        return
    if not found:
        out().print(f"no schedules in {shown_url(url)}")
        return
    table = Table(header_style="bold", box=box.SIMPLE_HEAD, show_edge=False, padding=(0, 1, 0, 0))
    for column in ("id", "workflow", "cron", "tz", "next (UTC)", "state", "last runs"):
        table.add_column(column, no_wrap=column != "last runs")
    for schedule, runs in found:
        state = "paused" if schedule.paused else schedule.overlap
        shown = ", ".join(f"{r['tick'] or r['created_at']} {r['status']}" for r in runs[:3])
        table.add_row(
            schedule.id,
            schedule.workflow,
            schedule.cron,
            schedule.tz,
            "-" if schedule.paused else when(schedule.next_fire_at),
            state,
            shown or "-",
        )
    out().print(table)


def _act(
    url: str, action: Callable[[Engine], Awaitable[JSON]], as_json: bool, message: str
) -> None:
    async def main() -> JSON:
        async with engine(url) as steering:
            try:
                return await action(steering)
            except LookupError as exc:
                raise CliError(str(exc).strip("'\""), USAGE) from None
            except ValueError as exc:
                raise CliError(str(exc), USAGE) from None

    result = run(main())
    if as_json:
        print_json(result)
    else:
        note(message.format(result=result), label="ok")


@schedules_app.command()
def pause(
    schedule_id: ScheduleId, as_json: JsonFlag = False, database_url: DatabaseUrl = None
) -> None:
    """Pause a schedule: its ticks pass without runs until it is resumed."""

    async def action(steering: Engine) -> JSON:
        return schedule_json(await steering.pause_schedule(schedule_id))

    _act(resolve_url(database_url), action, as_json, f"schedule {schedule_id} paused")


@schedules_app.command()
def resume(
    schedule_id: ScheduleId, as_json: JsonFlag = False, database_url: DatabaseUrl = None
) -> None:
    """Resume a paused schedule from its next tick (the ticks it passed start nothing)."""

    async def action(steering: Engine) -> JSON:
        return schedule_json(await steering.resume_schedule(schedule_id))

    _act(resolve_url(database_url), action, as_json, f"schedule {schedule_id} resumed")


@schedules_app.command()
def trigger(
    schedule_id: ScheduleId, as_json: JsonFlag = False, database_url: DatabaseUrl = None
) -> None:
    """Start one run of the schedule now, outside its ticks; prints the run id."""

    async def action(steering: Engine) -> JSON:
        started = await steering.trigger_schedule(schedule_id)
        return {"id": started.id, "schedule": schedule_id}

    _act(resolve_url(database_url), action, as_json, "started run {result[id]}")


def _moment(text: str, option: str) -> datetime:
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise CliError(f"{option} must be an ISO 8601 time, got {text!r}", USAGE) from None
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


@schedules_app.command()
def backfill(
    schedule_id: ScheduleId,
    start: Annotated[
        str, typer.Option("--start", metavar="TIME", help="ISO 8601; UTC unless it says.")
    ],
    end: Annotated[
        str, typer.Option("--end", metavar="TIME", help="ISO 8601; UTC unless it says.")
    ],
    as_json: JsonFlag = False,
    database_url: DatabaseUrl = None,
) -> None:
    """Start one run per tick of the schedule from --start to --end (both included).

    Idempotent: a tick that has a run already keeps it; running it again starts nothing.
    """
    url = resolve_url(database_url)
    with reporting():
        with_zone = (_moment(start, "--start"), _moment(end, "--end"))

    async def action(steering: Engine) -> JSON:
        runs = await steering.backfill_schedule(schedule_id, *with_zone)
        return [{"id": r.id, "status": r.record.status.value} for r in runs]

    _act(url, action, as_json, "{result}")


@schedules_app.command()
def delete(
    schedule_id: ScheduleId, as_json: JsonFlag = False, database_url: DatabaseUrl = None
) -> None:
    """Delete a schedule; the runs it started are left alone."""

    async def action(steering: Engine) -> JSON:
        await steering.delete_schedule(schedule_id)
        return {"id": schedule_id, "deleted": True}

    _act(resolve_url(database_url), action, as_json, f"schedule {schedule_id} deleted")
