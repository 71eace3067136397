"""Tests for perdure._serde: typed, pickle-free JSON round trips of workflow values."""

import dataclasses
import enum
import importlib.util
import json
import math
import socket
import sys
import uuid
from datetime import UTC, date, datetime, time, timedelta, timezone
from decimal import Decimal
from pathlib import Path
from typing import Annotated, Any, Literal, NewType, NotRequired, Optional, TypedDict

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import BaseModel, ConfigDict, Field

from perdure._replay import Duration
from perdure._serde import CallCodec, _codec, decode, encode

# The first example of each annotation builds a pydantic schema: too slow for a deadline.
relaxed = settings(deadline=None)


# --- types under test -----------------------------------------------------------------


class Color(enum.Enum):
    RED = "red"
    GREEN = 2


class Level(enum.IntEnum):
    LOW = 1
    HIGH = 2


class Mode(enum.StrEnum):
    FAST = "fast"
    SAFE = "safe"


UserId = NewType("UserId", int)
NAIVE = datetime(2021, 1, 1)  # noqa: DTZ001 -- naive datetimes are supported too


@dataclasses.dataclass(frozen=True)
class Point:
    x: int
    y: float
    label: str
    at: datetime
    tags: frozenset[str] = frozenset()
    raw: bytes = b""


@dataclasses.dataclass
class Route:
    name: str
    points: list[Point]
    by_name: dict[str, Point]
    level: Level


class Order(BaseModel):
    model_config = ConfigDict(
        ser_json_bytes="base64", val_json_bytes="base64", ser_json_inf_nan="strings"
    )

    id: uuid.UUID
    amount: Decimal
    route: Route
    note: str | None = None
    mode: Mode = Mode.FAST
    blob: bytes = b""
    due: date | None = None
    parent: "Order | None" = None


class Payload(TypedDict):
    name: str
    when: date
    extra: Any
    count: NotRequired[int]


@dataclasses.dataclass
class Cat:
    name: str
    lives: int


@dataclasses.dataclass
class Dog:  # the same fields as Cat: only the tag tells them apart
    name: str
    lives: int


class CatModel(BaseModel):
    name: str
    lives: int


class DogModel(BaseModel):
    name: str
    lives: int


class Counts(TypedDict):
    a: int
    b: NotRequired[int]


class Stamped(TypedDict):
    at: str | datetime
    size: int | Decimal
    note: NotRequired[str | bytes | None]


# --- strategies -----------------------------------------------------------------------

offsets_minutes = st.integers(-1439, 1439).map(lambda m: timezone(timedelta(minutes=m)))
offsets_seconds = st.integers(-86399, 86399).map(lambda s: timezone(timedelta(seconds=s)))
datetimes = st.datetimes(timezones=st.none() | offsets_minutes)
times = st.times(timezones=st.none() | offsets_minutes)
exponent_decimals = st.builds(
    lambda sign, digits, exponent: Decimal((sign, digits, exponent)),
    st.integers(0, 1),
    st.lists(st.integers(0, 9), min_size=1, max_size=30).map(tuple),
    st.integers(-40, 40),
)
decimals = st.decimals(allow_nan=True, allow_infinity=True) | exponent_decimals
finite_decimals = st.decimals(allow_nan=False, allow_infinity=False) | exponent_decimals
finite_floats = st.floats(allow_nan=False, allow_infinity=False)
points = st.builds(
    Point,
    x=st.integers(),
    y=finite_floats,
    label=st.text(),
    at=datetimes,
    tags=st.frozensets(st.text(max_size=5), max_size=3),
    raw=st.binary(),
)
routes = st.builds(
    Route,
    name=st.text(),
    points=st.lists(points, max_size=3),
    by_name=st.dictionaries(st.text(max_size=5), points, max_size=3),
    level=st.sampled_from(Level),
)
orders = st.builds(
    Order,
    id=st.uuids(),
    amount=finite_decimals,
    route=routes,
    note=st.none() | st.text(),
    mode=st.sampled_from(Mode),
    blob=st.binary(),
    due=st.none() | st.dates(),
    parent=st.none() | st.builds(Order, id=st.uuids(), amount=finite_decimals, route=routes),
)

durations = st.text() | st.integers() | st.floats() | st.timedeltas()
cats = st.builds(Cat, name=st.text(), lives=st.integers())
dogs = st.builds(Dog, name=st.text(), lives=st.integers())
counts = st.fixed_dictionaries({"a": st.integers()}, optional={"b": st.integers()})
stamped = st.fixed_dictionaries(
    {"at": st.text() | datetimes, "size": st.integers() | decimals},
    optional={"note": st.none() | st.text() | st.binary()},
)
int_or_float_lists = st.lists(st.integers()) | st.lists(st.floats(), min_size=1)

