"""The `store` fixture: every contract test runs once per backend."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

from perdure.stores import MemoryStore, SQLiteStore

if TYPE_CHECKING:
    from collections.abc import AsyncIterator
    from pathlib import Path

AnyStore = MemoryStore | SQLiteStore


@pytest.fixture(params=["memory", "sqlite"])
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[AnyStore]:
    """An open store: in memory, or in a real SQLite file under tmp_path."""
    opened: AnyStore = (
        MemoryStore() if request.param == "memory" else SQLiteStore(tmp_path / "perdure.db")
    )
    await opened.open()
    yield opened
    await opened.close()
