"""engine.fork (issue 12, item 4): a new run that replays the original's log up to a
step, and runs that step and the rest on today's code, on every store."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from perdure import Engine, RunNotFoundError, RunStatus, _log, step, workflow
from perdure._fork import fork_prefix, step_ids
from perdure._records import Event, EventType, NewEvent


def _note(path: str, what: str) -> str:
    """A side effect a test can count: one line in a file per execution."""
    with Path(path).open("a") as out:
        out.write(what + "\n")
    return what.upper()


def _executed(path: str) -> list[str]:
    return Path(path).read_text().split()


@step
async def reserve(path: str) -> str:
    return _note(path, "reserve")


@step
async def charge(path: str) -> str:
    return _note(path, "charge")


@step
async def ship(path: str) -> str:
    return _note(path, "ship")


@workflow
async def checkout(path: str) -> list[str]:
    return [await reserve(path), await charge(path), await ship(path)]


async def test_a_fork_runs_its_step_and_the_rest_again_not_the_steps_before(
    engine: Engine, tmp_path: Path
) -> None:
    """Forked from charge#1: reserve replays from the log (not executed again), charge and
    ship run again; the fork's run_created names the original."""
    path = str(tmp_path / "effects.txt")
    original = await engine.start(checkout, path)
    assert ["RESERVE", "CHARGE", "SHIP"] == await original.result(timeout=10)

    fork = await engine.fork(original.id, from_step="charge#1")

    assert fork.id != original.id
    assert ["RESERVE", "CHARGE", "SHIP"] == await fork.result(timeout=10)
    assert ["reserve", "charge", "ship", "charge", "ship"] == _executed(path)
    events = await engine.store.events(fork.id)
    assert original.id == _log.RunCreated.of(events[0]).forked_from
    assert [s.correlation_id for s in await engine.store.steps(fork.id)] == [
        "reserve#1",
        "charge#1",
        "ship#1",
    ]
    assert RunStatus.COMPLETED == await fork.status()
    assert checkout.__perdure_workflow__.version == fork.record.version


async def test_a_fork_from_the_first_step_runs_every_step_again(
    engine: Engine, tmp_path: Path
) -> None:
    """The first step's id gives a fork that replays nothing but run_started."""
    path = str(tmp_path / "effects.txt")
    original = await engine.start(checkout, path)
    await original.result(timeout=10)
    fork = await engine.fork(original.id, from_step="reserve#1")
    await fork.result(timeout=10)
    assert ["reserve", "charge", "ship"] * 2 == _executed(path)


async def test_forking_an_unknown_run_or_step_says_what_is_wrong(
    engine: Engine, tmp_path: Path
) -> None:
    """An unknown run is RunNotFoundError (a LookupError); a step id the log does not hold
    is a ValueError naming the ones it holds; nothing is created."""
    original = await engine.start(checkout, str(tmp_path / "effects.txt"))
    await original.result(timeout=10)

    with pytest.raises(RunNotFoundError, match="'no-such-run'"):
        await engine.fork("no-such-run", from_step="charge#1")
    with pytest.raises(LookupError):
        await engine.fork("no-such-run", from_step="charge#1")
    with pytest.raises(ValueError, match=r"'refund#1'.*reserve#1, charge#1, ship#1"):
        await engine.fork(original.id, from_step="refund#1")
    assert [original.id] == [run.id for run in await engine.list_runs()]


T = datetime(2030, 1, 1, tzinfo=UTC)


def _events(*new: NewEvent) -> list[Event]:
    return [
        Event("r1", seq, event.type, event.correlation_id, event.data, T)
        for seq, event in enumerate(new, start=1)
    ]


LOG = _events(
    _log.run_created(workflow="wf", input=None, version="v1"),
    _log.run_started(worker="w1"),
    _log.step_started("a#1", name="a", attempt=1, input=None),
    _log.step_completed("a#1", name="a", attempt=1, output=1),
    _log.hook_created("approval#1", token="tok", name="approval", kind="hook"),
    _log.hook_received("approval#1", token="tok", payload={"ok": True}),
    _log.patch_marked("patch.p#1", patch="p"),
    _log.hook_disposed("approval#1", token="tok"),
    _log.run_blocked(reason="diverged", version="v1", worker="w1"),
    _log.run_unblocked(by="me"),
    _log.step_started("b#1", name="b", attempt=1, input=None),
)


def test_the_prefix_is_every_event_before_the_steps_first_less_what_the_store_writes() -> None:
    """run_created, run_blocked and run_unblocked are not copied; everything else before
    the step's first event is, with its data; patch markers are no step ids."""
    prefix = fork_prefix("r1", LOG, "b#1")
    assert [e.type for e in prefix] == [e.type for e in LOG[1:8]]
    assert [e.data for e in prefix] == [e.data for e in LOG[1:8]]
    assert step_ids(LOG) == ["a#1", "approval#1", "b#1"]
    assert [EventType.RUN_STARTED] == [e.type for e in fork_prefix("r1", LOG, "a#1")]


def test_a_fork_point_where_a_hook_is_live_is_refused() -> None:
    """A fork would hold the live hook's token: refused, naming the hook's call; forking
    from the hook's own call is fine (the fork creates its hook again)."""
    live = LOG[:6]
    with pytest.raises(ValueError, match="approval#1 is live"):
        fork_prefix(
            "r1",
            [*live, *_events(_log.step_started("b#1", name="b", attempt=1, input=None))],
            "b#1",
        )
    assert EventType.HOOK_CREATED not in {e.type for e in fork_prefix("r1", live, "approval#1")}
