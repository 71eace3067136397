"""Schedules: what one is, when it ticks, and which of its ticks start a run.

A schedule is a row in the database (`ScheduleRecord`), not a loop in some process:
every worker that defines its workflow looks at it, and the run each tick starts has
an id derived from the schedule and the tick (`tick_run_id`), so two workers that see
the same tick at once create one run (creating a run is idempotent on its id). The
row's ``next_fire_at`` is the earliest tick not yet handled; the worker that handles it
moves it on with a compare-and-set, so a tick is looked at once in the usual case and
at most twice (both times to the same run id) when workers race.

Cron expressions are parsed by cronsim (five fields, or six with seconds first) in the
schedule's time zone (`zoneinfo`). Across a DST change cronsim does what Debian's cron
does, and so do we: a tick at a fixed time that falls in the hour skipped in spring
fires at the first minute after it (``30 2 * * *`` in Europe/Paris fires at 03:00 on
the last Sunday of March); one in the hour repeated in autumn fires once, at the first
occurrence; expressions with a ``*`` in the minute or hour field tick by the clock of
the world (``*/15 * * * *`` ticks every fifteen real minutes, both 02:00s included).

This module is pure: it reads no clock and touches no store, so the rules are tested
alone and every store and worker applies the same ones.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Literal, get_args
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from cronsim import CronSim, CronSimError

if TYPE_CHECKING:
    from collections.abc import Iterator

    from perdure._records import JSON

__all__ = [
    "CATCHUP",
    "CATCHUP_GRACE",
    "MAX_TICKS_PER_PASS",
    "OVERLAP",
    "Catchup",
    "Overlap",
    "ScheduleRecord",
    "Tick",
    "check_schedule",
    "declare",
    "declared_schedules",
    "due_ticks",
    "first_tick",
    "manual_run_id",
    "merged",
    "tick_run_id",
    "ticks_between",
    "wanted_schedule",
]

Overlap = Literal["skip", "allow", "cancel_previous"]
Catchup = Literal["latest", "none", "all"]
OVERLAP: tuple[str, ...] = get_args(Overlap)
CATCHUP: tuple[str, ...] = get_args(Catchup)

CATCHUP_GRACE = timedelta(seconds=60)
"""A tick found due this long after its time or more was missed (no worker was up).

