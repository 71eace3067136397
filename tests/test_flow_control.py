"""Flow control on every store: concurrency limits, step limits, priority, dedupe, debounce.

The limits across worker processes (kill -9 included) are in
``runtime/test_flow_cluster.py``; here one process, with the fake clock where time
matters.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import timedelta
from typing import TYPE_CHECKING

import pytest

import perdure
from helpers import fake_clock, wait_for_hook, wait_until
from perdure import Engine, Limit, Rate, RunStatus, define_hook, step, workflow
from perdure.testing import FakeClock

if TYPE_CHECKING:
    from conftest import EngineFactory


@dataclass
class Go:
    """Lets a held run end."""

    ok: bool = True


go = define_hook(Go, name="flow-go")


@workflow(concurrency=Limit(2, key="customer"))
async def per_customer(customer: str, token: str) -> str:
    """Holds its slot until its hook is resumed."""
    await go.create(token=token)
    return customer


@workflow(concurrency=Limit(1))
async def one_at_a_time(token: str) -> str:
    """A global limit of one."""
    await go.create(token=token)
    return token


async def _status(engine: Engine, run_id: str) -> RunStatus:
    return await (await engine.get_run(run_id)).status()


async def test_a_limit_per_key_holds_runs_back_and_lets_them_go_in_order(engine: Engine) -> None:
    """Two runs of one customer hold slots; the others wait, saying why; another
    customer is not held back; when a holder ends, the first waiting run starts.

    The fake clock stands still, so runs created at one moment go by id: the ids say
    the order.
    """
    first = await engine.start(per_customer, "acme", "a1", run_id="a1")
    second = await engine.start(per_customer, "acme", "a2", run_id="a2")
    await wait_for_hook(engine, "a1")
    await wait_for_hook(engine, "a2")
    third = await engine.start(per_customer, "acme", "a3", run_id="a3")
    fourth = await engine.start(per_customer, "acme", "a4", run_id="a4")
    other = await engine.start(per_customer, "globex", "g1", run_id="g1")
    await wait_for_hook(engine, "g1")  # another key is not held back
    assert await _status(engine, third.id) is RunStatus.PENDING
    wait = await engine.limit_wait(third.id)
    assert wait is not None
    assert wait.reason == "waiting for a slot: customer=acme, 2 of 2 in use"
    later = await engine.limit_wait(fourth.id)
    assert later is not None
    assert later.ahead == 1
    assert later.reason.endswith("2 of 2 in use; 1 ahead")
    usage = {u.key: u for u in await engine.limits()}
    assert usage["per_customer:customer=acme"].in_use == 2
    assert usage["per_customer:customer=acme"].waiting == 2
    assert usage["per_customer:customer=globex"].in_use == 1

    await go.resume("a1", Go())
    assert await first.result(timeout=10) == "acme"
    await wait_for_hook(engine, "a3")  # the oldest waiting run took the slot
    assert await _status(engine, fourth.id) is RunStatus.PENDING
    for token in ("a2", "a3", "g1"):
        await go.resume(token, Go())
    await wait_for_hook(engine, "a4")
    await go.resume("a4", Go())
    for run in (second, third, fourth, other):
        await run.result(timeout=10)
    assert await engine.limits() == []


async def test_a_global_limit(engine: Engine) -> None:
    """Without a key, one slot for every run of the workflow."""
    first = await engine.start(one_at_a_time, "x1")
    await wait_for_hook(engine, "x1")
    second = await engine.start(one_at_a_time, "x2")
    wait = await wait_until(engine, lambda: engine.limit_wait(second.id))
    assert wait.reason == "waiting for a slot: all runs, 1 of 1 in use"
    await go.resume("x1", Go())
    await first.result(timeout=10)
    await wait_for_hook(engine, "x2")
    await go.resume("x2", Go())
    assert await second.result(timeout=10) == "x2"


running_now = 0
most_at_once = 0


@step(concurrency=2)
async def bounded(n: int) -> int:
    """Counts how many attempts run at once."""
    global running_now, most_at_once  # noqa: PLW0603 - the test's probe
    running_now += 1
    most_at_once = max(most_at_once, running_now)
    try:
        # Stay until another attempt is in too (at most a second): a third that came in
        # meanwhile would show in ``most_at_once``.
        for _ in range(200):
            if running_now >= 2:  # the step's concurrency
                break
            await asyncio.sleep(0.005)
        await asyncio.sleep(0.01)
    finally:
        running_now -= 1
    return n


@workflow
async def uses_bounded(n: int) -> int:
    """One bounded step."""
    return await bounded(n)


async def test_a_step_concurrency_limit(engine: Engine) -> None:
    """At most ``concurrency`` attempts of the step run at once; the others wait."""
    global most_at_once  # noqa: PLW0603 - the test's probe
    most_at_once = 0
    runs = [await engine.start(uses_bounded, n) for n in range(8)]
    assert [await run.result(timeout=20) for run in runs] == list(range(8))
    assert most_at_once == 2
    stats = engine.statistics()
    assert stats is not None
    assert stats.limit_waits > 0


started_at: list[float] = []
probe_clock: list[FakeClock] = []
"""The engine's clock, which steps read their start time from (``perdure.now()`` in a
step is the wall clock)."""


def fake_now() -> float:
    """The time on the test engine's fake clock."""
    return probe_clock[-1].now().timestamp()