# What the self-describing form must carry without any annotation.
scalars = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats()
    | st.text()
    | st.binary()
    | st.datetimes(timezones=st.none() | offsets_seconds)
    | st.dates()
    | st.times(timezones=st.none() | offsets_seconds)
    | st.timedeltas()
    | st.uuids()
    | decimals
)
hashables = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | finite_floats
    | st.text()
    | st.binary()
    | st.dates()
    | st.uuids()
    | finite_decimals,
    lambda inner: st.lists(inner, max_size=3).map(tuple) | st.frozensets(inner, max_size=3),
    max_leaves=8,
)
keys = st.sampled_from(["$t", "v", ""]) | st.text()
tag_lookalikes = st.fixed_dictionaries(
    {"$t": st.sampled_from(["datetime", "bytes", "tuple", "dict", "nope"]), "v": st.text()}
)
any_values = st.recursive(
    scalars | tag_lookalikes,
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.lists(inner, max_size=4).map(tuple)
        | st.dictionaries(keys, inner, max_size=4)
        | st.dictionaries(hashables, inner, max_size=3)
        | st.sets(hashables, max_size=4)
        | st.frozensets(hashables, max_size=4)
    ),
    max_leaves=20,
)


# --- comparison -----------------------------------------------------------------------


def assert_same(actual: Any, expected: Any) -> None:
    """Assert equal values of identical types, NaN equal to NaN, Decimals equal digit for digit."""
    assert type(actual) is type(expected), (actual, expected)
    if isinstance(expected, float):
        assert repr(actual) == repr(expected)  # also tells -0.0 from 0.0, and nan from nan
    elif isinstance(expected, Decimal):
        assert actual.compare_total(expected) == 0, (actual, expected)
    elif isinstance(expected, (list, tuple)):
        assert len(actual) == len(expected)
        for a, e in zip(actual, expected, strict=True):
            assert_same(a, e)
    elif isinstance(expected, dict):
        assert actual.keys() == expected.keys()  # order aside: PostgreSQL's jsonb reorders keys
        for k in expected:
            assert_same(next(a for a in actual if a == k), k)
            assert_same(actual[k], expected[k])
    elif isinstance(expected, (set, frozenset)):
        assert actual == expected
        for e in expected:
            assert_same(next(a for a in actual if a == e), e)
    else:
        assert actual == expected, (actual, expected)


def round_trip(value: Any, annotation: Any) -> Any:
    """Encode, pass through JSON text as a store would, and decode."""
    encoded = encode(value, annotation)
    stored = json.loads(json.dumps(encoded, allow_nan=False))
    assert stored == encoded
    return decode(stored, annotation)


# --- property tests: annotated --------------------------------------------------------

TYPED_CASES: list[tuple[Any, st.SearchStrategy[Any]]] = [
    (int, st.integers()),
    (float, st.floats()),
    (str, st.text()),
    (bool, st.booleans()),
    (type(None), st.none()),
    (bytes, st.binary()),
    (datetime, datetimes),
    (date, st.dates()),
    (time, times),
    (timedelta, st.timedeltas()),
    (uuid.UUID, st.uuids()),
    (Decimal, decimals),
    (Color, st.sampled_from(Color)),
    (Level, st.sampled_from(Level)),
    (Mode, st.sampled_from(Mode)),
    (Point, points),
    (Route, routes),
    (Order, orders),
    (Optional[Order], st.none() | orders),  # noqa: UP045 -- the spelling under test
    (list[datetime], st.lists(datetimes)),
    (list[float], st.lists(st.floats())),
    (dict[str, Point], st.dictionaries(st.text(), points, max_size=4)),
    (dict[str, Any], st.dictionaries(keys, any_values, max_size=4)),
    (list[Any], st.lists(any_values, max_size=4)),
    (tuple[int, str, bytes], st.tuples(st.integers(), st.text(), st.binary())),
    (tuple[Decimal, ...], st.lists(decimals).map(tuple)),
    (set[str], st.sets(st.text())),
    (frozenset[int], st.frozensets(st.integers())),
    (dict[int, str], st.dictionaries(st.integers(), st.text())),
    (dict[tuple[int, str], date], st.dictionaries(st.tuples(st.integers(), st.text()), st.dates())),
    (dict[uuid.UUID, list[bytes]], st.dictionaries(st.uuids(), st.lists(st.binary()))),
    (dict[Mode, Decimal], st.dictionaries(st.sampled_from(Mode), decimals)),
    (
        Payload,
        st.fixed_dictionaries(
            {"name": st.text(), "when": st.dates(), "extra": any_values},
            optional={"count": st.integers()},
        ),
    ),
    (Literal["a", 1] | None, st.sampled_from(["a", 1, None])),
    (UserId, st.integers().map(UserId)),
    (Annotated[int, Field(ge=0)], st.integers(min_value=0)),
    (int | str | None, st.none() | st.integers() | st.text()),
    (
        list[dict[str, tuple[datetime, ...]]],
        st.lists(st.dictionaries(st.text(), st.lists(datetimes).map(tuple))),
    ),
]


