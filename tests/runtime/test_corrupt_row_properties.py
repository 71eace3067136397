"""Any value in any column a worker reads touches only the run that owns the row (issue 11).

A property test (hypothesis, derandomized: the same examples on every run, a dozen per
store). Each example stores seven runs with a real Engine and stops its worker: for
three of them one row is damaged (a pending run's, a run waiting on a hook with a
payload in its inbox, runs with a queued and a finished step task), four are
bystanders (a pending run, a run waiting on a hook, a run whose step waits in a
queue). Then one column of one row gets an arbitrary value, through the store's own
connection, and a worker serving the queue starts: every bystander must complete with
its own result, and the worker must not spin claiming the damaged run again and again.
What happens to the damaged run itself is not checked here (tests/runtime/
test_corrupt_rows.py pins each case): it may fail, wait for ever, or even complete.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from typing import TYPE_CHECKING, Any, Literal

import asyncpg
import pydantic
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from helpers import damage, wait_for_hook, wait_until
from perdure import Engine, RunStatus, define_hook, step, workflow
from perdure._records import StepOutcome
from perdure.testing import FakeClock
from pg import clear_tables

if TYPE_CHECKING:
    from pathlib import Path

QUEUE = "corrupt-props-q"

SETTINGS = settings(
    max_examples=12,
    derandomize=True,
    database=None,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)


class Choice(pydantic.BaseModel):
    """A hook's payload."""

    decision: Literal["approved", "rejected"]


choice = define_hook(Choice, name="corrupt-props-choice")


@workflow(name="corrupt-props-greet")
async def greet(name: str) -> str:
    return f"hello {name}"


@workflow(name="corrupt-props-wait")
async def wait_for_choice(token: str) -> str:
    return (await choice.create(token=token)).decision


@step(queue=QUEUE, max_retries=0, name="corrupt-props-shout")
async def shout(text: str) -> str:
    return text.upper()


@workflow(name="corrupt-props-queued")
async def queued(text: str) -> str:
    return await shout(text)


BYSTANDERS = {"b-new": "hello b-new", "b-hook": "rejected", "b-step": "BYSTEP"}
"""The runs no damage touches, and what each must return."""

# The rows a worker reads, each selected by the damaged run's id: (table, key column).
TARGETS: dict[str, tuple[str, str]] = {
    "runs.input": ("runs", "id = 't-new'"),
    "runs.status": ("runs", "id = 't-new'"),
    "runs.output": ("runs", "id = 't-new'"),
    "runs.error": ("runs", "id = 't-new'"),
    "runs.workflow": ("runs", "id = 't-new'"),
    "events.data": ("events", "run_id = 't-hook' AND type = 'hook_created'"),
    "events.type": ("events", "run_id = 't-hook' AND type = 'hook_created'"),
    "hook_inbox.payload": ("hook_inbox", "run_id = 't-hook'"),
    "step_tasks.input": ("step_tasks", "run_id = 't-step'"),
    "step_tasks.attempt": ("step_tasks", "run_id = 't-step'"),
    "step_tasks.status": ("step_tasks", "run_id = 't-step'"),
    "step_tasks.output": ("step_tasks", "run_id = 't-done'"),
    "step_tasks.error": ("step_tasks", "run_id = 't-done'"),
    "step_tasks.retries": ("step_tasks", "run_id = 't-done'"),
    "step_tasks.attempt ": ("step_tasks", "run_id = 't-done'"),  # a finished task's
}
TEXT = {"runs.status", "runs.workflow", "events.type", "step_tasks.status"}
INTEGER = {"step_tasks.attempt", "step_tasks.attempt "}
JSON_COLUMNS = set(TARGETS) - TEXT - INTEGER

_json = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3)
    ),
    max_leaves=8,
)
DEEP = "[" * 5000 + "]" * 5000

# Text any column of either database keeps (PostgreSQL's text refuses NUL).
_text = st.text(max_size=16).filter(lambda text: "\x00" not in text)
_json_text = st.one_of(
    _json.map(json.dumps),
    st.sampled_from([DEEP, "[]", '"x"', "{}", "null", "1e999", '{"args": 1}']),
)
_sqlite_only = st.one_of(
    _text, st.integers(), st.binary(max_size=6), st.sampled_from(["{bad", "", "NaN"])
)


