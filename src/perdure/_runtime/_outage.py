"""Store calls a worker must not give up on while the database is down.

A worker that stops trying when PostgreSQL restarts, or a SQLite file is locked for a
while, strands work: a run it gave up but never released stays held by this live
worker, and no other worker ever takes it; a step task it finished but never stored
leaves its run waiting for ever. So those calls are retried until the store answers,
with a pause that doubles from 50 ms to at most 2 s, and an outage is told once when it
begins and once when it ends, not once per retry (a restart would flood the log).

`Outage` counts the failures of one kind of call; `until_the_store_answers` retries a
single call with it. The worker's pass and its heartbeat, which are loops of their own,
use `Outage` directly.
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING, TypeVar

from perdure._errors import LeaseLostError

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable

__all__ = ["Outage", "until_the_store_answers"]

logger = logging.getLogger("perdure.worker")

_T = TypeVar("_T")

_FIRST_PAUSE = 0.05
_MAX_PAUSE = 2.0


class Outage:
    """Consecutive failures of one kind of store call, told once per outage."""

    __slots__ = ("_failures", "_level", "_what")

    def __init__(self, what: str, *, level: int = logging.WARNING) -> None:
        """``what`` says which call failed; the first failure is logged at ``level``."""
        self._what = what
        self._level = level
        self._failures = 0

    @property
    def failures(self) -> int:
        """How many calls failed in a row (0 while the store answers)."""
        return self._failures

    def failed(self) -> float:
        """Count a failure, logging the first with its traceback; the pause before the next try.

        Called from an ``except`` block, so the traceback is the failure's.
        """
        self._failures += 1
        if self._failures == 1:
            logger.log(
                self._level, "%s; retrying until the store answers", self._what, exc_info=True
            )
        return min(_MAX_PAUSE, _FIRST_PAUSE * 2.0 ** (self._failures - 1))

    def ended(self) -> None:
        """The call worked: say so once, if the calls before it had failed."""
        if self._failures:
            logger.info(
                "the store answers again after %d failures (%s)", self._failures, self._what
            )
            self._failures = 0


async def until_the_store_answers(call: Callable[[], Awaitable[_T]], what: str) -> _T:
    """Make ``call`` until it returns, pausing longer after each failure.

    `LeaseLostError` is an answer, not a failure: the store refused the write because
    this worker no longer holds what it writes for, and trying again cannot help. It is
    raised to the caller, as is cancellation.
    """
    outage = Outage(what)
    while True:
        try:
            result = await call()
        except LeaseLostError:
            raise
        except Exception:
            await asyncio.sleep(outage.failed())
        else:
            outage.ended()
            return result
