"""Crashes and many processes: real child processes on a real SQLite file, real SIGKILL.

Each test drives worker processes (``tests/runtime/crash_programs/crash_child.py``) that run the
workflows of ``tests/runtime/crash_programs/``; their steps append side-effect lines to a file
and wait at gates the test opens, so the test knows what ran, how often, in which
process, and can kill a process at a chosen point. The test process watches the
database through an Engine without a worker (it never takes a run, and never reaps a
dead worker itself). Every wait polls a condition with a deadline.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import sys
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

import pytest

import helpers
from helpers import of_type
from perdure import Engine, Event, EventType, HookNotFoundError, RunStatus

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable, Iterator

T = TypeVar("T")

TESTS = Path(__file__).resolve().parent
PROGRAMS = TESTS / "crash_programs"
CHILD = PROGRAMS / "crash_child.py"
EXAMPLES = TESTS.parents[1] / "examples"
APPROVE = str(EXAMPLES / "approve.py")
DEADLINE = 15.0
"""Seconds to wait for anything: generous, and far below the 60 s heartbeat timeout."""


async def eventually(
    condition: Callable[[], Awaitable[T | None]], what: str, timeout: float = DEADLINE
) -> T:
    """`helpers.eventually`, every 5 ms, within this file's deadline by default."""
    return await helpers.eventually(condition, what, timeout, every=0.005)


def utcnow() -> datetime:
    return datetime.now(UTC)


class Child(helpers.ChildProcess):
    """A child process of a crash test: ``python ARGV...`` in the test's folder."""

    def __init__(self, name: str, argv: list[str], env: dict[str, str], folder: Path) -> None:
        super().__init__(
            name, [sys.executable, *argv], folder, env=env, every=0.005, timeout=DEADLINE
        )

    async def worker_id(self) -> str:
        """The id of the child's worker (it prints it once its Engine runs)."""
        return (await self.line("worker ")).split(" ", 1)[1]


@dataclass
class Lab:
    """One test's database, side-effect file, gates and child processes."""

    folder: Path
    url: str
    env: dict[str, str]
    children: list[Child] = field(default_factory=list)

    def spawn(self, name: str, *argv: str) -> Child:
        """Start ``python ARGV...`` with the test's database and folder in its environment."""
        child = Child(name, list(argv), self.env, self.folder)
        self.children.append(child)
        return child

    def worker(self, name: str, *argv: str) -> Child:
        """Start the crash child: ``crash_child.py ARGV...``."""
        return self.spawn(name, str(CHILD), *argv)

    def engine(self) -> Engine:
        """An Engine on the test's database that runs no worker: it only watches."""
        return Engine(self.url, worker=False)

    def open_gate(self, name: str) -> None:
        (self.folder / f"gate-{name}").touch()

    def close_gate(self, name: str) -> None:
        (self.folder / f"gate-{name}").unlink(missing_ok=True)

    def effect_lines(self) -> list[tuple[str, int]]:
        """The side effects so far, in order: (what, pid of the process that did it)."""
        path = self.folder / "effects.log"
        if not path.exists():
            return []
        pairs = (line.rsplit(" ", 1) for line in path.read_text().splitlines())
        return [(what, int(pid)) for what, pid in pairs]

    def effects(self) -> Counter[str]:
        """How many times each side effect happened."""
        return Counter(what for what, _ in self.effect_lines())

    async def wait_effects(self, condition: Callable[[Counter[str]], bool], what: str) -> None:
        async def met() -> bool:
            return condition(self.effects())

        await eventually(met, what)


@pytest.fixture
def lab(tmp_path: Path) -> Iterator[Lab]:
    """A Lab in tmp_path; every child it started is killed when the test ends, pass or fail."""
    env = {
        **os.environ,
        "PERDURE_DATABASE_URL": f"sqlite:///{tmp_path}/crash.db",
        "CRASH_DIR": str(tmp_path),
        "PYTHONUNBUFFERED": "1",
    }
    made = Lab(tmp_path, env["PERDURE_DATABASE_URL"], env)
    try:
        yield made
    finally:
        for child in made.children:
            child.close()


# -- reading the log --------------------------------------------------------------------


def attempts(events: list[Event], cid: str) -> list[int]:
    """The attempt numbers of the ``step_started`` events of one step call."""
    return [
        int(str(e.data["attempt"]))
        for e in of_type(events, EventType.STEP_STARTED)
        if e.correlation_id == cid
    ]


async def wait_for_event(
    engine: Engine, run_id: str, kind: EventType, cid: str | None = None
) -> Event:
    """Wait until the run's log holds an event of ``kind`` (for ``cid``); the first one."""

    async def first() -> Event | None:
        events = await engine.store.events(run_id)
        return next((e for e in events if e.type is kind and cid in (None, e.correlation_id)), None)

    return await eventually(first, f"{kind.value} {cid or ''} in run {run_id}")


