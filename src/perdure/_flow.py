"""Flow control as users declare it: `Limit`, `Rate`, and the values they come to.

``@workflow(concurrency=Limit(5, key="customer_id"))`` bounds the runs of a workflow
that make progress at once per value of a key; ``@step(concurrency=10,
rate="100/min")`` bounds a step's attempts at once and its starts per period. Both
hold across every worker sharing the database: the store counts, not the process.

What counts as "making progress", for a run, is decided once here and in the stores'
claim: a run holds a slot of its limit from the moment a worker first claims it until
it ends (completed, failed or cancelled). A run that sleeps, waits on a hook, is
evicted from memory or is blocked keeps its slot, as a DBOS queue's or a Hatchet
concurrency group's does: the limit protects what the run does between its first
step and its last (a customer's quota, a licence seat), and a sleeping run would
otherwise find on waking that n others took its place. A run whose worker dies keeps
its slot too, and goes on elsewhere once its lease lapses: the slot is never lost and
never doubled. A pending run waits, unclaimed, while its key's n slots are held, and
its turn comes by priority, then by creation time.

This module needs nothing but the standard library and the duration parser, so the
replay core's step specs can carry a `Rate` without importing any runtime.
"""

from __future__ import annotations

import inspect
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from perdure._durations import parse_duration

__all__ = [
    "Limit",
    "LimitUsage",
    "LimitWait",
    "Rate",
    "RunFlow",
    "StepGrant",
    "StepLimits",
    "check_priority",
    "flow_of",
    "key_value",
    "limit_flow",
    "parse_rate",
]

KeySpec = str | Callable[..., Any] | None
"""An argument's name, a function of the call's arguments returning the key, or None
(one key for every call: a global limit)."""

_PERIODS = {
    "s": 1.0,
    "sec": 1.0,
    "second": 1.0,
    "m": 60.0,
    "min": 60.0,
    "minute": 60.0,
    "h": 3600.0,
    "hour": 3600.0,
    "d": 86400.0,
    "day": 86400.0,
}
_RATE = re.compile(r"\s*(\d+)\s*/\s*(.+?)\s*")


def parse_rate(text: str, *, what: str = "rate") -> tuple[int, float]:
    """``"100/min"`` -> (100, 60.0): how many starts per how many seconds.

    The period is a unit (``s``, ``min``, ``h``, ``day``) or any duration perdure reads
    (``"100/10s"``, ``"5/1h30m"``).

    Raises:
        ValueError: naming ``what`` and the text, when it is not "<count>/<period>" with
            a count of at least 1 and a positive period.
    """
    match = _RATE.fullmatch(text) if isinstance(text, str) else None
    if match is None:
        raise ValueError(f"{what} must look like '100/min' or '5/10s', got {text!r}")
    count, period = int(match[1]), match[2].lower()
    if count < 1:
        raise ValueError(f"{what} must allow at least 1 start per period, got {text!r}")
    seconds = _PERIODS.get(period)
    if seconds is None and len(period) > len("ms") and period.endswith("s"):  # "mins", "hours"
        seconds = _PERIODS.get(period[:-1])
    if seconds is None:
        try:
            seconds = parse_duration(period, what=what).total_seconds()
        except (TypeError, ValueError):
            raise ValueError(
                f"{what} must look like '100/min' or '5/10s': unknown period in {text!r}"
            ) from None
    if seconds <= 0:
        raise ValueError(f"{what} must have a positive period, got {text!r}")
    return count, seconds


def _check_key(key: object, what: str) -> None:
    if key is None or callable(key):
        return
    if not isinstance(key, str) or not key.isidentifier():
        raise ValueError(f"{what} key must be an argument's name or a callable, got {key!r}")