@pytest.mark.parametrize(
    ("annotation", "strategy"), TYPED_CASES, ids=[repr(a) for a, _ in TYPED_CASES]
)
@relaxed
@given(data=st.data())
def test_annotated_round_trip(
    annotation: Any, strategy: st.SearchStrategy[Any], data: st.DataObject
) -> None:
    """decode(encode(v, T), T) gives back v, with its exact type, for every supported T."""
    value = data.draw(strategy)
    actual = round_trip(value, annotation)
    if isinstance(value, BaseModel | Point | Route):
        assert actual == value
        assert type(actual) is type(value)
    else:
        assert_same(actual, value)


@relaxed
@given(value=st.floats(allow_nan=True, allow_infinity=True))
def test_non_finite_float_round_trip(value: float) -> None:
    """NaN and the infinities survive both as float and under Any, though JSON cannot hold them."""
    for annotation in (float, Any, list[float]):
        actual = round_trip([value] if annotation == list[float] else value, annotation)
        actual = actual[0] if annotation == list[float] else actual
        assert math.isnan(actual) if math.isnan(value) else actual == value


@relaxed
@given(value=st.datetimes(timezones=offsets_minutes))
def test_aware_datetime_keeps_offset(value: datetime) -> None:
    """An aware datetime comes back with the same UTC offset, not just the same instant."""
    for annotation in (datetime, Any):
        actual = round_trip(value, annotation)
        assert actual.utcoffset() == value.utcoffset()
        assert actual.replace(tzinfo=None) == value.replace(tzinfo=None)


@relaxed
@given(value=exponent_decimals)
def test_decimal_keeps_exponent(value: Decimal) -> None:
    """A Decimal comes back with the same digits and exponent (1E+2 is not 100)."""
    for annotation in (Decimal, Any):
        assert str(round_trip(value, annotation)) == str(value)


# --- property tests: unions -----------------------------------------------------------

UNION_CASES: list[tuple[Any, st.SearchStrategy[Any]]] = [
    # members whose JSON forms collide: stored tagged with the member's position
    (Duration, durations),
    (str | datetime, st.text() | datetimes),
    (str | uuid.UUID, st.text() | st.uuids()),
    (str | Decimal, st.text() | decimals),
    (str | bytes, st.text() | st.binary()),
    (float | str, st.floats() | st.text()),
    (bool | int | float, st.booleans() | st.integers() | st.floats()),
    (datetime | date, datetimes | st.dates()),
    (date | datetime, datetimes | st.dates()),
    (list[int] | tuple[int, ...], st.lists(st.integers()) | st.lists(st.integers()).map(tuple)),
    (set[int] | frozenset[int], st.sets(st.integers()) | st.frozensets(st.integers())),
    (list[int] | list[float], int_or_float_lists),
    (list[float] | list[int], int_or_float_lists),
    (str | Mode, st.text() | st.sampled_from(Mode)),
    (Mode | str, st.text() | st.sampled_from(Mode)),
    (int | Level, st.integers() | st.sampled_from(Level)),
    (Literal["fast"] | Mode | str, st.just("fast") | st.sampled_from(Mode) | st.text()),  # noqa: PYI051
    (Cat | Dog, cats | dogs),
    (CatModel | DogModel, st.builds(CatModel) | st.builds(DogModel)),
    (dict[str, int] | Counts, st.dictionaries(st.text(), st.integers()) | counts),
    (Counts | dict[str, int], st.dictionaries(st.text(), st.integers()) | counts),
    (str | Any, st.text() | any_values),
    # members whose JSON forms differ: stored untagged, as before
    (int | float, st.integers() | st.floats()),
    (float | int, st.integers() | st.floats()),
    (int | Decimal, st.integers() | decimals),
    (int | bytes, st.integers() | st.binary()),
    (bool | str, st.booleans() | st.text()),
    (list[int] | str, st.lists(st.integers()) | st.text()),
    # nested in containers and TypedDicts
    (list[str | datetime], st.lists(st.text() | datetimes)),
    (dict[str, int | Decimal], st.dictionaries(st.text(), st.integers() | decimals)),
    (dict[str, str | Decimal], st.dictionaries(st.text(), st.text() | decimals)),
    (tuple[str | bytes, ...], st.lists(st.text() | st.binary()).map(tuple)),
    (set[str | uuid.UUID], st.sets(st.text() | st.uuids())),
    (dict[str | datetime, int], st.dictionaries(st.text() | datetimes, st.integers())),
    (tuple[Duration, str | date], st.tuples(durations, st.text() | st.dates())),
    (
        list[list[int] | tuple[int, ...]],
        st.lists(st.lists(st.integers()) | st.tuples(st.integers())),
    ),
    (list[Cat | Dog], st.lists(cats | dogs)),
    (Stamped, stamped),
    (list[str | datetime] | tuple[str | bytes, ...], st.lists(st.text() | datetimes)),
    # optional
    (Optional[str | datetime], st.none() | st.text() | datetimes),  # noqa: UP045
    (Optional[Cat | Dog], st.none() | cats | dogs),  # noqa: UP045
    (Duration | None, st.none() | durations),
    (list[str | datetime] | None, st.none() | st.lists(st.text() | datetimes)),
    (dict[str, Duration | None], st.dictionaries(st.text(), st.none() | durations)),
    (list[Optional[str | bytes]], st.lists(st.none() | st.text() | st.binary())),  # noqa: UP045
]


