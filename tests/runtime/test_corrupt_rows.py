"""One unreadable row stalls nothing: it affects only the run that owns it (issue 11).

Each test stores runs with a real Engine, stops its worker (which hands its runs back,
due at once: its clock does not jump, so nothing is evicted before), damages one row
with SQL through the store's own connection (as a hand-made UPDATE would, or a newer
release writing what this one does not know), then starts a worker and checks that the
other runs carry on and that the damaged one is set aside once (blocked, or, for a
hook's payload or a step task, an error its workflow sees), naming what is wrong. On
SQLite the damage is text that is not JSON; PostgreSQL's ``json`` columns refuse that,
so there it is JSON nested 5,000 deep, which the server keeps and Python's `json`
cannot read back (a RecursionError).
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Literal

import pydantic
import pytest

from helpers import damage, of_type, unreadable, wait_for_hook, wait_until
from perdure import (
    Engine,
    EventType,
    HookPayloadError,
    RunStatus,
    define_hook,
    step,
    workflow,
)
from perdure._records import StepOutcome
from perdure._runtime._blocked import retry_blocked
from perdure.testing import FakeClock

if TYPE_CHECKING:
    from conftest import EngineFactory
    from perdure.stores import Store

pytestmark = pytest.mark.parametrize("store_kind", ["sqlite", "postgres"])


class Choice(pydantic.BaseModel):
    """A hook's payload."""

    decision: Literal["approved", "rejected"]


choice = define_hook(Choice, name="corrupt-choice")


@workflow(name="corrupt-greet")
async def greet(name: str) -> str:
    """A run with nothing to wait for."""
    return f"hello {name}"


@workflow(name="corrupt-wait")
async def wait_for_choice(token: str) -> str:
    """Wait for one payload; an unreadable one is an error it may catch."""
    try:
        made = await choice.create(token=token)
    except HookPayloadError as exc:
        second = await choice.create(token=f"{token}-again")
        return f"unreadable ({exc}), then {second.decision}"
    return made.decision


@step(queue="corrupt-q", max_retries=0, name="corrupt-shout")
async def shout(text: str) -> str:
    """A step the workers serving queue ``corrupt-q`` run."""
    return text.upper()


@workflow(name="corrupt-queued")
async def queued(text: str) -> str:
    """One step on a queue; its failure is the workflow's to catch."""
    try:
        return await shout(text)
    except Exception as exc:
        return f"step failed: {exc}"


async def status_of(engine: Engine, run_id: str) -> RunStatus:
    """The run's status, as listed (`Engine.get_run` refuses a row it cannot read)."""
    record = await engine.store.get_run(run_id)
    assert record is not None
    return record.status


async def ended(engine: Engine, *run_ids: str) -> bool:
    return all([(await status_of(engine, run_id)).is_terminal for run_id in run_ids])


def told(caplog: pytest.LogCaptureFixture, run_id: str) -> list[logging.LogRecord]:
    """The worker's records of WARNING and above about ``run_id``."""
    return [
        record
        for record in caplog.records
        if record.name.startswith("perdure") and record.levelno >= logging.WARNING
        and run_id in record.getMessage()
    ]  # fmt: skip


async def settled(engine: Engine, *run_ids: str) -> bool:
    """Whether each run ended or is blocked."""
    statuses = [await status_of(engine, run_id) for run_id in run_ids]
    return all(status.is_terminal or status is RunStatus.BLOCKED for status in statuses)


async def test_a_malformed_event_blocks_its_run_once_and_stalls_nothing(
    make_engine: EngineFactory, caplog: pytest.LogCaptureFixture
) -> None:
    """A run whose log holds an unreadable event is blocked once, naming the event, and
    the blocked runs' retry (which reads their logs) passes it by."""
    async with make_engine(clock=FakeClock(autojump=False)) as first:  # no eviction
        await first.start(wait_for_choice, "t1", run_id="r1")
        await wait_for_hook(first, "t1")
    async with make_engine(worker=False) as idle:
        created = of_type(await idle.store.events("r1"), EventType.HOOK_CREATED)[0]
        await damage(
            idle.store,
            "UPDATE events SET data = ? WHERE run_id = 'r1' AND type = 'hook_created'",
            unreadable(idle.store),
        )
    caplog.set_level(logging.INFO, logger="perdure")
    async with make_engine() as second:
        await second.start(greet, "c1", run_id="c1")
        await wait_until(second, lambda: settled(second, "r1", "c1"))
        assert await status_of(second, "c1") is RunStatus.COMPLETED
        run = await second.get_run("r1")
        assert run.record.status is RunStatus.BLOCKED
        reason = run.record.blocked_reason or ""
        assert f"run 'r1', event #{created.seq} (hook_created" in reason, reason
        assert "'data'" in reason, reason
        # A worker of another version looks at each blocked run's log: this one it
        # cannot read, and it passes it by rather than fail its maintenance round.
        assert await retry_blocked(second.store, "another-version", second.clock.now()) == 0
    assert len(told(caplog, "r1")) == 1, [r.getMessage() for r in told(caplog, "r1")]


