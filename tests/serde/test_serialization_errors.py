"""Values crossing workflow and step boundaries: typed round trips, and clear refusals."""

from __future__ import annotations

import dataclasses
import enum
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any
from uuid import UUID

import pydantic
import pytest

from helpers import of_type
from perdure import Engine, EventType, WorkflowFailed, step, workflow


class Color(enum.Enum):
    """An enum."""

    RED = "red"
    BLUE = "blue"


class Address(pydantic.BaseModel):
    """A pydantic model."""

    city: str
    postcode: str


@dataclasses.dataclass(frozen=True)
class Order:
    """A dataclass holding one of each kind of value people pass around."""

    id: UUID
    placed_at: datetime
    day: date
    total: Decimal
    items: tuple[str, ...]
    tags: set[str]
    blob: bytes
    color: Color
    address: Address
    wait: timedelta


ORDER = Order(
    id=UUID("12345678-1234-5678-1234-567812345678"),
    placed_at=datetime(2030, 5, 17, 9, 30, 15, 250000, tzinfo=UTC),
    day=date(2030, 5, 17),
    total=Decimal("19.99"),
    items=("apple", "pear"),
    tags={"gift", "express"},
    blob=b"\x00\xffbinary",
    color=Color.BLUE,
    address=Address(city="Lyon", postcode="69001"),
    wait=timedelta(days=2, seconds=5),
)


@step
async def echo_order(order: Order) -> Order:
    """Hand the order back, through a step's stored input and output."""
    return order


@step
def echo_values(
    when: datetime, amount: Decimal, ident: UUID, pair: tuple[int, str], tags: set[int], raw: bytes
) -> tuple[datetime, Decimal, UUID, tuple[int, str], set[int], bytes]:
    """Hand plain annotated values back, from a def step."""
    return when, amount, ident, pair, tags, raw


@step
async def takes_anything(value: Any) -> str:
    """Accept any value (that can be stored)."""
    return repr(value)


@workflow
async def order_round_trip(order: Order) -> Order:
    """Pass an order into a step and return what came back."""
    return await echo_order(order)


@workflow
async def values_round_trip(
    when: datetime, amount: Decimal, ident: UUID, pair: tuple[int, str], tags: set[int], raw: bytes
) -> tuple[datetime, Decimal, UUID, tuple[int, str], set[int], bytes]:
    """Pass annotated values through a step and back out."""
    return await echo_values(when, amount, ident, pair, tags, raw)


@workflow
async def needs_int(count: int) -> int:
    """Take an int."""
    return count


@workflow
async def passes_unstorable_to_a_step() -> str:
    """Call a step with an argument that cannot be stored; report the error."""
    try:
        await takes_anything(object())
    except TypeError as exc:
        return str(exc)
    return "stored"


@workflow
async def returns_unstorable() -> Any:
    """Return something that cannot be stored."""
    return object()


async def test_a_dataclass_of_rich_values_round_trips_through_a_workflow_and_step(
    engine: Engine,
) -> None:
    """A dataclass of datetime, date, Decimal, UUID, tuple, set, bytes, enum, model comes back."""
    run = await engine.start(order_round_trip, ORDER)

    result = await run.result(timeout=5)

    assert ORDER == result
    assert [Order, Decimal, UUID, tuple, set, bytes, Color, Address, timedelta] == [
        type(result),
        type(result.total),
        type(result.id),
        type(result.items),
        type(result.tags),
        type(result.blob),
        type(result.color),
        type(result.address),
        type(result.wait),
    ]


async def test_annotated_values_round_trip_as_their_types(engine: Engine) -> None:
    """Workflow and step arguments and results come back as their annotated types."""
    values = (
        datetime(2030, 1, 2, 3, 4, 5, tzinfo=UTC),
        Decimal("0.1"),
        UUID(int=7),
        (1, "one"),
        {3, 1, 2},
        b"bytes",
    )
    run = await engine.start(values_round_trip, *values)

    result = await run.result(timeout=5)

    assert values == result
    assert [datetime, Decimal, UUID, tuple, set, bytes] == [type(v) for v in result]


async def test_stored_values_are_json_not_pickle(engine: Engine) -> None:
    """What the log holds for a rich argument is plain JSON (strings, numbers, lists, dicts)."""
    run = await engine.start(order_round_trip, ORDER)
    await run.result(timeout=5)

    (started,) = of_type(await run.events(), EventType.STEP_STARTED)
    stored = started.data["input"]["order"]
    assert "12345678-1234-5678-1234-567812345678" == stored["id"]
    assert "19.99" == stored["total"]
    assert {"city": "Lyon", "postcode": "69001"} == stored["address"]


async def test_an_argument_that_cannot_be_stored_is_refused_before_anything_is_stored(
    engine: Engine,
) -> None:
    """engine.start with an unstorable argument raises TypeError naming it; no run exists."""
    with pytest.raises(TypeError) as caught:
        await engine.start(needs_int, object())

    assert "'count'" in str(caught.value)
    assert "needs_int" in str(caught.value)
    assert [] == await engine.list_runs()


async def test_an_argument_of_the_wrong_type_is_refused(engine: Engine) -> None:
    """An argument that does not fit its annotation is refused, naming function and argument."""
    with pytest.raises(TypeError, match=r"needs_int.*'count'|'count'.*needs_int"):
        await engine.start(needs_int, "many")

    assert [] == await engine.list_runs()


async def test_wrong_arguments_are_refused(engine: Engine) -> None:
    """engine.start with arguments the workflow does not take is a TypeError; no run exists."""
    with pytest.raises(TypeError, match="needs_int"):
        await engine.start(needs_int, 1, 2)

    assert [] == await engine.list_runs()


async def test_a_step_argument_that_cannot_be_stored_fails_the_call(engine: Engine) -> None:
    """A step called with an unstorable argument raises TypeError in the workflow; nothing runs."""
    run = await engine.start(passes_unstorable_to_a_step)

    message = await run.result(timeout=5)

    assert "takes_anything" in message
    assert "'value'" in message
    assert [] == of_type(await run.events(), EventType.STEP_STARTED)


async def test_a_result_that_cannot_be_stored_fails_the_run(engine: Engine) -> None:
    """A workflow returning an unstorable value fails with a TypeError naming its return value."""
    run = await engine.start(returns_unstorable)

    with pytest.raises(WorkflowFailed) as caught:
        await run.result(timeout=5)

    assert "builtins.TypeError" == caught.value.type
    assert "returns_unstorable" in caught.value.message


async def test_starting_something_that_is_not_a_workflow_is_a_type_error(engine: Engine) -> None:
    """engine.start refuses a function that is not a @workflow."""

    async def plain() -> None:
        pass

    with pytest.raises(TypeError, match="@workflow"):
        await engine.start(plain)  # type: ignore[arg-type]
