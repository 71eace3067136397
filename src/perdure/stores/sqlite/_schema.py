"""Connections and schema migrations of the SQLite store.

The schema lives in numbered ``stores/sqlite/migrations/NNNN_name.sql`` files inside the
package (read with `importlib.resources`, so they ship in the wheel). `migrate` applies
the missing ones in order and records each in ``schema_migrations``, all in one
``BEGIN IMMEDIATE`` transaction: two processes opening a new database at once are
serialized by SQLite, and the second finds nothing left to do.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import TYPE_CHECKING

from perdure.stores._migrations import Migration, load_migrations, missing_migrations

if TYPE_CHECKING:
    from collections.abc import Iterator

__all__ = ["BUSY_TIMEOUT", "Migration", "connect", "migrate", "migrate_file", "migrations"]

BUSY_TIMEOUT = 10.0
"""Seconds a connection waits for another process's write lock before giving up."""


def connect(path: Path, *, query_only: bool = False) -> sqlite3.Connection:
    """A connection in autocommit mode (transactions are explicit) that waits on locks.

    ``synchronous=NORMAL``: in WAL mode a commit is then written but not synced, and
    the writer raises it to FULL for the commits that must be durable.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    # Not bound to the opening thread: the store's writer runs batches on the event
    # loop or on its thread, one at a time (`perdure.stores.sqlite._writer`).
    conn = sqlite3.connect(
        path, timeout=BUSY_TIMEOUT, isolation_level=None, check_same_thread=False
    )
    conn.execute("PRAGMA synchronous = NORMAL")
    if query_only:
        conn.execute("PRAGMA query_only = ON")
    return conn


def migrations() -> list[Migration]:
    """The SQLite schema files shipped with perdure, in order."""
    return load_migrations("sqlite")


def migrate(conn: sqlite3.Connection, known: list[Migration]) -> list[str]:
    """Turn on WAL and apply the migrations the database lacks; their names.

    Raises:
        RuntimeError: the database records a migration this perdure does not know: it
            was written by a newer perdure, and this one must not touch it.
    """
    # The journal mode is stored in the file; switching needs no transaction open.
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute("BEGIN IMMEDIATE")
    try:
        done = _apply_missing(conn, known)
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    return done


def migrate_file(path: str | Path) -> list[str]:
    """Bring the SQLite file at ``path`` to perdure's schema; the migrations applied.

    For running migrations on their own (``perdure migrate``, a deploy step);
    `SQLiteStore` does the same on `open`. The file and its folders are created.

    Raises:
        RuntimeError: the file records a migration this perdure does not know.
    """
    conn = connect(Path(path))
    try:
        return migrate(conn, migrations())
    finally:
        conn.close()


def _apply_missing(conn: sqlite3.Connection, known: list[Migration]) -> list[str]:
    conn.execute(
        "CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, "
        "name TEXT NOT NULL, applied_at TEXT NOT NULL "
        "DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')))"
    )
    applied = {version for (version,) in conn.execute("SELECT version FROM schema_migrations")}
    done = []
    for migration in missing_migrations(known, applied):
        for statement in _statements(migration.sql):
            conn.execute(statement)
        conn.execute(
            "INSERT INTO schema_migrations (version, name) VALUES (?, ?)",
            (migration.version, migration.name),
        )
        done.append(migration.name)
    return done


def _statements(script: str) -> Iterator[str]:
    """The statements of a script, one at a time, so they can run inside a transaction.

    (``executescript`` would commit first.) A piece ending in ``;`` is a statement once
    SQLite says it is complete, so semicolons inside strings, comments and triggers
    do not split it.
    """
    pending = ""
    for piece in script.split(";")[:-1]:
        pending += piece + ";"
        if sqlite3.complete_statement(pending):
            yield pending
            pending = ""
