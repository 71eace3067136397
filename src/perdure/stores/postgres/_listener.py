"""Change notification for the PostgreSQL store: LISTEN on a connection of its own.

Every write others act on (a new run, a resume, a cancel, a release, an ended run, a
reaped or leaving worker) calls ``pg_notify('perdure_changes', ...)`` in its
transaction, so the notification goes out exactly when the write commits. A step's
append notifies nobody: waking every worker per step would cost a pass per step.

The store's own writes are reported too. That is a spurious wake-up for its Engine,
which signals its own changes anyway, but it is also what makes a write the Engine does
not wait for (a run handed back in the background) reach a worker pass that starts
after it committed: a pass that ran alongside it, on another pooled connection, may
not have seen it.

When the listening connection breaks, notifications sent meanwhile are lost, so the
next wait reports a change (callers look at the database again) and reconnects first.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

import asyncpg

if TYPE_CHECKING:
    from asyncpg import Connection, Record

__all__ = ["CHANNEL", "Listener"]

CHANNEL = "perdure_changes"


class Listener:
    """A LISTEN connection and the flag its notifications set."""

    def __init__(self, url: str, connect_options: dict[str, Any]) -> None:
        self._url = url
        self._options = connect_options
        self._conn: Connection[Record] | None = None
        self._changed = asyncio.Event()
        self._connecting = asyncio.Lock()
        self._closed = False

    async def start(self) -> None:
        """Connect and listen (again, after a break)."""
        async with self._connecting:
            if self._conn is not None and not self._conn.is_closed():
                return
            self._conn = None
            conn: Connection[Record] = await asyncpg.connect(self._url, **self._options)
            try:
                await conn.add_listener(CHANNEL, self._notified)
            except BaseException:
                conn.terminate()
                raise
            conn.add_termination_listener(self._lost)
            self._conn = conn

    async def close(self) -> None:
        """Stop listening; a wait still pending returns True rather than time out."""
        self._closed = True
        conn, self._conn = self._conn, None
        if conn is not None and not conn.is_closed():
            conn.remove_termination_listener(self._lost)
            try:
                await conn.close(timeout=5)
            except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError, TimeoutError):
                conn.terminate()  # the server is gone: nothing left to say goodbye to
        self._changed.set()

    async def wait(self, timeout: float) -> bool:
        """Wait for a notification since the last call returned, or ``timeout`` seconds.

        Returns True at once, after reconnecting, when the connection was broken: what
        was sent meanwhile is lost. Raises the connection error if it cannot reconnect.
        """
        if self._closed:
            raise RuntimeError("the PostgreSQL store is closed")
        if self._conn is None or self._conn.is_closed():
            await self.start()
            self._changed.clear()
            return True
        if not self._changed.is_set():
            try:
                async with asyncio.timeout(timeout):
                    await self._changed.wait()
            except TimeoutError:
                return False
        self._changed.clear()
        return True

    def _notified(self, conn: object, pid: int, channel: str, payload: object) -> None:
        del conn, pid, channel, payload
        self._changed.set()

    def _lost(self, conn: object) -> None:
        del conn
        self._changed.set()  # the waiter returns, and the next wait reconnects