@pytest.mark.parametrize(
    ("annotation", "strategy"), UNION_CASES, ids=[repr(a) for a, _ in UNION_CASES]
)
@relaxed
@given(data=st.data())
def test_union_round_trip(
    annotation: Any, strategy: st.SearchStrategy[Any], data: st.DataObject
) -> None:
    """A value of any member of a union comes back as that member, exact types all the way down."""
    value = data.draw(strategy)
    assert_same(round_trip(value, annotation), value)


def test_ambiguous_union_format() -> None:
    """Members whose JSON forms collide are stored as {"$u": position, "v": value}, others as is."""
    assert encode(timedelta(hours=3), Duration) == {"$u": 3, "v": "PT3H"}
    assert encode("PT3H", Duration) == {"$u": 0, "v": "PT3H"}
    assert encode(1.5, Duration) == {"$u": 2, "v": 1.5}
    assert encode(90, Duration) == 90  # the only member stored as a JSON integer
    assert encode(None, Optional[str | datetime]) is None  # noqa: UP045
    assert encode([NAIVE, "x"], list[str | datetime]) == [
        {"$u": 1, "v": "2021-01-01T00:00:00"},
        {"$u": 0, "v": "x"},
    ]
    assert encode(Dog("rex", 1), Cat | Dog) == {"$u": 1, "v": {"name": "rex", "lives": 1}}
    assert encode([1, 2], list[int] | str | datetime) == [1, 2]
    assert encode({"k": [1]}, dict[str, list[int]] | str | datetime) == {"$u": 0, "v": {"k": [1]}}


def test_unambiguous_union_format_is_unchanged() -> None:
    """Unions whose members' JSON forms cannot collide are stored untagged, as they always were."""
    for value, annotation in [
        (1.0, int | float),
        (1, int | float),
        ("x", str | int),
        (3, int | None),
        (b"\x00", bytes | int),
        (Decimal("1.5"), Decimal | int),
        (Cat("tom", 9), Cat | None),
        ({"a": 1}, dict[str, Any] | list[int]),
    ]:
        assert encode(value, annotation) == encode(value, type(value))


def test_union_member_is_chosen_by_exact_fit() -> None:
    """When several members take the value's type, the first it fits exactly (items too) wins."""
    assert encode([1], list[float] | list[int]) == {"$u": 1, "v": [1]}
    assert encode([1.0], list[int] | list[float]) == {"$u": 1, "v": [1.0]}
    assert encode([], list[float] | list[int]) == {"$u": 0, "v": []}
    assert encode({"a": 1}, Counts | dict[str, int]) == {"$u": 0, "v": {"a": 1}}
    assert encode({"a": 1, "z": 2}, Counts | dict[str, int]) == {"$u": 1, "v": {"a": 1, "z": 2}}
    assert encode(Mode.FAST, Literal["fast"] | Mode) == {"$u": 1, "v": "fast"}
    yes = True
    assert encode(yes, bool | int | float) is True
    assert encode(yes, int | float | str) == 1  # int is untagged; a bool is stored as an int


def test_untagged_union_data_still_decodes() -> None:
    """Data stored untagged before unions were tagged still decodes, as pydantic chose then."""
    assert decode("7 days", Duration) == "7 days"
    assert decode(1.5, Duration) == 1.5
    assert decode({"name": "rex", "lives": 1}, Cat | Dog) == Cat("rex", 1)
    assert decode(["x"], list[str | datetime]) == ["x"]


