"""The self-describing JSON form used wherever a value has no useful annotation.

Under `Any` (or no annotation at all) nothing tells the decoder what a string or a list
used to be, so values JSON cannot hold natively are wrapped in a *tag*: a two-key object
``{"$t": <tag>, "v": <payload>}``:

=============  ==========================================================
tag            payload
=============  ==========================================================
``float``      ``"nan"``, ``"inf"`` or ``"-inf"`` (finite floats stay plain)
``bytes``      standard base64 text
``datetime``   ``datetime.isoformat()`` (microseconds and UTC offset kept)
``date``       ``date.isoformat()``
``time``       ``time.isoformat()`` (offset kept when aware)
``timedelta``  ``[days, seconds, microseconds]`` (exact)
``uuid``       canonical hex text
``decimal``    ``str(Decimal)`` (exact: sign, exponent, NaN and Infinity kept)
``tuple``      list of tagged items
``set``        list of tagged items, sorted by their JSON text (stable output)
``frozenset``  as ``set``
``dict``       list of ``[key, value]`` pairs, both tagged
=============  ==========================================================

``dict`` is used for dicts with a non-``str`` key and for dicts that have a ``"$t"`` key
of their own (the escape that keeps user data from being mistaken for a tag); every
other dict and list stays plain JSON, so ordinary payloads read naturally in the store.

Dataclass and pydantic model instances are stored as their field dicts, enum members as
their values, and subclasses of builtins as the builtin; they come back in that form.
The decoder never imports or instantiates a class named by stored data, which is what
makes pickle unsafe: to get a class back, annotate the parameter or return type.
"""

from __future__ import annotations

import base64
import dataclasses
import json
import math
from datetime import date, datetime, time, timedelta
from decimal import Decimal
from enum import Enum
from typing import TYPE_CHECKING, Any
from uuid import UUID

from pydantic import BaseModel

if TYPE_CHECKING:
    from collections.abc import Callable

TAG = "$t"
_NON_FINITE = {"nan": math.nan, "inf": math.inf, "-inf": -math.inf}


class UnsupportedTypeError(TypeError):
    """A value (possibly nested deep inside the one given) that has no JSON form."""

    def __init__(self, obj: object) -> None:
        self.type_name = type_name(type(obj))
        super().__init__(f"{self.type_name} is not JSON-serializable")


def type_name(cls: type) -> str:
    """Name a type as users write it: ``int``, ``socket.socket``, ``app.models.User``."""
    if cls.__module__ == "builtins":
        return cls.__qualname__
    return f"{cls.__module__}.{cls.__qualname__}"


def is_plain(value: Any) -> bool:
    """Whether `value` is JSON as it stands, so that its tagged form is itself.

    The exact-type checks (no subclasses, no bools posing as ints) keep this a handful
    of comparisons per item: it guards the hot path of `perdure._serde.encode`.
    """
    t = type(value)
    if t is str or t is int or t is bool or value is None:
        return True
    if t is float:
        return math.isfinite(value)
    if t is list:
        return all(map(is_plain, value))
    if t is dict:
        return TAG not in value and all(type(k) is str and is_plain(v) for k, v in value.items())
    return False


def _tag(tag: str, payload: Any) -> dict[str, Any]:
    return {TAG: tag, "v": payload}


def _encode_dict(value: Any) -> Any:
    pairs = [(encode_any(k), encode_any(v)) for k, v in value.items()]
    if all(type(k) is str and k != TAG for k, _ in pairs):
        return dict(pairs)
    for k, _ in pairs:
        _require_hashable(k, "dict key")
    return _tag("dict", [[k, v] for k, v in pairs])


def _encode_set(tag: str, value: Any) -> Any:
    items = [encode_any(item) for item in value]
    for item in items:
        _require_hashable(item, "set element")
    items.sort(key=lambda item: json.dumps(item, sort_keys=True))
    return _tag(tag, items)


def _require_hashable(encoded: Any, what: str) -> None:
    """Refuse at encode time what could not be rebuilt as a dict key or set element.

    A frozen dataclass is hashable, but it comes back as a dict, which is not; better to
    say so before the value is stored than to fail when a later process reads it.
    """
    if not _decodes_hashable(encoded):
        raise TypeError(f"a {what} must come back hashable, but would decode from {encoded!r}")


def _decodes_hashable(encoded: Any) -> bool:
    if type(encoded) is list:
        return False
    if type(encoded) is not dict:
        return True
    tag = encoded.get(TAG)
    if tag == "tuple":
        return all(map(_decodes_hashable, encoded["v"]))
    return tag in _DECODERS and tag not in {"dict", "set"}


