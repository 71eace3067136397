"""A pool connection the PostgreSQL store keeps for its appends.

Taking a connection from asyncpg's pool and giving it back costs the client about as
much CPU as the round trip of a trivial statement (its queue, its holder, a shielded
task for the release, an idle timer re-armed each time): measured with
``bench/pg_append_cost.py``, a sequential step's append spent more on it than on
encoding its arguments. The appends of a store go one batch at a time most of the
time (a sequential run always), so the `Lane` keeps one connection and sends them on
it; a call that finds it busy goes through the pool as before.

The connection stays the pool's: it counts toward ``max_size``, and a call that fails
on it, for whatever reason (a broken connection, a cancelled call whose protocol state
is unknown, or only a lost lease), gives it back, which lets the pool check it, close it
if broken and open another on demand. The next call takes a connection again. With a
pool of one connection, nothing is kept: the other operations would wait for it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Callable

    from asyncpg import Pool, Record
    from asyncpg.pool import PoolConnectionProxy

__all__ = ["Lane"]


class Lane:
    """One kept connection of ``pool``, for one call at a time; the pool for the others.

    Args:
        pool: the store's pool (raises when the store is not open).
        max_size: the most connections the pool opens; with one, nothing is kept.
    """

    def __init__(self, pool: Callable[[], Pool[Record]], max_size: int) -> None:
        self._pool = pool
        self._keeps = max_size > 1
        self._conn: PoolConnectionProxy[Record] | None = None
        self._busy = False

    async def fetchval(self, query: str, *arguments: Any) -> Any:
        """``fetchval`` on the kept connection if it is free, else through the pool."""
        return await self._call("fetchval", query, arguments)

    async def fetch(self, query: str, *arguments: Any) -> list[Record]:
        """``fetch`` on the kept connection if it is free, else through the pool."""
        rows: list[Record] = await self._call("fetch", query, arguments)
        return rows

    async def _call(self, method: str, query: str, arguments: tuple[Any, ...]) -> Any:
        if self._busy or not self._keeps:
            return await getattr(self._pool(), method)(query, *arguments)
        self._busy = True
        try:
            conn = self._conn
            if conn is None:
                conn = self._conn = await self._pool().acquire()
            try:
                return await getattr(conn, method)(query, *arguments)
            except BaseException:
                await self._give_back()
                raise
        finally:
            self._busy = False

    async def close(self) -> None:
        """Give the kept connection back to the pool (before the pool closes)."""
        await self._give_back()

    async def _give_back(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            await self._pool().release(conn)
