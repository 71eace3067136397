"""The schedule contract (`ScheduleStore`), on every store: upsert, list, due, next fire
time, the compare-and-set that moves a schedule on, delete."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

from perdure._schedules import ScheduleRecord

if TYPE_CHECKING:
    from stores.conftest import AnyStore

T0 = datetime(2030, 1, 1, tzinfo=UTC)


def schedule(schedule_id: str, **changes: object) -> ScheduleRecord:
    """A schedule due at T0 + 1 h, stored at T0."""
    record = ScheduleRecord(
        id=schedule_id,
        workflow="report",
        cron="0 * * * *",
        tz="Europe/Paris",
        input={"day": "monday", "n": [1, 2]},
        overlap="skip",
        catchup="latest",
        start_at=None,
        end_at=T0 + timedelta(days=30),
        paused=False,
        next_fire_at=T0 + timedelta(hours=1),
        last_tick_at=None,
        last_run_id=None,
        created_at=T0,
        updated_at=T0,
    )
    return replace(record, **changes)  # type: ignore[arg-type]


async def test_put_get_list_and_delete(store: AnyStore) -> None:
    """A stored schedule reads back as it was put; listed by id; deleted once."""
    first = await store.put_schedule(schedule("b"))
    assert first == schedule("b")
    await store.put_schedule(schedule("a", paused=True))
    assert await store.get_schedule("b") == first
    assert [s.id for s in await store.list_schedules()] == ["a", "b"]
    assert await store.get_schedule("missing") is None
    assert await store.delete_schedule("a")
    assert not await store.delete_schedule("a")
    assert [s.id for s in await store.list_schedules()] == ["b"]


async def test_an_update_keeps_creation_and_last_run(store: AnyStore) -> None:
    """put_schedule on an existing id replaces what it is and keeps created_at and its
    last run, which only the worker moving it on writes."""
    await store.put_schedule(schedule("s"))
    tick = T0 + timedelta(hours=1)
    moved = await store.advance_schedule(
        "s", tick, tick + timedelta(hours=1), tick, last_run=(tick, "s@run")
    )
    assert moved
    later = T0 + timedelta(hours=3)
    updated = await store.put_schedule(
        schedule("s", cron="*/5 * * * *", created_at=later, updated_at=later, next_fire_at=later)
    )
    assert (updated.cron, updated.next_fire_at, updated.updated_at) == ("*/5 * * * *", later, later)
    assert (updated.created_at, updated.last_tick_at, updated.last_run_id) == (T0, tick, "s@run")


async def test_due_and_next_fire_at_leave_out_paused_and_other_workflows(store: AnyStore) -> None:
    """Only unpaused schedules of the workflows asked for are due, soonest first."""
    await store.put_schedule(schedule("late", next_fire_at=T0 + timedelta(hours=2)))
    await store.put_schedule(schedule("soon", next_fire_at=T0 + timedelta(minutes=30)))
    await store.put_schedule(schedule("paused", paused=True, next_fire_at=T0))
    await store.put_schedule(schedule("other", workflow="other", next_fire_at=T0))
    await store.put_schedule(schedule("ended", next_fire_at=None))
    at = T0 + timedelta(hours=2)
    due = await store.due_schedules(at, workflows={"report"})
    assert [s.id for s in due] == ["soon", "late"]
    assert [s.id for s in await store.due_schedules(at, workflows={"report"}, limit=1)] == ["soon"]
    assert [s.id for s in await store.due_schedules(T0)] == ["other"]
    assert await store.due_schedules(at, workflows=set()) == []
    assert await store.next_fire_at(workflows={"report"}) == T0 + timedelta(minutes=30)
    assert await store.next_fire_at() == T0
    assert await store.next_fire_at(workflows={"nothing"}) is None


async def test_advance_is_a_compare_and_set(store: AnyStore) -> None:
    """Moving a schedule on from a time it no longer has writes nothing: of two workers
    handling one tick, one moves it."""
    await store.put_schedule(schedule("s"))
    tick = T0 + timedelta(hours=1)
    after = tick + timedelta(hours=1)
    assert await store.advance_schedule("s", tick, after, tick, last_run=(tick, "s@1"))
    assert not await store.advance_schedule("s", tick, after, tick, last_run=(tick, "s@other"))
    assert not await store.advance_schedule("gone", tick, after, tick)
    stored = await store.get_schedule("s")
    assert stored is not None
    assert (stored.next_fire_at, stored.last_run_id) == (after, "s@1")
    assert await store.advance_schedule("s", after, None, after)  # no last run: kept
    stored = await store.get_schedule("s")
    assert stored is not None
    assert (stored.next_fire_at, stored.last_run_id) == (None, "s@1")


async def test_note_schedule_run_records_a_triggered_run(store: AnyStore) -> None:
    """A trigger's run becomes the schedule's last; noting a deleted schedule is a no-op."""
    await store.put_schedule(schedule("s"))
    await store.note_schedule_run("s", T0, "s@manual-1", T0)
    await store.note_schedule_run("gone", T0, "gone@manual-1", T0)
    stored = await store.get_schedule("s")
    assert stored is not None
    assert (stored.last_tick_at, stored.last_run_id) == (T0, "s@manual-1")
    assert stored.next_fire_at == T0 + timedelta(hours=1)
