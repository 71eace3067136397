"""What a store call's failure means: is another try worth it, may the write be stored?

Decided once, here, for every store and every caller: the public API retries by it
(`perdure._store_calls`), and a database failure it cannot mend reaches users as one
`StoreError` carrying the answer, never as the driver's own exception. Each driver's
errors are read where that driver is known: asyncpg's in
`perdure.stores.postgres._connect`, sqlite3's in `perdure.stores.sqlite._failures`,
and the operating system's (a refused or reset socket) here, since either driver and
a custom store may raise them. Both driver modules are imported only when one of their
exceptions is seen: asyncpg is an optional dependency.
"""

from __future__ import annotations

import socket
import sqlite3
from dataclasses import dataclass

__all__ = ["Failure", "failure_of"]


@dataclass(frozen=True, slots=True)
class Failure:
    """What a failed store call says about trying it again."""

    transient: bool
    """Another try may work: the connection dropped, the server is restarting, the
    database is locked for now. False for what waiting cannot mend (a corrupt file, a
    disk I/O error, a refused permission, a statement the server rejects)."""
    maybe_stored: bool
    """The call may have written what it was sent: the connection broke after the
    statement went out and before its answer came back. False when it certainly wrote
    nothing (the server rolled it back, or it was never sent)."""


def failure_of(exc: BaseException) -> Failure | None:
    """What ``exc``, raised by a store call, says; None when it is no database failure.

    None is for everything else a store raises (perdure's own errors, a `ValueError`
    for a bad argument, a bug) and for cancellation: those go to the caller untouched.
    """
    if isinstance(exc, sqlite3.Error):
        from perdure.stores.sqlite._failures import sqlite_failure  # noqa: PLC0415 - no cycle

        return sqlite_failure(exc)
    if type(exc).__module__.partition(".")[0] == "asyncpg":
        # Imported only now: an asyncpg exception means asyncpg is installed.
        from perdure.stores.postgres._connect import postgres_failure  # noqa: PLC0415

        return postgres_failure(exc)
    if isinstance(exc, OSError):
        return _os_failure(exc)
    return None


def _os_failure(exc: OSError) -> Failure:
    """A socket's failure (either driver raises these), or another of the system's."""
    if isinstance(exc, (ConnectionRefusedError, socket.gaierror)):
        return Failure(transient=True, maybe_stored=False)  # no connection: nothing sent
    if isinstance(exc, (ConnectionError, TimeoutError)):
        # Reset, aborted, or no answer in time: the statement may have been committed.
        return Failure(transient=True, maybe_stored=True)
    # A file's or a device's failure (a permission, a missing folder, a full disk):
    # waiting does not mend it, and what it interrupted cannot be known.
    return Failure(transient=False, maybe_stored=True)
