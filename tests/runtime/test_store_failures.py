"""A worker whose store fails for a moment (a database restarting, a connection lost)
hands back the runs it could not write or read, and they complete: none is failed for
it, none is left held by a live worker that has forgotten it.

In-process, on a MemoryStore that fails on cue; test_cluster.py restarts a real
PostgreSQL server under worker processes.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

import pytest

from helpers import of_type, wait_for_hook
from perdure import Engine, EventType, define_hook, step, workflow
from perdure._records import Event, NewEvent
from perdure._runtime import _worker
from perdure.stores import MemoryStore

calls: Counter[str] = Counter()
knock = define_hook(dict, name="flaky-knock")


@step(name="flaky-double")
async def double(x: int) -> int:
    """Count the call, and double."""
    calls["double"] += 1
    return x * 2


@workflow(name="flaky-twice")
async def twice(x: int) -> int:
    """Two steps."""
    return await double(await double(x))


@workflow(name="flaky-knocked")
async def knocked(token: str) -> str:
    """Wait for a knock, then a step."""
    payload = await knock.create(token=token)
    return f"{payload['who']} {await double(1)}"


class FlakyStore(MemoryStore):
    """A MemoryStore whose next appends of an event type, log reads or releases fail."""

    def __init__(self) -> None:
        super().__init__()
        self.failing_appends: Counter[EventType] = Counter()
        self.failing_reads = 0
        self.failing_releases = 0
        self.failing_unregisters = 0
        self.failed: Counter[str] = Counter()

    def _fail(self, what: str) -> None:
        self.failed[what] += 1
        raise ConnectionResetError(f"the connection was lost during {what} (injected)")

    async def append(
        self, worker_id: str, run_id: str, events: list[NewEvent], *args: Any, **kwargs: Any
    ) -> int:
        for event in events:
            if self.failing_appends[event.type] > 0:
                self.failing_appends[event.type] -= 1
                self._fail(f"append {event.type.value}")
        return await super().append(worker_id, run_id, events, *args, **kwargs)

    async def events(self, run_id: str, *args: Any, **kwargs: Any) -> list[Event]:
        if self.failing_reads > 0:
            self.failing_reads -= 1
            self._fail("events")
        return await super().events(run_id, *args, **kwargs)

    async def release_run(self, *args: Any, **kwargs: Any) -> None:
        if self.failing_releases > 0:
            self.failing_releases -= 1
            self._fail("release_run")
        await super().release_run(*args, **kwargs)

    async def unregister_worker(self, *args: Any, **kwargs: Any) -> None:
        if self.failing_unregisters > 0:
            self.failing_unregisters -= 1
            self._fail("unregister_worker")
        await super().unregister_worker(*args, **kwargs)


async def test_a_run_whose_start_cannot_be_logged_is_handed_back_not_failed() -> None:
    """When logging a run's start fails, the run is handed back and started again, not
    failed with the connection error."""
    calls.clear()
    store = FlakyStore()
    store.failing_appends[EventType.RUN_STARTED] = 1
    async with Engine("memory://", store=store) as engine:
        run = await engine.start(twice, 3)
        assert await run.result(timeout=5) == 12
        events = await run.events()
    assert store.failed == Counter({"append run_started": 1})
    assert len(of_type(events, EventType.RUN_STARTED)) == 1
    assert calls == Counter({"double": 2})


async def test_a_step_result_that_cannot_be_logged_hands_the_run_back_even_if_release_fails() -> (
    None
):
    """When a step's result cannot be logged, and then the run cannot be handed back
    either, the hand-back is retried until it works; the run is replayed and only that
    step runs again."""
    calls.clear()
    store = FlakyStore()
    store.failing_appends[EventType.STEP_COMPLETED] = 1
    store.failing_releases = 2
    async with Engine("memory://", store=store) as engine:
        run = await engine.start(twice, 3)
        assert await run.result(timeout=5) == 12
        events = await run.events()
    assert store.failed == Counter({"append step_completed": 1, "release_run": 2})
    assert [e.correlation_id for e in of_type(events, EventType.STEP_COMPLETED)] == [
        "flaky-double#1",
        "flaky-double#2",
    ]
    assert calls == Counter({"double": 3})


async def test_a_run_whose_log_cannot_be_read_for_replay_is_handed_back_not_failed() -> None:
    """When reading a run's log to replay it fails, the run is handed back and replayed
    again, not failed."""
    calls.clear()
    store = FlakyStore()
    async with Engine("memory://", store=store) as first:
        run = await first.start(knocked, "door-1")
        await wait_for_hook(first, "door-1")
    store.failing_reads = 1
    async with Engine("memory://", store=store) as second:
        await knock.resume("door-1", {"who": "me"}, engine=second)
        assert await (await second.get_run(run.id)).result(timeout=5) == "me 2"
    assert store.failed == Counter({"events": 1})


async def test_a_worker_stopping_while_the_store_fails_hands_its_runs_back_when_it_answers() -> (
    None
):
    """Leaving an Engine whose store fails the hand-back (a database restarting) tries
    again until it answers, then returns: the runs it held are released at once, not
    left to a lease, and no connection error escapes."""
    store = FlakyStore()
    async with Engine("memory://", store=store) as engine:
        run = await engine.start(knocked, "door-2")
        await wait_for_hook(engine, "door-2")
        store.failing_unregisters = 2
    record = await store.get_run(run.id)
    assert record is not None
    assert record.owner is None
    assert store.failed == Counter({"unregister_worker": 2})


async def test_a_worker_stopping_while_the_store_stays_down_still_stops(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """A worker whose store does not answer its hand-back stops anyway once it has tried
    for a while (the runs then wait out its lease, as after a crash), saying so, rather
    than failing its shutdown with the connection error (seen in bench/soak.py: a
    SIGTERM during a server restart made `perdure worker` exit 1 with a traceback)."""
    monkeypatch.setattr(_worker, "_HAND_BACK_FOR", 0.3)
    store = FlakyStore()
    async with Engine("memory://", store=store) as engine:
        await engine.start(knocked, "door-3")
        await wait_for_hook(engine, "door-3")
        store.failing_unregisters = 1_000_000
    assert store.failed["unregister_worker"] >= 2
    assert "could not hand back" in caplog.text
