"""PostgreSQL for the tests: where the server is, whether it is up, throwaway databases.

The server comes from ``$PERDURE_TEST_POSTGRES_URL`` (default: the local server's
``postgres`` database, user ``postgres``). Tests never write to that database: each
test session creates a database of its own, ``perdure_test_<random>``, and drops it at
the end (`postgres_database`); a test that needs a database nobody has opened yet makes
one more (`fresh_database`).

A test that stops the server, or cuts it off, runs a server of its own instead
(`private_postgres`): the machine's shared server is never stopped or restarted.

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
import shutil
import socket
import subprocess
import tempfile
import threading
from dataclasses import dataclass
from pathlib import Path
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
    "PrivatePostgres",
    "clear_tables",
    "create_database",
    "database_url",
    "drop_database",
    "fresh_database",
    "postgres_database",
    "private_postgres",
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
    "streams",
    "stream_chunks",
    "run_attributes",
    "workers",
    "step_slots",
    "step_starts",
    "schedules",
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


# -- a private PostgreSQL server ----------------------------------------------------------


def _unavailable(message: str) -> None:
    """Skip the test for want of PostgreSQL, or fail it in CI (as `require_postgres`)."""
    if os.environ.get("CI"):
        pytest.fail(f"{message}; CI must run the PostgreSQL tests", pytrace=False)
    pytest.skip(message)


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@dataclass
class PrivatePostgres:
    """A PostgreSQL server of the test's own: its binaries, folder and port."""

    bindir: Path
    folder: Path
    port: int
    listen: list[str]
    trusted: list[str]

    @property
    def data(self) -> Path:
        return self.folder / "data"

    @property
    def log(self) -> Path:
        return self.folder / "server.log"

    def url(self, host: str = "127.0.0.1", database: str = "postgres") -> str:
        return f"postgresql://postgres@{host}:{self.port}/{database}"

    def _run(self, *argv: str) -> None:
        # initdb and the server refuse to run as root: run them as the postgres user.
        command = [str(self.bindir / argv[0]), *argv[1:]]
        if os.geteuid() == 0:
            command = ["runuser", "-u", "postgres", "--", *command]
        done = subprocess.run(command, capture_output=True, text=True, check=False)
        if done.returncode != 0:
            log = self.log.read_text() if self.log.exists() else ""
            raise RuntimeError(f"{' '.join(command)} failed:\n{done.stdout}{done.stderr}\n{log}")

    def init(self) -> None:
        self._run("initdb", "-D", str(self.data), "-U", "postgres", "--auth=trust", "--no-sync")
        with (self.data / "pg_hba.conf").open("a") as hba:
            for network in self.trusted:
                hba.write(f"host all all {network} trust\n")

    def start(self) -> None:
        """Start the server and wait until it accepts connections."""
        options = (
            f"-c listen_addresses='{','.join(self.listen)}' -p {self.port} "
            f"-k {self.folder} -c fsync=off -c max_connections=200"
        )
        self._run("pg_ctl", "-D", str(self.data), "-l", str(self.log), "-w", "-o", options, "start")

    def stop(self, mode: str = "fast") -> None:
        self._run("pg_ctl", "-D", str(self.data), "-m", mode, "-w", "stop")


@contextlib.contextmanager
def private_postgres(
    listen: list[str] | None = None, trusted: list[str] | None = None
) -> Iterator[PrivatePostgres]:
    """A fresh PostgreSQL server listening on 127.0.0.1 and ``listen``, trusting
    connections from ``trusted`` networks; stopped and deleted afterwards."""
    found = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"), key=lambda p: int(p.parts[-3]))
    if not found:
        _unavailable("PostgreSQL server binaries (/usr/lib/postgresql/*/bin) not installed")
    folder = Path(tempfile.mkdtemp(prefix="perdure-pg-"))
    server = PrivatePostgres(
        found[-1].parent, folder, _free_port(), ["127.0.0.1", *(listen or [])], trusted or []
    )
    try:
        if os.geteuid() == 0:
            shutil.chown(folder, "postgres", "postgres")
        server.init()
        server.start()
        yield server
    finally:
        with contextlib.suppress(RuntimeError):
            server.stop("immediate")
        shutil.rmtree(folder, ignore_errors=True)
