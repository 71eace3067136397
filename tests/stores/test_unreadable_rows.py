"""What a store does with a row it cannot read (issue 11): flag it, or name it, never fail
the whole call, so one bad row touches only its own run.

On SQLite and PostgreSQL (the memory store keeps records, not rows), each row damaged
with SQL through the store's own connection. PostgreSQL's ``json`` columns refuse text
that is not JSON, so there the damage is JSON nested 5,000 deep (the server keeps it,
Python's `json` cannot read it back) or JSON of the wrong shape.
"""

from __future__ import annotations

import pytest

from helpers import T0, at, damage, hold, unreadable
from perdure import _log
from perdure._log import LogFormatError
from perdure._records import NewRun, RunStatus, StepOutcome
from perdure.stores import PostgresStore, SQLiteStore

AnyStore = SQLiteStore | PostgresStore

pytestmark = pytest.mark.parametrize("store", ["sqlite", "postgres"], indirect=True)

DEEP = "[" * 5000 + "]" * 5000
"""JSON both databases keep and Python's `json` cannot read (a RecursionError)."""


def not_json(store: AnyStore) -> str:
    return unreadable(store)


async def two_runs(store: AnyStore) -> None:
    for run_id in ("bad", "good"):
        await store.create_run(NewRun(run_id, "wf", {"x": 1}), T0)


@pytest.mark.parametrize(
    ("column", "value", "said"),
    [
        ("input", None, "is "),
        ("output", None, "is "),
        ("error", '"a string"', "is not a JSON object"),
        ("error", DEEP, "nested too deep"),
        ("status", "paused", "'paused' is not a run status"),
    ],
)
async def test_a_run_that_cannot_be_read_is_listed_flagged(
    store: AnyStore, column: str, value: str | None, said: str
) -> None:
    """The listing, the run's read and a claim return it flagged; the others are untouched."""
    await two_runs(store)
    update = f"UPDATE runs SET {column} = ? WHERE id = 'bad'"  # noqa: S608 (the test's own names)
    await damage(store, update, value or not_json(store))
    listed = {run.id: run for run in await store.list_runs()}
    assert listed["good"].malformed is None
    assert listed["good"].input == {"x": 1}
    problems = listed["bad"].malformed
    assert problems is not None
    assert list(problems) == [column]
    assert said in problems[column], problems
    assert (await store.get_run("bad")) == listed["bad"]
    claimed = {run.id: run for run in await store.claim_runs("w1", at(1), 10)}
    if column == "status":  # a newer release's run: left to it, no wake-up for it
        assert set(claimed) == {"good"}
        assert await store.next_wake_at() is None
    else:
        assert set(claimed) == {"bad", "good"}
        assert claimed["bad"].malformed == problems


async def test_sqlite_columns_of_the_wrong_type_are_flagged(store: AnyStore) -> None:
    """SQLite keeps any value in any column: a time or a name of the wrong type is flagged."""
    if not isinstance(store, SQLiteStore):
        pytest.skip("PostgreSQL's columns are typed")
    await two_runs(store)
    await damage(store, "UPDATE runs SET created_at = 'noon', workflow = x'07' WHERE id = 'bad'")
    (bad,) = [run for run in await store.list_runs() if run.id == "bad"]
    assert bad.malformed is not None
    assert set(bad.malformed) == {"created_at", "workflow"}


@pytest.mark.parametrize(
    ("column", "value", "said"),
    [
        ("data", None, "'data' is "),
        ("data", "[1, 2]", "'data' is not a JSON object"),
        ("type", "hook_renamed", "is an event type this version of perdure does not know"),
    ],
)
async def test_an_unreadable_event_is_named_and_the_run_can_still_end(
    store: AnyStore, column: str, value: str | None, said: str
) -> None:
    """Reading the log raises LogFormatError naming the run, event and key; a terminal
    append reads nothing of the log, so the run can be set aside."""
    await hold(store)
    await store.append("w1", "r1", [_log.run_started(worker="w1")], at(1))
    await damage(
        store,
        f"UPDATE events SET {column} = ? WHERE run_id = 'r1' AND seq = 2",  # noqa: S608
        value or not_json(store),
    )
    with pytest.raises(LogFormatError) as raised:
        await store.events("r1")
    assert raised.value.run_id == "r1"
    assert raised.value.seq == 2
    assert "event #2 (" in str(raised.value)
    assert said in str(raised.value), raised.value
    if column == "data":
        assert raised.value.key == "data"
    assert len(await store.events("r1", after_seq=2)) == 0
    error = {"type": "perdure._log.LogFormatError", "message": str(raised.value), "traceback": ""}
    await store.append("w1", "r1", [_log.run_failed(error=error)], at(2))
    run = await store.get_run("r1")
    assert run is not None
    assert run.status is RunStatus.FAILED