async def wait_for_owner(engine: Engine, run_id: str, worker_id: str) -> None:
    async def held() -> bool:
        record = await engine.store.get_run(run_id)
        return record is not None and record.owner == worker_id

    await eventually(held, f"worker {worker_id} to hold run {run_id}")


async def wait_for_hook(engine: Engine, token: str) -> None:
    async def live() -> bool:
        return await engine.store.get_hook(token) is not None

    await eventually(live, f"a live hook to hold {token!r}")


def approval_worker(lab: Lab, name: str, run_id: str, topic: str, token: str) -> Child:
    """A worker process running examples/seed_workflows.py's ai_approval run ``run_id``."""
    args = json.dumps([topic, token])
    target = "seed_workflows:ai_approval"
    return lab.worker(name, "--path", str(EXAMPLES), "run", target, run_id, args)


# -- the tests --------------------------------------------------------------------------


async def test_a_crash_mid_run_reruns_only_the_step_in_flight(lab: Lab) -> None:
    """After a SIGKILL mid-run, a fresh process finishes the run promptly; completed steps
    never run again, only the step in flight does."""
    async with lab.engine() as engine:
        first = lab.worker("first", "run", "crash_workflows:pipeline", "p1", "[5, 2]")
        await wait_for_event(engine, "p1", EventType.STEP_STARTED, "work#3")
        await lab.wait_effects(lambda seen: seen["work:2"] == 1, "step work#3 to begin")
        assert Counter({"work:0": 1, "work:1": 1, "work:2": 1}) == lab.effects()
        first.kill()

        lab.open_gate("work-2")
        second = lab.worker("second", "run", "crash_workflows:pipeline", "p1", "[5, 2]")
        run = await engine.get_run("p1")

        assert [0, 1, 4, 9, 16] == await run.result(timeout=DEADLINE)
        assert (
            Counter({"work:0": 1, "work:1": 1, "work:2": 2, "work:3": 1, "work:4": 1})
            == lab.effects()
        )
        assert [first.pid, second.pid] == [
            pid for what, pid in lab.effect_lines() if what == "work:2"
        ]
        events = await run.events()
        completed = of_type(events, EventType.STEP_COMPLETED)
        assert ["work#1", "work#2", "work#3", "work#4", "work#5"] == [
            e.correlation_id for e in completed
        ]
        assert [1, 2] == attempts(events, "work#3")
        assert all(attempts(events, f"work#{n}") == [1] for n in (1, 2, 4, 5))
        assert 1 == len(of_type(events, EventType.RUN_STARTED))
        assert await second.line("result p1") == "result p1 [0, 1, 4, 9, 16]"


async def test_a_sleep_begun_before_a_crash_wakes_at_its_original_time(lab: Lab) -> None:
    """A durable sleep whose process was SIGKILLed wakes in a fresh process at the wake time
    logged before the crash, not sooner and not re-armed later."""
    async with lab.engine() as engine:
        first = lab.worker("first", "run", "crash_workflows:nap", "n1", "[3.0]")
        started = await wait_for_event(engine, "n1", EventType.SLEEP_STARTED)
        first.kill()
        wake_at = datetime.fromisoformat(str(started.data["wake_at"]))
        # The wake time is the workflow's now() (its last outcome's time) plus 3 s.
        assert timedelta(seconds=2.5) < wake_at - started.created_at <= timedelta(seconds=3)
        assert utcnow() < wake_at, "the process died during its sleep"

        # Stay down for a second: a sleep re-armed from the time of the replay would
        # then wake a second or more late.
        await asyncio.sleep((started.created_at + timedelta(seconds=1) - utcnow()).total_seconds())
        second = lab.worker("second", "run", "crash_workflows:nap", "n1", "[3.0]")
        await wait_for_owner(engine, "n1", await second.worker_id())
        assert utcnow() < wake_at, "the second process took the run over while it slept"
        run = await engine.get_run("n1")

        assert ["before", "after"] == await run.result(timeout=DEADLINE)
        events = await run.events()
        assert 1 == len(of_type(events, EventType.SLEEP_STARTED))
        (woke,) = of_type(events, EventType.SLEEP_COMPLETED)
        assert wake_at <= woke.created_at < wake_at + timedelta(seconds=1)
        record = await run.refresh()
        assert record.completed_at is not None
        assert record.completed_at >= wake_at
        assert Counter({"stamp:before": 1, "stamp:after": 1}) == lab.effects()
        assert [first.pid, second.pid] == [pid for _, pid in lab.effect_lines()]


