"""Deadlines: when a run is cancelled if it has not ended, and how that is said.

A deadline is fixed when the run is created (``engine.start(..., timeout=...)``, else
``@workflow(timeout=...)``) and stored with it: on its row (``deadline_at``) and in its
``run_created`` event. The worker that holds the run arms it as a timer like a sleep's;
a run handed back to the store is due no later than its deadline, so whichever worker
holds it then cancels it, after a restart too. The run ends ``cancelled``, its
``run_cancelled`` carrying the reason ("deadline of 1h passed"), which its record's
``error`` shows and `perdure.WorkflowCancelled` says.

A child run inherits at most its parent's remaining time: its deadline is the earlier
of its own and its parent's. A detached child does not.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from perdure._durations import parse_duration

if TYPE_CHECKING:
    from perdure._durations import Duration

__all__ = ["checked_timeout", "deadline_reason", "describe_duration", "earliest_deadline"]


def checked_timeout(timeout: Duration | None, *, what: str) -> timedelta | None:
    """``timeout`` as a positive timedelta (None: no deadline).

    Raises:
        ValueError: not a duration perdure reads, or not positive; naming ``what``.
        TypeError: not a str, number or timedelta.
    """
    if timeout is None:
        return None
    span = parse_duration(timeout, what=what)
    if span <= timedelta(0):
        raise ValueError(f"{what} must be positive, got {timeout!r}")
    return span


def earliest_deadline(*deadlines: datetime | None) -> datetime | None:
    """The earliest of the deadlines given, or None when none is."""
    given = [deadline for deadline in deadlines if deadline is not None]
    return min(given) if given else None


def describe_duration(span: timedelta) -> str:
    """A short human form: ``1h``, ``1h30m``, ``2d``, ``45s``, ``0.25s``."""
    total = span.total_seconds()
    if total < 1:  # to the millisecond: a deadline is set a moment before the run's row
        return f"{round(total, 3):g}s"
    seconds = round(total)
    parts = []
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60), ("s", 1)):
        count, seconds = divmod(seconds, size)
        if count:
            parts.append(f"{count}{unit}")
    return "".join(parts)


def deadline_reason(created_at: datetime, deadline_at: datetime) -> str:
    """What a run cancelled at its deadline says: ``deadline of 1h passed``."""
    return f"deadline of {describe_duration(deadline_at - created_at)} passed"
