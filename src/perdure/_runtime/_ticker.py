"""The worker's side of schedules: start the runs of the ticks that came due.

At every pass, a worker asks the store for the schedules of the workflows it defines
whose next tick is due, starts one run per tick to fire (`perdure._schedules.due_ticks`
says which), and moves each schedule on (`ScheduleStore.advance_schedule`). It then
sets its wake-up timer for the earliest next tick, as it does for the next sleeping run,
so a tick fires within the same latency as a sleep, and a fake clock jumps to it.

Every worker defining the workflow does this, and none coordinates with another: the
run a tick starts has an id derived from the schedule and the tick, and creating a run
is idempotent on its id, so workers seeing one tick at once start it once. The
compare-and-set that moves ``next_fire_at`` on makes that rare in the first place.

Overlap is decided here, against the schedule's last run: ``skip`` lets a tick pass
while that run is live (not ended: pending, running or blocked), ``cancel_previous``
asks for it to be cancelled first, ``allow`` starts the new run regardless.
"""

from __future__ import annotations

import logging
from dataclasses import replace
from datetime import timedelta
from typing import TYPE_CHECKING

from perdure._flow import limit_flow
from perdure._records import NewRun
from perdure._schedules import (
    ScheduleRecord,
    declared_schedules,
    due_ticks,
    merged,
    tick_run_id,
    wanted_schedule,
)
from perdure._workflow import lookup_workflow

if TYPE_CHECKING:
    from collections.abc import Collection
    from datetime import datetime

    from perdure._clock import Clock
    from perdure.stores import Store

__all__ = ["Ticker", "schedule_attributes", "start_scheduled_run"]

logger = logging.getLogger("perdure.worker")

_RETRY_FAILED = timedelta(seconds=1)
"""How soon a tick whose run could not be started is tried again (not at every pass)."""


def schedule_attributes(schedule_id: str, tick: datetime) -> dict[str, str]:
    """The attributes a run started by a schedule carries: which schedule, which tick."""
    return {"schedule": schedule_id, "tick": tick.isoformat()}


async def start_scheduled_run(
    store: Store, schedule: ScheduleRecord, tick: datetime, run_id: str, now: datetime
) -> bool:
    """Create the run of ``schedule`` for ``tick`` (idempotent on ``run_id``); whether new.

    Its version is this process's code of the workflow, if it defines it. Used by the
    worker for ticks, and by the engine for triggers and backfills.
    """
    spec = lookup_workflow(schedule.workflow)
    new = NewRun(
        run_id,
        schedule.workflow,
        schedule.input,
        spec.version if spec is not None else None,
        attributes=schedule_attributes(schedule.id, tick),
    )
    flow = limit_flow(spec, new.input) if spec is not None else None  # its workflow's limit
    if flow is not None:
        _, created = await store.create_flow_run(new, flow, now)
        return created
    _, created = await store.create_run(new, now)
    return created


class Ticker:
    """Fires a worker's due schedules; owned by the `Worker`."""

    def __init__(self, store: Store, clock: Clock) -> None:
        self._store = store
        self._clock = clock
        self._failing: set[str] = set()
        """Schedules whose last attempt failed: said once, not at every pass."""
        self.started = 0
        """Runs this worker started for ticks."""

    async def declare(self, workflows: Collection[str]) -> None:
        """Store the schedules ``@workflow(schedule=...)`` declares, of ``workflows``.

        Created, or updated where the code changed them; one a worker finds as its code
        says is left alone (no write at every start). A paused one stays paused.
        """
        now = self._clock.now()
        for name, (cron, tz) in sorted(declared_schedules().items()):
            spec = lookup_workflow(name)
            if spec is None or name not in workflows:
                continue
            wanted = wanted_schedule(name, name, cron, tz, spec.codec.encode_args((), {}), now)
            existing = await self._store.get_schedule(name)
            record = merged(existing, wanted, now)
            if existing is None or replace(record, updated_at=existing.updated_at) != existing:
                await self._store.put_schedule(record)

    async def fire(self, workflows: Collection[str]) -> tuple[bool, datetime | None]:
        """Start the runs of due ticks; whether any schedule was due, and the next tick.

        A schedule that was due may have started a run or cancelled one (overlap): the
        worker makes another pass to claim or cancel it.
        """
        if not workflows:
            return False, None
        now = self._clock.now()
        due = await self._store.due_schedules(now, workflows=workflows)
        for schedule in due:
            try:
                await self._handle(schedule, now)
            except Exception:
                if schedule.id not in self._failing:
                    logger.exception("schedule %r: starting its tick failed", schedule.id)
                self._failing.add(schedule.id)
            else:
                self._failing.discard(schedule.id)
        next_tick = await self._store.next_fire_at(workflows=workflows)
        if next_tick is not None and next_tick <= now:  # a schedule whose tick failed
            next_tick = now + _RETRY_FAILED
        return bool(due), next_tick

    async def _handle(self, schedule: ScheduleRecord, now: datetime) -> bool:
        expected = schedule.next_fire_at
        if expected is None:  # pragma: no cover - due_schedules returns none such
            return False
        ticks, next_fire_at = due_ticks(schedule, now)
        last_run: tuple[datetime, str] | None = None
        created = False
        run_ids = [tick_run_id(schedule.id, tick) for tick in ticks]
        # The ticks of one pass (several only when catchup="all") start side by side:
        # overlap is about the run that was live before them.
        previous = schedule.last_run_id
        if (
            run_ids
            and previous not in run_ids
            and not await self._clear_for(schedule, previous, now)
        ):
            logger.info(
                "schedule %r skips its tick at %s: run %s is still live",
                schedule.id,
                ticks[-1].isoformat(),
                previous,
            )
            ticks, run_ids = [], []
        for tick, run_id in zip(ticks, run_ids, strict=True):
            if await start_scheduled_run(self._store, schedule, tick, run_id, now):
                created = True
                self.started += 1
            last_run = (tick, run_id)
        await self._store.advance_schedule(
            schedule.id, expected, next_fire_at, now, last_run=last_run
        )
        return created

    async def _clear_for(
        self, schedule: ScheduleRecord, previous: str | None, now: datetime
    ) -> bool:
        """Whether a new run may start beside ``previous``, by the schedule's overlap rule."""
        if previous is None or schedule.overlap == "allow":
            return True
        record = await self._store.get_run(previous)
        if record is None or record.status.is_terminal:
            return True
        if schedule.overlap == "cancel_previous":
            await self._store.request_cancel(previous, now)
            return True
        return False  # skip