def test_wrong_union_values_are_converted_or_refused() -> None:
    """A value of no member is converted as pydantic's lax mode would, or refused naming it."""
    assert round_trip((NAIVE, "x"), list[str | datetime]) == [NAIVE, "x"]
    with socket.socket() as conn, pytest.raises(TypeError) as info:
        encode(conn, str | datetime, where="w")
    assert str(info.value).startswith("cannot serialize w: socket.socket is not JSON-serializable")
    with pytest.raises(TypeError, match="cannot serialize w: list does not fit"):
        encode(["a"], list[int] | tuple[int, ...], where="w")


@pytest.mark.parametrize(
    ("data", "annotation"),
    [
        ({"$u": 1, "v": "not a date"}, str | datetime),
        ({"$u": 7, "v": "x"}, str | datetime),
        ([{"$u": 0, "v": 5}], list[str | datetime]),
        ([5], str | datetime),
        ({"name": "rex"}, Cat | Dog),
    ],
)
def test_wrong_union_data_is_refused(data: Any, annotation: Any) -> None:
    """Stored data that is neither a valid tag nor a member's untagged value raises TypeError."""
    with pytest.raises(TypeError, match=r"cannot deserialize argument 'a' of f\(\)"):
        decode(data, annotation, where="argument 'a' of f()")


# --- property tests: Any (self-describing) --------------------------------------------


@relaxed
@given(value=any_values)
def test_any_round_trip(value: Any) -> None:
    """Unannotated values of the builtin-ish types come back with their exact types."""
    assert_same(round_trip(value, Any), value)


@relaxed
@given(value=st.sets(hashables, max_size=6))
def test_any_set_encoding_is_canonical(value: set[Any]) -> None:
    """A set is stored sorted by JSON text, so equal sets store equal JSON in any process."""
    items = encode(value)["v"]
    assert items == sorted(items, key=lambda item: json.dumps(item, sort_keys=True))


def test_tag_lookalike_user_dict_round_trips() -> None:
    """A user dict that happens to use the tag key is escaped, not mistaken for a tag."""
    value = {"$t": "datetime", "v": "2020-01-01T00:00:00"}
    assert encode(value) != value
    assert round_trip(value, Any) == value


def test_plain_json_is_stored_as_is() -> None:
    """Ordinary JSON payloads are stored unchanged, so they read naturally in the store."""
    value = {"a": [1, 2.5, None, True], "b": {"c": "d"}}
    assert encode(value) == value
    assert encode(value, dict[str, Any]) == value


def test_objects_under_any_become_field_dicts() -> None:
    """Dataclasses, models and enums under Any come back as plain data, never as classes."""
    at = datetime(2024, 5, 6, 7, 8, 9, tzinfo=UTC)
    point = Point(1, 2.0, "p", at, frozenset({"t"}), b"\x00")
    expected = {"x": 1, "y": 2.0, "label": "p", "at": at, "tags": frozenset({"t"}), "raw": b"\x00"}
    assert round_trip(point, Any) == expected
    assert round_trip(Mode.SAFE, Any) == "safe"
    assert type(round_trip(Level.HIGH, Any)) is int
    model = Order(id=uuid.UUID(int=1), amount=Decimal("1.50"), route=Route("r", [], {}, Level.LOW))
    assert round_trip(model, Any)["amount"] == Decimal("1.50")


def test_bare_containers_mean_containers_of_any() -> None:
    """A bare (or Any-parametrized) container annotation carries items in the tagged form."""
    assert round_trip({"k": {1, 2}}, dict) == {"k": {1, 2}}
    assert round_trip([date(2020, 1, 1)], list) == [date(2020, 1, 1)]
    assert round_trip((1, b"x"), tuple) == (1, b"x")
    assert round_trip((1, b"x"), tuple[Any, ...]) == (1, b"x")
    assert round_trip((1, b"x"), tuple[Any, Any]) == (1, b"x")
    with pytest.raises(TypeError, match="at most 2 items"):
        encode((1, 2, 3), tuple[Any, Any])


# --- the fast path --------------------------------------------------------------------


def test_plain_values_skip_pydantic(monkeypatch: pytest.MonkeyPatch) -> None:
    """JSON values annotated as such, or as Any, are encoded and decoded without pydantic."""

    def no_pydantic(self: object) -> None:
        raise AssertionError("pydantic used on the fast path")

    monkeypatch.setattr(_codec._Plan, "adapter", no_pydantic)
    payload = {"draft": "text", "n": 3, "items": [1, 2], "nested": {"ok": True}}
    for value, annotation in [
        ("hello", str),
        (3, int),
        (2.5, float),
        (None, None),
        (payload, dict[str, Any]),
        (payload, dict),
        (payload, Any),
        ([1, 2], list[int]),
        ("x", str | None),
        (1.0, int | float),
        ("x", str | int),
        (None, Optional[str | datetime]),  # noqa: UP045 -- an untagged member of a tagged union
        (90, Duration),
    ]:
        assert encode(value, annotation) is value
        assert decode(value, annotation) is value


