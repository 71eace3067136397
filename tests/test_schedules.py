"""Schedules: ticks on time across DST, pause and resume, trigger, backfill, two workers
racing on one database, overlap modes, catch-up after downtime, bad input.

Every test runs on memory, SQLite and PostgreSQL, on a fake clock: a worker sets its
wake-up timer for the next tick as it does for a sleep, so an autojumping clock jumps
from tick to tick, and a run's ``created_at`` is exactly its tick.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

import pydantic
import pytest

import perdure
from helpers import wait_until
from perdure import RunStatus, define_hook, workflow
from perdure._schedules import tick_run_id
from perdure.testing import FakeClock

if TYPE_CHECKING:
    from collections.abc import Iterator

    from conftest import EngineFactory
    from perdure import Engine


REPORT = "schedules.report"
GATED = "schedules.gated"


@workflow(name="schedules.report")
async def report(day: str, copies: int = 1) -> str:
    """A scheduled job: say which run it was, with its arguments."""
    return f"{perdure.get_workflow_metadata().run_id}:{day}:{copies}"


class Go(pydantic.BaseModel):
    """Lets a gated run end."""

    ok: bool = True


go = define_hook(Go)


@workflow(name="schedules.gated")
async def gated() -> str:
    """A scheduled job that stays live until its hook (token: its run id) is resumed."""
    run_id = perdure.get_workflow_metadata().run_id
    await go.create(token=run_id)
    return run_id


def utc(
    year: int, month: int, day: int, hour: int = 0, minute: int = 0, second: int = 0
) -> datetime:
    """A UTC datetime."""
    return datetime(year, month, day, hour, minute, second, tzinfo=UTC)


async def runs_of(engine: Engine, workflow_name: str) -> dict[str, Any]:
    """The runs of a workflow, by id."""
    return {run.id: run for run in await engine.list_runs(workflow=workflow_name, limit=1000)}


async def wait_for_runs(
    engine: Engine, workflow_name: str, count: int, *, ended: bool = True
) -> dict[str, Any]:
    """Wait until the workflow has ``count`` runs (all ended, unless told otherwise)."""

    async def enough() -> dict[str, Any] | None:
        runs = await runs_of(engine, workflow_name)
        if len(runs) < count:
            return None
        if ended and not all(run.record.status.is_terminal for run in runs.values()):
            return None
        return runs

    try:
        found: dict[str, Any] = await wait_until(engine, enough)
    except TimeoutError:
        runs = {
            run_id: run.record.status.value
            for run_id, run in (await runs_of(engine, workflow_name)).items()
        }
        schedules = [(s.id, s.next_fire_at, s.last_run_id) for s in await engine.schedules()]
        raise AssertionError(
            f"waiting for {count} runs: {runs}; {schedules}; now {engine.clock.now()}"
        ) from None
    return found


async def status_of(engine: Engine, run_id: str) -> RunStatus:
    """The run's status now."""
    return await (await engine.get_run(run_id)).status()


# -- on time, across DST -------------------------------------------------------------


async def test_ticks_on_time_across_the_spring_dst_change(make_engine: EngineFactory) -> None:
    """In Europe/Paris, 02:30 daily fires at 01:30Z in winter, at 03:00 local (01:00Z) on
    the night 02:30 does not exist, and at 00:30Z in summer; each run at its tick exactly."""
    clock = FakeClock(utc(2026, 3, 27, 12))
    async with make_engine(clock=clock) as engine:
        stored = await engine.schedule(
            "nightly",
            report,
            cron="30 2 * * *",
            tz="Europe/Paris",
            args=("night",),
            kwargs={"copies": 2},
            end_at=utc(2026, 3, 31),
            overlap="allow",  # the clock may jump on while a run still ends: not tested here
        )
        assert stored.next_fire_at == utc(2026, 3, 28, 1, 30)
        runs = await wait_for_runs(engine, REPORT, 3)
        ticks = [utc(2026, 3, 28, 1, 30), utc(2026, 3, 29, 1, 0), utc(2026, 3, 30, 0, 30)]
        assert sorted(runs) == [tick_run_id("nightly", tick) for tick in ticks]
        for tick in ticks:
            run = runs[tick_run_id("nightly", tick)]
            assert run.record.created_at == tick
            assert await run.result() == f"{run.id}:night:2"
            assert run.record.attributes == {"schedule": "nightly", "tick": tick.isoformat()}
        (schedule,) = await engine.schedules()
        assert schedule.next_fire_at is None  # past end_at: no tick left
        assert schedule.last_run_id == tick_run_id("nightly", ticks[-1])


