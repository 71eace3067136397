"""Many worker processes on one PostgreSQL: load, SIGKILL, SIGSTOP, SIGTERM, a server
restart and a host cut off from the network (issue #3).

Workers are real ``python -m perdure worker`` processes with a 2 s lease, serving
``tests/runtime/cluster_programs/cluster_workflows.py``: a workflow of three steps, each of
which appends ``RUN STEP PID`` to a side-effect file as it begins, so the test knows
which step attempts began, how often, and in which process. The test process starts
runs through an Engine without a worker and reads the database; every wait polls a
condition with a deadline. Each test has a database of its own, on the machine's
server, or on a private server (`cluster_lab.private_postgres`) when the test stops the
server or cuts a host off from it.
"""

from __future__ import annotations

import asyncio
import random
import signal
import time
from collections import Counter
from datetime import timedelta
from typing import TYPE_CHECKING, Any

import asyncpg
import pytest

from cluster_lab import (
    Effect,
    Lab,
    WorkerProcess,
    chain,
    eventually,
    expected,
    network_namespaces,
    private_postgres,
)
from helpers import of_type
from perdure import Engine, Event, EventType, RunStatus
from perdure._clock import SystemClock
from perdure._runtime._worker import Worker
from perdure.stores.postgres import PostgresStore
from pg import create_database, fresh_database

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
    from pathlib import Path

    from perdure.stores import Store

LEASE = 2.0
STEPS = ("first#1", "second#1", "third#1")


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


# -- helpers ------------------------------------------------------------------------------


async def start_runs(engine: Engine, xs: Iterable[int]) -> dict[str, int]:
    """Start a run of `chain` for each x (run id ``run-X``); run id to x."""
    started = {}
    for x in xs:
        run = await engine.start(chain, x, run_id=f"run-{x}")
        started[run.id] = x
    return started


async def completed(store: Store, runs: dict[str, int], timeout: float) -> None:
    """Wait until every run has ended, then check each completed with the right result."""

    async def all_ended() -> bool:
        ended = [r for r in await store.list_runs(limit=100_000) if r.status.is_terminal]
        return len({r.id for r in ended} & runs.keys()) == len(runs)

    await eventually(all_ended, f"{len(runs)} runs to end", timeout)
    for run_id, x in runs.items():
        record = await store.get_run(run_id)
        assert record is not None
        assert (record.status, record.output) == (RunStatus.COMPLETED, expected(x)), run_id


async def logs(store: Store, runs: Iterable[str]) -> dict[str, list[Event]]:
    return {run_id: await store.events(run_id) for run_id in runs}


def assert_logged_once(log: dict[str, list[Event]]) -> None:
    """Each run started and completed once, and each of its steps completed once."""
    for run_id, events in log.items():
        assert len(of_type(events, EventType.RUN_STARTED)) == 1, run_id
        assert len(of_type(events, EventType.RUN_COMPLETED)) == 1, run_id
        completions = Counter(e.correlation_id for e in of_type(events, EventType.STEP_COMPLETED))
        assert completions == Counter(STEPS), run_id


def rerun_steps(effects: list[Effect]) -> dict[tuple[str, str], list[int]]:
    """The (run, step) calls that began more than once, with the pids, in order."""
    pids: dict[tuple[str, str], list[int]] = {}
    for effect in effects:
        pids.setdefault((effect.run, effect.step), []).append(effect.pid)
    return {call: found for call, found in pids.items() if len(found) > 1}


async def owners(store: Store, runs: Iterable[str]) -> Counter[str | None]:
    """How many of the runs each worker holds (None: nobody)."""
    records = [await store.get_run(run_id) for run_id in runs]
    return Counter(r.owner for r in records if r is not None)


async def event_of(store: Store, run_id: str, kind: EventType, cid: str | None = None) -> Event:
    async def first() -> Event | None:
        return next(iter(of_type(await store.events(run_id), kind, cid)), None)

    return await eventually(first, f"{kind.value} {cid or ''} in {run_id}", 20)