def encode_any(value: Any) -> Any:  # noqa: C901, PLR0911, PLR0912 -- one flat dispatch reads best
    """Encode `value` in the self-describing form; raise `UnsupportedTypeError` if impossible."""
    t = type(value)
    if t is str or t is int or t is bool or value is None:
        return value
    if t is float:
        if math.isfinite(value):
            return value
        return _tag("float", "nan" if math.isnan(value) else ("inf" if value > 0 else "-inf"))
    if t is list:
        return [encode_any(item) for item in value]
    if t is dict:
        return _encode_dict(value)
    # Less common types, and subclasses of the common ones, in an order where a subclass
    # is tested before its base (Enum before int/str, datetime before date).
    if isinstance(value, Enum):
        return encode_any(value.value)
    for base in (int, str, float):
        if isinstance(value, base):
            return encode_any(base(value))
    if isinstance(value, datetime):
        return _tag("datetime", value.isoformat())
    if isinstance(value, date):
        return _tag("date", value.isoformat())
    if isinstance(value, time):
        return _tag("time", value.isoformat())
    if isinstance(value, timedelta):
        return _tag("timedelta", [value.days, value.seconds, value.microseconds])
    if isinstance(value, UUID):
        return _tag("uuid", str(value))
    if isinstance(value, Decimal):
        return _tag("decimal", str(value))
    if isinstance(value, (bytes, bytearray, memoryview)):
        return _tag("bytes", base64.b64encode(value).decode("ascii"))
    if isinstance(value, tuple):
        return _tag("tuple", [encode_any(item) for item in value])
    if isinstance(value, frozenset):
        return _encode_set("frozenset", value)
    if isinstance(value, set):
        return _encode_set("set", value)
    if isinstance(value, list):
        return [encode_any(item) for item in value]
    if isinstance(value, dict):
        return _encode_dict(value)
    if isinstance(value, BaseModel):
        return _encode_dict(value.model_dump())
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return _encode_dict({f.name: getattr(value, f.name) for f in dataclasses.fields(value)})
    raise UnsupportedTypeError(value)


def _decode_timedelta(payload: list[int]) -> timedelta:
    days, seconds, microseconds = payload
    return timedelta(days=days, seconds=seconds, microseconds=microseconds)


def _decode_dict(payload: list[Any]) -> dict[Any, Any]:
    return {decode_any(k): decode_any(v) for k, v in payload}


# tag -> (JSON type of the payload, decoder)
_DECODERS: dict[str, tuple[type, Callable[[Any], Any]]] = {
    "float": (str, _NON_FINITE.__getitem__),
    "bytes": (str, lambda p: base64.b64decode(p.encode("ascii"), validate=True)),
    "datetime": (str, datetime.fromisoformat),
    "date": (str, date.fromisoformat),
    "time": (str, time.fromisoformat),
    "timedelta": (list, _decode_timedelta),
    "uuid": (str, UUID),
    "decimal": (str, Decimal),
    "tuple": (list, lambda p: tuple(decode_any(x) for x in p)),
    "set": (list, lambda p: {decode_any(x) for x in p}),
    "frozenset": (list, lambda p: frozenset(decode_any(x) for x in p)),
    "dict": (list, _decode_dict),
}


def decode_any(data: Any) -> Any:
    """Invert `encode_any`; raise `ValueError` on data it could not have produced.

    `ValueError` (not `TypeError`) so that pydantic reports it as a validation error when
    this runs for an `Any` inside an annotated structure.
    """
    t = type(data)
    if t is str or t is int or t is bool or t is float or data is None:
        return data
    if t is list:
        return [decode_any(item) for item in data]
    if t is not dict:
        raise ValueError(f"{type_name(t)} is not a JSON type")
    if TAG not in data:
        return {k: decode_any(v) for k, v in data.items()}
    tag, payload = data[TAG], data.get("v")
    if data.keys() != {TAG, "v"} or tag not in _DECODERS:
        raise ValueError(f"malformed tagged value {data!r}")
    payload_type, decoder = _DECODERS[tag]
    try:
        if type(payload) is not payload_type:
            raise TypeError(f"expected a {payload_type.__name__} payload")  # noqa: TRY301
        return decoder(payload)
    except (ValueError, TypeError, KeyError, ArithmeticError) as exc:
        raise ValueError(f"malformed {tag!r} value {payload!r}: {exc}") from exc
