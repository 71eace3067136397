"""Which members of a union annotation need a tag, and the tagged form that names one.

pydantic decodes a union from JSON by trying each member and keeping the best fit, so a
value whose JSON form another member also accepts may come back as that member: the
``timedelta`` stored as ``"PT3H"`` under ``str | timedelta`` comes back as a ``str``.
`perdure._serde` therefore looks at each union annotation once, when it plans it:

* Each member gets the set of JSON *kinds* its values can be stored as (`kinds`): null,
  boolean, integer, float (``1.0``: Python's json and every perdure store keep the
  ``.0``), string, array, object. A type we cannot see into (a custom pydantic type,
  ``Any``) gets every kind.
* A union is *ambiguous* when two members share a kind other than null (JSON null is
  ``None`` under every member that accepts it). An unambiguous union (``str | None``,
  ``int | str``, ``int | float``, ``list[int] | None``) is stored as before, untagged.
* In an ambiguous union, a member that shares a kind with another, or whose values are
  JSON objects (which could pass for a tag), is *tagged*: its values are stored as
  ``{"$u": <position of the member in the union, from 0>, "v": <value as that member
  stores it>}``. The other members' values are stored untagged; their kinds are their
  own, so the JSON kind of the data names the member on decoding.

A value is stored under the first member, in declaration order, whose class is exactly
the value's type, else the first whose class the value is an instance of. When several
members qualify (``list[int] | list[float]``, a ``TypedDict`` and a ``dict``), the first
whose annotation the value fits exactly, items included (`fits`), is chosen. Decoding
reads the position, never a class name. Positions refer to the annotation as written:
appending a member keeps tagged data readable, reordering members does not. Data that is
not a tag and of no untagged member's kind was stored before this form existed, or under
a union that gained members since; it is read as pydantic reads the union.
"""

from __future__ import annotations

import dataclasses
import functools
import inspect
import types
import typing
from datetime import date, datetime, time, timedelta
from decimal import Decimal
from enum import Enum
from typing import Annotated, Any, Literal, NotRequired, Required, TypeVar
from uuid import UUID

import typing_extensions
from pydantic import BaseModel, PlainSerializer, WrapSerializer

if typing.TYPE_CHECKING:
    from collections.abc import Iterable

TAG = "$u"
UNIONS = (typing.Union, types.UnionType)
CONTAINERS = (list, set, frozenset, tuple, dict)

NULL, BOOLEAN, INTEGER, FLOAT, STRING, ARRAY, OBJECT = (
    "null",
    "boolean",
    "integer",
    "float",
    "string",
    "array",
    "object",
)
ALL = frozenset({NULL, BOOLEAN, INTEGER, FLOAT, STRING, ARRAY, OBJECT})

# The JSON kinds of the types whose values are stored the same way wherever they occur.
# A float is a string when it is not finite ("NaN", "Infinity").
_SCALAR_KINDS: dict[type, frozenset[str]] = {
    type(None): frozenset({NULL}),
    bool: frozenset({BOOLEAN}),
    int: frozenset({INTEGER}),
    float: frozenset({FLOAT, STRING}),
    **dict.fromkeys(
        (str, bytes, bytearray, datetime, date, time, timedelta, UUID, Decimal),
        frozenset({STRING}),
    ),
    **dict.fromkeys((list, tuple, set, frozenset), frozenset({ARRAY})),
}
# Types whose values come back as exactly that type, so a subclass instance does not fit.
_EXACT = (*_SCALAR_KINDS, dict)
_JSON_KINDS: dict[type, str] = {
    type(None): NULL,
    bool: BOOLEAN,
    int: INTEGER,
    float: FLOAT,
    str: STRING,
    list: ARRAY,
    dict: OBJECT,
}


def normalize(tp: Any) -> Any:
    """Spell an annotation one way: ``None`` as ``NoneType``, ``list[Any]`` as ``list``..."""
    if tp is None:
        return type(None)
    if tp in (Any, object, inspect.Parameter.empty) or isinstance(tp, TypeVar):
        return Any
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    any_args = args in {(), (Any, Ellipsis)} if origin is tuple else all(a is Any for a in args)
    if origin in CONTAINERS and any_args:
        return origin  # list[Any] means list, dict[Any, Any] dict, tuple[Any, ...] tuple
    return tp


