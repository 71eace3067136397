"""The SQLite store: perdure's default, one file shared by the processes of one machine.

`SQLiteStore` (``_store``) is the `Store` itself; the rest are its parts:
``_schema`` (connections and numbered migrations in ``migrations/``), ``_writer``
(the one writer thread and its group commit), ``_ops`` (each write as SQL),
``_rows`` (rows to records) and ``_workers`` (telling a dead process by its lock).
"""

from perdure.stores.sqlite._schema import migrate_file as migrate
from perdure.stores.sqlite._store import SQLiteStore, WriterStatistics

__all__ = ["SQLiteStore", "WriterStatistics", "migrate"]
