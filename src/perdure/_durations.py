"""Durations as people write them: ``"7 days"``, ``"30s"``, ``"1h30m"``, 90, timedelta.

Every duration perdure takes is read here: a sleep, a step's timeout, a retry's
``retry_after``, an Engine's options. It needs nothing but the standard library, so the
replay core and the exceptions users raise (`perdure._errors`) can both use it without
importing each other.
"""

from __future__ import annotations

import re
from datetime import timedelta

__all__ = ["Duration", "parse_duration"]

Duration = str | int | float | timedelta

_UNITS: dict[str, float] = {
    "ms": 0.001,
    "millisecond": 0.001,
    "s": 1,
    "sec": 1,
    "second": 1,
    "m": 60,
    "min": 60,
    "minute": 60,
    "h": 3600,
    "hr": 3600,
    "hour": 3600,
    "d": 86400,
    "day": 86400,
    "w": 604800,
    "week": 604800,
}
_PART = re.compile(r"\s*(\d+(?:\.\d+)?)\s*([a-z]+)\s*,?", re.IGNORECASE)


def _unit_seconds(unit: str) -> float | None:
    unit = unit.lower()
    if unit in _UNITS:
        return _UNITS[unit]
    if unit.endswith("s") and unit[:-1] in _UNITS and len(unit) > 2:  # noqa: PLR2004 ("ms" is no plural)
        return _UNITS[unit[:-1]]
    return None


def parse_duration(value: Duration, *, what: str = "duration") -> timedelta:
    """Turn a duration in any accepted form into a non-negative timedelta.

    Accepted: a number of seconds; a timedelta; a string of one or more
    ``<number><unit>`` parts (``"30s"``, ``"7 days"``, ``"1h30m"``, ``"1 hour, 5 min"``)
    with units ms, s, m, h, d, w and their long forms. A bare numeric string is seconds.

    Raises:
        ValueError: naming ``what`` and the value, for anything else or a negative span.
    """
    if isinstance(value, bool):
        raise TypeError(
            f"{what} must be seconds, a timedelta or a string like '30s', got {value!r}"
        )
    if isinstance(value, timedelta):
        result = value
    elif isinstance(value, int | float):
        result = timedelta(seconds=value)
    elif isinstance(value, str):
        result = _parse_text(value, what)
    else:
        kind = type(value).__name__  # type: ignore[unreachable]  # untyped callers get here
        raise TypeError(f"{what} must be seconds, a timedelta or a string like '30s', got {kind}")
    if result < timedelta(0):
        raise ValueError(f"{what} must not be negative, got {value!r}")
    return result


def _parse_text(text: str, what: str) -> timedelta:
    stripped = text.strip()
    try:
        return timedelta(seconds=float(stripped))
    except ValueError:
        pass
    seconds = 0.0
    position = 0
    for match in _PART.finditer(stripped):
        if match.start() != position:
            break
        factor = _unit_seconds(match.group(2))
        if factor is None:
            raise ValueError(f"{what} {text!r}: unknown unit {match.group(2)!r}")
        seconds += float(match.group(1)) * factor
        position = match.end()
    if position != len(stripped) or not stripped:
        raise ValueError(
            f"{what} {text!r} is not a duration; write e.g. '30s', '1h30m' or '7 days'"
        )
    return timedelta(seconds=seconds)