@step(rate="2/min")
async def rated(n: int) -> int:
    """Records when it starts, on the fake clock."""
    started_at.append(fake_now())
    return n


@workflow
async def uses_rated(n: int) -> int:
    """One rated step."""
    return await rated(n)


async def test_a_rate_limit_on_the_fake_clock(engine: Engine) -> None:
    """No minute sees more than two starts; five starts take over two minutes."""
    started_at.clear()
    probe_clock.append(fake_clock(engine))
    runs = [await engine.start(uses_rated, n) for n in range(5)]
    assert sorted([await run.result(timeout=20) for run in runs]) == list(range(5))
    starts = sorted(started_at)
    assert len(starts) == 5
    for i in range(len(starts) - 2):
        assert starts[i + 2] - starts[i] >= 60
    assert starts[-1] - starts[0] >= 120


keyed_starts: dict[str, list[float]] = {}


@step(rate=Rate("1/h", key="who"))
async def keyed(who: str) -> str:
    """One start an hour per value of ``who``."""
    keyed_starts.setdefault(who, []).append(fake_now())
    return who


@workflow
async def uses_keyed(who: str) -> str:
    """One keyed step."""
    return await keyed(who)


async def test_a_rate_limit_per_key(engine: Engine) -> None:
    """Each key has its own window: two keys start at once, a key's second waits an hour."""
    keyed_starts.clear()
    probe_clock.append(fake_clock(engine))
    runs = [await engine.start(uses_keyed, who) for who in ("a", "b", "a")]
    for run in runs:
        await run.result(timeout=20)
    assert abs(keyed_starts["a"][0] - keyed_starts["b"][0]) < 60
    assert keyed_starts["a"][1] - keyed_starts["a"][0] >= 3600


order: list[str] = []


@step
async def note(name: str) -> str:
    """Records the order runs reach their step in."""
    order.append(name)
    return name


@workflow
async def noted(name: str) -> str:
    """One step."""
    return await note(name)


async def test_priority_orders_runs_with_one_step_slot(make_engine: EngineFactory) -> None:
    """Runs started with priorities run highest first, then oldest first.

    Claims go in that order; a worker with one slot claims up to two runs at a time,
    and the two it holds take the slot in the order their steps ask (README, Priority):
    so each run reaches its step at most one place from its rank.
    """
    order.clear()
    async with make_engine(worker=False) as starter:
        names = [("low", -1), ("a", 0), ("urgent", 10), ("b", 0), ("high", 5)]
        # The fake clock stands still: ids in creation order break the ties as time would.
        runs = [
            await starter.start(noted, name, priority=p, run_id=f"{i}-{name}")
            for i, (name, p) in enumerate(names)
        ]
    async with make_engine(max_concurrent_steps=1) as worker:
        for run in runs:
            await (await worker.get_run(run.id)).result(timeout=20)
    ranked = ["urgent", "high", "a", "b", "low"]
    assert sorted(order) == sorted(ranked)
    assert all(abs(order.index(name) - rank) <= 1 for rank, name in enumerate(ranked)), order


