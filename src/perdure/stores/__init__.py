"""Storage backends behind one `Store` protocol: memory, SQLite and PostgreSQL.

`PostgresStore` is imported on first use, so asyncpg (the ``perdure[postgres]``
extra) is needed only by those who use PostgreSQL.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from perdure.stores._protocol import FAR_FUTURE, Store
from perdure.stores.memory import MemoryStore
from perdure.stores.sqlite import SQLiteStore

if TYPE_CHECKING:
    from datetime import timedelta

    from perdure.stores.postgres import PostgresStore

__all__ = ["FAR_FUTURE", "MemoryStore", "PostgresStore", "SQLiteStore", "Store", "open_store"]

_SUPPORTED = (
    "sqlite:///relative/path.db, sqlite:////absolute/path.db, memory://, "
    "postgresql://user@host:port/database (or postgres://)"
)


def open_store(url: str, *, lease: timedelta | None = None) -> Store:
    """The store a database URL names, not yet opened (``await store.open()``).

    ``sqlite:///`` is followed by the file's path: ``sqlite:///app.db`` is relative to
    the working directory, ``sqlite:////var/app.db`` absolute. The file and its parent
    folders are created on `open`, not here: building an `Engine` at import (an ASGI
    app's module does) must not touch the disk. ``postgresql://`` and ``postgres://``
    URLs (libpq's form) name a PostgreSQL database, whose schema is created or migrated
    on `open`.

    ``lease`` is the PostgreSQL store's lease (its default when None); the other stores
    tell a dead worker by other means and ignore it.

    Raises:
        ValueError: naming the URL, for a scheme perdure does not support.
        ImportError: for a PostgreSQL URL when asyncpg is not installed.
    """
    if url.startswith("sqlite:///"):
        path = url.removeprefix("sqlite:///")
        if not path or path.endswith("/"):
            raise ValueError(f"database URL {url!r} names no file; supported: {_SUPPORTED}")
        return SQLiteStore(path)
    if url in {"memory://", "memory:"}:
        return MemoryStore()
    if url.startswith(("postgresql://", "postgres://")):
        store_class = _postgres_store_class()
        return store_class(url) if lease is None else store_class(url, lease=lease)
    raise ValueError(f"unsupported database URL {url!r}; supported: {_SUPPORTED}")


def _postgres_store_class() -> type[PostgresStore]:
    try:
        from perdure.stores.postgres import PostgresStore  # noqa: PLC0415 - asyncpg is optional
    except ModuleNotFoundError as exc:
        if exc.name != "asyncpg":
            raise
        raise ImportError(
            "PostgreSQL support needs asyncpg: install the perdure[postgres] extra "
            "(pip install 'perdure[postgres]')",
            name="asyncpg",
        ) from exc
    return PostgresStore


def __getattr__(name: str) -> Any:
    if name == "PostgresStore":
        return _postgres_store_class()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