# -- the lease option ---------------------------------------------------------------------


async def test_the_lease_reaches_the_postgresql_store_and_paces_the_heartbeat(
    tmp_path: Path,
) -> None:
    """Engine(lease=) sets the PostgreSQL store's lease and workers then heartbeat three
    times per lease (every second at most); SQLite takes the option and ignores it."""
    nowhere = "postgresql://nobody@127.0.0.1:1/nothing"  # nothing is opened
    short, default = Engine(nowhere, lease="1.5s"), Engine(nowhere)
    assert isinstance(short.store, PostgresStore)
    assert isinstance(default.store, PostgresStore)
    assert (short.store.lease, default.store.lease) == (
        timedelta(seconds=1.5),
        timedelta(seconds=10),
    )
    assert Worker(short.store, SystemClock())._heartbeat_every == 0.5
    assert Worker(default.store, SystemClock())._heartbeat_every == 1.0
    on_sqlite = Engine(f"sqlite:///{tmp_path}/lease.db", lease=2)
    assert Worker(on_sqlite.store, SystemClock())._heartbeat_every == 1.0
    with pytest.raises(ValueError, match="lease"):
        Engine(nowhere, lease=0)


# -- no failures --------------------------------------------------------------------------


@pytest.mark.slow
async def test_three_workers_run_hundreds_of_runs_and_no_step_twice(lab: Lab) -> None:
    """300 runs of three steps on three worker processes all complete correctly, with
    the work spread over the workers and every step executed exactly once."""
    workers = [lab.worker(f"w{n}") for n in range(3)]
    for worker in workers:
        await worker.ready()
    async with Engine(lab.url, worker=False) as engine:
        runs = await start_runs(engine, range(300))
        await completed(engine.store, runs, timeout=90)
        log = await logs(engine.store, runs)

    executions = lab.executions()
    assert len(executions) == 900
    assert set(executions.values()) == {1}, "a step ran twice"
    by_pid = Counter(e.pid for e in lab.effects())
    assert set(by_pid) == {w.pid for w in workers}, f"work not spread: {by_pid}"
    assert_logged_once(log)
    for run_id, events in log.items():
        attempts = {e.data["attempt"] for e in of_type(events, EventType.STEP_STARTED)}
        assert attempts == {1}, run_id
    assert all(w.alive for w in workers)


# -- SIGKILL ------------------------------------------------------------------------------


@pytest.mark.slow
async def test_workers_killed_at_random_lose_nothing_and_rerun_only_steps_in_flight(
    lab: Lab,
) -> None:
    """While batches of runs flow, a random worker holding runs is SIGKILLed and replaced,
    six times: every run completes with the right result, each step is logged once, and
    a step began more than once only when its earlier attempts were in killed processes."""
    lab.settings["CLUSTER_STEP_SECONDS"] = "0.2"
    chaos = random.Random(3)
    live = [lab.worker(f"w{n}") for n in range(3)]
    for worker in live:
        await worker.ready()
    killed: set[int] = set()
    runs: dict[str, int] = {}
    async with Engine(lab.url, worker=False) as engine:
        for round_ in range(6):
            batch = await start_runs(engine, range(round_ * 30, (round_ + 1) * 30))
            runs.update(batch)

            async def holders(batch: dict[str, int] = batch) -> list[WorkerProcess]:
                held = await owners(engine.store, batch)
                return [w for w in live if held[w.id]]

            victim = chaos.choice(await eventually(holders, "a worker to hold runs", 20))

            async def in_flight(pid: int = victim.pid, batch: dict[str, int] = batch) -> bool:
                return any(e.pid == pid and e.run in batch for e in lab.effects())

            await eventually(in_flight, "the victim to begin a step", 20)
            victim.kill()
            killed.add(victim.pid)
            live.remove(victim)
            replacement = lab.worker(f"w{3 + round_}")
            live.append(replacement)
            await replacement.ready()
        await completed(engine.store, runs, timeout=60)
        log = await logs(engine.store, runs)

    assert_logged_once(log)
    reruns = rerun_steps(lab.effects())
    assert reruns, "no kill caught a step in flight: the test proved nothing"
    for call, pids in reruns.items():
        assert set(pids[:-1]) <= killed, f"{call} ran again after a live process ran it: {pids}"
    assert all(w.alive for w in live)


