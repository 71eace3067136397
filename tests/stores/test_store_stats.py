"""The store contract of `stats` (issue 17): the Metrics page's aggregates.

Run on every store through the ``store`` fixture, like `test_store_contract.py`: a
store holding a known mix of runs (completed, failed after retries, cancelled, pending,
blocked) gives the same counts, buckets and step percentiles everywhere.
"""

from __future__ import annotations

from datetime import timedelta

import pytest

from helpers import T0, at, hold
from perdure import _log
from perdure._records import NewEvent, NewRun
from perdure._stats import StatsWindow, parse_since, percentile
from perdure.stores import MemoryStore, PostgresStore, SQLiteStore

AnyStore = MemoryStore | SQLiteStore | PostgresStore

WINDOW = StatsWindow(T0, T0 + timedelta(hours=1), timedelta(minutes=1))


def _step(cid: str, name: str, attempt: int, outcome: str) -> list[NewEvent]:
    started = _log.step_started(cid, name=name, attempt=attempt, input=None)
    if outcome == "completed":
        return [started, _log.step_completed(cid, name=name, attempt=attempt, output=1)]
    error = {"type": "ValueError", "message": "no", "traceback": ""}
    if outcome == "retrying":
        return [
            started,
            _log.step_retrying(cid, name=name, attempt=attempt, error=error, retry_at=T0),
        ]
    return [started, _log.step_failed(cid, name=name, attempt=attempt, error=error)]


async def _known_mix(store: AnyStore) -> None:
    """Runs of two workflows in the first minutes of the window, and two outside it.

    - ok-1, ok-2 (orders): created at 0s, started, a step "charge" that takes 2s and 4s,
      completed at minute 2;
    - bad (orders): a step "charge" failing after 3 attempts over 10s, failed at minute 3;
    - gone (mail): cancelled at minute 3 while pending;
    - waiting (mail) pending, stuck (orders) blocked;
    - before (orders) ended before the window; after (orders) created after it.
    """
    for run_id, seconds in (("ok-1", 2), ("ok-2", 4)):
        await hold(store, run_id, workflow="orders")
        await store.append("w1", run_id, [_log.run_started(worker="w1")], at(0))
        await store.append("w1", run_id, _step("charge#1", "charge", 1, "running")[:1], at(10))
        await store.append(
            "w1", run_id, _step("charge#1", "charge", 1, "completed")[1:], at(10 + seconds)
        )
        await store.append("w1", run_id, [_log.run_completed(output=None)], at(125), durable=True)
    await hold(store, "bad", workflow="orders")
    await store.append("w1", "bad", [_log.run_started(worker="w1")], at(0))
    await store.append("w1", "bad", _step("charge#1", "charge", 1, "retrying"), at(20))
    await store.append("w1", "bad", _step("charge#1", "charge", 2, "retrying"), at(25))
    await store.append("w1", "bad", _step("charge#1", "charge", 3, "failed"), at(30))
    error = {"type": "ValueError", "message": "no", "traceback": ""}
    await store.append("w1", "bad", [_log.run_failed(error=error)], at(185), durable=True)
    await store.create_run(NewRun("gone", "mail", {"args": []}), at(60))
    await store.request_cancel("gone", at(190))
    await store.create_run(NewRun("waiting", "mail", {"args": []}), at(61))
    await hold(store, "stuck", now=at(62), workflow="orders")
    await store.block_run(
        "w1", "stuck", _log.run_blocked(reason="r", version=None, worker="w1"), at(63)
    )
    await hold(store, "before", now=at(-100), workflow="orders")
    await store.append("w1", "before", [_log.run_completed(output=None)], at(-50), durable=True)
    await store.create_run(NewRun("after", "orders", {"args": []}), at(3600))


async def test_stats_counts_a_known_mix_of_runs(store: AnyStore) -> None:
    """Buckets, per-workflow outcomes, step percentiles and the backlog of a known mix."""
    await _known_mix(store)
    stats = await store.stats(WINDOW)
    assert stats.window == WINDOW
    assert len(stats.started) == 60
    assert stats.started[:3] == [3, 3, 0]  # ok-1, ok-2, bad; gone, waiting, stuck
    assert sum(stats.started) == 6
    assert stats.ended["completed"][2] == 2
    assert stats.ended["failed"][3] == 1
    assert stats.ended["cancelled"][3] == 1
    assert stats.totals == {
        "started": 6,
        "completed": 2,
        "failed": 1,
        "cancelled": 1,
        "pending": 2,  # the backlog is now's: "after" is pending too
        "blocked": 1,
    }
    by_name = {w.workflow: (w.completed, w.failed, w.cancelled) for w in stats.workflows}
    assert by_name == {"orders": (2, 1, 0), "mail": (0, 0, 1)}
    orders = next(w for w in stats.workflows if w.workflow == "orders")
    assert orders.failure_rate == pytest.approx(1 / 3)
    assert [(s.name, s.calls, s.failed, s.retries) for s in stats.steps] == [("charge", 3, 1, 2)]
    charge = stats.steps[0]
    assert (charge.p50, charge.p95, charge.p99) == pytest.approx((4.0, 10.0, 10.0))
    assert stats.sampled_runs == 4
    backlog = {b.workflow: (b.pending, b.blocked) for b in stats.backlog}
    assert backlog == {"mail": (1, 0), "orders": (1, 1)}


async def test_stats_of_one_workflow(store: AnyStore) -> None:
    """With a workflow, every aggregate counts only its runs."""
    await _known_mix(store)
    stats = await store.stats(WINDOW, workflow="mail")
    assert stats.workflow == "mail"
    assert stats.totals == {
        "started": 2,
        "completed": 0,
        "failed": 0,
        "cancelled": 1,
        "pending": 1,
        "blocked": 0,
    }
    assert stats.steps == []
    assert [w.workflow for w in stats.workflows] == ["mail"]


async def test_stats_of_an_empty_window(store: AnyStore) -> None:
    """A window nothing happened in: zero buckets, no workflows, no steps; the backlog stands."""
    await _known_mix(store)
    window = StatsWindow(at(-10_000), at(-5_000), timedelta(minutes=5))
    stats = await store.stats(window)
    assert stats.started == [0] * 17
    assert all(counts == [0] * 17 for counts in stats.ended.values())
    assert (stats.workflows, stats.steps, stats.sampled_runs) == ([], [], 0)
    assert (stats.totals["pending"], stats.totals["blocked"]) == (2, 1)


def test_windows_and_percentiles() -> None:
    """A window's buckets are whole minutes, at most 120; percentiles are nearest-rank."""
    assert StatsWindow.ending(T0, timedelta(hours=1)).bucket == timedelta(minutes=1)
    assert StatsWindow.ending(T0, timedelta(days=7)).bucket == timedelta(minutes=84)
    assert StatsWindow.ending(T0, timedelta(days=7)).count == 120
    assert parse_since("24h") == timedelta(days=1)
    for bad in ("", "1", "h", "-1h", "0m", "1y", "40d"):
        with pytest.raises(ValueError, match="since="):
            parse_since(bad)
    values = [float(n) for n in range(1, 101)]
    assert (percentile(values, 50), percentile(values, 95), percentile(values, 99)) == (
        50.0,
        95.0,
        99.0,
    )
    assert percentile([7.0], 99) == 7.0