async def test_gather_replays_after_a_crash_whatever_order_its_steps_finish_in(lab: Lab) -> None:
    """A gather whose steps finished C then A before a SIGKILL replays by correlation id,
    and its last step B, finishing first in the next life, completes it."""
    async with lab.engine() as engine:
        first = lab.worker("first", "run", "crash_workflows:fan", "f1", "[]")
        await lab.wait_effects(lambda seen: seen.keys() == {"a", "b", "c"}, "a, b, c to begin")
        lab.open_gate("c")
        await wait_for_event(engine, "f1", EventType.STEP_COMPLETED, "c#1")
        lab.open_gate("a")
        await wait_for_event(engine, "f1", EventType.STEP_COMPLETED, "a#1")
        first.kill()
        # In the next life A and C would block if they ran again; only B may finish.
        lab.close_gate("a")
        lab.close_gate("c")
        lab.open_gate("b")

        second = lab.worker("second", "run", "crash_workflows:fan", "f1", "[]")
        run = await engine.get_run("f1")

        assert ["A", "B", "C"] == await run.result(timeout=DEADLINE)
        assert Counter({"a": 1, "b": 2, "c": 1}) == lab.effects()
        assert [first.pid, second.pid] == [pid for what, pid in lab.effect_lines() if what == "b"]
        events = await run.events()
        first_calls = [
            e.correlation_id
            for e in of_type(events, EventType.STEP_STARTED)
            if e.data["attempt"] == 1
        ]
        assert ["a#1", "b#1", "c#1"] == first_calls
        completed = of_type(events, EventType.STEP_COMPLETED)
        assert [("c#1", "C"), ("a#1", "A"), ("b#1", "B")] == [
            (e.correlation_id, e.data["output"]) for e in completed
        ]
        assert [1, 2] == attempts(events, "b#1")


async def test_a_workflow_changed_under_a_run_blocks_it(lab: Lab) -> None:
    """A run begun on version 1 (fetch, charge) and resumed on version 2 (fetch, refund)
    is blocked (issue 12: before, it failed), with a reason naming the step, its position,
    what the log holds and both code versions; charge does not run again."""
    async with lab.engine() as engine:
        first = lab.worker("v1", "run", "changing_v1:changing", "c1", '["o-7"]')
        await wait_for_event(engine, "c1", EventType.STEP_STARTED, "charge#1")
        await lab.wait_effects(lambda seen: seen["charge"] == 1, "charge to begin")
        first.kill()
        lab.open_gate("charge")  # were the run to charge again, nothing would hold it back

        second = lab.worker("v2", "run", "changing_v2:changing", "c1", '["o-7"]')
        run = await engine.get_run("c1")

        async def blocked() -> bool:
            return await run.status() is RunStatus.BLOCKED

        await eventually(blocked, "run c1 to block")
        message = (await run.refresh()).blocked_reason or ""
        assert "durable call #2 is step 'refund' (refund#1)" in message
        assert "the log holds step 'charge' (charge#1," in message
        assert "started on code version" in message
        assert "is version" in message
        assert Counter({"fetch": 1, "charge": 1}) == lab.effects()
        second.kill()


async def test_a_hook_is_resumed_from_another_process(lab: Lab) -> None:
    """examples/approve.py, in a process of its own, resumes the hook an ai_approval run
    waits on in a worker process, while an unknown token or invalid payload writes nothing."""
    if str(EXAMPLES) not in sys.path:
        sys.path.insert(0, str(EXAMPLES))
    from seed_workflows import approval_hook  # noqa: PLC0415 (examples/ is not a package)

    token = "draft-crash-1"
    async with lab.engine() as engine:
        approval_worker(lab, "worker", "a1", "dogs", token)
        await wait_for_hook(engine, token)
        run = await engine.get_run("a1")
        before = await run.events()

        unknown = lab.spawn("unknown token", APPROVE, "no-such-token", "approved")
        assert 0 != await unknown.exit_code()
        assert "HookNotFoundError" in unknown.stderr()
        invalid = lab.spawn("invalid payload", APPROVE, token, "maybe")
        assert 0 != await invalid.exit_code()
        assert "decision" in invalid.stderr()
        with pytest.raises(ValueError, match="decision"):
            await approval_hook.resume(token, {"decision": "maybe"}, engine=engine)
        with pytest.raises(HookNotFoundError):
            await approval_hook.resume("no-such-token", {"decision": "approved"}, engine=engine)
        assert before == await run.events(), "a failed resume wrote nothing"
        assert await engine.store.get_hook(token) is not None
        assert RunStatus.RUNNING == await run.status()

        approver = lab.spawn("approver", APPROVE, token, "approved")
        assert 0 == await approver.exit_code()
        assert (await approver.line("resumed")).startswith(f"resumed hook {token!r} of run a1")

        assert (
            "published: A short post about dogs: dogs are wonderful, and here is why."
            == await run.result(timeout=DEADLINE)
        )
        (received,) = of_type(await run.events(), EventType.HOOK_RECEIVED)
        assert {"decision": "approved", "notes": None} == received.data["payload"]