async def _began_in(lab: Lab, pid: int) -> bool:
    return any(e.pid == pid for e in lab.effects())


# -- SIGSTOP ------------------------------------------------------------------------------


@pytest.mark.slow
async def test_a_worker_paused_past_its_lease_loses_its_run_and_its_writes_are_refused(
    lab: Lab,
) -> None:
    """A worker SIGSTOPped mid-step past its lease loses the run to another worker; once
    resumed, its finished step's write is refused, and the run completes exactly once."""
    lab.settings["CLUSTER_GATED"] = "first"
    paused = lab.worker("paused")
    await paused.ready()
    async with Engine(lab.url, worker=False) as engine:
        runs = await start_runs(engine, [5])
        await eventually(lambda: _began_in(lab, paused.pid), "the first step to begin", 20)
        other = lab.worker("other")
        await other.ready()
        assert await owners(engine.store, runs) == Counter({paused.id: 1})

        # The pause outlasts the lease by design: that is the scenario. The wait ends
        # when the other worker has taken the run over and begun the step again.
        paused.signal(signal.SIGSTOP)
        stopped = time.monotonic()
        try:
            await eventually(
                lambda: _began_in(lab, other.pid), "the other worker to rerun the step", 20
            )
            taken_after = time.monotonic() - stopped
            assert await owners(engine.store, runs) == Counter({other.id: 1})
        finally:
            paused.signal(signal.SIGCONT)
        # The last heartbeat came at most a third of a lease before the stop, and the
        # reaper looks every third of a lease: the 2 s lease (not the 10 s default) ruled.
        assert LEASE * 2 / 3 - 0.1 < taken_after < LEASE * 2 + 1, taken_after

        lab.open_gate("first-1")  # the paused worker's attempt ends, and it tries to log it
        await paused.logged("run run-5 was taken over by another worker")
        events = await engine.store.events("run-5")
        assert not of_type(events, EventType.STEP_COMPLETED), "a stale write got through"
        assert paused.alive

        lab.open_gate("first-2")
        await completed(engine.store, runs, timeout=20)
        log = await logs(engine.store, runs)

    assert_logged_once(log)
    events = log["run-5"]
    (done,) = of_type(events, EventType.STEP_COMPLETED, "first#1")
    assert done.data["attempt"] == 2
    assert [e.data["attempt"] for e in of_type(events, EventType.STEP_STARTED, "first#1")] == [
        1,
        2,
    ]
    pids = [(e.step, e.pid) for e in lab.effects()]
    assert pids == [
        ("first#1", paused.pid),
        ("first#1", other.pid),
        ("second#1", other.pid),
        ("third#1", other.pid),
    ]


# -- SIGTERM ------------------------------------------------------------------------------


@pytest.mark.slow
async def test_sigterm_lets_the_step_finish_and_another_worker_continues_at_once(
    lab: Lab,
) -> None:
    """A worker told to stop with SIGTERM mid-step finishes the step within its grace
    period, exits 0, and another worker continues the run at once, long before a 10 s
    lease would have lapsed, without running the step again."""
    lab.settings["CLUSTER_GATED"] = "first"
    stopping = lab.worker("stopping", "--grace", "20", lease=10)
    await stopping.ready()
    async with Engine(lab.url, worker=False) as engine:
        runs = await start_runs(engine, [7])
        await eventually(lambda: _began_in(lab, stopping.pid), "the first step to begin", 20)
        other = lab.worker("other", lease=10)
        await other.ready()

        stopping.signal(signal.SIGTERM)
        await stopping.printed("stopping:")
        assert stopping.alive, "SIGTERM did not wait for the step in flight"
        lab.open_gate("first")
        assert await stopping.exit_code() == 0, stopping.stderr()
        exited = time.monotonic()

        await event_of(engine.store, "run-7", EventType.STEP_STARTED, "second#1")
        continued_after = time.monotonic() - exited
        await completed(engine.store, runs, timeout=20)
        log = await logs(engine.store, runs)

    assert continued_after < 3, f"the run waited {continued_after:.1f}s for its next worker"
    assert_logged_once(log)
    (done,) = of_type(log["run-7"], EventType.STEP_COMPLETED, "first#1")
    assert done.data["attempt"] == 1
    assert [(e.step, e.pid) for e in lab.effects()] == [
        ("first#1", stopping.pid),
        ("second#1", other.pid),
        ("third#1", other.pid),
    ]


