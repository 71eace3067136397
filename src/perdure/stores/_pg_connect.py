"""Connection options of the PostgreSQL store, and its errors in perdure's terms."""

from __future__ import annotations

import contextlib
import json
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit, urlunsplit

import asyncpg

from perdure.stores._common import hook_conflict, lease_lost, task_lost

if TYPE_CHECKING:
    from collections.abc import Iterator

__all__ = [
    "connect_options_of",
    "keep_session",
    "redacted",
    "translated",
    "translated_task",
    "with_defaults",
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


@contextlib.contextmanager
def translated(worker_id: str, run_id: str) -> Iterator[None]:
    """Turn the write functions' own SQLSTATEs into perdure's exceptions."""
    try:
        yield
    except asyncpg.PostgresError as exc:
        detail = json.loads(exc.detail or "{}") if exc.sqlstate in {"PD001", "PD002"} else None
        if exc.sqlstate == "PD001" and detail is not None:
            raise lease_lost(
                worker_id, run_id, detail.get("owner"), exists=bool(detail.get("exists"))
            ) from None
        if exc.sqlstate == "PD002" and detail is not None:
            raise hook_conflict(str(detail.get("token")), str(detail.get("holder"))) from None
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