async def test_make_demo_runs_the_three_seed_workflows(lab: Lab) -> None:
    """examples/demo.py (`make demo`) exits 0 and prints the timelines of three completed
    runs."""
    lab.env["PERDURE_REFINE_WAIT"] = "1s"
    demo = lab.spawn("demo", str(EXAMPLES / "demo.py"))

    assert 0 == await demo.exit_code(timeout=30), demo.stderr()
    output = "\n".join(demo.lines())
    for name in ("ai-content", "ai-refine", "ai-approval"):
        assert re.search(rf"^run \S+  workflow={name}  status=completed$", output, re.MULTILINE)
    assert 3 == output.count(" run_completed ")
    assert "sleep_completed" in output
    assert "hook_received" in output


async def test_a_running_worker_takes_over_a_killed_workers_runs_within_seconds(lab: Lab) -> None:
    """A worker already running when another process is SIGKILLed takes over all its runs
    within seconds, told by the free lock long before the heartbeat goes stale."""
    run_ids = ["r1", "r2", "r3"]
    async with lab.engine() as engine:
        first = lab.worker("first", "run", "crash_workflows:pipeline", ",".join(run_ids), "[3, 1]")
        for run_id in run_ids:
            await wait_for_event(engine, run_id, EventType.STEP_STARTED, "work#2")
        await lab.wait_effects(lambda seen: seen["work:1"] == 3, "work#2 to begin in every run")
        first_id = await first.worker_id()

        standby = lab.worker("standby", "worker", "crash_workflows")
        await standby.worker_id()  # running: it found no dead worker when it started
        for run_id in run_ids:
            record = await engine.store.get_run(run_id)
            assert record is not None
            assert first_id == record.owner
        first.kill()
        lab.open_gate("work-1")

        for run_id in run_ids:
            run = await engine.get_run(run_id)
            assert [0, 1, 4] == await run.result(timeout=DEADLINE)
        rerun_by = [pid for what, pid in lab.effect_lines() if what == "work:1"]
        assert [first.pid] * 3 + [standby.pid] * 3 == rerun_by


async def test_leaving_the_engine_hands_a_sleeping_run_back_at_once(lab: Lab) -> None:
    """A process that leaves its Engine while a run sleeps hands the run back at once, and
    another process continues it when it wakes."""
    async with lab.engine() as engine:
        first = lab.worker("first", "leave-when-sleeping", "crash_workflows:nap", "s1", "[2.0]")
        assert 0 == await first.exit_code()
        assert "left" == first.lines()[-1]
        started = await wait_for_event(engine, "s1", EventType.SLEEP_STARTED)
        wake_at = datetime.fromisoformat(str(started.data["wake_at"]))
        record = await engine.store.get_run("s1")
        assert record is not None
        assert record.owner is None, "handed back, not left to be reaped"
        assert RunStatus.RUNNING == record.status

        second = lab.worker("second", "run", "crash_workflows:nap", "s1", "[2.0]")
        await wait_for_owner(engine, "s1", await second.worker_id())
        assert utcnow() < wake_at, "the second process took the run over while it slept"
        run = await engine.get_run("s1")

        assert ["before", "after"] == await run.result(timeout=DEADLINE)
        (woke,) = of_type(await run.events(), EventType.SLEEP_COMPLETED)
        assert wake_at <= woke.created_at < wake_at + timedelta(seconds=1)
        assert [first.pid, second.pid] == [pid for _, pid in lab.effect_lines()]


async def test_a_hook_resumed_while_its_worker_is_dead_reaches_the_next_worker(lab: Lab) -> None:
    """A payload sent to a hook whose worker was SIGKILLed is stored, and a fresh worker
    delivers it to the replayed run exactly once."""
    token = "draft-crash-2"
    async with lab.engine() as engine:
        first = approval_worker(lab, "first", "a2", "cats", token)
        await wait_for_hook(engine, token)
        first.kill()
        approver = lab.spawn("approver", APPROVE, token, "changes", "shorter")
        assert 0 == await approver.exit_code()

        approval_worker(lab, "second", "a2", "cats", token)
        run = await engine.get_run("a2")

        assert (
            "published: A short post about cats: cats are wonderful, and here is why. (shorter)"
            == await run.result(timeout=DEADLINE)
        )
        events = await run.events()
        (received,) = of_type(events, EventType.HOOK_RECEIVED)
        assert {"decision": "changes", "notes": "shorter"} == received.data["payload"]
        assert 1 == len(of_type(events, EventType.HOOK_CREATED))
        assert ["generate_draft#1", "refine_draft#1", "publish_draft#1"] == [
            e.correlation_id for e in of_type(events, EventType.STEP_COMPLETED)
        ]
