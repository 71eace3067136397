"""Typed JSON serialization of everything that crosses a workflow, step or hook boundary.

Durable values outlive the process that produced them, so they are stored as JSON and
never pickled: pickle runs code named by the stored bytes, ties the data to one Python
and one class layout, and cannot be read from the CLI or another language.

How a value is encoded depends on its annotation:

* **A plain JSON value annotated as such** (``str``, ``int``, ``dict[str, Any]`` holding
  JSON, ...) is returned as is, after a few exact-type checks: the hot path never
  touches pydantic.
* **``Any``, ``object`` or no annotation**: the self-describing form of `_tags`,
  where non-JSON builtins carry a ``{"$t": tag, "v": payload}`` tag. Dataclasses and
  pydantic models come back as dicts there: nothing is rebuilt from a class named in
  stored data.
* **Any other annotation**: a pydantic ``TypeAdapter`` (cached per annotation) with
  base64 bytes and ``"NaN"``/``"Infinity"`` strings for non-finite floats. Before use,
  the annotation is rewritten so that every ``Any`` inside a container (``list[Any]``,
  ``dict[str, Any]``, TypedDict fields) uses the tagged form, and dicts keyed by tuples,
  frozensets or ``Any`` are stored as ``[key, value]`` pairs, which JSON objects cannot
  key. A value not of the annotated type is converted as pydantic's lax mode would, or
  refused.
* **A union whose members' JSON forms can collide** (``str | datetime``, ``Duration``
  that is ``str | int | float | timedelta``, two dataclasses with the same fields,
  ``list[int] | tuple[int, ...]``), wherever it occurs: pydantic picks a member by trying
  them, so ``timedelta(hours=3)``, stored as ``"PT3H"``, would come back as a ``str``.
  The value of each member that could be mistaken for another is stored as
  ``{"$u": <position of the member in the union, from 0>, "v": <the value encoded under
  that member>}``; the others stay as they are (``None``, or ``90`` under ``Duration``,
  whose only member stored as a JSON integer is ``int``). The member is the first whose
  class is the value's exact type, else the first the value is an instance of, and, when
  several qualify, the first whose annotation the value fits exactly, items included
  (see `_unions`). Decoding goes by position, never by a class name, so positions
  follow the annotation as written: appending a member keeps tagged data readable,
  reordering members does not. A
  union whose members' forms cannot collide (``str | None``, ``int | str``,
  ``int | float``, ``Model | None``) is stored untagged, as it always was, and untagged
  data stored under a now-tagged union before this form existed is still read as
  pydantic reads it.

Known limits, each a pydantic rule for classes we do not rewrite: inside a dataclass or
pydantic model, a field annotated ``Any`` is stored as pydantic's JSON (a ``datetime``
there comes back as ``str``), and a field annotated with a union is untagged and read as
pydantic chooses (a ``datetime`` in a ``str | datetime`` field comes back as ``str``); a
pydantic model's own config decides how its ``bytes`` and non-finite floats are stored
(set ``ser_json_bytes="base64"``, ``val_json_bytes="base64"`` and
``ser_json_inf_nan="strings"`` on models that hold binary data or NaN); UTC offsets with
seconds are truncated to minutes; a timezone comes back as a fixed offset. Sets under an
annotation keep iteration order.
"""

from __future__ import annotations

import contextlib
import inspect
import json
import threading
import typing
from dataclasses import dataclass, field
from typing import Annotated, Any, Literal, NotRequired, Required

import typing_extensions
from pydantic import (
    AfterValidator,
    ConfigDict,
    PlainSerializer,
    PlainValidator,
    TypeAdapter,
    ValidationError,
    ValidationInfo,
)

from perdure._serde import _tags as tags
from perdure._serde import _unions as unions

if typing.TYPE_CHECKING:
    from collections.abc import Callable

__all__ = ["CallCodec", "JSONValue", "decode", "encode", "json_schema", "validator"]

JSONValue = Any
"""A structure of dict (str keys), list, str, int, float (finite), bool and None only."""

_SUPPORTED = (
    "None, bool, int, float, str, bytes, list, tuple, dict, set, frozenset, datetime, "
    "date, time, timedelta, UUID, Decimal, Enum, dataclasses, pydantic models, TypedDict"
)
_CONFIG = ConfigDict(
    ser_json_bytes="base64",
    val_json_bytes="base64",
    ser_json_inf_nan="strings",
    allow_inf_nan=True,  # also lets Decimal("NaN") and Decimal("Infinity") through
)