def json_key(tp: Any) -> bool:
    """Whether pydantic stores dict keys of this type as JSON object keys that round-trip."""
    tp = normalize(tp)
    if typing.get_origin(tp) is Annotated:
        return json_key(typing.get_args(tp)[0])
    if typing.get_origin(tp) is Literal or hasattr(tp, "__supertype__"):  # Literal, NewType
        return True
    return isinstance(tp, type) and tp not in CONTAINERS and tp is not Any


def json_kind(data: Any) -> str | None:
    """The JSON kind of decoded JSON data (None for anything that is not JSON)."""
    return _JSON_KINDS.get(type(data))


def wrap(index: int, payload: Any) -> dict[str, Any]:
    """The tagged form of a value stored under the member at `index`."""
    return {TAG: index, "v": payload}


def unwrap(data: Any, count: int) -> tuple[int, Any] | None:
    """``(index, payload)`` if `data` is the tagged form for a union of `count` members."""
    if type(data) is dict and len(data) == 2 and TAG in data and "v" in data:  # noqa: PLR2004
        index = data[TAG]
        if type(index) is int and 0 <= index < count:
            return index, data["v"]
    return None


def cache_key(tp: Any) -> Any:
    """A key for `tp` that also tells apart the order of union members, wherever they are.

    typing compares unions as sets (``int | str == str | int``), and so the aliases that
    hold them (``list[int | str] == list[str | int]``), but tagged positions depend on it.
    """
    if type(tp) is type or not (args := typing.get_args(tp)):
        return tp
    return (tp, *map(cache_key, args))


def has_tagged_union(tp: Any) -> bool:
    """Whether `tp` holds, at any depth of its arguments, a union with tagged members."""
    args = typing.get_args(tp)
    if typing.get_origin(tp) in UNIONS and layout(args) is not None:
        return True
    return any(map(has_tagged_union, args))


def layout(members: tuple[Any, ...]) -> tuple[bool, ...] | None:
    """Which members of a union are tagged, or None if the union is not ambiguous."""
    try:
        return _cached_layout(members)
    except TypeError:  # an unhashable member, e.g. Annotated with a list in its metadata
        return _layout(members)


@functools.lru_cache(maxsize=1024)
def _cached_layout(members: tuple[Any, ...]) -> tuple[bool, ...] | None:
    return _layout(members)


def _layout(members: tuple[Any, ...]) -> tuple[bool, ...] | None:
    found = [kinds(m) - {NULL} for m in members]
    shared = [
        any(own & other for j, other in enumerate(found) if j != i) for i, own in enumerate(found)
    ]
    if not any(shared):
        return None
    return tuple(s or OBJECT in own for s, own in zip(shared, found, strict=True))


def kinds(tp: Any) -> frozenset[str]:  # noqa: PLR0911 -- one flat dispatch reads best
    """The JSON kinds that values of `tp` can be stored as (an over-approximation)."""
    tp = normalize(tp)
    if tp is Any:
        return ALL
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if origin is Annotated:
        if any(isinstance(m, PlainSerializer | WrapSerializer) for m in tp.__metadata__):
            return ALL
        return kinds(args[0])
    if origin is Literal:
        return _union(map(_value_kinds, args))
    if origin in UNIONS:  # only reached through Annotated: typing flattens nested unions
        found = _union(map(kinds, args))
        return found | {OBJECT} if layout(args) is not None else found
    if hasattr(tp, "__supertype__"):  # NewType
        return kinds(tp.__supertype__)
    if typing_extensions.is_typeddict(tp):
        return frozenset({OBJECT})
    if origin is dict or tp is dict:  # keys JSON cannot hold make a list of [key, value] pairs
        return frozenset({OBJECT} if not args or json_key(args[0]) else {ARRAY})
    cls = tp if origin is None else origin
    return _class_kinds(cls) if isinstance(cls, type) else ALL


