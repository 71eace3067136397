"""`Engine`'s schedule calls: schedule, list, pause, resume, trigger, backfill, delete.

A mixin of `Engine`, so the API, the CLI and the HTTP app share one implementation,
and `_engine.py` stays about runs. What a schedule is and when it ticks is decided in
`perdure._schedules`; the worker starts the runs of due ticks
(`perdure._runtime._ticker`). Every option is checked before anything is written: a
bad one is a ValueError naming it, and the database is left as it was.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime
from typing import TYPE_CHECKING, Any

from perdure._runtime._ticker import start_scheduled_run
from perdure._schedules import (
    ScheduleRecord,
    check_schedule,
    first_tick,
    manual_run_id,
    merged,
    tick_run_id,
    ticks_between,
    wanted_schedule,
)
from perdure._store_calls import read, write

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence

    from perdure._clock import Clock
    from perdure._records import RunRecord
    from perdure._schedules import Catchup, Overlap
    from perdure._workflow import Workflow
    from perdure.stores import Store

__all__ = ["MAX_BACKFILL", "ScheduleMethods"]

MAX_BACKFILL = 10_000
"""The most ticks one `backfill_schedule` starts runs for: a wrong range (a per-second
schedule over a year) is refused with a ValueError rather than writing millions of runs."""


class ScheduleMethods:
    """The schedule calls of `Engine` (which supplies the store, clock and signals)."""

    if TYPE_CHECKING:
        store: Store
        clock: Clock

        def _require_open(self) -> None: ...

        def _signal(self) -> None: ...

    async def schedule(
        self,
        schedule_id: str,
        workflow: Workflow[..., Any],
        *,
        cron: str,
        tz: str = "UTC",
        args: Sequence[Any] = (),
        kwargs: Mapping[str, Any] | None = None,
        overlap: Overlap = "skip",
        catchup: Catchup = "latest",
        start_at: datetime | None = None,
        end_at: datetime | None = None,
    ) -> ScheduleRecord:
        """Create or update a schedule stored in the database; the schedule as stored.

        Each tick of ``cron`` (five fields, or six with seconds first) in time zone
        ``tz`` starts one run of ``workflow(*args, **kwargs)`` across all workers, with
        the run id ``<schedule_id>@<tick in UTC>`` and the attributes ``schedule`` and
        ``tick``. Across a DST change it ticks as cronsim (and Debian's cron) does: see
        `perdure._schedules`.

        Args:
            schedule_id: the schedule's id (no ``@``); calling again with it updates it.
                An update keeps the schedule paused if it was, and keeps its next tick
                when the timing (cron, tz, start_at, end_at) is unchanged.
            workflow: a ``@workflow`` function.
            cron: when it ticks.
            tz: the IANA time zone the expression is read in.
            args: positional arguments of every run.
            kwargs: keyword arguments of every run.
            overlap: while the schedule's previous run is live (pending, running or
                blocked), a tick is skipped (``"skip"``), starts anyway (``"allow"``),
                or cancels it first (``"cancel_previous"``).
            catchup: ticks missed while no worker was up (found due a minute or more
                late) start, when a worker comes back: the ``"latest"`` only, ``"none"``,
                or ``"all"`` (oldest first, side by side: overlap is judged once for
                them, against the run that was live before).
            start_at: no tick before this moment (aware).
            end_at: no tick after this moment (aware).

        Raises:
            TypeError: ``workflow`` is not a @workflow, or an argument cannot be
                serialized.
            ValueError: a malformed cron expression, an unknown time zone, an unknown
                overlap or catchup value, ``end_at`` before ``start_at``, or a bad id;
                nothing is stored.
        """
        self._require_open()
        check_schedule(schedule_id, cron, tz, overlap, catchup, start_at, end_at)
        spec = getattr(workflow, "__perdure_workflow__", None)
        if spec is None:
            raise TypeError(f"schedule() needs a @workflow function, got {workflow!r}")
        encoded = spec.codec.encode_args(tuple(args), dict(kwargs or {}))
        now = self.clock.now()
        wanted = wanted_schedule(
            schedule_id,
            spec.name,
            cron,
            tz,
            encoded,
            now,
            overlap=overlap,
            catchup=catchup,
            start_at=start_at,
            end_at=end_at,
        )
        existing = await self._read_schedule(schedule_id)
        record = merged(existing, wanted, now)
        stored = await write(
            lambda: self.store.put_schedule(record),
            f"storing schedule {schedule_id!r}",
            idempotent=True,
        )
        self._signal()
        return stored

    async def schedules(self) -> list[ScheduleRecord]:
        """Every schedule, by id."""
        self._require_open()
        return await read(self.store.list_schedules, "listing schedules")

    async def get_schedule(self, schedule_id: str) -> ScheduleRecord:
        """The schedule with this id.

        Raises:
            LookupError: no schedule has that id.
        """
        self._require_open()
        return await self._schedule_or_raise(schedule_id)

    async def pause_schedule(self, schedule_id: str) -> ScheduleRecord:
        """Stop starting runs: ticks pass without runs until `resume_schedule`.

        Runs already started go on. Pausing a paused schedule changes nothing.

        Raises:
            LookupError: no schedule has that id.
        """
        return await self._set_paused(schedule_id, paused=True)

    async def resume_schedule(self, schedule_id: str) -> ScheduleRecord:
        """Start runs again from the next tick on.

        The ticks passed while paused start nothing. Resuming a schedule that is not
        paused changes nothing.

        Raises:
            LookupError: no schedule has that id.
        """
        return await self._set_paused(schedule_id, paused=False)

    async def _trigger(self, schedule_id: str) -> RunRecord:
        """`Engine.trigger_schedule`, up to the run handles."""
        self._require_open()
        schedule = await self._schedule_or_raise(schedule_id)
        now = self.clock.now()
        run_id = manual_run_id(schedule_id)
        await write(
            lambda: start_scheduled_run(self.store, schedule, now, run_id, now),
            f"triggering schedule {schedule_id!r}",
            idempotent=True,
        )
        await write(
            lambda: self.store.note_schedule_run(schedule_id, now, run_id, now),
            f"recording the run of schedule {schedule_id!r}",
            idempotent=True,
        )
        self._signal()
        return await self._run(run_id)

    async def _backfill(self, schedule_id: str, start: datetime, end: datetime) -> list[RunRecord]:
        """`Engine.backfill_schedule`, up to the run handles."""
        self._require_open()
        for name, moment in (("start", start), ("end", end)):
            if not isinstance(moment, datetime) or moment.tzinfo is None:
                raise ValueError(
                    f"backfill {name} must be a timezone-aware datetime, got {moment!r}"
                )
        if end < start:
            raise ValueError(
                f"backfill end ({end.isoformat()}) is before start ({start.isoformat()})"
            )
        schedule = await self._schedule_or_raise(schedule_id)
        ticks = ticks_between(schedule, start, end, limit=MAX_BACKFILL + 1)
        if len(ticks) > MAX_BACKFILL:
            raise ValueError(
                f"backfill of {schedule_id!r} from {start.isoformat()} to {end.isoformat()} "
                f"holds more than {MAX_BACKFILL} ticks; backfill a shorter range"
            )
        now = self.clock.now()
        run_ids = [tick_run_id(schedule_id, tick) for tick in ticks]
        for tick, run_id in zip(ticks, run_ids, strict=True):

            async def start_one(tick: datetime = tick, run_id: str = run_id) -> bool:
                return await start_scheduled_run(self.store, schedule, tick, run_id, now)

            await write(start_one, f"backfilling schedule {schedule_id!r}", idempotent=True)
        if run_ids:
            self._signal()
        return [await self._run(run_id) for run_id in run_ids]

    async def delete_schedule(self, schedule_id: str) -> None:
        """Delete the schedule; its runs, started or running, are left alone.

        Raises:
            LookupError: no schedule has that id.
        """
        self._require_open()
        existed = await write(
            lambda: self.store.delete_schedule(schedule_id),
            f"deleting schedule {schedule_id!r}",
            idempotent=True,
        )
        if not existed:
            raise LookupError(f"no schedule with id {schedule_id!r}")
        self._signal()

    # -- helpers ----------------------------------------------------------------------

    async def _read_schedule(self, schedule_id: str) -> ScheduleRecord | None:
        return await read(
            lambda: self.store.get_schedule(schedule_id), f"reading schedule {schedule_id!r}"
        )

    async def _schedule_or_raise(self, schedule_id: str) -> ScheduleRecord:
        schedule = await self._read_schedule(schedule_id)
        if schedule is None:
            raise LookupError(f"no schedule with id {schedule_id!r}")
        return schedule

    async def _set_paused(self, schedule_id: str, *, paused: bool) -> ScheduleRecord:
        self._require_open()
        schedule = await self._schedule_or_raise(schedule_id)
        if schedule.paused == paused:
            return schedule
        now = self.clock.now()
        # Resumed, it ticks from now on: the ticks it passed while paused are not missed.
        next_fire_at = schedule.next_fire_at if paused else first_tick(schedule, now)
        changed = replace(schedule, paused=paused, next_fire_at=next_fire_at, updated_at=now)
        stored = await write(
            lambda: self.store.put_schedule(changed),
            f"{'pausing' if paused else 'resuming'} schedule {schedule_id!r}",
            idempotent=True,
        )
        self._signal()
        return stored

    async def _run(self, run_id: str) -> RunRecord:
        record = await read(lambda: self.store.get_run(run_id), f"reading run {run_id!r}")
        if record is None:  # pragma: no cover - runs are never deleted
            raise LookupError(f"run {run_id!r} was started and yet cannot be read")
        return record
