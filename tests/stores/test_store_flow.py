"""The `FlowStore` contract on every store: flow-controlled starts, the limited claim,
and step slots and windows."""

from __future__ import annotations

from datetime import timedelta
from typing import TYPE_CHECKING

from helpers import T0, at
from perdure._flow import RunFlow, StepLimits
from perdure._log import run_cancelled, run_completed, run_started
from perdure._records import NewRun, RunStatus

if TYPE_CHECKING:
    from stores.conftest import AnyStore

LIMITED = RunFlow(limit_key="wf:customer=acme", limit_n=2)


async def _claim(store: AnyStore, worker: str, seconds: float, limit: int = 100) -> list[str]:
    return [run.id for run in await store.claim_runs(worker, at(seconds), limit)]


async def test_a_claim_takes_no_more_runs_of_a_key_than_its_slots(store: AnyStore) -> None:
    """Two slots: two runs claimed, the third skipped and not due; another key goes on;
    the third is claimed once a holder ends."""
    for index in range(3):
        await store.create_flow_run(NewRun(f"a{index}", "wf", {}), LIMITED, at(index))
    other = RunFlow(limit_key="wf:customer=globex", limit_n=2)
    await store.create_flow_run(NewRun("g0", "wf", {}), other, at(3))
    assert await _claim(store, "w1", 10) == ["a0", "a1", "g0"]
    assert await _claim(store, "w2", 10) == []
    assert await store.next_wake_at() is None  # a run waiting on a full key sets no timer
    wait = await store.limit_wait("a2")
    assert wait is not None
    assert (wait.key, wait.limit, wait.in_use, wait.ahead) == ("wf:customer=acme", 2, 2, 0)
    assert await store.limit_wait("a0") is None  # held, not waiting
    # A held run that started keeps its slot while it runs; one that ends frees it.
    await store.append("w1", "a0", [run_started(worker="w1")], at(11))
    assert await _claim(store, "w2", 12) == []
    await store.request_cancel("a1", at(13))
    await store.append("w1", "a1", [run_cancelled()], at(14), durable=True)
    assert await store.next_wake_at() == at(2)
    assert await _claim(store, "w2", 15) == ["a2"]
    assert await store.limit_wait("a2") is None


async def test_a_released_run_holds_its_slot_only_once_it_started(store: AnyStore) -> None:
    """A pending run handed back unstarted frees its slot; a running one keeps it."""
    await store.create_flow_run(NewRun("a0", "wf", {}), LIMITED, at(0))
    await store.create_flow_run(NewRun("a1", "wf", {}), LIMITED, at(1))
    await store.create_flow_run(NewRun("a2", "wf", {}), LIMITED, at(2))
    assert await _claim(store, "w1", 10) == ["a0", "a1"]
    await store.append("w1", "a0", [run_started(worker="w1")], at(11))
    await store.release_run("w1", "a0", at(100))  # evicted: running, keeps its slot
    await store.release_run("w1", "a1", at(1))  # handed back before it began, due since

    assert await _claim(store, "w2", 12) == ["a1"]  # a1 again; a2 still waits
    assert [usage.in_use for usage in await store.limits(at(12))] == [2]


async def test_priority_goes_first_then_the_oldest(store: AnyStore) -> None:
    """Claims take the highest priority first, equal priorities oldest first."""
    for index, priority in enumerate([0, -1, 5, 0, 5]):
        await store.create_flow_run(NewRun(f"r{index}", "wf", {}), RunFlow(priority), at(index))
    assert await _claim(store, "w1", 10, limit=3) == ["r2", "r4", "r0"]
    assert await _claim(store, "w1", 10) == ["r3", "r1"]