async def test_ticks_on_time_across_the_autumn_dst_change(make_engine: EngineFactory) -> None:
    """The repeated hour in October: 02:30 daily fires once that night (the first 02:30),
    while every 30 minutes ticks through both 02:00 and both 02:30."""
    clock = FakeClock(utc(2026, 10, 24, 23, 50))
    async with make_engine(worker=False, clock=clock) as admin:  # no worker moves the clock
        await admin.schedule(
            "daily", report, cron="30 2 * * *", tz="Europe/Paris", args=("d",),
            end_at=utc(2026, 10, 26, 3), overlap="allow",
        )  # fmt: skip
        await admin.schedule(
            "halfhourly", report, cron="*/30 * * * *", tz="Europe/Paris", args=("h",),
            end_at=utc(2026, 10, 25, 1, 59), overlap="allow",
        )  # fmt: skip
    async with make_engine(clock=clock) as engine:
        runs = await wait_for_runs(engine, REPORT, 2 + 4)
        daily = sorted(run_id for run_id in runs if run_id.startswith("daily@"))
        assert daily == [
            tick_run_id("daily", utc(2026, 10, 25, 0, 30)),  # 02:30 CEST, once
            tick_run_id("daily", utc(2026, 10, 26, 1, 30)),  # 02:30 CET, the next day
        ]
        half = sorted(run_id for run_id in runs if run_id.startswith("halfhourly@"))
        # 00:00Z = 02:00 CEST, 00:30Z = 02:30 CEST, 01:00Z = 02:00 CET, 01:30Z = 02:30 CET
        expected = [utc(2026, 10, 25, 0, 0), utc(2026, 10, 25, 0, 30)]
        expected += [utc(2026, 10, 25, 1, 0), utc(2026, 10, 25, 1, 30)]
        assert half == [tick_run_id("halfhourly", tick) for tick in expected]
        for run in runs.values():
            assert run.record.created_at.isoformat() == run.record.attributes["tick"]


# -- pause, resume, trigger, backfill --------------------------------------------------


async def test_pause_skips_ticks_and_resume_starts_from_the_next(
    make_engine: EngineFactory,
) -> None:
    """A paused schedule lets its ticks pass without runs; resumed, it ticks again from
    the next tick on, without starting the ticks it passed while paused."""
    clock = FakeClock(utc(2030, 1, 1, 0, 0, 30), autojump=False)
    async with make_engine(clock=clock) as engine:
        await engine.schedule("minutely", report, cron="* * * * *", args=("m",))
        clock.advance_to(utc(2030, 1, 1, 0, 1))
        await wait_for_runs(engine, REPORT, 1)
        paused = await engine.pause_schedule("minutely")
        assert paused.paused
        assert (await engine.get_schedule("minutely")).paused
        clock.advance_to(utc(2030, 1, 1, 0, 2, 30))  # the 00:02 tick passes, paused
        resumed = await engine.resume_schedule("minutely")
        assert not resumed.paused
        assert resumed.next_fire_at == utc(2030, 1, 1, 0, 3)
        clock.advance_to(utc(2030, 1, 1, 0, 3))
        runs = await wait_for_runs(engine, REPORT, 2)
        assert sorted(runs) == [
            tick_run_id("minutely", utc(2030, 1, 1, 0, 1)),
            tick_run_id("minutely", utc(2030, 1, 1, 0, 3)),
        ]