@dataclass(frozen=True, slots=True, init=False)
class Limit:
    """At most ``n`` runs at once per value of ``key`` (a workflow's concurrency).

    Args:
        n: how many runs may hold a slot at once (at least 1).
        key: the name of an argument of the workflow (its value, as text, is the key),
            a callable taking the workflow's arguments and returning the key, or None
            for one limit across all runs of the workflow.
    """

    n: int
    key: KeySpec

    def __init__(self, n: int, key: KeySpec = None) -> None:
        if isinstance(n, bool) or not isinstance(n, int) or n < 1:
            raise ValueError(f"Limit(n) must be an int of at least 1, got {n!r}")
        _check_key(key, "Limit")
        object.__setattr__(self, "n", n)
        object.__setattr__(self, "key", key)


@dataclass(frozen=True, slots=True, init=False)
class Rate:
    """At most ``count`` starts of a step per ``period`` seconds, per value of ``key``.

    ``@step(rate="100/min")`` is ``Rate("100/min")``. The window slides: any period's
    worth of time sees at most ``count`` attempts start, across all workers.

    Args:
        rate: ``"<count>/<period>"``: ``"100/min"``, ``"10/s"``, ``"5/10s"``.
        key: as `Limit`'s, from the step's arguments (a separate window per value).
    """

    text: str
    count: int
    period: float
    key: KeySpec

    def __init__(self, rate: str, key: KeySpec = None) -> None:
        count, period = parse_rate(rate)
        _check_key(key, "Rate")
        object.__setattr__(self, "text", rate.strip())
        object.__setattr__(self, "count", count)
        object.__setattr__(self, "period", period)
        object.__setattr__(self, "key", key)


def key_value(
    key: KeySpec, fn: Callable[..., Any], args: tuple[Any, ...], kwargs: Mapping[str, Any]
) -> str | None:
    """The key of one call of ``fn`` under ``key`` ("customer=acme"), or None when global.

    Raises:
        ValueError: the named argument is not a parameter of ``fn``, or the callable
            did not return a string.
        TypeError: the arguments do not fit ``fn`` (as the call itself would raise).
    """
    if key is None:
        return None
    if callable(key):
        value = key(*args, **kwargs)
        if not isinstance(value, str):
            raise ValueError(f"the key function {key!r} must return a str, got {value!r}")  # noqa: TRY004 - a bad key is a ValueError, as documented
        return value
    signature = inspect.signature(fn)
    if key not in signature.parameters:
        raise ValueError(f"limit key {key!r} is not an argument of {fn.__qualname__}")
    bound = signature.bind(*args, **kwargs)
    bound.apply_defaults()
    return f"{key}={bound.arguments[key]}"


PRIORITY_BOUND = 2**31
"""A priority is a 32-bit integer (PostgreSQL's ``integer``): ``-PRIORITY_BOUND < p <
PRIORITY_BOUND``."""


def check_priority(priority: object) -> int:
    """The priority as given, if it is an int in range; else a ValueError naming it."""
    if isinstance(priority, bool) or not isinstance(priority, int):
        raise ValueError(f"priority must be an int, got {priority!r}")  # noqa: TRY004 - bad input is a ValueError
    if not -PRIORITY_BOUND < priority < PRIORITY_BOUND:
        raise ValueError(f"priority must be within ±(2**31 - 1), got {priority!r}")
    return priority


# -- what crosses to a store -------------------------------------------------------


@dataclass(frozen=True, slots=True)
class RunFlow:
    """How a new run waits: its priority, dedupe key, debounce, and concurrency limit.

    Stored on the run's row in the transaction that creates it, so no worker can claim
    it before its limit is known.
    """

    priority: int = 0
    dedupe_key: str | None = None
    """While a run of the same workflow with this key is unended, a start returns it."""
    not_before: datetime | None = None
    """Debounce: the run is due at this time; a start with the same dedupe key before
    then replaces its input and moves this time on (the run is not claimed meanwhile)."""
    limit_key: str | None = None
    """The limit's key as stored: ``<workflow>`` or ``<workflow>:<key>``."""
    limit_n: int | None = None


@dataclass(frozen=True, slots=True)
class StepLimits:
    """A step attempt's limits: a concurrency across all workers and a sliding window."""

    concurrency_key: str | None = None
    """``<step name>``: attempts holding a slot of it are counted."""
    concurrency: int | None = None
    rate_key: str | None = None
    """``<step name>`` or ``<step name>:<key>``: attempts started in the window counted."""
    rate_count: int | None = None
    rate_period: timedelta | None = None