def _validate_any(value: Any, info: ValidationInfo) -> Any:
    # Python mode only runs to convert a live value before encoding: it is not stored data.
    return tags.decode_any(value) if info.mode == "json" else value


_TAGGED_ANY: Any = Annotated[
    Any, PlainSerializer(tags.encode_any, return_type=Any), PlainValidator(_validate_any)
]
_CONTAINERS = unions.CONTAINERS
_normalize = unions.normalize
_json_key = unions.json_key


def encode(value: Any, annotation: Any = Any, *, where: str = "value") -> JSONValue:
    """Encode `value` as a JSON-able structure, typed by `annotation`.

    Raises:
        TypeError: `value` cannot be stored; the message names `where` and the type.
    """
    plan = _plan(annotation, where)
    error: Exception
    try:
        return _encode_exact(plan, value)
    except RecursionError:
        raise TypeError(f"cannot serialize {where}: it is nested too deeply or cyclic") from None
    except Exception as exc:
        error = exc
    if plan.typed is not None:
        try:  # lax conversion, e.g. a tuple passed for list[int] or 3.0 for int
            return plan.dump(plan.adapter().validate_python((value,))[0])
        except Exception as exc:
            error = exc  # says what was expected better than the serializer's warning
    raise TypeError(_cannot_encode(value, plan.annotation, where, error)) from error


def decode(data: JSONValue, annotation: Any = Any, *, where: str = "value") -> Any:
    """Rebuild a value of type `annotation` from what `encode` returned.

    Raises:
        TypeError: `data` does not hold a value of that type; the message names `where`.
    """
    plan = _plan(annotation, where)
    try:
        return _decode_exact(plan, data)
    except ValidationError as exc:
        reason = _summarize(exc)
    except Exception as exc:  # malformed tags, non-JSON data, annotations pydantic refuses
        reason = _first_line(exc)
    raise TypeError(f"cannot deserialize {where} as {_fmt(plan.annotation)}: {reason}") from None