def _class_kinds(cls: type) -> frozenset[str]:
    if cls in _SCALAR_KINDS:
        return _SCALAR_KINDS[cls]
    if issubclass(cls, Enum):
        return _union(_value_kinds(member.value) for member in cls)
    if issubclass(cls, BaseModel):
        custom = cls.__pydantic_decorators__.model_serializers  # may store anything
        if custom or getattr(cls, "__pydantic_root_model__", False):
            return ALL
        return frozenset({OBJECT})
    if dataclasses.is_dataclass(cls) and not hasattr(cls, "__get_pydantic_core_schema__"):
        return frozenset({OBJECT})
    return ALL


def _value_kinds(value: Any) -> frozenset[str]:
    """The JSON kinds of one literal or enum value."""
    if isinstance(value, Enum):
        return _value_kinds(value.value)
    return _SCALAR_KINDS.get(type(value), ALL)


def _union(sets: Iterable[frozenset[str]]) -> frozenset[str]:
    return frozenset().union(*sets)


def member_classes(tp: Any) -> tuple[type, ...] | None:  # noqa: PLR0911
    """The classes whose instances are values of `tp`, or None if that is unknown."""
    tp = normalize(tp)
    if tp is Any:
        return (object,)
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if origin is Annotated:
        return member_classes(args[0])
    if origin is Literal:
        return tuple(dict.fromkeys(type(a) for a in args))
    if origin in UNIONS:
        found = [member_classes(a) for a in args]
        return None if None in found else tuple(c for cs in found if cs is not None for c in cs)
    if hasattr(tp, "__supertype__"):
        return member_classes(tp.__supertype__)
    if typing_extensions.is_typeddict(tp):
        return (dict,)
    cls = tp if origin is None else origin
    return (cls,) if isinstance(cls, type) else None


def fits(value: Any, tp: Any) -> bool:  # noqa: PLR0911, PLR0912 -- one flat dispatch reads best
    """Whether `value` is exactly a value of `tp`, items included, so that it round-trips.

    Stricter than ``isinstance``: a ``bool`` does not fit ``int`` nor an ``int`` ``float``
    (each would come back as the other type), a dict with a key its TypedDict does not
    declare does not fit it. Fields of dataclasses and models are not looked into.
    """
    tp = normalize(tp)
    if tp is Any:
        return True
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if origin is Annotated:
        return fits(value, args[0])
    if origin is Literal:
        return any(type(value) is type(a) and value == a for a in args)
    if origin in UNIONS:
        return any(fits(value, a) for a in args)
    if hasattr(tp, "__supertype__"):  # NewType
        return fits(value, tp.__supertype__)
    if typing_extensions.is_typeddict(tp):
        return _fits_typeddict(value, tp)
    if origin is None:
        if not isinstance(tp, type):
            return True  # nothing to check against: the member's own serializer decides
        exact = tp in _EXACT or issubclass(tp, Enum | BaseModel) or dataclasses.is_dataclass(tp)
        return type(value) is tp if exact else isinstance(value, tp)
    if origin in (list, set, frozenset):
        return type(value) is origin and all(fits(item, args[0]) for item in value)
    if origin is tuple:
        if type(value) is not tuple:
            return False
        if len(args) == 2 and args[1] is Ellipsis:  # noqa: PLR2004
            return all(fits(item, args[0]) for item in value)
        return len(value) == len(args) and all(map(fits, value, args))
    if origin is dict:
        return type(value) is dict and all(
            fits(k, args[0]) and fits(v, args[1]) for k, v in value.items()
        )
    return isinstance(value, origin) if isinstance(origin, type) else True


def _fits_typeddict(value: Any, td: Any) -> bool:
    if type(value) is not dict:
        return False
    try:
        fields, required = _typeddict_fields(td)
    except Exception:  # unresolvable field hints: the member's own serializer decides
        return True
    return required <= value.keys() <= fields.keys() and all(
        fits(v, fields[k]) for k, v in value.items()
    )


@functools.cache
def _typeddict_fields(td: Any) -> tuple[dict[str, Any], frozenset[str]]:
    fields = {}
    for name, hint in typing.get_type_hints(td, include_extras=True).items():
        while typing.get_origin(hint) in (Required, NotRequired):
            hint = typing.get_args(hint)[0]  # noqa: PLW2901
        fields[name] = hint
    return fields, frozenset(td.__required_keys__)