``catchup="none"`` skips such ticks. A worker wakes for a tick within milliseconds
(BENCHMARKS.md, "Schedules"), so a minute tells downtime from lateness with room to
spare, even on a loaded machine or across a database restart.
"""

MAX_TICKS_PER_PASS = 100
"""``catchup="all"`` starts at most this many missed ticks per worker pass; the next
pass goes on from there, so a long outage of an every-second schedule does not make
one pass create a day of runs while nothing else moves."""


@dataclass(frozen=True, slots=True)
class ScheduleRecord:
    """A schedule as stored: what to start, when, and where it stands.

    Attributes:
        id: the schedule's id, chosen by the user.
        workflow: the name of the workflow each tick starts.
        cron: the cron expression (five fields, or six with seconds first).
        tz: the IANA time zone the expression is read in.
        input: the encoded arguments of every run (as a run's ``input``).
        overlap: what a tick does while the schedule's previous run is still live:
            ``skip`` it, ``allow`` both, or ``cancel_previous``.
        catchup: which ticks missed while no worker was up start a run when one
            comes back: the ``latest`` only, ``none``, or ``all``.
        start_at: no tick before this moment (None: from creation on).
        end_at: no tick after this moment (None: forever).
        paused: ticks pass without runs until resumed.
        next_fire_at: the earliest tick not yet handled; None when none is left
            (past ``end_at``).
        last_tick_at: the tick of the last run the schedule started (a trigger's: when
            it was triggered).
        last_run_id: the last run the schedule started; overlap looks at it.
        created_at: when the schedule was first stored.
        updated_at: when it last changed.
    """

    id: str
    workflow: str
    cron: str
    tz: str
    input: JSON
    overlap: str
    catchup: str
    start_at: datetime | None
    end_at: datetime | None
    paused: bool
    next_fire_at: datetime | None
    last_tick_at: datetime | None
    last_run_id: str | None
    created_at: datetime
    updated_at: datetime

    def same_timing(self, other: ScheduleRecord) -> bool:
        """Whether ``other`` ticks at the very same moments as this one."""
        return (self.cron, self.tz, self.start_at, self.end_at) == (
            other.cron,
            other.tz,
            other.start_at,
            other.end_at,
        )


@dataclass(frozen=True, slots=True)
class Tick:
    """One tick a worker acts on: when it was due, and the run id it starts."""

    at: datetime
    run_id: str


def check_schedule(
    schedule_id: object,
    cron: object,
    tz: object,
    overlap: object,
    catchup: object,
    start_at: datetime | None,
    end_at: datetime | None,
) -> ZoneInfo:
    """Check a schedule's options; its time zone. Raises ValueError naming what is wrong.

    Called before anything is stored, so a bad schedule leaves the database as it was.
    """
    if not isinstance(schedule_id, str) or not schedule_id.strip():
        raise ValueError(f"a schedule id must be a non-empty string, got {schedule_id!r}")
    if "@" in schedule_id:
        # Run ids are "<schedule id>@<tick>": an "@" in the id would make them ambiguous.
        raise ValueError(f"a schedule id must not contain '@', got {schedule_id!r}")
    if not isinstance(cron, str):
        raise ValueError(f"cron must be a string such as '0 9 * * *', got {cron!r}")  # noqa: TRY004
    zone = _zone(tz)
    try:
        CronSim(cron, datetime(2000, 1, 1, tzinfo=zone))
    except (CronSimError, ValueError, IndexError) as exc:
        raise ValueError(f"malformed cron expression {cron!r}: {exc}") from None
    if overlap not in OVERLAP:
        raise ValueError(f"overlap must be one of {', '.join(OVERLAP)}; got {overlap!r}")
    if catchup not in CATCHUP:
        raise ValueError(f"catchup must be one of {', '.join(CATCHUP)}; got {catchup!r}")
    for name, moment in (("start_at", start_at), ("end_at", end_at)):
        if moment is not None and (not isinstance(moment, datetime) or moment.tzinfo is None):
            raise ValueError(f"{name} must be a timezone-aware datetime, got {moment!r}")
    if start_at is not None and end_at is not None and end_at < start_at:
        raise ValueError(
            f"end_at ({end_at.isoformat()}) is before start_at ({start_at.isoformat()})"
        )
    return zone


def _zone(tz: object) -> ZoneInfo:
    if not isinstance(tz, str) or not tz:
        raise ValueError(f"tz must be an IANA time zone name such as 'Europe/Paris', got {tz!r}")
    try:
        return ZoneInfo(tz)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"unknown time zone {tz!r}") from None


def _after(cron: str, zone: ZoneInfo, moment: datetime) -> Iterator[datetime]:
    """The ticks strictly after ``moment``, in UTC, in order."""
    for tick in CronSim(cron, moment.astimezone(zone)):
        yield tick.astimezone(UTC)


def _latest_at_or_before(cron: str, zone: ZoneInfo, moment: datetime) -> datetime | None:
    """The last tick at or before ``moment``, in UTC; None if there is none for 50 years."""
    # cronsim's reverse iteration includes its start only when it has microseconds.
    start = moment.replace(microsecond=0) + timedelta(microseconds=1)
    try:
        return next(CronSim(cron, start.astimezone(zone), reverse=True)).astimezone(UTC)
    except StopIteration:
        return None


def first_tick(record: ScheduleRecord, now: datetime) -> datetime | None:
    """The first tick of a schedule stored (or re-timed, or resumed) at ``now``.

    The first after ``now``, and not before ``start_at``; None when it would be past
    ``end_at``. Ticks before ``now`` are not missed ticks: the schedule did not exist.
    """
    zone = ZoneInfo(record.tz)
    after = now
    if record.start_at is not None and record.start_at > now:
        after = record.start_at - timedelta(microseconds=1)  # a tick at start_at counts
    return _bounded(next(_after(record.cron, zone, after), None), record)


def _bounded(tick: datetime | None, record: ScheduleRecord) -> datetime | None:
    if tick is None or (record.end_at is not None and tick > record.end_at):
        return None
    return tick


def due_ticks(record: ScheduleRecord, now: datetime) -> tuple[list[datetime], datetime | None]:
    """The ticks to start runs for at ``now``, and the schedule's next ``next_fire_at``.

    The due ticks are those from ``next_fire_at`` to ``now`` (and not past ``end_at``).
    A tick less than `CATCHUP_GRACE` late is on time and always fires; older ones were
    missed, and ``catchup`` says which of them fire: the ``latest`` only (the default),
    ``none``, or ``all`` (at most `MAX_TICKS_PER_PASS` at a time; the next
    ``next_fire_at`` is then the first tick left). A paused schedule fires none.
    """
    cursor = record.next_fire_at
    if cursor is None or cursor > now:
        return [], cursor
    zone = ZoneInfo(record.tz)
    limit = now if record.end_at is None else min(now, record.end_at)
    if record.catchup == "all":
        ticks = [cursor] if cursor <= limit else []
        following = _after(record.cron, zone, cursor)
        while len(ticks) < MAX_TICKS_PER_PASS:
            tick = next(following, None)
            if tick is None or tick > limit:
                return ticks, _bounded(tick, record)
            ticks.append(tick)
        return ticks, _bounded(next(following, None), record)
    latest = _latest_at_or_before(record.cron, zone, limit)
    if latest is None or latest < cursor:
        latest = cursor if cursor <= limit else None
    fire = [] if latest is None else [latest]
    if record.catchup == "none" and latest is not None and now - latest >= CATCHUP_GRACE:
        fire = []
    if record.paused:
        fire = []
    return fire, _bounded(next(_after(record.cron, zone, max(now, cursor)), None), record)


def ticks_between(
    record: ScheduleRecord, start: datetime, end: datetime, *, limit: int
) -> list[datetime]:
    """The ticks in ``[start, end]``, in UTC, in order, at most ``limit`` (a backfill's)."""
    zone = ZoneInfo(record.tz)
    ticks: list[datetime] = []
    for tick in _after(record.cron, zone, start - timedelta(microseconds=1)):
        if tick > end or len(ticks) >= limit:
            break
        ticks.append(tick)
    return ticks


def tick_run_id(schedule_id: str, tick: datetime) -> str:
    """The id of the run a schedule's tick starts: the same for every worker.

    ``daily-report@2026-03-30T07:00:00Z``: readable, and sorted as the ticks are.
    """
    utc = tick.astimezone(UTC)
    stamp = utc.strftime("%Y-%m-%dT%H:%M:%S")
    if utc.microsecond:
        stamp += f".{utc.microsecond:06d}"
    return f"{schedule_id}@{stamp}Z"


def manual_run_id(schedule_id: str) -> str:
    """The id of a run started by `Engine.trigger_schedule`: each call starts one."""
    return f"{schedule_id}@manual-{uuid.uuid4().hex[:16]}"


def wanted_schedule(
    schedule_id: str,
    workflow: str,
    cron: str,
    tz: str,
    input: JSON,  # noqa: A002 (the record's field)
    now: datetime,
    *,
    overlap: str = "skip",
    catchup: str = "latest",
    start_at: datetime | None = None,
    end_at: datetime | None = None,
) -> ScheduleRecord:
    """A schedule as its caller asks for it, before `merged` weighs the stored one.

    Not paused and never fired: `merged` keeps what a stored schedule already has.
    """
    return ScheduleRecord(
        id=schedule_id,
        workflow=workflow,
        cron=cron,
        tz=tz,
        input=input,
        overlap=overlap,
        catchup=catchup,
        start_at=start_at,
        end_at=end_at,
        paused=False,
        next_fire_at=None,
        last_tick_at=None,
        last_run_id=None,
        created_at=now,
        updated_at=now,
    )


def merged(
    existing: ScheduleRecord | None, wanted: ScheduleRecord, now: datetime
) -> ScheduleRecord:
    """What to store when a schedule is created or updated to ``wanted`` at ``now``.

    A new schedule first ticks after ``now`` (`first_tick`). An update keeps where the
    schedule stands (``paused``, its last run) and, when its timing is unchanged, its
    ``next_fire_at``: a worker restarting with the same ``@workflow(schedule=...)`` then
    still starts the tick it missed while down. New timing starts afresh from ``now``.
    """
    if existing is None:
        return replace(wanted, next_fire_at=first_tick(wanted, now), created_at=now, updated_at=now)
    next_fire_at = (
        existing.next_fire_at if existing.same_timing(wanted) else first_tick(wanted, now)
    )
    return replace(
        wanted,
        paused=existing.paused,
        next_fire_at=next_fire_at,
        last_tick_at=existing.last_tick_at,
        last_run_id=existing.last_run_id,
        created_at=existing.created_at,
        updated_at=now,
    )


_CRON_TZ = "CRON_TZ="
_declared: dict[str, tuple[str, str]] = {}


def declare(workflow_name: str, schedule: object) -> None:
    """Record ``@workflow(schedule=...)``: checked now, stored when a worker starts.

    ``schedule`` is a cron expression read in UTC, or, as cronie's crontab has it,
    prefixed with the time zone: ``"CRON_TZ=Europe/Paris 0 9 * * MON-FRI"``. The
    schedule's id is the workflow's name. Raises ValueError naming what is wrong.
    """
    if not isinstance(schedule, str):
        raise ValueError(  # noqa: TRY004 - a bad option value, as the other checks say
            f"@workflow(schedule=...) of {workflow_name!r} takes a cron string, got {schedule!r}"
        )
    cron, tz = schedule.strip(), "UTC"
    if cron.startswith(_CRON_TZ):
        head, _, cron = cron.partition(" ")
        tz, cron = head.removeprefix(_CRON_TZ), cron.strip()
    try:
        check_schedule(workflow_name, cron, tz, "skip", "latest", None, None)
    except ValueError as exc:
        raise ValueError(f"@workflow(schedule=...) of {workflow_name!r}: {exc}") from None
    _declared[workflow_name] = (cron, tz)


def declared_schedules() -> dict[str, tuple[str, str]]:
    """The schedules ``@workflow(schedule=...)`` declared in this process: name -> (cron, tz)."""
    return dict(_declared)
