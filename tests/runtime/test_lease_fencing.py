"""A worker frozen past its lease begins nothing for the runs it lost (issue 10, §1).

Writes to a run are fenced by the store, but a step's side effect happens before its
result is written: a worker that was paused (SIGSTOP, a VM pause, a long GC pause) past
its lease, and taken for dead meanwhile, must not begin a step of a run another worker
has since taken, even though its own memory still shows the run as held. Workers keep
their lease's expiry on the monotonic clock, which runs on through a pause, and ask the
store before they begin anything once it may have lapsed.

The issue's reproduction runs real ``perdure worker`` processes on PostgreSQL
(`cluster_lab`), whose steps append ``RUN STEP PID`` to a side-effect file as they
begin: the file's order is the order in which steps began, across processes. The other
tests run in this process, on a memory store given a lease and heartbeats that fail or
find the worker reaped on cue, and make the monotonic clock jump as it does across a
pause.
"""

from __future__ import annotations

import asyncio
import signal
import time
from collections import Counter, defaultdict
from datetime import timedelta
from typing import TYPE_CHECKING

import pytest

from cluster_lab import Effect, Lab, eventually, ticks
from helpers import of_type, wait_for_event
from perdure import Engine, EventType, RunStatus, get_step_metadata, step, workflow
from perdure._clock import SystemClock
from perdure._runtime._lease import Lease
from perdure.stores import MemoryStore
from pg import fresh_database

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Callable
    from datetime import datetime
    from pathlib import Path

RUNS = 60
STEPS = 40


@pytest.fixture
async def lab(tmp_path: Path) -> AsyncIterator[Lab]:
    """A Lab on a throwaway database of the machine's server; its workers are killed and
    the database dropped when the test ends."""
    async with fresh_database() as url:
        made = Lab(tmp_path, url)
        try:
            yield made
        finally:
            made.close()


def begun_after_losing(effects: list[Effect], pid: int) -> list[Effect]:
    """The steps ``pid`` began of runs another process had already begun steps of.

    In this test a run moves between workers only when its worker is taken for dead: a
    step that the paused worker began once another had run that run's steps is a step
    of a run it had lost.
    """
    taken: set[str] = set()
    late: list[Effect] = []
    for effect in effects:
        if effect.pid != pid:
            taken.add(effect.run)
        elif effect.run in taken:
            late.append(effect)
    return late


@pytest.mark.slow
async def test_a_worker_thawed_after_its_lease_begins_no_step_of_the_runs_it_lost(
    lab: Lab,
) -> None:
    """The issue's reproduction: three workers with a 3 s lease, 60 runs of 40 steps of
    30 ms; one worker is frozen for 6 s while it holds runs, then thawed. Every run
    completes once, the others take the frozen worker's runs, and the thawed worker
    begins no step of a run that another worker has run since: it asks the store first,
    learns that it was taken for dead, and lets those runs go.

    Each worker runs 4 steps at once, so that when the worker freezes most of its steps
    wait for a slot: on thawing they would all begin at once, long after the lease."""
    lab.settings["CLUSTER_STEP_SECONDS"] = "0.03"
    workers = [lab.worker(f"w{n}", "--concurrency", "4", lease=3) for n in range(3)]
    for worker in workers:
        await worker.ready()
    frozen = workers[0]
    async with Engine(lab.url, worker=False) as engine:
        runs = [(await engine.start(ticks, x, STEPS, run_id=f"run-{x}")).id for x in range(RUNS)]

        async def frozen_is_busy() -> bool:
            return sum(e.pid == frozen.pid for e in lab.effects()) >= 40

        await eventually(frozen_is_busy, "the worker to be frozen to begin 40 steps", 30)
        frozen.signal(signal.SIGSTOP)
        try:
            await asyncio.sleep(6)  # twice the lease: the scenario, not a wait for a state
        finally:
            frozen.signal(signal.SIGCONT)

        async def all_ended() -> bool:
            records = [await engine.store.get_run(run_id) for run_id in runs]
            return all(r is not None and r.status.is_terminal for r in records)

        await eventually(all_ended, f"{RUNS} runs to end", 120)
        for x, run_id in enumerate(runs):
            record = await engine.store.get_run(run_id)
            assert record is not None
            assert (record.status, record.output) == (RunStatus.COMPLETED, x + STEPS), run_id
            events = await engine.store.events(run_id)
            done = Counter(e.correlation_id for e in of_type(events, EventType.STEP_COMPLETED))
            assert set(done.values()) == {1}, run_id
            assert len(done) == STEPS, run_id

    effects = lab.effects()
    by_pid = Counter(e.pid for e in effects)
    lost = {e.run for e in effects if e.pid == frozen.pid} & {
        e.run for e in effects if e.pid != frozen.pid
    }
    assert lost, f"no run moved off the frozen worker: the test proved nothing ({by_pid})"
    late = begun_after_losing(effects, frozen.pid)
    began = defaultdict(list)
    for effect in late:
        began[effect.run].append(effect.step)
    assert not late, f"the thawed worker began steps of runs it had lost: {dict(began)}"
    assert all(worker.alive for worker in workers)