@workflow
async def greet(name: str) -> str:
    """Waits for its hook, then greets."""
    await go.create(token=f"greet-{name}")
    return f"hello {name}"


async def test_dedupe_key_returns_the_live_run_then_frees_up(engine: Engine) -> None:
    """While the run with a dedupe key lives, a start with it returns that run; once it
    ended, the key starts a new run."""
    first = await engine.start(greet, "ann", dedupe_key="order-42")
    again = await engine.start(greet, "bob", dedupe_key="order-42")
    assert again.id == first.id
    other = await engine.start(greet, "cid", dedupe_key="order-43")
    assert other.id != first.id
    await wait_for_hook(engine, "greet-ann")
    await go.resume("greet-ann", Go())
    assert await first.result(timeout=10) == "hello ann"
    later = await engine.start(greet, "dan", dedupe_key="order-42")
    assert later.id != first.id
    for name, run in (("dan", later), ("cid", other)):
        await wait_for_hook(engine, f"greet-{name}")
        await go.resume(f"greet-{name}", Go())
        await run.result(timeout=10)


debounced: list[str] = []


@step
async def record_call(name: str) -> str:
    """Records the argument a debounced run started with."""
    debounced.append(name)
    return name


@workflow
async def on_change(name: str) -> str:
    """One step."""
    return await record_call(name)


async def test_debounce_starts_one_run_with_the_last_arguments(
    make_engine: EngineFactory,
) -> None:
    """Starts within the window fold into one run, started once the window passed
    quietly, with the last start's arguments."""
    debounced.clear()
    clock = FakeClock(autojump=False)
    async with make_engine(clock=clock, worker=False) as starter:
        first = await starter.start(on_change, "v1", dedupe_key="doc-7", debounce="10s")
        clock.advance(6)
        second = await starter.start(on_change, "v2", dedupe_key="doc-7", debounce="10s")
        clock.advance(6)  # 12 s after the first start, 6 after the second: still waiting
        third = await starter.start(on_change, "v3", dedupe_key="doc-7", debounce="10s")
        assert first.id == second.id == third.id
        record = await third.refresh()
        assert record.status is RunStatus.PENDING
        assert record.wake_at == clock.now() + timedelta(seconds=10)
    async with make_engine(clock=FakeClock(clock.now())) as worker:
        assert await (await worker.get_run(first.id)).result(timeout=10) == "v3"
        events = await (await worker.get_run(first.id)).events()
    assert debounced == ["v3"]
    assert "v3" in str(events[0].data["input"])  # its run_created holds the last input
    assert "v1" not in str(events[0].data["input"])


async def test_bad_flow_options_are_value_errors_and_store_nothing(engine: Engine) -> None:
    """A debounce without a dedupe key, a bad priority, or a bad rate, limit or step
    concurrency is a ValueError naming it, and nothing is stored."""
    with pytest.raises(ValueError, match="debounce needs a dedupe_key"):
        await engine.start(noted, "x", debounce="10s")
    with pytest.raises(ValueError, match="priority must be an int"):
        await engine.start(noted, "x", priority="high")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="debounce must be positive"):
        await engine.start(noted, "x", dedupe_key="k", debounce=0)
    with pytest.raises(ValueError, match="dedupe_key must be a non-empty string"):
        await engine.start(noted, "x", dedupe_key="")
    assert await engine.list_runs() == []
    with pytest.raises(ValueError, match="rate must look like"):
        Rate("100 per minute")
    with pytest.raises(ValueError, match="unknown period"):
        Rate("100/fortnight")
    with pytest.raises(ValueError, match="at least 1"):
        Limit(0)
    with pytest.raises(ValueError, match="key must be an argument's name"):
        Limit(2, key="not an identifier")
    with pytest.raises(ValueError, match="concurrency of step 'nope'"):
        step(name="nope", concurrency=0)(noted.__perdure_workflow__.fn)
    with pytest.raises(ValueError, match="rate of step 'nope'"):
        step(name="nope", rate="fast")(noted.__perdure_workflow__.fn)

    @workflow(name="flow-bad-key", concurrency=Limit(1, key="missing"))
    async def bad_key(customer: str) -> str:
        return customer

    with pytest.raises(ValueError, match="limit key 'missing' is not an argument"):
        await engine.start(bad_key, "acme")
    assert await engine.list_runs() == []


