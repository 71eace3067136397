"""The store contract of forks (issue 12, item 4): `fork_run`.

Run on every store through the ``store`` fixture, like `test_store_contract.py`.
"""

from __future__ import annotations

from datetime import timedelta

import pytest

from helpers import T0, at
from perdure import _log
from perdure._errors import HookConflictError
from perdure._records import EventType, NewRun, RunStatus
from perdure.stores import MemoryStore, PostgresStore, SQLiteStore

AnyStore = MemoryStore | SQLiteStore | PostgresStore

NEW = NewRun("fork1", "wf", {"args": [1], "kwargs": {}}, "v2")
PREFIX = [
    _log.run_started(worker="w0"),
    _log.step_started("a#1", name="a", attempt=1, input={"args": []}),
    _log.step_completed("a#1", name="a", attempt=1, output=7),
    _log.sleep_started("sleep#1", wake_at=T0 + timedelta(hours=1)),
]


async def test_fork_run_creates_a_due_unheld_run_with_its_log_and_indexes(
    store: AnyStore,
) -> None:
    """The fork's log is run_created naming the original, then the events; the indexes
    follow them (running, the step row, the timer); any worker may claim it at once."""
    record, created = await store.fork_run(NEW, "orig", PREFIX, at(5))

    assert created
    assert (record.id, record.status, record.owner, record.version) == (
        "fork1",
        RunStatus.RUNNING,
        None,
        "v2",
    )
    events = await store.events("fork1")
    assert [e.type for e in events] == [
        EventType.RUN_CREATED,
        EventType.RUN_STARTED,
        EventType.STEP_STARTED,
        EventType.STEP_COMPLETED,
        EventType.SLEEP_STARTED,
    ]
    assert _log.RunCreated.of(events[0]).forked_from == "orig"
    assert [e.data for e in events[1:]] == [e.data for e in PREFIX]
    steps = await store.steps("fork1")
    assert [(s.correlation_id, s.output) for s in steps] == [("a#1", 7)]
    assert await store.timers("fork1") == {"sleep#1": T0 + timedelta(hours=1)}
    claimed = await store.claim_runs("w1", at(5), 5)
    assert [r.id for r in claimed] == ["fork1"]


async def test_fork_run_is_idempotent_on_the_id(store: AnyStore) -> None:
    """A second fork with the same id writes nothing and answers the run as it stands."""
    await store.fork_run(NEW, "orig", PREFIX, at(5))
    again, created = await store.fork_run(NEW, "other", PREFIX[:1], at(6))
    assert not created
    assert again.id == "fork1"
    assert len(await store.events("fork1")) == 1 + len(PREFIX)


async def test_fork_run_with_a_live_hooks_token_writes_nothing(store: AnyStore) -> None:
    """A copied hook whose token another run holds live is refused, the run not created."""
    hook = _log.hook_created("approval#1", token="tok", name="approval", kind="hook")
    await store.fork_run(NewRun("holder", "wf", None), "x", [hook], at(1))
    with pytest.raises(HookConflictError):
        await store.fork_run(NEW, "orig", [*PREFIX, hook], at(2))
    assert await store.get_run("fork1") is None
    assert [h.run_id for h in await store.list_hooks()] == ["holder"]


async def test_fork_run_refuses_a_log_that_ends_the_run(store: AnyStore) -> None:
    """A fork continues on today's code: a copied end of run is a caller's mistake."""
    with pytest.raises(ValueError, match="end of a run"):
        await store.fork_run(NEW, "orig", [*PREFIX, _log.run_completed(output=1)], at(2))
    assert await store.get_run("fork1") is None