async def test_trigger_starts_one_run_now(make_engine: EngineFactory) -> None:
    """trigger_schedule starts one run at once with the schedule's arguments, each call
    a new run, even while the schedule is paused; it becomes the schedule's last run."""
    async with make_engine() as engine:
        await engine.schedule("yearly", report, cron="0 0 1 1 *", args=("t",))
        await engine.pause_schedule("yearly")
        first = await engine.trigger_schedule("yearly")
        second = await engine.trigger_schedule("yearly")
        assert first.id != second.id
        assert first.id.startswith("yearly@manual-")
        assert await first.result() == f"{first.id}:t:1"
        assert await second.result() == f"{second.id}:t:1"
        assert first.record.attributes is not None
        assert first.record.attributes["schedule"] == "yearly"
        assert (await engine.get_schedule("yearly")).last_run_id == second.id
        with pytest.raises(LookupError, match="no schedule with id 'nope'"):
            await engine.trigger_schedule("nope")


async def test_backfill_starts_one_run_per_tick_and_is_idempotent(
    make_engine: EngineFactory,
) -> None:
    """backfill_schedule starts a run per tick in [start, end] (ends included), with the
    ids live ticks have; a second backfill of an overlapping range starts only the new."""
    clock = FakeClock(utc(2030, 1, 1), autojump=False)  # no live tick comes meanwhile
    async with make_engine(clock=clock) as engine:
        await engine.schedule("daily", report, cron="0 6 * * *", args=("b",))
        runs = await engine.backfill_schedule("daily", utc(2029, 12, 1, 6), utc(2029, 12, 3, 6))
        ticks = [utc(2029, 12, day, 6) for day in (1, 2, 3)]
        assert [run.id for run in runs] == [tick_run_id("daily", tick) for tick in ticks]
        again = await engine.backfill_schedule("daily", utc(2029, 12, 2), utc(2029, 12, 4, 12))
        assert [run.id for run in again] == [
            tick_run_id("daily", utc(2029, 12, day, 6)) for day in (2, 3, 4)
        ]
        ended = await wait_for_runs(engine, REPORT, 4)
        assert len(ended) == 4
        with pytest.raises(ValueError, match="before start"):
            await engine.backfill_schedule("daily", utc(2029, 12, 3), utc(2029, 12, 1))
        await engine.schedule("fast", report, cron="* * * * * *", args=("f",))
        with pytest.raises(ValueError, match="more than 10000 ticks"):
            await engine.backfill_schedule("fast", utc(2029, 1, 1), utc(2029, 1, 2))
        assert len(await runs_of(engine, REPORT)) == 4


async def test_delete_schedule_stops_its_ticks_and_keeps_its_runs(
    make_engine: EngineFactory,
) -> None:
    """A deleted schedule starts nothing more; the runs it started stay."""
    clock = FakeClock(utc(2030, 1, 1, 0, 0, 30), autojump=False)
    async with make_engine(clock=clock) as engine:
        await engine.schedule("minutely", report, cron="* * * * *", args=("x",))
        clock.advance_to(utc(2030, 1, 1, 0, 1))
        await wait_for_runs(engine, REPORT, 1)
        await engine.delete_schedule("minutely")
        assert await engine.schedules() == []
        with pytest.raises(LookupError):
            await engine.delete_schedule("minutely")
        await engine.schedule("other", report, cron="* * * * *", args=("y",))
        clock.advance_to(utc(2030, 1, 1, 0, 2))
        runs = await wait_for_runs(engine, REPORT, 2)
        assert sorted(runs) == [
            tick_run_id("minutely", utc(2030, 1, 1, 0, 1)),
            tick_run_id("other", utc(2030, 1, 1, 0, 2)),
        ]


# -- many workers --------------------------------------------------------------------------


