"""The one rule for what a store call's failure means (`perdure.stores._failures`): is
another try worth it, and may the write have been stored.

The engine retries by it (tests/test_engine_outages.py shows that end to end, on a real
server restart, a terminated backend and a locked SQLite file); here each driver's
errors are checked against it, real ones where a real one is cheap to get.
"""

from __future__ import annotations

import socket
import sqlite3
from typing import TYPE_CHECKING

import asyncpg
import pytest

from perdure import LeaseLostError, StoreError
from perdure.stores._failures import Failure, failure_of

if TYPE_CHECKING:
    from pathlib import Path

RETRY_NOTHING_STORED = Failure(transient=True, maybe_stored=False)
RETRY_MAYBE_STORED = Failure(transient=True, maybe_stored=True)
GIVE_UP_NOTHING_STORED = Failure(transient=False, maybe_stored=False)


@pytest.mark.parametrize(
    ("exc", "expected"),
    [
        # Mid-statement: the server closed the connection, or ended the session.
        (
            asyncpg.exceptions.ConnectionDoesNotExistError("closed mid-op"),
            RETRY_MAYBE_STORED,
        ),
        (asyncpg.exceptions.AdminShutdownError("terminating connection"), RETRY_MAYBE_STORED),
        (asyncpg.exceptions.InternalClientError("cannot switch to state 11"), RETRY_MAYBE_STORED),
        # At connection time: no statement went out.
        (asyncpg.exceptions.CannotConnectNowError("shutting down"), RETRY_NOTHING_STORED),
        (asyncpg.exceptions.TooManyConnectionsError("too many"), RETRY_NOTHING_STORED),
        (asyncpg.InterfaceError("connection is closed"), RETRY_NOTHING_STORED),
        (asyncpg.exceptions.SerializationError("could not serialize"), RETRY_NOTHING_STORED),
        # The server refused the statement, or the pool is being closed: no outage.
        (asyncpg.exceptions.UniqueViolationError("duplicate key"), GIVE_UP_NOTHING_STORED),
        (asyncpg.InterfaceError("pool is closing"), GIVE_UP_NOTHING_STORED),
        # The operating system's, from either driver.
        (ConnectionRefusedError(111, "Connection refused"), RETRY_NOTHING_STORED),
        (socket.gaierror(-2, "Name or service not known"), RETRY_NOTHING_STORED),
        (ConnectionResetError(104, "Connection reset by peer"), RETRY_MAYBE_STORED),
        (TimeoutError(), RETRY_MAYBE_STORED),
        (PermissionError(13, "Permission denied"), Failure(transient=False, maybe_stored=True)),
    ],
    ids=lambda value: type(value).__name__ if isinstance(value, BaseException) else "",
)
def test_driver_and_socket_errors(exc: BaseException, expected: Failure) -> None:
    """Each asyncpg or socket error is read as the rule says (which rolled_back agrees
    with for a server's answer)."""
    assert failure_of(exc) == expected


def test_what_is_no_database_failure_goes_through() -> None:
    """perdure's own errors, a bad argument, a bug and cancellation are none of the
    rule's business: the caller gets them as they are."""
    for exc in (
        LeaseLostError("lost"),
        StoreError("already told", maybe_stored=False),
        ValueError("bad"),
        RuntimeError("closed"),
        KeyError("k"),
    ):
        assert failure_of(exc) is None, exc


def test_a_locked_sqlite_file_is_tried_again(tmp_path: Path) -> None:
    """SQLite's "database is locked", as a write meets another connection's lock,
    wrote nothing and may work next time."""
    path = tmp_path / "locked.db"
    holder = sqlite3.connect(path, isolation_level=None)
    other = sqlite3.connect(path, isolation_level=None, timeout=0)
    try:
        holder.execute("CREATE TABLE t (x)")
        holder.execute("BEGIN IMMEDIATE")
        with pytest.raises(sqlite3.OperationalError) as caught:
            other.execute("BEGIN IMMEDIATE")
    finally:
        holder.close()
        other.close()
    assert failure_of(caught.value) == RETRY_NOTHING_STORED


def test_a_file_that_is_no_database_is_not_tried_again(tmp_path: Path) -> None:
    """SQLite's "file is not a database" is told at once: no try mends it."""
    path = tmp_path / "garbage.db"
    path.write_bytes(b"not a database " * 300)
    conn = sqlite3.connect(path)
    try:
        with pytest.raises(sqlite3.DatabaseError) as caught:
            conn.execute("SELECT * FROM sqlite_master")
    finally:
        conn.close()
    assert failure_of(caught.value) == GIVE_UP_NOTHING_STORED


def test_a_sqlite_disk_io_error_may_have_stored_the_write() -> None:
    """A disk I/O error (SQLITE_IOERR and its extended codes) is not tried again, and a
    commit that met one may have reached the file."""
    exc = sqlite3.OperationalError("disk I/O error")
    exc.sqlite_errorcode = sqlite3.SQLITE_IOERR_FSYNC
    assert failure_of(exc) == Failure(transient=False, maybe_stored=True)
