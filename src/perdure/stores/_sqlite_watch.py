"""Noticing commits by other connections and processes: ``PRAGMA data_version``.

SQLite bumps a connection's ``data_version`` whenever another connection (in this
process or any other) commits a change to the file. Reading it costs no I/O, so a
dedicated thread reads it every few milliseconds, but only while somebody waits
for a change, and sets the store's asyncio event when it moves.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import sqlite3
import threading
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Callable

__all__ = ["ChangeWatcher"]


class ChangeWatcher:
    """A thread that watches one database's ``data_version`` while `wanted` is set.

    Args:
        connect: opens the watcher's own connection (called on its thread).
        notify: called on the event loop when the version moved.
        interval: seconds between two reads while watching.
    """

    def __init__(
        self,
        connect: Callable[[], sqlite3.Connection],
        notify: Callable[[], None],
        *,
        interval: float = 0.01,
    ) -> None:
        self._connect = connect
        self._notify = notify
        self._interval = interval
        self.wanted = threading.Event()
        """Set while at least one caller waits for a change."""
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    async def start(self) -> None:
        """Start watching from the version the database has now."""
        self._loop = asyncio.get_running_loop()
        ready: concurrent.futures.Future[None] = concurrent.futures.Future()
        self._thread = threading.Thread(
            target=self._run, args=(ready,), name="perdure-sqlite-watch", daemon=True
        )
        self._thread.start()
        await asyncio.wrap_future(ready)

    async def stop(self) -> None:
        """End the thread and close its connection."""
        self._stopping.set()
        self.wanted.set()
        if self._thread is not None:
            await asyncio.to_thread(self._thread.join)

    def _run(self, ready: concurrent.futures.Future[None]) -> None:
        try:
            conn = self._connect()
            seen: int | None = self._version(conn)
        except BaseException as exc:
            ready.set_exception(exc)
            return
        ready.set_result(None)
        try:
            while self.wanted.wait() and not self._stopping.is_set():
                try:
                    version = self._version(conn)
                except sqlite3.Error:
                    version = None  # cannot tell: wake the waiter, which is always safe
                if version != seen:
                    seen = version
                    self._wake()
                if self._stopping.wait(self._interval):
                    break
        finally:
            conn.close()

    @staticmethod
    def _version(conn: sqlite3.Connection) -> int:
        (version,) = conn.execute("PRAGMA data_version").fetchone()
        return int(version)

    def _wake(self) -> None:
        assert self._loop is not None  # noqa: S101 - set by start()
        with contextlib.suppress(RuntimeError):  # a closed loop: nobody is waiting any more
            self._loop.call_soon_threadsafe(self._notify)