# -- in this process: a store with a lease, and a monotonic clock that jumps -------------


class LeasedStore(MemoryStore):
    """A MemoryStore with a lease, whose next heartbeats fail or find the worker reaped."""

    def __init__(self, lease: float = 3.0) -> None:
        super().__init__()
        self._lease_seconds = lease
        self.heartbeats = 0
        self.failing_heartbeats = 0
        self.reap_at_next_heartbeat = False
        self.during_heartbeat: list[object] = []
        """Things to call while a heartbeat is on its way (a clock to move)."""

    @property
    def lease(self) -> timedelta:  # type: ignore[override]
        return timedelta(seconds=self._lease_seconds)

    async def heartbeat(self, worker_id: str, now: datetime) -> bool:
        self.heartbeats += 1
        for call in self.during_heartbeat:
            call()  # type: ignore[operator]
        if self.failing_heartbeats > 0:
            self.failing_heartbeats -= 1
            raise ConnectionResetError("the connection was lost during heartbeat (injected)")
        if self.reap_at_next_heartbeat:
            # As another worker's reaper would: its runs released, its row gone.
            self.reap_at_next_heartbeat = False
            await self.unregister_worker(worker_id, now)
        return await super().heartbeat(worker_id, now)


class Monotonic:
    """A monotonic clock the test moves (``pause``), on top of the real one."""

    def __init__(self) -> None:
        self.offset = 0.0

    def __call__(self) -> float:
        return time.monotonic() + self.offset

    def pause(self, seconds: float) -> None:
        """Time passes as it does while a process is stopped."""
        self.offset += seconds


def a_lease(store: LeasedStore, clock: Monotonic, lost: list[str]) -> Lease:
    async def on_lost() -> None:
        lost.append("let go")

    return Lease(store, "w1", SystemClock(), on_lost, monotonic=clock)


def holds(lease: Lease) -> bool:
    """Whether the lease holds now (a call, so that each check reads the clock anew)."""
    return lease.valid


async def test_the_lease_holds_from_when_the_heartbeat_was_sent() -> None:
    """Registering starts the lease; it lapses one lease after the last heartbeat the
    store accepted was sent, however late its answer came."""
    store, clock, lost = LeasedStore(lease=3), Monotonic(), list[str]()
    lease = a_lease(store, clock, lost)
    await lease.register()
    assert holds(lease)
    clock.pause(2.9)
    assert holds(lease)
    clock.pause(0.2)
    assert not holds(lease)

    store.during_heartbeat.append(lambda: clock.pause(2))  # answered two seconds later
    assert await lease.renew() is True
    assert holds(lease)
    clock.pause(0.9)
    assert holds(lease)
    clock.pause(0.2)
    assert not holds(lease)
    assert lost == []


async def test_confirming_a_lapsed_lease_asks_until_the_store_answers() -> None:
    """confirm() returns only once a heartbeat has gone through: a store that cannot be
    reached confirms nothing."""
    store, clock, lost = LeasedStore(), Monotonic(), list[str]()
    lease = a_lease(store, clock, lost)
    await lease.register()
    clock.pause(3600)
    store.failing_heartbeats = 3

    await lease.confirm()

    assert (store.heartbeats, store.failing_heartbeats) == (4, 0)
    assert lease.valid
    assert lost == []