def test_rates_read_as_documented() -> None:
    """The rate forms the README shows."""
    assert (Rate("100/min").count, Rate("100/min").period) == (100, 60.0)
    assert Rate("5/10s").period == 10.0
    assert Rate("3 / hours").period == 3600.0
    assert Rate("10/s").period == 1.0


child_in_flight = 0
child_most = 0


@step
async def child_work(n: int) -> int:
    """Counts how many children of the limited workflow run at once."""
    global child_in_flight, child_most  # noqa: PLW0603 - the test's probe
    child_in_flight += 1
    child_most = max(child_most, child_in_flight)
    try:
        for _ in range(20):  # a sibling that got in meanwhile would show
            await asyncio.sleep(0.002)
    finally:
        child_in_flight -= 1
    return n


@workflow(concurrency=Limit(1))
async def one_child_at_a_time(n: int) -> int:
    """A child workflow with a global limit of one."""
    return await child_work(n)


@workflow
async def fans_out(count: int) -> list[int]:
    """Starts ``count`` limited children at once."""
    return list(await asyncio.gather(*(one_child_at_a_time(n) for n in range(count))))


async def test_child_runs_are_held_to_their_workflows_limit(engine: Engine) -> None:
    """Children started together by a parent still run one at a time under Limit(1)."""
    global child_most  # noqa: PLW0603 - the test's probe
    child_most = 0
    run = await engine.start(fans_out, 4)
    assert await run.result(timeout=30) == [0, 1, 2, 3]
    assert child_most == 1


async def test_a_rerun_is_held_to_its_workflows_limit(engine: Engine) -> None:
    """A rerun of a limited run waits for the slot its original holds."""
    first = await engine.start(one_at_a_time, "y1")
    await wait_for_hook(engine, "y1")
    again = await engine.rerun(first.id)
    wait = await wait_until(engine, lambda: engine.limit_wait(again.id))
    assert wait.reason == "waiting for a slot: all runs, 1 of 1 in use"
    await go.resume("y1", Go())
    await first.result(timeout=10)
    await wait_for_hook(engine, "y1")  # the rerun, same input, same token
    await go.resume("y1", Go())
    assert await again.result(timeout=10) == "y1"


gate_open = asyncio.Event()
"""Made again by each test: an event belongs to the event loop that first waits on it."""


@step(concurrency=1)
async def single(n: int) -> int:
    """Holds the step's one slot until the test opens the gate."""
    await gate_open.wait()
    return n


@workflow
async def uses_single(n: int) -> int:
    """One single-slot step."""
    return await single(n)


async def test_a_cancelled_run_waiting_for_a_step_slot_leaves_none_held(engine: Engine) -> None:
    """A run cancelled while its step waits for the step's slot ends cancelled, and once
    the holder is done no slot stays taken."""
    global gate_open  # noqa: PLW0603 - the test's gate
    gate_open = asyncio.Event()
    holder = await engine.start(uses_single, 1)
    await wait_until(engine, lambda: _in_use(engine, "single"))
    waiting = await engine.start(uses_single, 2)
    stats = await wait_until(engine, lambda: _waited(engine))
    assert stats.limit_waits >= 1
    await waiting.cancel()
    with pytest.raises(perdure.WorkflowCancelled):
        await waiting.result(timeout=10)
    gate_open.set()
    assert await holder.result(timeout=10) == 1
    assert await wait_until(engine, lambda: _none_in_use(engine))


async def _in_use(engine: Engine, key: str) -> bool:
    return any(u.key == key and u.in_use for u in await engine.limits())


async def _waited(engine: Engine) -> perdure._runtime.WorkerStatistics | None:
    stats = engine.statistics()
    return stats if stats is not None and stats.limit_waits else None


async def _none_in_use(engine: Engine) -> bool:
    return not [u for u in await engine.limits() if u.kind == "step"]