def test_tagged_json_values_skip_pydantic(monkeypatch: pytest.MonkeyPatch) -> None:
    """A JSON value under a tagged union of JSON types is tagged and untagged without pydantic."""

    def no_pydantic(self: object) -> None:
        raise AssertionError("pydantic used on the fast path")

    monkeypatch.setattr(_codec._Plan, "adapter", no_pydantic)
    for value, annotation in [("7 days", Duration), (1.5, Duration), (2.5, str | float)]:
        assert decode(encode(value, annotation), annotation) == value


# --- errors ---------------------------------------------------------------------------


def test_socket_argument_is_refused_naming_it() -> None:
    """A socket cannot be stored; the TypeError names where it was passed and its type."""
    with socket.socket() as conn:
        for annotation in (Any, str, socket.socket):
            with pytest.raises(TypeError) as info:
                encode(conn, annotation, where="argument 'conn' of generate_draft()")
            message = str(info.value)
            assert "argument 'conn' of generate_draft()" in message
            assert "socket.socket is not" in message


@pytest.mark.parametrize(
    ("value", "annotation", "type_name"),
    [
        (lambda: 1, Any, "function"),
        ((i for i in range(3)), Any, "generator"),
        ({"a": [object()]}, dict[str, list[int]], "object"),
        (
            Point(1, 1.0, "p", NAIVE, tags=frozenset({socket})),  # type: ignore[arg-type]
            Point,
            "module",
        ),
        ([1, open], list[Any], "builtin_function_or_method"),
    ],
    ids=["lambda", "generator", "nested-object", "in-dataclass", "in-list-of-any"],
)
def test_unsupported_types_are_named(value: Any, annotation: Any, type_name: str) -> None:
    """An unsupported object, however deeply nested, is named in the TypeError with the location."""
    with pytest.raises(
        TypeError, match=rf"cannot serialize here: {type_name} is not JSON-serializable"
    ):
        encode(value, annotation, where="here")


def test_wrong_type_is_refused_or_converted() -> None:
    """A value not of the annotated type is converted when pydantic's lax mode can, else refused."""
    assert round_trip((1, 2), list[int]) == [1, 2]
    assert round_trip(3.0, int) == 3
    assert round_trip((1, date(2020, 1, 1)), list) == [1, date(2020, 1, 1)]
    with pytest.raises(TypeError, match="cannot serialize x: str does not fit int"):
        encode("abc", int, where="x")
    with pytest.raises(TypeError, match="cannot serialize x: int does not fit str"):
        encode(5, str, where="x")
    with pytest.raises(TypeError, match="cannot serialize x: list does not fit dict"):
        encode([1], dict, where="x")


@pytest.mark.parametrize(
    ("data", "annotation", "reason"),
    [
        ("abc", int, "valid integer"),
        (5, str, "valid string"),
        ({"x": "no"}, Point, "x: Input should be a valid integer"),
        ("2020-13-45", date, "date"),
        ({"$t": "nope", "v": 1}, Any, "malformed tagged value"),
        ({"$t": "uuid", "v": 5}, Any, "malformed 'uuid' value"),
        ({"$t": "bytes", "v": "not base64!"}, Any, "malformed 'bytes' value"),
        ([1], dict, "got list"),
        ("purple", Color, "Input should be"),
    ],
)
def test_wrong_data_is_refused_on_decode(data: Any, annotation: Any, reason: str) -> None:
    """Stored data not holding a value of the annotated type raises TypeError naming where."""
    with pytest.raises(TypeError, match=r"cannot deserialize argument 'a' of f\(\)") as info:
        decode(data, annotation, where="argument 'a' of f()")
    assert reason in str(info.value)


def test_unhashable_set_element_is_refused_at_encode() -> None:
    """A frozen dataclass in a set under Any would come back as an unhashable dict: refused."""
    point = Point(1, 1.0, "p", NAIVE)
    with pytest.raises(TypeError, match="must come back hashable"):
        encode({point}, where="w")


def test_cycle_is_refused() -> None:
    """A self-containing list is a TypeError, not a crash."""
    value: list[Any] = []
    value.append(value)
    with pytest.raises(TypeError, match="cannot serialize w"):
        encode(value, where="w")