async def test_a_worker_found_reaped_lets_go_and_registers_afresh() -> None:
    """A heartbeat that finds the worker reaped makes it let go of everything, then
    register again: the lease holds anew, and the loss is counted."""
    store, clock, lost = LeasedStore(), Monotonic(), list[str]()
    lease = a_lease(store, clock, lost)
    await lease.register()
    clock.pause(3600)
    store.reap_at_next_heartbeat = True

    await lease.confirm()

    assert lost == ["let go"]
    assert (lease.lost, lease.valid) == (1, True)
    assert await store.heartbeat("w1", SystemClock().now()) is True


async def test_a_store_without_a_lease_needs_no_check() -> None:
    """On a store without leases the lease always holds: no heartbeat is asked for."""
    store = MemoryStore()
    lease = Lease(store, "w1", SystemClock(), lambda: asyncio.sleep(0))
    assert lease.valid
    await lease.confirm()
    assert lease.valid


began: list[tuple[object, ...]] = []
"""Each attempt of `side_effect` that began: its attempt, and what the probes said."""
probes: list[Callable[[], object]] = []
slot_holder_gate: list[asyncio.Event] = []


@step(name="lease-hold-slot", max_retries=3)
async def hold_slot() -> None:
    """Holds the worker's only step slot until the test opens the gate."""
    await slot_holder_gate[0].wait()


@step(name="lease-side-effect", max_retries=3)
async def side_effect() -> None:
    """Records which attempt began, and what the test's probes say at that moment."""
    began.append((get_step_metadata().attempt, *(probe() for probe in probes)))


@workflow(name="lease-holder")
async def holder() -> None:
    """One step that holds the slot."""
    await hold_slot()


@workflow(name="lease-waiter")
async def waiter() -> None:
    """One step with a side effect, that waits for the slot."""
    await side_effect()


@pytest.fixture
def _fresh() -> None:
    began.clear()
    probes.clear()
    slot_holder_gate.clear()
    slot_holder_gate.append(asyncio.Event())


@pytest.mark.usefixtures("_fresh")
async def test_a_step_waiting_for_a_slot_does_not_begin_once_its_worker_was_reaped() -> None:
    """A step waits for the worker's only slot; meanwhile the worker is paused past its
    lease and reaped. When the slot frees, the step's attempt does not begin: the worker
    asks the store, learns it was reaped, and lets its runs go. The run is claimed again
    and its step runs as attempt 2; attempt 1 never ran."""
    store, clock = LeasedStore(), Monotonic()
    async with Engine("memory://", store=store, max_concurrent_steps=1) as engine:
        assert engine.worker is not None
        engine.worker.lease._monotonic = clock  # the pause is simulated
        blocking = await engine.start(holder)
        await wait_for_event(engine, blocking, EventType.STEP_STARTED)
        run = await engine.start(waiter)
        await wait_for_event(engine, run, EventType.STEP_STARTED)

        clock.pause(3600)  # the process was stopped; meanwhile it was taken for dead
        store.reap_at_next_heartbeat = True
        slot_holder_gate[0].set()

        await run.result(timeout=10)
        await blocking.result(timeout=10)
        statistics = engine.statistics()
        assert statistics is not None
        assert statistics.lost_leases == 1

    assert began == [(2,)]


@pytest.mark.usefixtures("_fresh")
async def test_after_an_outage_no_step_begins_until_the_store_confirms_the_lease() -> None:
    """Heartbeats failed (the database down) until the lease may have lapsed: a step
    that was waiting for a slot begins only once a heartbeat has gone through, and new
    runs are not even claimed before that."""
    store, clock = LeasedStore(), Monotonic()
    async with Engine("memory://", store=store, max_concurrent_steps=1) as engine:
        assert engine.worker is not None
        engine.worker.lease._monotonic = clock  # the lapse is simulated
        blocking = await engine.start(holder)
        await wait_for_event(engine, blocking, EventType.STEP_STARTED)
        run = await engine.start(waiter)
        await wait_for_event(engine, run, EventType.STEP_STARTED)

        store.failing_heartbeats = 4
        clock.pause(3600)
        probes.append(lambda: store.failing_heartbeats)
        slot_holder_gate[0].set()
        later = await engine.start(waiter)

        await run.result(timeout=10)
        await later.result(timeout=10)

    assert began == [(1, 0), (1, 0)], "a step began before a heartbeat went through"