class CallCodec:
    """Encodes and decodes the calls and return values of one function.

    Type hints are resolved on first use, not here: with ``from __future__ import
    annotations`` a decorator runs before the classes named later in its module exist.
    """

    def __init__(self, fn: Callable[..., Any], *, qualname: str | None = None) -> None:
        self._fn = fn
        self.name: str = qualname or getattr(fn, "__qualname__", None) or repr(fn)
        self._signature = inspect.signature(fn)
        self._hints: dict[str, Any] | None = None
        self._simple: _SimpleCall | Literal[False] | None = None

    def encode_args(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> JSONValue:
        """Encode the arguments actually passed (defaults are not stored), keyed by name."""
        simple = self._simple_call()
        if simple and not kwargs and simple.required <= len(args) <= len(simple.names):
            return {
                name: encode(value, hint, where=where)
                for value, name, hint, where in zip(
                    args, simple.names, simple.hints, simple.wheres, strict=False
                )
            }
        try:
            bound = self._signature.bind(*args, **kwargs)
        except TypeError as exc:
            raise TypeError(f"{self.name}(): {exc}") from None
        encoded: dict[str, Any] = {}
        for name, value in bound.arguments.items():
            kind, hint = self._signature.parameters[name].kind, self._hint(name)
            if kind is inspect.Parameter.VAR_POSITIONAL:
                encoded[name] = [
                    encode(v, hint, where=self._where(f"{name}[{i}]")) for i, v in enumerate(value)
                ]
            elif kind is inspect.Parameter.VAR_KEYWORD:
                encoded[name] = {k: encode(v, hint, where=self._where(k)) for k, v in value.items()}
            else:
                encoded[name] = encode(value, hint, where=self._where(name))
        return encoded

    def decode_args(self, data: JSONValue) -> tuple[tuple[Any, ...], dict[str, Any]]:
        """Rebuild ``(args, kwargs)`` that call the function as the encoded call did."""
        simple = self._simple_call()
        if simple and type(data) is dict and simple.required <= len(data) <= len(simple.names):
            count = len(data)
            if all(name in data for name in simple.names[:count]):
                return tuple(
                    decode(data[name], hint, where=where)
                    for name, hint, where in zip(
                        simple.names[:count], simple.hints, simple.wheres, strict=False
                    )
                ), {}
        parameters = self._signature.parameters
        if type(data) is not dict or not data.keys() <= parameters.keys():
            raise TypeError(f"cannot deserialize the arguments of {self.name}() from {data!r}")
        args: list[Any] = []
        kwargs: dict[str, Any] = {}
        positional = True  # until a positional parameter was left to its default
        for name, param in parameters.items():
            if name not in data:
                positional = positional and param.kind not in _POSITIONAL
                continue
            raw, hint, where = data[name], self._hint(name), self._where(name)
            if param.kind is inspect.Parameter.VAR_POSITIONAL and positional and type(raw) is list:
                args.extend(
                    decode(v, hint, where=self._where(f"{name}[{i}]")) for i, v in enumerate(raw)
                )
            elif param.kind is inspect.Parameter.VAR_KEYWORD and type(raw) is dict:
                kwargs.update({k: decode(v, hint, where=self._where(k)) for k, v in raw.items()})
            elif param.kind in _POSITIONAL and positional:
                args.append(decode(raw, hint, where=where))
            elif param.kind in {
                inspect.Parameter.POSITIONAL_OR_KEYWORD,
                inspect.Parameter.KEYWORD_ONLY,
            }:
                kwargs[name] = decode(raw, hint, where=where)
            else:
                raise TypeError(f"cannot deserialize {where}: unexpected {raw!r}")
        try:
            self._signature.bind(*args, **kwargs)
        except TypeError as exc:
            raise TypeError(f"stored arguments no longer fit {self.name}(): {exc}") from None
        return tuple(args), kwargs

    def encode_result(self, value: Any) -> JSONValue:
        """Encode the function's return value, typed by its return annotation."""
        return encode(value, self._hint("return"), where=f"return value of {self.name}()")

    def decode_result(self, data: JSONValue) -> Any:
        """Rebuild the function's return value from what `encode_result` returned."""
        return decode(data, self._hint("return"), where=f"return value of {self.name}()")

    def _simple_call(self) -> _SimpleCall | Literal[False]:
        """The fast path's view of the signature, or False if it has no fast path.

        The fast path serves signatures of positional-or-keyword parameters only (the
        common case), called positionally.
        """
        if self._simple is None:
            parameters = list(self._signature.parameters.values())
            if all(p.kind in _POSITIONAL for p in parameters):
                names = tuple(p.name for p in parameters)
                self._simple = _SimpleCall(
                    names=names,
                    hints=tuple(self._hint(name) for name in names),
                    wheres=tuple(self._where(name) for name in names),
                    required=sum(p.default is inspect.Parameter.empty for p in parameters),
                )
            else:
                self._simple = False
        return self._simple

    def _where(self, argument: str) -> str:
        return f"argument {argument!r} of {self.name}()"

    def _hint(self, name: str) -> Any:
        if self._hints is None:
            fn = self._fn
            if not (inspect.isroutine(fn) or inspect.isclass(fn)):
                fn = getattr(fn, "__call__", fn)  # noqa: B004 -- a callable object's hints live there
            try:
                self._hints = typing.get_type_hints(fn, include_extras=True)
            except Exception as exc:
                raise TypeError(f"cannot resolve the annotations of {self.name}(): {exc}") from exc
        return self._hints.get(name, Any)


_POSITIONAL = {inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD}


@dataclass(frozen=True, slots=True)
class _SimpleCall:
    """A signature of positional-or-keyword parameters only, as the fast path reads it.

    A call passing positional arguments binds them to the first names in order, and is
    valid when it passes at least the ``required`` ones (those without a default, which
    can only come first).
    """

    names: tuple[str, ...]
    hints: tuple[Any, ...]
    wheres: tuple[str, ...]
    required: int


class _AnnotationError(TypeError):
    """An annotation pydantic cannot build a schema for."""


@dataclass
class _Plan:
    """What `encode` and `decode` need to know about one annotation, built once."""

    annotation: Any
    plain: Callable[[Any], bool] | None  # accepts values that are their own encoding
    typed: Any  # the rewritten annotation for pydantic, or None to use the tagged form
    root: type  # with the tagged form: the type a value must have (object, or dict)
    union: _UnionCodec | None = None  # for an ambiguous union: picks and tags its member
    source: Any = None  # the annotation as given, when it holds a union with tagged members
    _adapter: TypeAdapter[Any] | None = field(default=None, repr=False)

    def adapter(self) -> TypeAdapter[Any]:
        # Built lazily: most plain values never need it. The 1-tuple wrapper lets our
        # config reach dataclasses and TypedDicts, which refuse a config of their own.
        if self._adapter is None:
            self._adapter = _adapter(self.typed, self.annotation)
        return self._adapter

    def dump(self, value: Any) -> JSONValue:
        return json.loads(self.adapter().dump_json((value,), warnings="error"))[0]


def _adapter(typed: Any, annotation: Any) -> TypeAdapter[Any]:
    wrapped: Any = tuple[typed]
    try:
        return TypeAdapter(wrapped, config=_CONFIG)
    except Exception as exc:  # pydantic's advice (arbitrary_types_allowed) does not apply
        message = f"{_fmt(annotation)} is not serializable (supported: {_SUPPORTED})"
        raise _AnnotationError(message) from exc


def _encode_exact(plan: _Plan, value: Any) -> JSONValue:
    """Encode a value of the planned type, without converting one that is not."""
    if plan.plain is not None and plan.plain(value):
        return value
    if plan.union is not None:
        return plan.union.encode(value)
    if plan.typed is None:
        if not isinstance(value, plan.root):
            raise TypeError(f"expected {_fmt(plan.root)}")
        return tags.encode_any(value)
    return plan.dump(value)


def _decode_exact(plan: _Plan, data: JSONValue) -> Any:
    """Invert `_encode_exact`; raise ValueError (or pydantic's ValidationError) if impossible."""
    if plan.plain is not None and plan.plain(data):
        return data
    if plan.union is not None:
        return plan.union.decode(data)
    if plan.typed is not None:
        return plan.adapter().validate_json(json.dumps([data]))[0]
    value = tags.decode_any(data)
    if not isinstance(value, plan.root):
        raise ValueError(f"got {tags.type_name(type(value))}")  # noqa: TRY004 -- for pydantic
    return value


_PLANS: dict[Any, _Plan] = {}
_ORDERED_PLANS: dict[Any, _Plan] = {}  # plans with tagged unions, by `unions.cache_key`


def _plan(annotation: Any, where: str) -> _Plan:
    try:
        plan = _PLANS[annotation]
    except KeyError:
        plan = _PLANS[annotation] = _make_plan(annotation, where)
    except TypeError:  # unhashable annotation, e.g. Annotated with a list in its metadata
        return _make_plan(annotation, where)
    if plan.source is None or plan.source is annotation:
        return plan
    # Equal to what the plan was made for, but perhaps with union members in another
    # order, which changes the positions that tagged members are stored by.
    key = unions.cache_key(annotation)
    try:
        return _ORDERED_PLANS[key]
    except (KeyError, TypeError):  # TypeError: an unhashable argument, e.g. in Callable[[...]]
        return _make_plan(annotation, where)  # which adds it to _ORDERED_PLANS if it can


def _make_plan(annotation: Any, where: str) -> _Plan:
    if isinstance(annotation, (str, typing.ForwardRef)):
        raise TypeError(f"cannot serialize {where}: unresolved annotation {annotation!r}")
    tp = _normalize(annotation)
    typed = _rewrite(tp)
    if typed is _TAGGED_ANY:
        return _Plan(tp, _plain_check(tp), None, dict if tp is dict else object)
    plan = _Plan(tp, _plain_check(tp), typed, object, _union_codec(tp))
    if unions.has_tagged_union(annotation):
        plan.source = annotation
        with contextlib.suppress(TypeError):  # an unhashable argument: not cached by order
            _ORDERED_PLANS.setdefault(unions.cache_key(annotation), plan)
    return plan


class _UnionCodec:
    """Stores the values of an ambiguous union in the form `_unions` describes.

    Used directly for a union annotation and, through `annotation`, by pydantic for a
    union nested in a container or TypedDict.
    """

    def __init__(self, union: Any, tagged: tuple[bool, ...]) -> None:
        self.union = union
        self.members: tuple[Any, ...] = typing.get_args(union)
        self.tagged = tagged
        self._kinds = [unions.kinds(m) for m in self.members]
        self._classes = [unions.member_classes(m) for m in self.members]
        self._candidates: dict[type, tuple[int, ...]] = {}
        self._plans: list[_Plan] | None = None
        self._legacy: TypeAdapter[Any] | None = None
        self.annotation: Any = Annotated[
            Any,
            PlainSerializer(self.encode, return_type=Any),
            PlainValidator(self._validate),
        ]

    def encode(self, value: Any) -> JSONValue:
        """Encode `value` under the member chosen for it; raise if no member takes it as is."""
        candidates = self._candidates_for(type(value))
        plans = self._member_plans()
        several = len(candidates) > 1
        error: Exception | None = None
        for i in candidates:
            if several and not unions.fits(value, self.members[i]):
                continue
            try:
                encoded = _encode_exact(plans[i], value)
            except RecursionError:
                raise
            except Exception as exc:
                error = error or exc
                continue
            return unions.wrap(i, encoded) if self.tagged[i] else encoded
        got = tags.type_name(type(value))
        reason = f": {_first_line(error)}" if error is not None else ""
        raise TypeError(f"{got} is not a value of any member of {_fmt(self.union)}{reason}")

    def decode(self, data: JSONValue) -> Any:
        """Invert `encode`; data stored before unions were tagged is read as pydantic would."""
        plans = self._member_plans()
        if (tagged := unions.unwrap(data, len(self.members))) is not None:
            index, payload = tagged
            return _decode_exact(plans[index], payload)
        kind = unions.json_kind(data)
        for i, (tagged_member, kinds) in enumerate(zip(self.tagged, self._kinds, strict=True)):
            if not tagged_member and kind in kinds:
                return _decode_exact(plans[i], data)
        # Stored before this form existed, or written by hand (a hook payload sent for a
        # hook no loaded module defines): read it as pydantic reads the union.
        return self._legacy_adapter().validate_json(json.dumps([data]))[0]

    def convert(self, value: Any) -> Any:
        """Convert a live value as pydantic's lax mode would, unless it fits a member as is."""
        try:
            self.encode(value)
        except RecursionError:
            raise
        except Exception:
            return self._legacy_adapter().validate_python((value,))[0]
        return value

    def _validate(self, value: Any, info: ValidationInfo) -> Any:
        # JSON mode decodes stored data; Python mode only converts a live value before
        # encoding it (the lax path of `encode`).
        try:
            return self.decode(value) if info.mode == "json" else self.convert(value)
        except ValidationError as exc:  # a ValueError, but pydantic would keep only its title
            raise ValueError(_summarize(exc)) from None

    def _candidates_for(self, cls: type) -> tuple[int, ...]:
        """The members a value of type `cls` may go to, best first (see `_unions`)."""
        try:
            return self._candidates[cls]
        except KeyError:
            pass
        exact, instance, unknown = [], [], []
        for i, classes in enumerate(self._classes):
            if classes is None:
                unknown.append(i)
            elif cls in classes:
                exact.append(i)
            else:
                try:
                    if issubclass(cls, classes):
                        instance.append(i)
                except TypeError:  # e.g. a Protocol that is not runtime-checkable
                    unknown.append(i)
        found = self._candidates[cls] = (*exact, *instance, *unknown)
        return found

    def _member_plans(self) -> list[_Plan]:
        if self._plans is None:  # lazily: a member may be a class still being defined
            where = f"a member of {_fmt(self.union)}"
            self._plans = [_plan(m, where) for m in self.members]
        return self._plans

    def _legacy_adapter(self) -> TypeAdapter[Any]:
        if self._legacy is None:
            members = tuple(_rewrite(m) for m in self.members)
            self._legacy = _adapter(typing.Union[members], self.union)  # noqa: UP007
        return self._legacy


_UNION_CODECS: dict[Any, _UnionCodec | None] = {}
_UNION_CODECS_LOCK = threading.Lock()


def _union_codec(tp: Any) -> _UnionCodec | None:
    """The codec of `tp` if it is an ambiguous union, one per annotation, else None."""
    if typing.get_origin(tp) not in unions.UNIONS:
        return None
    key = unions.cache_key(tp)  # `int | str == str | int`, but positions differ
    try:
        return _UNION_CODECS[key]
    except KeyError:
        pass
    except TypeError:  # unhashable
        tagged = unions.layout(typing.get_args(tp))
        return None if tagged is None else _UnionCodec(tp, tagged)
    with _UNION_CODECS_LOCK:
        if key not in _UNION_CODECS:
            tagged = unions.layout(typing.get_args(tp))
            _UNION_CODECS[key] = None if tagged is None else _UnionCodec(tp, tagged)
        return _UNION_CODECS[key]


def _plain_check(tp: Any) -> Callable[[Any], bool] | None:  # noqa: PLR0911
    """A predicate for values of `tp` that are their own encoding, or None if there are none.

    It must accept only values that the full path would encode to themselves and decode
    back unchanged, so it uses exact type checks; everything else takes the full path.
    """
    if tp is Any:
        return tags.is_plain
    if tp in (str, int, bool, type(None)):
        return lambda v: type(v) is tp
    if tp is float:
        return lambda v: type(v) is float and tags.is_plain(v)
    if tp is list or tp is dict:
        return lambda v: type(v) is tp and tags.is_plain(v)
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if origin is list and (item := _plain_check(_normalize(args[0]))) is not None:
        return lambda v: type(v) is list and all(map(item, v))
    if origin is dict and args[0] is str and (val := _plain_check(_normalize(args[1]))) is not None:
        return lambda v: type(v) is dict and all(type(k) is str and val(x) for k, x in v.items())
    if origin in unions.UNIONS:
        return _union_plain_check(args)
    return None


def _union_plain_check(members: tuple[Any, ...]) -> Callable[[Any], bool] | None:
    tagged = unions.layout(members)
    if tagged is None:  # all or nothing, so that pydantic's choice of member stays as it was
        checks = [_plain_check(_normalize(m)) for m in members]
        if any(c is None for c in checks):
            return None
    else:  # untagged members are the only ones of their JSON kinds: any subset is safe
        found = [_plain_check(_normalize(m)) for m, t in zip(members, tagged, strict=True) if not t]
        checks = [c for c in found if c is not None]
        if not checks:
            return None
    if len(checks) == 1:
        return checks[0]
    return lambda v: any(c(v) for c in checks if c is not None)


def _rewrite(tp: Any) -> Any:  # noqa: PLR0911
    """Rewrite `tp` so that pydantic round-trips it exactly (see the module docstring)."""
    tp = _normalize(tp)
    if tp is Any or tp is dict:
        return _TAGGED_ANY
    if tp in _CONTAINERS:  # a bare list or tuple[...] holds anything
        return tp[_TAGGED_ANY, ...] if tp is tuple else tp[_TAGGED_ANY]
    if typing_extensions.is_typeddict(tp):
        return _typeddict(tp)
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if origin is None or origin is Literal or not args:
        return tp
    if origin is Annotated:
        return Annotated[(_rewrite(args[0]), *tp.__metadata__)]
    if (codec := _union_codec(tp)) is not None:
        return codec.annotation
    new = tuple(a if a is Ellipsis else _rewrite(a) for a in args)
    if origin is dict and not _json_key(args[0]):
        return _pairs_dict(*new)
    if origin in unions.UNIONS:
        return typing.Union[new]  # noqa: UP007 -- built from a tuple at runtime
    if new == args:
        return tp
    try:
        return origin[new]
    except TypeError:  # an origin that cannot be subscripted again; keep it as written
        return tp


def _pairs_dict(key: Any, value: Any) -> Any:
    """A dict stored as a list of ``[key, value]`` pairs, for keys JSON objects cannot hold."""
    pairs: Any = list[tuple[key, value]]
    return Annotated[
        pairs,
        AfterValidator(dict),
        PlainSerializer(lambda d: list(d.items()), return_type=pairs),
    ]


_TYPEDDICTS: dict[type, Any] = {}
_TYPEDDICTS_LOCK = threading.RLock()
_MAKE_TYPEDDICT: Any = typing_extensions.TypedDict  # the functional form, with computed fields


def _typeddict(td: Any) -> Any:
    """Rebuild a TypedDict as a ``typing_extensions`` one with rewritten field types.

    pydantic refuses ``typing.TypedDict`` before Python 3.12, and a TypedDict's ``Any``
    fields should be tagged like any other ``Any``. Decoding yields a plain dict either way.
    """
    with _TYPEDDICTS_LOCK:  # `def` steps encode from threads; none may see the placeholder
        if td in _TYPEDDICTS:
            return _TYPEDDICTS[td]
        _TYPEDDICTS[td] = td  # a recursive TypedDict refers to itself as written
        try:
            fields = {}
            for name, hint in typing.get_type_hints(td, include_extras=True).items():
                while typing.get_origin(hint) in (Required, NotRequired):
                    hint = typing.get_args(hint)[0]  # noqa: PLW2901
                marker = Required if name in td.__required_keys__ else NotRequired
                fields[name] = marker[_rewrite(hint)]
            new: Any = _MAKE_TYPEDDICT(td.__name__, fields)
        except Exception:
            new = td
        _TYPEDDICTS[td] = new
        return new


def _cannot_encode(value: Any, annotation: Any, where: str, error: Exception) -> str:
    try:
        tags.encode_any(value)  # finds the unsupported object, however deep, to name it
    except tags.UnsupportedTypeError as exc:
        return (
            f"cannot serialize {where}: {exc.type_name} is not JSON-serializable "
            f"(supported: {_SUPPORTED})"
        )
    except Exception as exc:
        if annotation is Any:
            return f"cannot serialize {where}: {exc}"
    if isinstance(error, _AnnotationError):
        return f"cannot serialize {where}: {error}"
    if isinstance(error, ValidationError):
        reason = _summarize(error, got=False)
    else:
        reason = _first_line(error)
    got = tags.type_name(type(value))
    return f"cannot serialize {where}: {got} does not fit {_fmt(annotation)} ({reason})"


def _summarize(exc: ValidationError, *, got: bool = True) -> str:
    errors = exc.errors(include_url=False)
    first = errors[0]
    loc = ".".join(str(p) for p in first["loc"][1:])  # [0] is our 1-tuple wrapper
    more = f" (and {len(errors) - 1} more errors)" if len(errors) > 1 else ""
    got = got and first["type"] != "value_error"  # our validators' messages say what they got
    what = f" (got {tags.type_name(type(first['input']))})" if got else ""
    return f"{loc + ': ' if loc else ''}{first['msg']}{what}{more}"


def _first_line(exc: Exception) -> str:
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0]


