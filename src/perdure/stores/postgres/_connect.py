"""Connection options of the PostgreSQL store, and its errors in perdure's terms."""

from __future__ import annotations

import contextlib
import json
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit, urlunsplit

import asyncpg

from perdure.stores._common import cancel_requested, hook_conflict, lease_lost, task_lost

if TYPE_CHECKING:
    from collections.abc import Iterator

__all__ = [
    "connect_options_of",
    "keep_session",
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


def rolled_back(exc: asyncpg.PostgresError) -> bool:
    """Whether a statement that raised ``exc`` certainly wrote nothing.

    The server answered it with an error, so its transaction rolled back, unless the
    connection itself broke (class 08) or the server ended the session (57P): then the
    commit may have happened before the error.
    """
    return not (exc.sqlstate or "").startswith(("08", "57P"))


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