async def test_two_workers_on_one_database_start_each_tick_once(
    make_engine: EngineFactory,
) -> None:
    """Two Engines sharing a database and a clock both see every tick; each tick starts
    exactly one run, created by exactly one of them."""
    clock = FakeClock(utc(2030, 1, 1, 0, 0, 30), autojump=False)
    async with make_engine(clock=clock) as first, make_engine(clock=clock) as second:
        await first.schedule("minutely", report, cron="* * * * *", args=("w",))
        for minute in range(1, 6):
            clock.advance_to(utc(2030, 1, 1, 0, minute))
            await wait_for_runs(first, REPORT, minute)
        runs = await runs_of(first, REPORT)
        assert sorted(runs) == [
            tick_run_id("minutely", utc(2030, 1, 1, 0, minute)) for minute in range(1, 6)
        ]
        workers = [first.worker, second.worker]
        assert sum(worker._ticker.started for worker in workers if worker is not None) == 5


# -- overlap -------------------------------------------------------------------------------


async def _two_ticks(engine: Engine, clock: FakeClock, overlap: Any) -> tuple[str, str]:
    """Schedule ``gated`` every minute with ``overlap``; let two ticks come."""
    await engine.schedule("gate", gated, cron="* * * * *", overlap=overlap)
    clock.advance_to(utc(2030, 1, 1, 0, 1))
    first = tick_run_id("gate", utc(2030, 1, 1, 0, 1))
    await wait_until(engine, lambda: engine.store.get_hook(first))
    clock.advance_to(utc(2030, 1, 1, 0, 2))
    return first, tick_run_id("gate", utc(2030, 1, 1, 0, 2))


async def test_overlap_skip_lets_a_tick_pass_while_the_last_run_is_live(
    make_engine: EngineFactory,
) -> None:
    """overlap="skip": no run for a tick while the previous run waits; the tick after
    it ended starts one."""
    clock = FakeClock(utc(2030, 1, 1, 0, 0, 30), autojump=False)
    async with make_engine(clock=clock) as engine:
        first, second = await _two_ticks(engine, clock, "skip")
        await wait_until(
            engine,
            lambda: _moved_past(engine, "gate", utc(2030, 1, 1, 0, 2)),
        )
        assert second not in await runs_of(engine, GATED)
        await go.resume(first, {"ok": True})
        await wait_until(engine, lambda: _ended(engine, first))
        clock.advance_to(utc(2030, 1, 1, 0, 3))
        third = tick_run_id("gate", utc(2030, 1, 1, 0, 3))
        await wait_until(engine, lambda: engine.store.get_hook(third))
        assert sorted(await runs_of(engine, GATED)) == [first, third]


async def test_overlap_allow_runs_side_by_side(make_engine: EngineFactory) -> None:
    """overlap="allow": a tick starts its run while the previous one still waits."""
    clock = FakeClock(utc(2030, 1, 1, 0, 0, 30), autojump=False)
    async with make_engine(clock=clock) as engine:
        first, second = await _two_ticks(engine, clock, "allow")
        await wait_until(engine, lambda: engine.store.get_hook(second))
        assert await status_of(engine, first) is RunStatus.RUNNING


async def test_overlap_cancel_previous_cancels_the_live_run(make_engine: EngineFactory) -> None:
    """overlap="cancel_previous": a tick cancels the previous run, then starts its own."""
    clock = FakeClock(utc(2030, 1, 1, 0, 0, 30), autojump=False)
    async with make_engine(clock=clock) as engine:
        first, second = await _two_ticks(engine, clock, "cancel_previous")
        await wait_until(engine, lambda: engine.store.get_hook(second))
        await wait_until(engine, lambda: _ended(engine, first))
        assert await status_of(engine, first) is RunStatus.CANCELLED
        assert await status_of(engine, second) is RunStatus.RUNNING


async def _moved_past(engine: Engine, schedule_id: str, tick: datetime) -> bool:
    schedule = await engine.get_schedule(schedule_id)
    return schedule.next_fire_at is not None and schedule.next_fire_at > tick