@pytest.mark.slow
async def test_a_worker_stopping_on_sigterm_claims_no_new_runs(lab: Lab) -> None:
    """A worker in its grace period after SIGTERM, where one run ends while another is
    still mid-step, claims no run started meanwhile: that run waits, untouched, for the
    next worker."""
    lab.settings["CLUSTER_GATED"] = "first,third"
    stopping = lab.worker("stopping", "--grace", "20")
    await stopping.ready()
    async with Engine(lab.url, worker=False) as engine:
        ending = await start_runs(engine, [1])
        lab.open_gate("first")
        await event_of(engine.store, "run-1", EventType.STEP_STARTED, "third#1")
        lab.close_gate("first")
        held = await start_runs(engine, [2])
        await eventually(lambda: _began(lab, "run-2", "first#1"), "run-2 to begin", 20)
        stopping.signal(signal.SIGTERM)
        await stopping.printed("stopping:")
        later = await start_runs(engine, [3])
        lab.open_gate("third")  # run-1 ends, run-2 is still mid-step: the worker passes again
        await completed(engine.store, ending, timeout=20)
        lab.open_gate("first")
        assert await stopping.exit_code() == 0, stopping.stderr()

        events = await engine.store.events("run-3")
        assert [e.type for e in events] == [EventType.RUN_CREATED], "the stopping worker took it"
        record = await engine.store.get_run("run-3")
        assert record is not None
        assert (record.status, record.owner) == (RunStatus.PENDING, None)

        other = lab.worker("other")
        await other.ready()
        await completed(engine.store, held | later, timeout=20)
        (started,) = of_type(await engine.store.events("run-3"), EventType.RUN_STARTED)
        assert started.data["worker"] == other.id
        log = await logs(engine.store, [*ending, *held, *later])

    assert_logged_once(log)
    assert [(e.run, e.step, e.pid) for e in lab.effects() if e.run == "run-2"] == [
        ("run-2", "first#1", stopping.pid),
        ("run-2", "second#1", other.pid),
        ("run-2", "third#1", other.pid),
    ]


async def _began(lab: Lab, run: str, step: str) -> bool:
    return any((e.run, e.step) == (run, step) for e in lab.effects())


# -- PostgreSQL restarted -----------------------------------------------------------------


