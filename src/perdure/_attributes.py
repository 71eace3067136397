"""A run's searchable attributes: what a value may be, and the text a search matches.

Attributes are business keys (``customer="acme"``, ``tier="gold"``, ``items=3``) that a
workflow attaches to its run with `perdure.set_attributes`, and that listings search
by. A value is a str, an int, a float or a bool: a flat value a database can index,
shown as it is everywhere. Anything else (a list, a dict, None) is refused with a
`TypeError` naming the key, and a key that is not a Python identifier with a
`ValueError`, before anything is written, so a bad call fails in the workflow rather
than in a store.

Each value is indexed by its *text*: the string itself, ``true``/``false`` for a bool,
and the decimal form of a number (an integral float as the integer: ``3.0`` is ``3``).
A search gives text too (``perdure runs --attr items=3``, ``?attr=items:3``), so it
finds ``items=3`` whether the workflow set the int or the string; `Engine.list_runs`
takes typed values and turns them into the same text.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from perdure._records import JSON

__all__ = [
    "MAX_KEY_LENGTH",
    "MAX_TEXT_LENGTH",
    "AttributeValue",
    "attribute_text",
    "check_attributes",
    "search_terms",
]

AttributeValue = str | int | float | bool
"""What an attribute may hold."""

MAX_KEY_LENGTH = 64
"""Longer keys are refused: they are labels, and each is stored with every run."""

MAX_TEXT_LENGTH = 1000
"""Longer values are refused: an attribute is a key to search by, not a payload."""


def check_attributes(values: Mapping[str, object], *, what: str) -> dict[str, AttributeValue]:
    """The attributes as a plain dict, or the error naming the first bad key or value.

    Raises:
        ValueError: a key that is not an identifier (or too long), a float that is not
            finite, a string too long or holding a NUL character (no database keeps it).
        TypeError: a value that is not a str, int, float or bool (a nested value).
    """
    checked: dict[str, AttributeValue] = {}
    for key, value in values.items():
        if not isinstance(key, str) or not key.isidentifier() or len(key) > MAX_KEY_LENGTH:
            raise ValueError(
                f"{what}: attribute key {key!r} must be an identifier (letters, digits and "
                f"underscores, not starting with a digit) of at most {MAX_KEY_LENGTH} characters"
            )
        if not isinstance(value, str | int | float):  # bool is an int
            raise TypeError(
                f"{what}: attribute {key!r} must be a str, int, float or bool, "
                f"got {type(value).__name__} {value!r}"
            )
        if isinstance(value, float) and not math.isfinite(value):
            raise ValueError(f"{what}: attribute {key!r} must be a finite number, got {value!r}")
        if isinstance(value, str) and (len(value) > MAX_TEXT_LENGTH or "\x00" in value):
            raise ValueError(
                f"{what}: attribute {key!r} must be at most {MAX_TEXT_LENGTH} characters "
                "without NUL characters"
            )
        checked[key] = value
    return checked


def attribute_text(value: JSON) -> str:
    """The text a value is indexed and searched by (see the module docstring)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def search_terms(attributes: Mapping[str, object] | None) -> dict[str, str]:
    """Checked search terms: key -> the text to match (all must match).

    Raises:
        ValueError, TypeError: as `check_attributes`, naming the bad term.
    """
    if not attributes:
        return {}
    checked = check_attributes(attributes, what="list_runs(attributes=...)")
    return {key: attribute_text(value) for key, value in checked.items()}