async def _ended(engine: Engine, run_id: str) -> bool:
    return (await status_of(engine, run_id)).is_terminal


# -- catch-up after downtime ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("catchup", "missed_hours"),
    [("latest", [5]), ("all", [1, 2, 3, 4, 5]), ("none", [])],
)
async def test_catchup_after_downtime(
    make_engine: EngineFactory, catchup: Any, missed_hours: list[int]
) -> None:
    """Hourly ticks missed while no worker was up: a worker coming back starts the
    latest only (the default), all of them, or none; then it ticks on time again."""
    async with make_engine(worker=False, clock=FakeClock(utc(2030, 1, 1, 0, 30))) as admin:
        await admin.schedule("hourly", report, cron="0 * * * *", args=("c",), catchup=catchup)
    later = FakeClock(utc(2030, 1, 1, 5, 30), autojump=False)
    async with make_engine(clock=later) as engine:
        await wait_until(engine, lambda: _moved_past(engine, "hourly", utc(2030, 1, 1, 5)))
        if missed_hours:  # ended, so that no overlap holds the next tick back
            await wait_for_runs(engine, REPORT, len(missed_hours))
        later.advance_to(utc(2030, 1, 1, 6))
        hours = [*missed_hours, 6]
        runs = await wait_for_runs(engine, REPORT, len(hours))
        assert sorted(runs) == [tick_run_id("hourly", utc(2030, 1, 1, hour)) for hour in hours]
        assert runs[tick_run_id("hourly", utc(2030, 1, 1, 6))].record.created_at == utc(
            2030, 1, 1, 6
        )


# -- declared in code ------------------------------------------------------------------------


@pytest.fixture
def declared() -> Iterator[None]:
    """Forget the workflows (and schedules) a test declares, so no other test sees them."""
    from perdure import _schedules, _workflow  # noqa: PLC0415

    workflows, schedules = dict(_workflow._registry), dict(_schedules._declared)
    yield
    _workflow._registry.clear()
    _workflow._registry.update(workflows)
    _schedules._declared.clear()
    _schedules._declared.update(schedules)


@pytest.mark.usefixtures("declared")
async def test_workflow_schedule_is_stored_when_a_worker_starts(make_engine: EngineFactory) -> None:
    """@workflow(schedule=...) is stored under the workflow's name by a worker that
    defines it, in the zone CRON_TZ= names, and its ticks start runs with no arguments."""

    @workflow(name="morning-digest", schedule="CRON_TZ=Europe/Paris 0 9 * * *")
    async def digest(kind: str = "short") -> str:
        return kind

    still = FakeClock(utc(2030, 1, 1, 12), autojump=False)  # no tick comes before the pause
    async with make_engine(clock=still) as engine:
        (schedule,) = await engine.schedules()
        assert (schedule.id, schedule.workflow, schedule.cron, schedule.tz) == (
            "morning-digest",
            "morning-digest",
            "0 9 * * *",
            "Europe/Paris",
        )
        assert schedule.next_fire_at == utc(2030, 1, 2, 8)
        await engine.pause_schedule("morning-digest")
    async with make_engine(clock=FakeClock(utc(2030, 1, 1, 12))) as engine:  # restarted
        assert (await engine.get_schedule("morning-digest")).paused
        await engine.resume_schedule("morning-digest")
        runs = await wait_for_runs(engine, "morning-digest", 1)
        (run,) = runs.values()
        assert run.id == tick_run_id("morning-digest", utc(2030, 1, 2, 8))
        assert await run.result() == "short"


@pytest.mark.usefixtures("declared")
def test_workflow_schedule_bad_input_fails_at_definition() -> None:
    """A malformed declared schedule, or a scheduled workflow that needs arguments, is an
    error where the workflow is defined."""
    with pytest.raises(ValueError, match="malformed cron expression"):

        @workflow(name="bad-cron", schedule="every day")
        async def bad_cron() -> None: ...

    with pytest.raises(ValueError, match="unknown time zone 'Mars/Olympus'"):

        @workflow(name="bad-zone", schedule="CRON_TZ=Mars/Olympus 0 9 * * *")
        async def bad_zone() -> None: ...

    with pytest.raises(TypeError, match="needs a default"):

        @workflow(name="needs-args", schedule="0 9 * * *")
        async def needs_args(day: str) -> str:
            return day