async def test_an_unknown_event_type_blocks_its_run_once(
    make_engine: EngineFactory, caplog: pytest.LogCaptureFixture
) -> None:
    """An event type a newer release wrote sets its run aside, naming it, once."""
    async with make_engine(clock=FakeClock(autojump=False)) as first:  # no eviction
        await first.start(wait_for_choice, "t2", run_id="r2")
        await wait_for_hook(first, "t2")
    async with make_engine(worker=False) as idle:
        await damage(
            idle.store,
            "UPDATE events SET type = 'hook_renamed' WHERE run_id = 'r2' AND type = 'hook_created'",
        )
    caplog.set_level(logging.INFO, logger="perdure")
    async with make_engine() as second:
        await second.start(greet, "c2", run_id="c2")
        await wait_until(second, lambda: settled(second, "r2", "c2"))
        assert await status_of(second, "c2") is RunStatus.COMPLETED
        record = (await second.get_run("r2")).record
        assert record.status is RunStatus.BLOCKED
        assert "hook_renamed" in (record.blocked_reason or "")
    assert len(told(caplog, "r2")) == 1


async def test_an_unreadable_due_run_is_set_aside_and_the_others_are_claimed(
    make_engine: EngineFactory, caplog: pytest.LogCaptureFixture
) -> None:
    """A due run whose input cannot be read is blocked naming the column, c1 still runs;
    mended by hand, ``unblock`` runs it."""
    async with make_engine(worker=False) as idle:
        await idle.start(greet, "p1", run_id="p1")
        await damage(
            idle.store, "UPDATE runs SET input = ? WHERE id = 'p1'", unreadable(idle.store)
        )
        await idle.start(greet, "c1", run_id="c1")
    caplog.set_level(logging.INFO, logger="perdure")
    async with make_engine() as worker:
        await wait_until(worker, lambda: settled(worker, "c1", "p1"))
        assert (await worker.get_run("c1")).record.status is RunStatus.COMPLETED
        listed = {run.id: run.record for run in await worker.list_runs()}
        assert listed["p1"].status is RunStatus.BLOCKED
        assert listed["p1"].malformed is not None
        assert "input" in listed["p1"].malformed
        assert "runs row 'p1' cannot be read: input" in (listed["p1"].blocked_reason or "")
        blocked = of_type(await worker.store.events("p1"), EventType.RUN_BLOCKED)
        assert len(blocked) == 1
        assert len(told(caplog, "p1")) == 1
        await damage(worker.store, "UPDATE runs SET input = ? WHERE id = 'p1'", '{"name": "p1"}')
        await worker.unblock("p1")
        assert await (await worker.get_run("p1")).result(timeout=5) == "hello p1"


async def test_a_run_of_an_unknown_status_is_skipped(make_engine: EngineFactory) -> None:
    """A due run whose status this release does not know is neither claimed nor failed."""
    async with make_engine(worker=False) as idle:
        await idle.start(greet, "n1", run_id="n1")
        await damage(idle.store, "UPDATE runs SET status = 'paused' WHERE id = 'n1'")
        await idle.start(greet, "c3", run_id="c3")
    async with make_engine() as worker:
        await wait_until(worker, lambda: ended(worker, "c3"))
        assert await worker.store.next_wake_at() is None  # no timer for a run it skips
        listed = {run.id: run.record for run in await worker.list_runs()}
        assert listed["n1"].malformed is not None
        assert "'paused'" in listed["n1"].malformed["status"]
        assert len(await worker.store.events("n1")) == 1  # run_created: nothing logged
        with pytest.raises(ValueError, match="paused"):
            await worker.get_run("n1")


async def test_an_unreadable_inbox_row_is_an_error_at_its_await_and_blocks_no_other(
    make_engine: EngineFactory,
) -> None:
    """A payload that cannot be read reaches its workflow as HookPayloadError; r4 resumes."""
    async with make_engine(clock=FakeClock(autojump=False)) as first:  # no eviction
        await first.start(wait_for_choice, "t3", run_id="r3")
        await first.start(wait_for_choice, "t4", run_id="r4")
        hook = await wait_for_hook(first, "t3")
        await wait_for_hook(first, "t4")
    async with make_engine(worker=False) as idle:
        await damage(
            idle.store,
            "INSERT INTO hook_inbox (run_id, token, correlation_id, payload, created_at) "
            "SELECT 'r3', 't3', ?, ?, created_at FROM hooks WHERE token = 't3'",
            hook.correlation_id,
            unreadable(idle.store),
        )
    async with make_engine() as second:
        await second.resume_hook("t4", {"decision": "approved"})
        await wait_until(second, lambda: ended(second, "r4"))
        assert await (await second.get_run("r4")).result() == "approved"
        await wait_for_hook(second, "t3-again")
    async with make_engine() as third:  # replays r3's log, the unreadable payload in it
        await third.resume_hook("t3-again", {"decision": "rejected"})
        result = await (await third.get_run("r3")).result(timeout=5)
        assert result.startswith("unreadable ("), result
        assert "payload" in result, result
        assert result.endswith("then rejected"), result