@dataclass(frozen=True, slots=True)
class StepGrant:
    """A store's answer to a step attempt asking for its slot and its place in the window.

    ``granted``: both are taken (and must be given back with ``release_step_slot``).
    Otherwise nothing is taken, and ``retry_at`` is when the window has room again
    (a rate), or None: wait for a slot to be given back (a concurrency).
    """

    granted: bool
    retry_at: datetime | None = None
    reason: str | None = None


@dataclass(frozen=True, slots=True)
class LimitUsage:
    """One limit key as it stands: its slots, how many are held, how many runs wait.

    For a step, ``in_use`` is the attempts in a slot (concurrency) or started in the
    current window (rate), and ``waiting`` is not known to the store (zero).
    """

    kind: str
    """``workflow``, ``step`` (a step's concurrency) or ``rate``."""
    key: str
    limit: int
    in_use: int
    waiting: int = 0
    period: float | None = None
    """For a rate: the window, in seconds."""


@dataclass(frozen=True, slots=True)
class LimitWait:
    """Why a pending run waits on its workflow's limit: its key, use, and runs ahead."""

    key: str
    limit: int
    in_use: int
    ahead: int

    @property
    def reason(self) -> str:
        """The reason shown everywhere: "waiting for a slot: customer=acme, 5 of 5 in use"."""
        shown = self.key.split(":", 1)[1] if ":" in self.key else "all runs"
        ahead = f"; {self.ahead} ahead" if self.ahead else ""
        return f"waiting for a slot: {shown}, {self.in_use} of {self.limit} in use{ahead}"


def flow_of(
    spec: Any,
    args: tuple[Any, ...],
    kwargs: Mapping[str, Any],
    *,
    priority: int,
    dedupe_key: str | None,
    debounce: Any,
    now: datetime,
) -> RunFlow | None:
    """The flow control of a start of ``spec`` (a `WorkflowSpec`), or None without any.

    Raises:
        ValueError: naming what is wrong: a priority that is not an int, an empty
            dedupe key, a debounce without a dedupe key or not positive, a limit key
            that is not an argument or whose function returns no str.
    """
    check_priority(priority)
    if dedupe_key is not None and (not isinstance(dedupe_key, str) or not dedupe_key.strip()):
        raise ValueError(f"dedupe_key must be a non-empty string, got {dedupe_key!r}")
    not_before = None
    if debounce is not None:
        if dedupe_key is None:
            raise ValueError("debounce needs a dedupe_key: the starts it folds into one share it")
        window = parse_duration(debounce, what="debounce")
        if window <= timedelta(0):
            raise ValueError(f"debounce must be positive, got {debounce!r}")
        not_before = now + window
    limit: Limit | None = getattr(spec, "concurrency", None)
    limit_key = limit_n = None
    if limit is not None:
        value = key_value(limit.key, spec.fn, args, kwargs)
        limit_key = spec.name if value is None else f"{spec.name}:{value}"
        limit_n = limit.n
    if not priority and dedupe_key is None and limit_key is None:
        return None
    return RunFlow(priority, dedupe_key, not_before, limit_key, limit_n)


def limit_flow(spec: Any, encoded_input: Any) -> RunFlow | None:
    """The concurrency limit of a run of ``spec`` created from its stored input, or None.

    For the runs perdure starts itself (a rerun, a child run, a schedule's tick): they
    are held to their workflow's limit as `Engine.start`'s are. None when the workflow
    has no limit.
    """
    limit: Limit | None = getattr(spec, "concurrency", None)
    if limit is None:
        return None
    value = None
    if limit.key is not None:
        args, kwargs = spec.codec.decode_args(encoded_input)
        value = key_value(limit.key, spec.fn, args, kwargs)
    key = spec.name if value is None else f"{spec.name}:{value}"
    return RunFlow(limit_key=key, limit_n=limit.n)
