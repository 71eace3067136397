"""PostgreSQL for the tests: where the server is, whether it is up, throwaway databases.

The server comes from ``$PERDURE_TEST_POSTGRES_URL`` (default: the local server's
``postgres`` database, user ``postgres``). Tests never write to that database: each
test session creates a database of its own, ``perdure_test_<random>``, and drops it at
the end (`postgres_database`); a test that needs a database nobody has opened yet makes
one more (`fresh_database`).

When the server cannot be reached, PostgreSQL tests are skipped with a message saying
so, except in CI (``$CI`` set), where they fail: CI must never pass by skipping them.

Use from a conftest: ``from pg import postgres_database`` makes the session fixture
available; `require_postgres` is the check for anything else.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
import threading
from typing import TYPE_CHECKING, TypeVar
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import pytest

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Coroutine, Iterator
    from typing import Any

__all__ = [
    "DEFAULT_URL",
    "TABLES",
    "clear_tables",
    "create_database",
    "database_url",
    "drop_database",
    "fresh_database",
    "postgres_database",
    "require_postgres",
    "run_in_thread",
    "server_url",
]

DEFAULT_URL = "postgresql://postgres@127.0.0.1:5432/postgres"
TABLES = (
    "runs",
    "events",
    "steps",
    "timers",
    "hooks",
    "hook_inbox",
    "step_tasks",
    "workers",
)
"""perdure's tables, which `clear_tables` empties between tests."""

T = TypeVar("T")

_reachable: dict[str, str | None] = {}  # server URL -> None, or why it cannot be reached


def server_url() -> str:
    """The URL of the PostgreSQL server (and database) the tests may administer."""
    return os.environ.get("PERDURE_TEST_POSTGRES_URL") or DEFAULT_URL


def database_url(name: str, server: str | None = None) -> str:
    """The URL of database ``name`` on the test server."""
    parts = urlsplit(server or server_url())
    return urlunsplit(parts._replace(path=f"/{name}"))


def run_in_thread(coroutine: Coroutine[Any, Any, T]) -> T:
    """Run a coroutine to completion on a fresh event loop in a thread of its own.

    For sync fixtures: it leaves alone whatever event loop pytest-asyncio has set up.
    """
    result: list[T] = []
    failure: list[BaseException] = []

    def target() -> None:
        try:
            result.append(asyncio.run(coroutine))
        except BaseException as exc:
            failure.append(exc)

    thread = threading.Thread(target=target, name="perdure-test-postgres")
    thread.start()
    thread.join()
    if failure:
        raise failure[0]
    return result[0]


async def _probe(url: str) -> str | None:
    try:
        conn = await asyncpg.connect(url, timeout=5)
    except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError, TimeoutError) as exc:
        return f"{type(exc).__name__}: {exc}"
    await conn.close()
    return None


def require_postgres() -> str:
    """The server URL, if the server answers; else skip the test (fail it in CI)."""
    url = server_url()
    if url not in _reachable:
        _reachable[url] = run_in_thread(_probe(url))
    if (error := _reachable[url]) is not None:
        message = f"PostgreSQL not reachable at {url} ({error})"
        if os.environ.get("CI"):
            pytest.fail(f"{message}; CI must run the PostgreSQL tests", pytrace=False)
        pytest.skip(f"{message}; PostgreSQL tests skipped")
    return url


async def create_database(server: str | None = None) -> str:
    """Create an empty database ``perdure_test_<random>``; its URL."""
    server = server or server_url()
    name = f"perdure_test_{secrets.token_hex(6)}"
    conn = await asyncpg.connect(server)
    try:
        await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()
    return database_url(name, server)


async def drop_database(url: str) -> None:
    """Drop the database ``url`` names, ending the connections still open to it."""
    name = urlsplit(url).path.lstrip("/")
    conn = await asyncpg.connect(server_url())
    try:
        await conn.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1", name
        )
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}"')
    finally:
        await conn.close()


@contextlib.asynccontextmanager
async def fresh_database() -> AsyncIterator[str]:
    """A new empty database for one test (skipped without a server); its URL."""
    require_postgres()
    url = await create_database()
    try:
        yield url
    finally:
        await drop_database(url)


async def clear_tables(url: str) -> None:
    """Empty perdure's tables in the database ``url`` names (the schema stays)."""
    conn = await asyncpg.connect(url)
    try:
        await conn.execute(";".join(f"DELETE FROM {table}" for table in TABLES))  # noqa: S608
    finally:
        await conn.close()


@pytest.fixture(scope="session")
def postgres_database() -> Iterator[str]:
    """The URL of this test session's own database, dropped when the session ends."""
    server = require_postgres()
    url = run_in_thread(create_database(server))
    try:
        yield url
    finally:
        run_in_thread(drop_database(url))