@pytest.mark.slow
async def test_workers_reconnect_after_postgresql_restarts_and_nothing_is_lost(
    tmp_path: Path,
) -> None:
    """Three workers under load when their PostgreSQL server stops for longer than the
    lease and starts again reconnect, do not reap each other, and complete every run
    correctly; only steps in flight during the outage run again."""
    with private_postgres() as server:
        url = await create_database(server.url())
        lab = Lab(tmp_path, url, {"CLUSTER_STEP_SECONDS": "0.05"})
        try:
            workers = [lab.worker(f"w{n}", "--concurrency", "4") for n in range(3)]
            for worker in workers:
                await worker.ready()
            async with Engine(url, worker=False) as engine:
                runs = await start_runs(engine, range(150))

                async def some_done() -> bool:
                    done = await engine.store.list_runs(status=RunStatus.COMPLETED, limit=1000)
                    return len(done) >= 20

                await eventually(some_done, "20 runs to complete", 30)
                down = time.monotonic()
                server.stop()
                for worker in workers:
                    await worker.logged("failed")
                # The server stays down past a lease by design: every heartbeat is stale
                # when it comes back, and the workers must still not reap each other.
                await asyncio.sleep(max(0.0, down + LEASE * 1.5 - time.monotonic()))
                server.start()
                restarted = len(lab.effects())
                back = await _now(url)

                await _tolerating_outage(lambda: completed(engine.store, runs, timeout=60))
                log = await logs(engine.store, runs)
                heartbeats = await _heartbeats(url)
                survived = [w.name for w in workers if w.alive]
        finally:
            lab.close()

    assert_logged_once(log)
    effects = lab.effects()
    assert len({(e.run, e.step) for e in effects}) == 450
    for call in rerun_steps(effects):
        began = [n for n, e in enumerate(effects) if (e.run, e.step) == call]
        assert all(n < restarted for n in began[:-1]), f"{call} ran again after the restart"
    assert survived == [w.name for w in workers], "a worker died with the server"
    for worker in workers:
        assert heartbeats[worker.id] > back, f"{worker.name} never heartbeat again"
    assert {e.pid for e in effects[restarted:]} <= {w.pid for w in workers}


async def _tolerating_outage(waiting: Callable[[], Awaitable[None]]) -> None:
    """Await ``waiting()``, again if the test's own connections saw the restart."""
    for attempt in range(3):
        try:
            await waiting()
        except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError):
            if attempt == 2:
                raise
        else:
            return


async def _now(url: str) -> Any:
    conn = await asyncpg.connect(url)
    try:
        return await conn.fetchval("SELECT now()")
    finally:
        await conn.close()


async def _heartbeats(url: str) -> dict[str, Any]:
    conn = await asyncpg.connect(url)
    try:
        return {row["id"]: row["heartbeat_at"] for row in await conn.fetch("SELECT * FROM workers")}
    finally:
        await conn.close()


# -- two hosts ----------------------------------------------------------------------------


@pytest.mark.slow
async def test_a_host_cut_off_from_the_network_loses_its_runs_to_the_other_host(
    tmp_path: Path,
) -> None:
    """Two hosts (network namespaces) reach PostgreSQL over their own virtual links; when
    one host's link is cut while it holds runs mid-step, its runs move to the other host
    and complete there, the cut-off worker still running."""
    with network_namespaces(2) as network:
        near, far = network.hosts
        listen = [host.server_ip for host in network.hosts]
        with private_postgres(listen=listen, trusted=[network.subnet]) as server:
            database = (await create_database(server.url())).rsplit("/", 1)[1]
            lab = Lab(tmp_path, server.url(database=database), {"CLUSTER_GATED": "second"})
            try:
                cut_off = lab.worker(
                    "cut-off", url=server.url(near.server_ip, database), prefix=near.prefix
                )
                await cut_off.ready()
                async with Engine(lab.url, worker=False) as engine:
                    runs = await start_runs(engine, range(10))

                    async def all_waiting() -> bool:
                        began = {e.run for e in lab.effects() if e.step == "second#1"}
                        return began == runs.keys()

                    await eventually(all_waiting, "every run to wait in its second step", 20)
                    survivor = lab.worker(
                        "survivor", url=server.url(far.server_ip, database), prefix=far.prefix
                    )
                    await survivor.ready()
                    assert await owners(engine.store, runs) == Counter({cut_off.id: 10})

                    network.cut(near)
                    lab.open_gate("second")
                    await completed(engine.store, runs, timeout=30)
                    log = await logs(engine.store, runs)
                    assert cut_off.alive, "the cut-off worker died: this was to be a network cut"
            finally:
                lab.close()

    assert_logged_once(log)
    effects = lab.effects()
    for run_id in runs:
        assert [(e.step, e.pid) for e in effects if e.run == run_id] == [
            ("first#1", cut_off.pid),
            ("second#1", cut_off.pid),
            ("second#1", survivor.pid),
            ("third#1", survivor.pid),
        ], run_id
