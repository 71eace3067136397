"""Schema migrations of the PostgreSQL store.

The schema lives in numbered ``stores/postgres/migrations/NNNN_name.sql`` files inside the
package. `apply_migrations` applies the missing ones in order and records each in
``schema_migrations``, in one transaction that first takes a transaction-level advisory
lock: workers starting together on a new database wait for each other, and all but the
first find nothing left to do.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from perdure.stores._migrations import Migration, load_migrations, missing_migrations

if TYPE_CHECKING:
    from asyncpg import Connection, Record
    from asyncpg.pool import PoolConnectionProxy

__all__ = ["MIGRATION_LOCK", "Migration", "apply_migrations", "migrations"]

MIGRATION_LOCK = 0x7065_7264_7572_65
"""The advisory lock key migrations hold ("perdure" in ASCII)."""


def migrations() -> list[Migration]:
    """The PostgreSQL schema files shipped with perdure, in order."""
    return load_migrations("postgres")


async def apply_migrations(
    conn: Connection[Record] | PoolConnectionProxy[Record], known: list[Migration]
) -> list[str]:
    """Apply the migrations the database lacks, in one transaction; their names.

    Raises:
        RuntimeError: the database records a migration this perdure does not know: it
            was written by a newer perdure, and this one must not touch it.
    """
    async with conn.transaction():
        await conn.execute("SELECT pg_advisory_xact_lock($1)", MIGRATION_LOCK)
        await conn.execute(
            "CREATE TABLE IF NOT EXISTS schema_migrations (version integer PRIMARY KEY, "
            "name text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now())"
        )
        applied = {
            row["version"] for row in await conn.fetch("SELECT version FROM schema_migrations")
        }
        done = []
        for migration in missing_migrations(known, applied):
            await conn.execute(migration.sql)  # no arguments: a script of many statements
            await conn.execute(
                "INSERT INTO schema_migrations (version, name) VALUES ($1, $2)",
                migration.version,
                migration.name,
            )
            done.append(migration.name)
        return done