async def test_a_dedupe_key_returns_the_live_run_then_frees_up(store: AnyStore) -> None:
    """While a run with the key is unended, a start with it returns that run."""
    flow = RunFlow(dedupe_key="order-42")
    _, created = await store.create_flow_run(NewRun("d1", "wf", {"n": 1}), flow, T0)
    assert created
    again, created = await store.create_flow_run(NewRun("d2", "wf", {"n": 2}), flow, at(1))
    assert (again.id, created, again.input) == ("d1", False, {"n": 1})
    _, created = await store.create_flow_run(NewRun("d3", "wf2", {}), flow, at(2))
    assert created  # another workflow's key
    await _claim(store, "w1", 3)
    await store.append("w1", "d1", [run_completed(output=None)], at(4), durable=True)
    later, created = await store.create_flow_run(NewRun("d4", "wf", {}), flow, at(5))
    assert (later.id, created) == ("d4", True)
    assert await store.get_run("d2") is None


async def test_a_debounced_start_takes_the_waiting_runs_place(store: AnyStore) -> None:
    """The waiting run takes the latest input (its run_created too) and waits on."""
    flow = RunFlow(dedupe_key="doc", not_before=at(10))
    first, _ = await store.create_flow_run(NewRun("b1", "wf", {"v": 1}), flow, T0)
    assert first.wake_at == at(10)
    assert await _claim(store, "w1", 5) == []
    moved = RunFlow(dedupe_key="doc", not_before=at(15))
    again, created = await store.create_flow_run(NewRun("b2", "wf", {"v": 2}), moved, at(5))
    assert (again.id, created, again.input, again.wake_at) == ("b1", False, {"v": 2}, at(15))
    assert (await store.events("b1"))[0].data["input"] == {"v": 2}
    assert await _claim(store, "w1", 12) == []
    assert await _claim(store, "w1", 15) == ["b1"]
    # Claimed: a start with the key returns it as it is.
    late = RunFlow(dedupe_key="doc", not_before=at(30))
    held, _ = await store.create_flow_run(NewRun("b3", "wf", {"v": 3}), late, at(16))
    assert (held.id, held.input, held.status) == ("b1", {"v": 2}, RunStatus.PENDING)


async def test_step_slots_are_shared_and_given_back(store: AnyStore) -> None:
    """Two slots: a third holder is refused (to wait for one), until one is given back;
    asking again for a slot held grants it; slots of unregistered workers do not count."""
    limits = StepLimits(concurrency_key="charge", concurrency=2)
    for worker in ("w1", "w2"):
        await store.register_worker(worker, T0)
    assert (await store.take_step_slot("w1", "h1", limits, T0)).granted
    assert (await store.take_step_slot("w2", "h2", limits, T0)).granted
    refused = await store.take_step_slot("w1", "h3", limits, T0)
    assert (refused.granted, refused.retry_at) == (False, None)
    assert (await store.take_step_slot("w1", "h1", limits, T0)).granted  # asked twice
    assert [(u.kind, u.key, u.in_use) for u in await store.limits(T0)] == [("step", "charge", 2)]
    await store.release_step_slot("h1")
    assert (await store.take_step_slot("w1", "h3", limits, at(1))).granted
    await store.unregister_worker("w2", at(2))  # its slot is not counted once it is gone
    assert (await store.take_step_slot("w1", "h4", limits, at(3))).granted


async def test_a_rate_window_slides(store: AnyStore) -> None:
    """Two starts per 10 s: the third waits until the first leaves the window."""
    limits = StepLimits(rate_key="call:who=a", rate_count=2, rate_period=timedelta(seconds=10))
    assert (await store.take_step_slot("w1", "h1", limits, at(0))).granted
    assert (await store.take_step_slot("w1", "h2", limits, at(4))).granted
    refused = await store.take_step_slot("w1", "h3", limits, at(5))
    assert (refused.granted, refused.retry_at) == (False, at(10))
    other = StepLimits(rate_key="call:who=b", rate_count=2, rate_period=timedelta(seconds=10))
    assert (await store.take_step_slot("w1", "h4", other, at(5))).granted  # its own window
    assert (await store.take_step_slot("w1", "h3", limits, at(10))).granted
    usage = {u.key: u for u in await store.limits(at(11))}
    assert (usage["call:who=a"].in_use, usage["call:who=a"].period) == (2, 10.0)