async def test_an_unreadable_queued_task_fails_its_step_only(make_engine: EngineFactory) -> None:
    """A step task whose input cannot be read fails that step; the queue's others run."""
    async with make_engine(
        clock=FakeClock(autojump=False)
    ) as holder:  # serves no queue: the tasks wait
        await holder.start(queued, "bad", run_id="q1")
        await holder.start(queued, "good", run_id="q2")
        await wait_until(holder, lambda: _queued_tasks(holder.store, "q1", "q2"))
    async with make_engine(worker=False) as idle:
        await damage(
            idle.store,
            "UPDATE step_tasks SET input = ? WHERE run_id = 'q1'",
            unreadable(idle.store),
        )
    async with make_engine(queues=("corrupt-q",)) as worker:
        await wait_until(worker, lambda: ended(worker, "q1", "q2"))
        assert await (await worker.get_run("q2")).result() == "GOOD"
        result = await (await worker.get_run("q1")).result()
        assert result.startswith("step failed"), result
        assert "input" in result, result


async def test_an_unreadable_step_result_fails_its_step_only(make_engine: EngineFactory) -> None:
    """A finished task whose output cannot be read is logged as the step's failure."""
    async with make_engine(clock=FakeClock(autojump=False)) as holder:
        await holder.start(queued, "bad", run_id="q3")
        await holder.start(queued, "good", run_id="q4")
        await wait_until(holder, lambda: _queued_tasks(holder.store, "q3", "q4"))
    async with make_engine(worker=False) as idle:  # a queue's worker, by hand
        store, now = idle.store, idle.clock.now()
        for task in await store.claim_step_tasks("by-hand", {"corrupt-q"}, now, 10):
            text = task.input["text"]
            await store.finish_step_task(
                "by-hand", task.id, StepOutcome(1, output=text.upper()), now
            )
        await damage(
            store, "UPDATE step_tasks SET output = ? WHERE run_id = 'q3'", unreadable(store)
        )
    async with make_engine() as worker:
        await wait_until(worker, lambda: ended(worker, "q3", "q4"))
        assert await (await worker.get_run("q4")).result() == "GOOD"
        result = await (await worker.get_run("q3")).result()
        assert result.startswith("step failed"), result
        assert "output" in result, result


async def _queued_tasks(store: Store, *run_ids: str) -> bool:
    tasks = [task for run_id in run_ids for task in await store.step_tasks(run_id)]
    return len(tasks) == len(run_ids)


async def test_malformed_rows_are_listed_flagged(make_engine: EngineFactory) -> None:
    """A runs row that cannot be read is listed, flagged with what is wrong."""
    async with make_engine(worker=False) as idle:
        await idle.start(greet, "m1", run_id="m1")
        await idle.start(greet, "m2", run_id="m2")
        await damage(
            idle.store, "UPDATE runs SET input = ? WHERE id = 'm1'", unreadable(idle.store)
        )
        listed = {run.id: run.record for run in await idle.list_runs()}
        assert set(listed) == {"m1", "m2"}
        assert listed["m2"].malformed is None
        assert listed["m1"].malformed is not None
        assert set(listed["m1"].malformed) == {"input"}
        with pytest.raises(ValueError, match="input"):
            await idle.get_run("m1")


async def test_an_inbox_row_for_no_hook_of_its_run_blocks_that_run_only(
    make_engine: EngineFactory, caplog: pytest.LogCaptureFixture
) -> None:
    """An inbox row whose correlation id is no hook its run created (readable, but for no
    await) sets that run aside, blocked and naming the row, once; r6 resumes as usual."""
    async with make_engine(clock=FakeClock(autojump=False)) as first:  # no eviction
        await first.start(wait_for_choice, "t5", run_id="r5")
        await first.start(wait_for_choice, "t6", run_id="r6")
        await wait_for_hook(first, "t5")
        await wait_for_hook(first, "t6")
    async with make_engine(worker=False) as idle:
        await damage(
            idle.store,
            "INSERT INTO hook_inbox (run_id, token, correlation_id, payload, created_at) "
            "SELECT 'r5', 't5', 'no-such-hook#1', ?, created_at FROM hooks WHERE token = 't5'",
            '{"decision": "approved"}',
        )
    caplog.set_level(logging.WARNING, logger="perdure")
    async with make_engine() as second:
        await second.resume_hook("t6", {"decision": "approved"})
        await wait_until(second, lambda: ended(second, "r6"))
        assert await (await second.get_run("r6")).result() == "approved"
        await wait_until(second, lambda: _blocked(second, "r5"))
        record = (await second.get_run("r5")).record
        assert "hook_inbox row" in (record.blocked_reason or ""), record.blocked_reason
        assert "no-such-hook#1" in (record.blocked_reason or ""), record.blocked_reason
        assert len(of_type(await second.store.events("r5"), EventType.RUN_BLOCKED)) == 1
        assert not [r for r in caplog.records if "KeyError" in r.getMessage()]


async def _blocked(engine: Engine, run_id: str) -> bool:
    return (await engine.get_run(run_id)).record.status is RunStatus.BLOCKED
