"""Storage backends behind one `Store` protocol: memory and SQLite (PostgreSQL to come)."""

from __future__ import annotations

from pathlib import Path

from perdure.stores._protocol import FAR_FUTURE, Store
from perdure.stores.memory import MemoryStore
from perdure.stores.sqlite import SQLiteStore

__all__ = ["FAR_FUTURE", "MemoryStore", "SQLiteStore", "Store", "open_store"]

_SUPPORTED = "sqlite:///relative/path.db, sqlite:////absolute/path.db, memory://"


def open_store(url: str) -> Store:
    """The store a database URL names, not yet opened (``await store.open()``).

    ``sqlite:///`` is followed by the file's path: ``sqlite:///app.db`` is relative to
    the working directory, ``sqlite:////var/app.db`` absolute. The file's parent
    folders are created.

    Raises:
        ValueError: naming the URL, for a scheme perdure does not support (yet).
    """
    if url.startswith("sqlite:///"):
        path = url.removeprefix("sqlite:///")
        if not path or path.endswith("/"):
            raise ValueError(f"database URL {url!r} names no file; supported: {_SUPPORTED}")
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        return SQLiteStore(path)
    if url in {"memory://", "memory:"}:
        return MemoryStore()
    if url.startswith(("postgresql://", "postgres://", "postgresql+")):
        raise ValueError(
            f"database URL {url!r}: PostgreSQL support is not available yet; "
            f"supported: {_SUPPORTED}"
        )
    raise ValueError(f"unsupported database URL {url!r}; supported: {_SUPPORTED}")
