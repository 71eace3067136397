"""The store calls the public API makes, carried through a database outage.

A process that starts runs and waits on them must ride out what its workers ride out: a
PostgreSQL restart, a dropped connection, a SQLite file another process keeps locked.
(A waiting ``run.result()`` used to raise asyncpg's ``ConnectionDoesNotExistError`` when
the server restarted, though the run went on to complete.) So each call `Engine` and
`Run` make to the store for a caller goes through `read` or `write`:

- a **read** is tried again until the store answers, pausing longer after each failure
  as the worker does (`perdure._runtime._outage.Outage`: 50 ms doubling to 2 s); the
  caller's own deadline bounds it (``run.result(timeout=...)`` still times out on time,
  and ``asyncio.timeout`` bounds any call);
- a **write** is tried again when that cannot store it twice: when the failure shows it
  wrote nothing (the connection could not be made, the file was locked), or when the
  write is idempotent (a new run's id is chosen before the first try; a cancel request
  is stored once however often it is sent). A write that is neither, and whose
  connection broke before the database answered (a hook's payload), raises
  `StoreError` with ``maybe_stored=True``: only the caller can tell whether a payload
  sent twice is worse than one lost;
- a failure that no try mends (a disk I/O error, a corrupt file, a refused permission)
  raises `StoreError` at once.

Which failure is which is decided in one place, `perdure.stores._failures`; what is no
database failure (perdure's own errors, a bad argument, cancellation) goes through as
it is. An outage is logged once for the process, not once per waiting caller.
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING, TypeVar

from perdure._errors import StoreError
from perdure._runtime._outage import Outage
from perdure.stores._failures import failure_of

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable

__all__ = ["read", "write"]

T = TypeVar("T")


_told = Outage("a store call of the public API failed")
"""Shared by every call of the process, only to tell an outage once, as it begins and
as it ends, rather than once per waiting caller."""


async def read(call: Callable[[], Awaitable[T]], what: str) -> T:
    """``call()``, tried again through an outage until it answers.

    Raises:
        StoreError: a failure no try mends (``maybe_stored`` False: a read writes
            nothing).
    """
    return await _call(call, what, idempotent=True, reading=True)


async def write(call: Callable[[], Awaitable[T]], what: str, *, idempotent: bool) -> T:
    """``call()``, tried again through an outage when that cannot store it twice.

    ``idempotent``: sending it again after it was stored changes nothing.

    Raises:
        StoreError: a failure no try mends, or one that may have stored a write that is
            not idempotent; ``maybe_stored`` says whether it may have been stored.
    """
    return await _call(call, what, idempotent=idempotent, reading=False)


async def _call(
    call: Callable[[], Awaitable[T]], what: str, *, idempotent: bool, reading: bool
) -> T:
    pauses = Outage(what, level=logging.DEBUG)  # this call's own backoff
    while True:
        try:
            result = await call()
        except Exception as exc:
            failure = failure_of(exc)
            if failure is None:
                raise
            if not failure.transient or (failure.maybe_stored and not idempotent):
                stored = None if reading else failure.maybe_stored
                raise _refused(what, exc, maybe_stored=stored) from exc
            _told.failed()
            await asyncio.sleep(pauses.failed())
        else:
            _told.ended()
            return result


def _refused(what: str, exc: Exception, *, maybe_stored: bool | None) -> StoreError:
    """The error for ``what``, failed by ``exc``; None for a read, which stores nothing."""
    cause = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
    message = f"{what} failed in the database ({cause})"
    if maybe_stored is None:
        return StoreError(message, maybe_stored=False)
    if maybe_stored:
        outcome = "it may or may not have been stored: read it back before sending it again"
        return StoreError(f"{message}; {outcome}", maybe_stored=True)
    return StoreError(f"{message}; nothing was stored", maybe_stored=False)
