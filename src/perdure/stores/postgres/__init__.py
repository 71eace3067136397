"""The PostgreSQL store: many workers on many machines sharing one database.

`PostgresStore` (``_store``) is the `Store` itself; the rest are its parts:
``_schema`` (numbered migrations in ``migrations/``, applied under an advisory lock),
``_connect`` (the pool and the translation of driver errors), ``_ops`` (each write
as SQL), ``_rows`` (rows to records), ``_batch`` and ``_group`` (group commit) and
``_listener`` (LISTEN/NOTIFY). Importing it needs asyncpg, the ``postgres`` extra.
"""

from perdure.stores.postgres._store import PostgresStatistics, PostgresStore, migrate

__all__ = ["PostgresStatistics", "PostgresStore", "migrate"]