@st.composite
def damages(draw: st.DrawFn, *, sqlite: bool) -> tuple[str, Any]:
    """A column and the value it is given: anything the column's database keeps."""
    target = draw(st.sampled_from(sorted(TARGETS)))
    if sqlite:  # any value fits any column
        value = draw(st.one_of(_json_text, _sqlite_only))
    elif target in TEXT:
        value = draw(_text | st.sampled_from(["paused", "blocked", "completed", "running"]))
    elif target in INTEGER:
        value = draw(st.integers(min_value=-(2**31), max_value=2**31 - 1))
    else:
        value = draw(_json_text)
    return target, value


async def _stored_with_a_stopped_worker(url: str) -> None:
    """The seven runs, as a stopped worker leaves them, and a payload in t-hook's inbox."""
    async with Engine(url, clock=FakeClock(autojump=False)) as first:  # no eviction
        await first.start(queued, "done", run_id="t-done")
        await wait_until(first, lambda: first.store.step_tasks("t-done"))  # the oldest task
        await first.start(queued, "step", run_id="t-step")
        await first.start(queued, "bystep", run_id="b-step")
        await first.start(wait_for_choice, "tt", run_id="t-hook")
        await first.start(wait_for_choice, "bt", run_id="b-hook")
        await wait_for_hook(first, "tt")
        await wait_for_hook(first, "bt")

        async def tasks() -> bool:
            ids = ("t-done", "t-step", "b-step")
            return all([await first.store.step_tasks(run_id) for run_id in ids])

        await wait_until(first, tasks)
    async with Engine(url, worker=False, clock=FakeClock()) as idle:
        await idle.start(greet, "t-new", run_id="t-new")
        await idle.start(greet, "b-new", run_id="b-new")
        await idle.resume_hook("tt", {"decision": "approved"})
        now = idle.clock.now()
        (task,) = await idle.store.claim_step_tasks("by-hand", {QUEUE}, now, 1)
        assert task.run_id == "t-done"
        await idle.store.finish_step_task("by-hand", task.id, StepOutcome(1, output="DONE"), now)


async def _one_example(url: str, target: str, value: Any) -> None:
    await _stored_with_a_stopped_worker(url)
    table, where = TARGETS[target]
    column = target.split(".")[1].strip()
    async with Engine(url, worker=False, clock=FakeClock()) as idle:
        sql = f"UPDATE {table} SET {column} = ? WHERE {where}"  # noqa: S608 (the test's own)
        await damage(idle.store, sql, value)
    async with Engine(url, clock=FakeClock(), queues=(QUEUE,)) as worker:
        await worker.resume_hook("bt", {"decision": "rejected"})

        async def bystanders_ended() -> bool:
            records = [await worker.store.get_run(run_id) for run_id in BYSTANDERS]
            return all(r is not None and r.status.is_terminal for r in records)

        await wait_until(worker, bystanders_ended, timeout=10)
        for run_id, expected in BYSTANDERS.items():
            run = await worker.get_run(run_id)
            assert run.record.status is RunStatus.COMPLETED, (run_id, run.record)
            assert await run.result() == expected
        statistics = worker.statistics()
        assert statistics is not None
        # Seven runs, each claimed once or twice (a run woken while held is claimed
        # again): a run claimed over and over is a worker spinning on it.
        assert statistics.claimed <= 20, statistics


@pytest.mark.slow
@pytest.mark.parametrize("store_kind", ["sqlite", "postgres"])
def test_a_damaged_row_touches_only_its_own_run(
    store_kind: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    """Whatever one column a worker reads holds, the runs that do not own it complete."""
    examples = iter(range(1_000_000))
    postgres = request.getfixturevalue("postgres_database") if store_kind == "postgres" else ""

    def url() -> str:
        if postgres:
            with contextlib.suppress(asyncpg.UndefinedTableError):  # none yet
                asyncio.run(clear_tables(postgres))
            return postgres
        return f"sqlite:///{tmp_path}/example-{next(examples)}.db"

    @SETTINGS
    @given(damaged=damages(sqlite=store_kind == "sqlite"))
    @example(damaged=("runs.input", DEEP))
    @example(damaged=("runs.status", "paused"))
    @example(damaged=("events.data", DEEP))
    @example(damaged=("events.type", "hook_renamed"))
    @example(damaged=("hook_inbox.payload", DEEP))
    @example(damaged=("step_tasks.input", DEEP))
    @example(damaged=("step_tasks.output", DEEP))
    @example(damaged=("step_tasks.retries", "[1]"))
    def check(damaged: tuple[str, Any]) -> None:
        target, value = damaged
        tried.append(target)
        asyncio.run(_one_example(url(), target, value))

    tried: list[str] = []
    check()
    assert len(set(tried)) >= 8, tried  # the examples reach most columns
