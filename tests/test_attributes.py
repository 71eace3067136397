"""perdure.set_attributes: recorded once, kept across a replay, found by search; bad input.

Every test here runs on the memory store, SQLite and PostgreSQL (the `make_engine`
fixture), each with a fake clock.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

import perdure
from conftest import EngineFactory
from helpers import evicted, of_type, wait_for_hook, wait_until
from perdure import Engine, Event, EventType, RunStatus, _log, define_hook, step, workflow
from perdure._fork import fork_prefix, step_ids

go = define_hook(dict, name="attributes-go")


@step
async def tally(n: int) -> int:
    return n + 1


@workflow(name="attributes-order")
async def order(customer: str, token: str) -> int:
    """Set attributes before and after waiting on a hook (across an eviction)."""
    perdure.set_attributes(customer=customer, tier="gold", items=3)
    count = await tally(1)
    await go.create(token=token)
    perdure.set_attributes(tier="platinum", done=True)
    return count


@workflow
async def nested_attribute() -> str:
    """Set a nested value, and say what was raised."""
    try:
        perdure.set_attributes(customer={"name": "acme"})  # type: ignore[arg-type]
    except (TypeError, ValueError) as exc:
        return f"{type(exc).__name__}: {exc}"
    return "recorded"


@workflow
async def bad_key() -> str:
    """Set an attribute whose key is not an identifier, and say what was raised."""
    try:
        perdure.set_attributes(**{"customer-id": "acme"})
    except (TypeError, ValueError) as exc:
        return f"{type(exc).__name__}: {exc}"
    return "recorded"


async def _ids(engine: Engine, **attributes: Any) -> list[str]:
    return [run.id for run in await engine.list_runs(attributes=attributes)]


async def test_attributes_are_found_by_search_and_kept_across_a_replay(
    make_engine: EngineFactory,
) -> None:
    """Runs are found by their attributes (all terms must match); after an eviction and a
    replay, the attributes are still there, logged once, and later ones add to them."""
    async with make_engine(evict_after="1s") as engine:
        acme = await engine.start(order, "acme", "t-acme")
        globex = await engine.start(order, "globex", "t-globex")
        await wait_for_hook(engine, "t-acme")
        await wait_for_hook(engine, "t-globex")
        await wait_until(engine, lambda: _evicted_both(engine))

        assert await _ids(engine, customer="acme") == [acme.id]
        assert sorted(await _ids(engine, tier="gold")) == sorted([acme.id, globex.id])
        assert await _ids(engine, customer="acme", items=3) == [acme.id]
        assert await _ids(engine, customer="acme", items="3") == [acme.id]
        assert await _ids(engine, customer="acme", tier="silver") == []

        await go.resume("t-acme", {})
        assert await acme.result(timeout=10) == 2  # replayed from the log, then went on
        events = await acme.events()
        assert len(of_type(events, EventType.ATTRIBUTES_SET)) == 2  # the replay logged none
        record = await acme.refresh()
        assert record.attributes == {
            "customer": "acme",
            "tier": "platinum",
            "items": 3,
            "done": True,
        }
        assert await _ids(engine, tier="platinum", done=True) == [acme.id]
        assert await _ids(engine, tier="gold") == [globex.id]

    async with make_engine() as restarted:  # a new process finds them too
        assert await _ids(restarted, customer="acme") == [acme.id]
        await restarted.cancel(globex.id)


async def _evicted_both(engine: Engine) -> bool:
    return await evicted(engine) >= 2


@pytest.mark.parametrize(
    ("fn", "words"),
    [
        (
            nested_attribute,
            (
                "TypeError: set_attributes() in workflow 'nested_attribute': "
                "attribute 'customer' must be a str, int, float or bool, got dict"
            ),
        ),
        (
            bad_key,
            (
                "ValueError: set_attributes() in workflow 'bad_key': attribute key "
                "'customer-id' must be an identifier"
            ),
        ),
    ],
)
async def test_bad_attributes_raise_in_the_workflow_and_record_nothing(
    engine: Engine, fn: perdure.Workflow[[], str], words: str
) -> None:
    """A nested value or a key that is not an identifier raises in the workflow (which
    may catch it), naming it, and nothing is logged or indexed."""
    run = await engine.start(fn)
    assert (await run.result(timeout=10)).startswith(words)
    assert of_type(await run.events(), EventType.ATTRIBUTES_SET) == []
    record = await run.refresh()
    assert (record.status, record.attributes) == (RunStatus.COMPLETED, None)


async def test_set_attributes_outside_a_workflow_is_an_error() -> None:
    """Outside a workflow there is no run to attach attributes to."""
    with pytest.raises(RuntimeError, match="inside a workflow"):
        perdure.set_attributes(customer="acme")


async def test_a_bad_search_term_is_refused(engine: Engine) -> None:
    """list_runs(attributes=...) checks its terms as set_attributes checks values."""
    with pytest.raises(TypeError, match="'customer'"):
        await engine.list_runs(attributes={"customer": ["acme"]})
    with pytest.raises(ValueError, match="'bad key'"):
        await engine.list_runs(attributes={"bad key": "x"})


def test_attribute_sets_are_copied_by_a_fork_and_are_no_step_ids() -> None:
    """A fork copies the attributes set before its step (its run keeps them), and
    ``attributes#n`` is not offered as a step to fork from."""
    at = datetime(2030, 1, 1, tzinfo=UTC)
    log = [
        Event("r1", seq, event.type, event.correlation_id, event.data, at)
        for seq, event in enumerate(
            [
                _log.run_created(workflow="wf", input=None, version="v1"),
                _log.run_started(worker="w1"),
                _log.attributes_set("attributes#1", values={"customer": "acme"}),
                _log.step_started("a#1", name="a", attempt=1, input=None),
            ],
            start=1,
        )
    ]
    assert step_ids(log) == ["a#1"]
    prefix = fork_prefix("r1", log, "a#1")
    assert [e.type for e in prefix] == [EventType.RUN_STARTED, EventType.ATTRIBUTES_SET]
