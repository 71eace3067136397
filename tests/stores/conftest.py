"""The `store` fixture: every contract test runs once per backend."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

from perdure.stores import MemoryStore, PostgresStore, SQLiteStore
from pg import clear_tables, postgres_database

if TYPE_CHECKING:
    from collections.abc import AsyncIterator
    from pathlib import Path

__all__ = ["AnyStore", "postgres_database", "store"]

AnyStore = MemoryStore | SQLiteStore | PostgresStore


@pytest.fixture(params=["memory", "sqlite", "postgres"])
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[AnyStore]:
    """An open store: in memory, in a real SQLite file under tmp_path, or in this test
    session's PostgreSQL database with its tables emptied."""
    opened: AnyStore
    if request.param == "memory":
        opened = MemoryStore()
    elif request.param == "sqlite":
        opened = SQLiteStore(tmp_path / "perdure.db")
    else:
        url: str = request.getfixturevalue("postgres_database")
        opened = PostgresStore(url)
    await opened.open()
    if isinstance(opened, PostgresStore):
        await clear_tables(opened.url)
    yield opened
    await opened.close()
