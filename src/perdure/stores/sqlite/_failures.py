"""What a sqlite3 error means for trying the call again (see `perdure.stores._failures`).

SQLite tells by its primary result code, the low byte of the extended one:

- the database is *busy* or *locked* (another process holds the write lock past the
  writer's wait, `BUSY_TIMEOUT`), or the WAL's lock protocol met a race: the statement
  did not run, and a later try may get the lock;
- a *disk I/O error*: waiting does not mend the disk, and a commit that meets one may
  have reached the file, so the write may be stored;
- everything else (a corrupt or foreign file, no space, no permission, a misuse):
  nothing was written (the writer rolls back each write that raised), and trying again
  meets the same error.
"""

from __future__ import annotations

import sqlite3

from perdure.stores._failures import Failure

__all__ = ["sqlite_failure"]

_TRANSIENT = frozenset({sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED, sqlite3.SQLITE_PROTOCOL})


def sqlite_failure(exc: sqlite3.Error) -> Failure:
    """What a sqlite3 error, raised by the SQLite store, says about another try."""
    code = getattr(exc, "sqlite_errorcode", None)
    primary = code & 0xFF if isinstance(code, int) else None
    if primary in _TRANSIENT:
        return Failure(transient=True, maybe_stored=False)
    return Failure(transient=False, maybe_stored=primary == sqlite3.SQLITE_IOERR)
