"""`open_store`: which store a database URL names."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING

import pytest

from perdure._records import NewRun
from perdure.stores import MemoryStore, PostgresStore, SQLiteStore, open_store

if TYPE_CHECKING:
    from pathlib import Path

    from perdure.stores import Store


def test_memory_url_gives_a_memory_store() -> None:
    """memory:// is a fresh MemoryStore."""
    assert isinstance(open_store("memory://"), MemoryStore)


async def test_sqlite_url_with_three_slashes_is_relative(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """sqlite:///a/b.db is a path relative to the working directory; its folders are
    created when the store opens, not before (an Engine built at import writes nothing)."""
    monkeypatch.chdir(tmp_path)
    store = open_store("sqlite:///data/nested/app.db")
    assert isinstance(store, SQLiteStore)
    assert not store.path.is_absolute()
    assert [] == list(tmp_path.iterdir())
    await store.open()
    try:
        assert (tmp_path / store.path).parent.is_dir()
    finally:
        await store.close()


async def test_sqlite_url_with_four_slashes_is_absolute(tmp_path: Path) -> None:
    """sqlite:////abs/path.db is an absolute path; the store opens and writes there."""
    target = tmp_path / "deep" / "er" / "app.db"
    store: Store = open_store(f"sqlite:///{target}")
    assert isinstance(store, SQLiteStore)
    assert store.path == target
    await store.open()
    try:
        await store.create_run(NewRun("r1", "wf", {}), datetime(2030, 1, 1, tzinfo=UTC))
    finally:
        await store.close()
    assert target.is_file()


@pytest.mark.parametrize(
    "url", ["postgresql://user@localhost:5432/db", "postgres://user:pw@db.example/app"]
)
def test_postgresql_urls_give_a_postgres_store(url: str) -> None:
    """postgresql:// and postgres:// URLs are a PostgresStore on that URL (not yet opened)."""
    store = open_store(url)
    assert isinstance(store, PostgresStore)
    assert store.url == url


@pytest.mark.parametrize(
    "url", ["mysql://localhost/db", "app.db", "sqlite://relative.db", "sqlite:///"]
)
def test_an_unsupported_url_is_a_value_error_naming_it(url: str) -> None:
    """Any other URL is a ValueError that names it and the schemes that work."""
    with pytest.raises(ValueError, match="memory://") as caught:
        open_store(url)
    assert repr(url) in str(caught.value)
    assert "sqlite:///" in str(caught.value)