async def test_an_unreadable_inbox_item_is_flagged_and_the_others_delivered(
    store: AnyStore,
) -> None:
    """One payload that cannot be read hides no other run's payloads."""
    for run_id in ("r1", "r2"):
        await hold(store, run_id)
        hook = _log.hook_created("h#1", token=f"t-{run_id}", name="h", kind="hook")
        await store.append("w1", run_id, [hook], at(1))
        await store.resume_hook(f"t-{run_id}", {"ok": run_id}, at(2))
    await damage(store, "UPDATE hook_inbox SET payload = ? WHERE run_id = 'r1'", not_json(store))
    items = {item.run_id: item for item in await store.inbox("w1")}
    assert items["r2"].payload == {"ok": "r2"}
    assert items["r2"].malformed is None
    assert items["r1"].payload is None
    assert items["r1"].malformed is not None
    assert list(items["r1"].malformed) == ["payload"]
    assert (items["r1"].token, items["r1"].correlation_id) == ("t-r1", "h#1")


async def test_unreadable_step_tasks_are_flagged_and_the_others_claimed(store: AnyStore) -> None:
    """A queued task whose input, or a finished one whose output, cannot be read is flagged."""
    for run_id in ("r1", "r2"):
        await hold(store, run_id)
        started = _log.step_started("s#1", name="s", attempt=1, input={"n": 1}, queue="q")
        await store.append("w1", run_id, [started], at(1))
    await damage(store, "UPDATE step_tasks SET input = ? WHERE run_id = 'r1'", not_json(store))
    tasks = {task.run_id: task for task in await store.claim_step_tasks("q1", {"q"}, at(2), 10)}
    assert set(tasks) == {"r1", "r2"}
    assert tasks["r2"].malformed is None
    assert tasks["r1"].malformed is not None
    assert list(tasks["r1"].malformed) == ["input"]
    for task in tasks.values():
        await store.finish_step_task("q1", task.id, StepOutcome(1, output="done"), at(3))
    await damage(store, "UPDATE step_tasks SET output = ? WHERE run_id = 'r2'", not_json(store))
    results = {task.run_id: task for task in await store.step_results("w1")}
    assert results["r1"].malformed is not None  # its input still cannot be read
    assert results["r2"].malformed is not None
    assert list(results["r2"].malformed) == ["output"]
    assert results["r2"].outcome is not None
    assert results["r2"].outcome.attempt == 1


@pytest.mark.parametrize(
    ("column", "value", "said"),
    [
        ("output", None, "is "),
        ("error", '"a string"', "is not a JSON object"),
        ("input", DEEP, "nested too deep"),
    ],
)
async def test_an_unreadable_step_row_is_read_flagged(
    store: AnyStore, column: str, value: str | None, said: str
) -> None:
    """A run's step rows come back whole but for a damaged one's column, which is flagged
    (None in its place): `perdure show` reads them."""
    await hold(store)
    for n in (1, 2):
        cid = f"s#{n}"
        started = _log.step_started(cid, name="s", attempt=1, input={"n": n})
        done = _log.step_completed(cid, name="s", attempt=1, output=n)
        await store.append("w1", "r1", [started, done], at(n))
    update = f"UPDATE steps SET {column} = ? WHERE correlation_id = 's#1'"  # noqa: S608
    await damage(store, update, value or not_json(store))
    damaged, fine = await store.steps("r1")
    assert (fine.correlation_id, fine.output, fine.malformed) == ("s#2", 2, None)
    assert (damaged.correlation_id, damaged.name, damaged.status) == ("s#1", "s", "completed")
    assert damaged.malformed is not None
    assert list(damaged.malformed) == [column]
    assert said in damaged.malformed[column], damaged.malformed
    assert getattr(damaged, column) is None