# -- bad input ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"cron": "61 * * * *"}, "malformed cron expression '61 \\* \\* \\* \\*'"),
        ({"cron": "* * *"}, "malformed cron expression"),
        ({"cron": "0 9 * * *", "tz": "Europe/Atlantis"}, "unknown time zone 'Europe/Atlantis'"),
        ({"cron": "0 9 * * *", "overlap": "queue"}, "overlap must be one of"),
        ({"cron": "0 9 * * *", "catchup": "some"}, "catchup must be one of"),
        (
            {"cron": "0 9 * * *", "start_at": utc(2030, 2, 1), "end_at": utc(2030, 1, 1)},
            "end_at .* is before start_at",
        ),
        ({"cron": "0 9 * * *", "start_at": datetime(2030, 1, 1)}, "timezone-aware"),  # noqa: DTZ001
    ],
)
async def test_bad_input_is_a_value_error_and_stores_nothing(
    make_engine: EngineFactory, options: dict[str, Any], message: str
) -> None:
    """A malformed cron, an unknown zone, overlap or catchup, an end before the start:
    ValueError naming it, and no schedule is stored (nor an existing one changed)."""
    async with make_engine() as engine:
        with pytest.raises(ValueError, match=message):
            await engine.schedule("bad", report, args=("x",), **options)
        assert await engine.schedules() == []
        kept = await engine.schedule("kept", report, cron="0 9 * * *", args=("x",))
        with pytest.raises(ValueError, match=message):
            await engine.schedule("kept", report, args=("y",), **options)
        assert await engine.schedules() == [kept]


async def test_bad_ids_and_arguments(make_engine: EngineFactory) -> None:
    """An empty id, an id with '@', a non-workflow, or arguments that do not serialize
    are refused before anything is stored."""
    async with make_engine() as engine:
        with pytest.raises(ValueError, match="non-empty string"):
            await engine.schedule(" ", report, cron="0 9 * * *", args=("x",))
        with pytest.raises(ValueError, match="must not contain '@'"):
            await engine.schedule("a@b", report, cron="0 9 * * *", args=("x",))
        with pytest.raises(TypeError, match="needs a @workflow"):
            await engine.schedule("plain", print, cron="0 9 * * *")  # type: ignore[arg-type]
        with pytest.raises(TypeError):
            await engine.schedule("unserializable", report, cron="0 9 * * *", args=(object(),))
        assert await engine.schedules() == []
        for call in (engine.pause_schedule, engine.resume_schedule, engine.get_schedule):
            with pytest.raises(LookupError, match="no schedule with id 'ghost'"):
                await call("ghost")


async def test_an_update_keeps_the_next_tick_unless_the_timing_changes(
    make_engine: EngineFactory,
) -> None:
    """Scheduling an existing id again updates it: new arguments keep its next tick, a
    new cron starts afresh from now."""
    clock = FakeClock(utc(2030, 1, 1, 10), autojump=False)
    async with make_engine(clock=clock) as engine:
        first = await engine.schedule("s", report, cron="0 9 * * *", args=("a",))
        assert first.next_fire_at == utc(2030, 1, 2, 9)
        clock.advance(timedelta(hours=1))
        again = await engine.schedule("s", report, cron="0 9 * * *", args=("b",))
        assert (again.next_fire_at, again.input, again.created_at) == (
            first.next_fire_at,
            {"day": "b"},
            first.created_at,
        )
        moved = await engine.schedule("s", report, cron="0 12 * * *", args=("b",))
        assert moved.next_fire_at == utc(2030, 1, 1, 12)
