"""The JSON Schema a hook stores with itself, and the check every resume makes against it.

A hook is usually resumed from outside the process that runs its workflow: the command
line, the HTTP API, another service. Those processes rarely import the hook's type, so
checking a payload against the type alone let a typo through, to fail the run when its
worker decoded it. So when a run creates a hook whose type pydantic can describe, the
``hook_created`` event carries the type's JSON Schema, and whoever resumes the hook,
wherever, checks the payload against that schema before anything is written.

The check is `jsonschema_rs`: it implements draft 2020-12, the draft pydantic emits,
and checks a payload in about a microsecond once its schema is compiled (compiling
takes some 20 µs, a pure-Python validator several times more for each check). A
compiled schema is kept by its text, so a resume costs a lookup, not a compilation.

What the schema describes is the JSON that is stored, after the resuming process
encoded the value if it knows the type (`perdure._serde.json_schema`). It is a check
at the door, not the decoding: the worker still decodes each payload with the real type,
and if that fails (a deploy changed the type since the hook was created), the workflow
gets `HookPayloadError` at its ``await``, an error it may catch.
"""

from __future__ import annotations

import json
import logging
from collections import OrderedDict
from typing import Any

import jsonschema_rs

from perdure._serde import json_schema

__all__ = ["payload_schema", "schema_problems"]

logger = logging.getLogger("perdure")

_CACHE_SIZE = 256
"""Compiled schemas kept: one per hook type in use, so a few in any real deployment."""

_compiled: OrderedDict[str, jsonschema_rs.Validator | None] = OrderedDict()
"""Compiled validators by schema text (sorted keys), least recently used first; None for
a schema that does not compile."""


def payload_schema(annotation: Any) -> dict[str, Any] | None:
    """The JSON Schema a hook of payload type ``annotation`` stores, or None.

    None when pydantic cannot describe the type, or describes it with something the
    validator cannot compile (a pattern its regular expressions do not support, say):
    such a hook keeps the behaviour of hooks created before schemas were stored, its
    payloads checked only where the type is known.
    """
    schema = json_schema(annotation)
    if schema is None or _validator(schema) is None:
        return None
    return schema


def schema_problems(schema: Any, payload: Any) -> list[str]:
    """What is wrong with the JSON ``payload`` under ``schema``: ``"field: why"`` each.

    An empty list when it passes, and when the schema cannot be compiled here (it
    compiled where the hook was created; the worker's decoding still judges it).
    """
    validator = _validator(schema)
    if validator is None:
        return []
    problems = []
    try:
        errors = list(validator.iter_errors(payload))
    except ValueError as exc:  # what no JSON holds (callers refuse it before asking)
        return [f"payload: {exc}"]
    for error in errors:
        path = [str(part) for part in error.instance_path]
        if isinstance(error.kind, jsonschema_rs.ValidationErrorKind.Required):
            path.append(error.kind.property)  # named where it is missing, as pydantic does
            message = "Field required"
        else:
            message = error.message
        problems.append(f"{'.'.join(path) or 'payload'}: {message}")
    return problems


def _validator(schema: Any) -> jsonschema_rs.Validator | None:
    key = json.dumps(schema, sort_keys=True, separators=(",", ":"))
    try:
        _compiled.move_to_end(key)
    except KeyError:
        pass
    else:
        return _compiled[key]
    try:
        validator = jsonschema_rs.Draft202012Validator(schema, retriever=_no_remote)
    except (ValueError, TypeError) as exc:  # a ValidationError of the schema itself
        logger.warning("a hook's payload schema does not compile; it is not checked: %s", exc)
        validator = None
    _compiled[key] = validator
    if len(_compiled) > _CACHE_SIZE:
        _compiled.popitem(last=False)
    return validator


def _no_remote(uri: str) -> Any:
    """Refuse a ``$ref`` outside the schema: a stored schema never makes us fetch a URL."""
    raise ValueError(f"a hook's payload schema refers to {uri!r}; only local $defs are read")
