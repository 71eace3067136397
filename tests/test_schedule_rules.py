"""The rules of `perdure._schedules`, alone: which due ticks fire under each catch-up
option, the cap on one pass, end_at, a schedule's first tick, and tick run ids."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from perdure._schedules import (
    MAX_TICKS_PER_PASS,
    ScheduleRecord,
    due_ticks,
    first_tick,
    merged,
    tick_run_id,
    ticks_between,
)

T0 = datetime(2030, 1, 1, tzinfo=UTC)


def hourly(**changes: Any) -> ScheduleRecord:
    """An hourly schedule whose next tick is T0 + 1 h."""
    record = ScheduleRecord(
        id="s", workflow="w", cron="0 * * * *", tz="UTC", input={}, overlap="skip",
        catchup="latest", start_at=None, end_at=None, paused=False,
        next_fire_at=T0 + timedelta(hours=1), last_tick_at=None, last_run_id=None,
        created_at=T0, updated_at=T0,
    )  # fmt: skip
    return replace(record, **changes)


def at(hours: float) -> datetime:
    """T0 plus some hours."""
    return T0 + timedelta(hours=hours)


@pytest.mark.parametrize(
    ("catchup", "fired"),
    [("latest", [at(4)]), ("all", [at(1), at(2), at(3), at(4)]), ("none", [])],
)
def test_missed_ticks_by_catchup(catchup: str, fired: list[datetime]) -> None:
    """Found at 04:30, the ticks 01:00 to 04:00 were missed: the latest, all, or none."""
    ticks, following = due_ticks(hourly(catchup=catchup), at(4.5))
    assert (ticks, following) == (fired, at(5))


@pytest.mark.parametrize("catchup", ["latest", "all", "none"])
def test_a_tick_less_than_a_minute_late_is_on_time(catchup: str) -> None:
    """A tick found 59 s late fires whatever the catch-up option."""
    ticks, following = due_ticks(hourly(catchup=catchup), at(1) + timedelta(seconds=59))
    assert (ticks, following) == ([at(1)], at(2))


def test_not_due_yet_and_paused() -> None:
    """Before its next tick nothing fires; a paused schedule fires nothing but moves on."""
    assert due_ticks(hourly(), at(0.5)) == ([], at(1))
    assert due_ticks(hourly(paused=True), at(1)) == ([], at(2))


def test_catchup_all_takes_at_most_one_pass_of_ticks() -> None:
    """An every-second schedule down for an hour: 100 ticks a pass, then the next one."""
    every_second = hourly(cron="* * * * * *", catchup="all", next_fire_at=T0)
    ticks, following = due_ticks(every_second, at(1))
    assert len(ticks) == MAX_TICKS_PER_PASS
    assert ticks[0] == T0
    assert following == T0 + timedelta(seconds=MAX_TICKS_PER_PASS)


def test_end_at_bounds_the_ticks() -> None:
    """No tick after end_at: the last one fires, and then none is left."""
    ending = hourly(catchup="all", end_at=at(2.5))
    assert due_ticks(ending, at(5)) == ([at(1), at(2)], None)
    assert first_tick(ending, at(3)) is None


def test_first_tick_respects_start_at() -> None:
    """A new schedule's first tick is after now, and not before start_at (a tick at it counts)."""
    assert first_tick(hourly(), at(0.25)) == at(1)
    assert first_tick(hourly(start_at=at(3)), at(0.25)) == at(3)
    assert first_tick(hourly(), at(1)) == at(2)  # exactly on a tick: the next one


def test_merged_keeps_the_next_tick_unless_the_timing_changes() -> None:
    """An update keeps paused, the last run and the next tick; new timing starts afresh."""
    stored = hourly(paused=True, last_run_id="s@x", next_fire_at=at(1))
    same = merged(stored, hourly(input={"a": 1}), at(3))
    assert (same.paused, same.last_run_id, same.next_fire_at, same.input) == (
        True, "s@x", at(1), {"a": 1},
    )  # fmt: skip
    moved = merged(stored, hourly(cron="30 * * * *"), at(3))
    assert moved.next_fire_at == at(3.5)


def test_ticks_between_and_run_ids() -> None:
    """A backfill's ticks include both ends; run ids are readable UTC times."""
    assert ticks_between(hourly(), at(1), at(3), limit=10) == [at(1), at(2), at(3)]
    assert ticks_between(hourly(), at(1), at(3), limit=2) == [at(1), at(2)]
    assert tick_run_id("s", at(1)) == "s@2030-01-01T01:00:00Z"
    assert tick_run_id("s", at(1) + timedelta(microseconds=5)) == "s@2030-01-01T01:00:00.000005Z"