def _fmt(tp: Any) -> str:
    if tp is Any:
        return "Any"
    return tags.type_name(tp) if isinstance(tp, type) else repr(tp).replace("typing.", "")


def validator(annotation: Any) -> TypeAdapter[Any]:
    """A pydantic adapter that checks user input (a hook payload) against ``annotation``.

    Unlike `decode`, it reads Python input as people write it (a dict for a model), and
    its errors are pydantic's, naming the fields. TypedDicts are rebuilt so that this
    works on Python 3.11 too, where pydantic refuses ``typing.TypedDict``.
    """
    tp = _normalize(annotation)
    if typing_extensions.is_typeddict(tp):
        tp = _typeddict(tp)
    return TypeAdapter(tp)


def json_schema(annotation: Any) -> dict[str, JSONValue] | None:
    """The JSON Schema (draft 2020-12) of the JSON that `decode` reads as ``annotation``.

    Made from the very adapter `decode` validates with, rewritten annotation and all,
    rather than from ``TypeAdapter(annotation)``: what `encode` stores (base64 bytes,
    ``[key, value]`` pairs, tagged union members, tagged ``Any``) must pass it, and a
    plain adapter's schema would refuse some of that. The parts only `decode` can
    judge (tagged ``Any``, an ambiguous union) come out as ``{}``, which allows anything.
    None when there is nothing to check (``Any`` itself) or pydantic cannot describe
    the type.
    """
    try:
        plan = _plan(annotation, "a hook payload")
        if plan.typed is None:
            return None
        wrapped = plan.adapter().json_schema()
        [item] = wrapped["prefixItems"]  # the 1-tuple wrapper of `_Plan.adapter`
    except Exception:
        return None
    schema: dict[str, JSONValue] = {"$schema": "https://json-schema.org/draft/2020-12/schema"}
    schema.update(item)
    if "$defs" in wrapped:
        schema["$defs"] = wrapped["$defs"]
    return schema