def test_unresolved_annotation_is_refused() -> None:
    """A string annotation must be resolved by the caller; guessing its namespace is not safe."""
    with pytest.raises(TypeError, match="unresolved annotation 'Point'"):
        encode(1, "Point")


# --- CallCodec ------------------------------------------------------------------------


async def generate_draft(
    topic: str,
    when: date = date(2020, 1, 1),
    /,
    tone: Mode = Mode.FAST,
    *extra: datetime,
    budget: Decimal,
    tags: frozenset[str] = frozenset(),
    **options: timedelta,
) -> list[Point]:
    raise NotImplementedError


def untyped(a, b=2, *rest, key=None, **more):  # type: ignore[no-untyped-def]
    raise NotImplementedError


async def wait_for(
    timeout: Duration, *backoff: Duration, deadline: Duration | None = None, **limits: Duration
) -> Duration:
    raise NotImplementedError


@st.composite
def calls(draw: st.DrawFn) -> tuple[tuple[Any, ...], dict[str, Any]]:
    """Valid calls of generate_draft: every mix of positional, keyword and variadic arguments."""
    args: list[Any] = [draw(st.text())]
    kwargs: dict[str, Any] = {"budget": draw(finite_decimals)}
    positional = draw(st.integers(0, 2))  # how many of `when` and `tone` are passed by position
    if positional >= 1:
        args.append(draw(st.dates()))
    if positional == 2:
        args.append(draw(st.sampled_from(Mode)))
        args.extend(draw(st.lists(datetimes, max_size=3)))
    elif draw(st.booleans()):
        kwargs["tone"] = draw(st.sampled_from(Mode))
    if draw(st.booleans()):
        kwargs["tags"] = draw(st.frozensets(st.text(max_size=3), max_size=3))
    names = st.from_regex(r"[a-z]{1,7}", fullmatch=True).filter(
        lambda k: k not in {"budget", "tags", "tone"}  # `topic` and `when` land in **options
    )
    kwargs.update(draw(st.dictionaries(names, st.timedeltas(), max_size=3)))
    return tuple(args), kwargs


@relaxed
@given(call=calls())
def test_call_round_trip(call: tuple[tuple[Any, ...], dict[str, Any]]) -> None:
    """decode_args gives back args and kwargs that call the function as the original call did."""
    args, kwargs = call
    codec = CallCodec(generate_draft)
    stored = json.loads(json.dumps(codec.encode_args(args, kwargs)))
    new_args, new_kwargs = codec.decode_args(stored)
    expected = codec._signature.bind(*args, **kwargs)
    actual = codec._signature.bind(*new_args, **new_kwargs)
    assert list(actual.arguments) == list(expected.arguments)
    for name, value in expected.arguments.items():
        assert_same(actual.arguments[name], value)


@relaxed
@given(
    args=st.lists(durations, min_size=1, max_size=4).map(tuple),
    kwargs=st.fixed_dictionaries(
        {}, optional={"deadline": st.none() | durations, "retry": durations, "idle": durations}
    ),
    result=durations,
)
def test_duration_arguments_round_trip(
    args: tuple[Any, ...], kwargs: dict[str, Any], result: Any
) -> None:
    """Duration arguments and results come back as the very str, int, float or timedelta passed."""
    codec = CallCodec(wait_for)
    stored = json.loads(json.dumps(codec.encode_args(args, kwargs)))
    new_args, new_kwargs = codec.decode_args(stored)
    assert_same(list(new_args), list(args))
    assert_same(new_kwargs, kwargs)
    assert_same(codec.decode_result(json.loads(json.dumps(codec.encode_result(result)))), result)


def test_call_stores_only_what_was_passed() -> None:
    """Defaults are not stored, so a later default change applies to replays as it does to code."""
    codec = CallCodec(generate_draft)
    stored = codec.encode_args(("t",), {"budget": Decimal("2.50")})
    assert stored == {"topic": "t", "budget": "2.50"}
    assert codec.decode_args(stored) == (("t",), {"budget": Decimal("2.50")})


def test_call_with_skipped_positional_passes_later_ones_by_keyword() -> None:
    """A positional parameter left to its default makes later ones come back as keywords."""
    codec = CallCodec(untyped)
    args, kwargs = codec.decode_args(
        json.loads(json.dumps(codec.encode_args((1,), {"key": (1, 2), "z": {3}})))
    )
    assert args == (1,)
    assert kwargs == {"key": (1, 2), "z": {3}}
    args, kwargs = codec.decode_args(codec.encode_args((1, 2, date(2020, 1, 1)), {}))
    assert args == (1, 2, date(2020, 1, 1))
    assert kwargs == {}


