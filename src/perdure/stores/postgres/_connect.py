"""Connection options of the PostgreSQL store, and its errors in perdure's terms."""

from __future__ import annotations

import contextlib
import json
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit, urlunsplit

import asyncpg

from perdure.stores._common import cancel_requested, hook_conflict, lease_lost, task_lost
from perdure.stores._failures import Failure

if TYPE_CHECKING:
    from collections.abc import Iterator

__all__ = [
    "connect_options_of",
    "keep_session",
    "postgres_failure",
    "redacted",
    "rolled_back",
    "translated",
    "translated_task",
    "with_defaults",
    "write_failure",
]

_APPLICATION_NAME = "perdure"


async def keep_session(conn: object) -> None:
    """Hand a connection back to the pool as it is, saving a round trip per operation.

    asyncpg's default sends ``RESET ALL``, ``UNLISTEN *`` and more on each release. The
    store leaves nothing to reset: its settings are transaction-local (``set_config(...,
    true)``), it listens on a connection of its own, and its only advisory lock is
    transaction-level. (asyncpg still rolls back a transaction left open.)
    """
    del conn


def with_defaults(connect_options: dict[str, Any]) -> dict[str, Any]:
    """The connection options, naming perdure as the application unless told otherwise."""
    settings = {"application_name": _APPLICATION_NAME, **connect_options.get("server_settings", {})}
    return {**connect_options, "server_settings": settings}


# Options of asyncpg.create_pool that asyncpg.connect does not take.
_POOL_ONLY = frozenset(
    {"connect", "init", "max_inactive_connection_lifetime", "max_queries", "reset", "setup"}
)


def connect_options_of(options: dict[str, Any]) -> dict[str, Any]:
    """The options for a connection of its own (migrations, the listener)."""
    return {key: value for key, value in options.items() if key not in _POOL_ONLY}


def redacted(url: str) -> str:
    """The URL without its password, for messages and reprs."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    host = parts.hostname or ""
    if parts.port is not None:
        host = f"{host}:{parts.port}"
    return urlunsplit(parts._replace(netloc=f"{parts.username or ''}:***@{host}"))


def write_failure(
    sqlstate: str | None, detail: str | None, worker_id: str, run_id: str
) -> Exception | None:
    """The exception a write function's own SQLSTATE and DETAIL stand for, else None.

    Shared by a failed statement (`translated`) and by a batch that reports one append's
    failure in its result rather than raising it, so both raise the same error.
    """
    if sqlstate == "PD004":
        return cancel_requested(run_id)
    if sqlstate not in {"PD001", "PD002"}:
        return None
    fields = json.loads(detail or "{}")
    if sqlstate == "PD001":
        return lease_lost(worker_id, run_id, fields.get("owner"), exists=bool(fields.get("exists")))
    return hook_conflict(str(fields.get("token")), str(fields.get("holder")))


_NEVER_CONNECTED = frozenset(
    {
        "08001",  # the client could not establish the connection
        "08004",  # the server rejected it
        "57P03",  # the server is starting up or shutting down: cannot connect now
    }
)
"""SQLSTATEs a connection attempt fails with: no statement was sent on it."""

_TRANSIENT_CLASSES = ("08", "57P", "53", "40")
"""Connection exceptions, operator intervention (a shutdown, a restart, a terminated
backend), insufficient resources (too many connections), and a transaction rolled back
for a serialization failure or a deadlock: another try may work."""

_TRANSIENT_STATES = frozenset({"55P03"})  # lock_not_available: a lock it may get next time


def rolled_back(exc: asyncpg.PostgresError) -> bool:
    """Whether a statement that raised ``exc`` certainly wrote nothing.

    The server answered it with an error, so its transaction rolled back, unless the
    connection itself broke (class 08) or the server ended the session (57P): then the
    commit may have happened before the error. A connection that could not be made at
    all (`_NEVER_CONNECTED`) carried no statement.
    """
    state = exc.sqlstate or ""
    return state in _NEVER_CONNECTED or not state.startswith(("08", "57P"))


def postgres_failure(exc: BaseException) -> Failure:
    """What an asyncpg exception says about another try (see `perdure.stores._failures`).

    A server restart shows as several of them, depending on where it finds the call:
    class 08 or 57P from the server or for a connection it closed mid-statement
    (``ConnectionDoesNotExistError``); ``CannotConnectNowError`` while it starts;
    ``InterfaceError("connection is closed")`` for a pooled connection found dead before
    its statement went out; an ``InternalClientError`` ("cannot switch to state ...;
    another operation is in progress") when the drop lands as a statement starts.
    """
    if isinstance(exc, asyncpg.PostgresError):
        state = exc.sqlstate or ""
        transient = state.startswith(_TRANSIENT_CLASSES) or state in _TRANSIENT_STATES
        return Failure(transient=transient, maybe_stored=not rolled_back(exc))
    if isinstance(exc, asyncpg.InterfaceError):
        # Raised before anything is sent; the closed connection is the pool's to replace,
        # anything else (a pool being closed, a misuse) is no outage.
        return Failure(transient="connection is closed" in str(exc), maybe_stored=False)
    if isinstance(exc, asyncpg.exceptions.OutdatedSchemaCacheError):
        return Failure(transient=True, maybe_stored=False)  # the server refused the statement
    # InternalClientError and the rest: the protocol's state broke under the statement.
    return Failure(transient=True, maybe_stored=True)


@contextlib.contextmanager
def translated(worker_id: str, run_id: str) -> Iterator[None]:
    """Turn the write functions' own SQLSTATEs into perdure's exceptions."""
    try:
        yield
    except asyncpg.PostgresError as exc:
        failure = write_failure(exc.sqlstate, exc.detail, worker_id, run_id)
        if failure is not None:
            raise failure from None
        raise


@contextlib.contextmanager
def translated_task(worker_id: str, task_id: int) -> Iterator[None]:
    """Turn ``perdure_finish_step_task``'s lost-task SQLSTATE into `LeaseLostError`."""
    try:
        yield
    except asyncpg.PostgresError as exc:
        if exc.sqlstate != "PD003":
            raise
        detail = json.loads(exc.detail or "{}")
        raise task_lost(worker_id, task_id, detail.get("owner"), detail.get("status")) from None