def test_unannotated_function_round_trips_tagged_values() -> None:
    """Parameters without annotations use the self-describing form."""
    codec = CallCodec(untyped)
    args = (b"\xff", uuid.UUID(int=5), Decimal("1E+3"))
    kwargs = {"key": {NAIVE: None}}
    stored = json.loads(json.dumps(codec.encode_args(args, kwargs)))
    assert codec.decode_args(stored) == (args, kwargs)
    assert codec.decode_result(json.loads(json.dumps(codec.encode_result((1, 2))))) == (1, 2)


def test_return_value_round_trip() -> None:
    """The return value is decoded to the return annotation, not to plain dicts."""
    codec = CallCodec(generate_draft)
    at = datetime(2021, 3, 4, 5, 6, 7, 8, tzinfo=timezone(timedelta(hours=-5)))
    value = [Point(1, 2.0, "a", at, frozenset({"x"}), b"\x01\xff")]
    assert codec.decode_result(json.loads(json.dumps(codec.encode_result(value)))) == value


def test_call_errors_name_function_and_argument() -> None:
    """Encoding errors say which argument of which function, and bind errors name the function."""
    codec = CallCodec(generate_draft)
    with socket.socket() as conn, pytest.raises(TypeError) as info:
        codec.encode_args(("t",), {"budget": Decimal(1), "conn": conn})
    assert str(info.value).startswith(
        "cannot serialize argument 'conn' of generate_draft(): "
        "socket.socket is not JSON-serializable (supported: None, bool,"
    )
    with pytest.raises(TypeError, match=r"argument 'extra\[1\]' of generate_draft\(\)"):
        codec.encode_args(("t", date(2020, 1, 1), Mode.FAST, NAIVE, "no"), {"budget": 1})
    with pytest.raises(
        TypeError, match=r"^generate_draft\(\): missing a required argument: 'budget'"
    ):
        codec.encode_args(("t",), {})
    with pytest.raises(TypeError, match=r"return value of generate_draft\(\)"):
        codec.encode_result("not a list")
    with pytest.raises(TypeError, match=r"argument 'topic' of renamed\(\)"):
        CallCodec(generate_draft, qualname="renamed").encode_args((lambda: 0,), {"budget": 1})


def test_decode_args_refuses_data_that_no_longer_fits() -> None:
    """Stored arguments for a parameter that no longer exists, or missing a required one, raise."""
    codec = CallCodec(generate_draft)
    with pytest.raises(TypeError, match="generate_draft"):
        codec.decode_args({"topic": "t", "budget": "1", "gone": 1})
    with pytest.raises(TypeError, match="no longer fit generate_draft"):
        codec.decode_args({"topic": "t"})
    with pytest.raises(
        TypeError, match=r"cannot deserialize argument 'budget' of generate_draft\(\)"
    ):
        codec.decode_args({"topic": "t", "budget": "lots"})


FUTURE_MODULE = """
from __future__ import annotations

import dataclasses
from datetime import datetime

from perdure._serde import CallCodec


async def make_report(item: Item, at: datetime, *, copies: int = 1) -> Report:
    raise NotImplementedError


codec = CallCodec(make_report)  # as a decorator would: Item and Report do not exist yet


@dataclasses.dataclass
class Item:
    name: str
    due: datetime | None = None


@dataclasses.dataclass
class Report:
    items: list[Item]
"""


def test_future_annotations_are_resolved_lazily(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """String annotations naming classes defined after the function are resolved at first use."""
    path = tmp_path / "future_mod.py"
    path.write_text(FUTURE_MODULE)
    spec = importlib.util.spec_from_file_location("future_mod", path)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, "future_mod", module)
    spec.loader.exec_module(module)
    codec: CallCodec = module.codec
    item = module.Item("a", datetime(2020, 1, 1, tzinfo=UTC))
    stored = json.loads(json.dumps(codec.encode_args((item, NAIVE), {"copies": 2})))
    assert stored == {
        "item": {"name": "a", "due": "2020-01-01T00:00:00Z"},
        "at": "2021-01-01T00:00:00",
        "copies": 2,
    }
    assert codec.decode_args(stored) == ((item, NAIVE), {"copies": 2})
    report = module.Report([item])
    assert codec.decode_result(json.loads(json.dumps(codec.encode_result(report)))) == report


def test_unresolvable_annotation_names_the_function() -> None:
    """A hint that cannot be resolved (say, imported under TYPE_CHECKING) is a clear TypeError."""
    namespace: dict[str, Any] = {}
    exec("def f(x: 'Missing') -> None: ...", namespace)  # noqa: S102 -- a hint that cannot resolve
    with pytest.raises(TypeError, match=r"cannot resolve the annotations of f\(\)"):
        CallCodec(namespace["f"]).encode_args((1,), {})
