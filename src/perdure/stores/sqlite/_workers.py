"""How a SQLite store tells a live worker from a dead one: OS file locks.

Each registered worker holds ``flock(LOCK_EX)`` on ``<database>.workers/<id>.lock`` for
as long as its store is open. The kernel drops the lock when the process dies, however
it dies (SIGKILL and power cuts included), so another process can tell at once, without
a lease running out, that the runs it held are orphans: it takes the lock itself.

A worker's row also carries a heartbeat. A worker whose heartbeat is older than the
store's ``stale_after`` is treated as dead even if its lock looks held: the fallback for
file systems where locks do not work across machines, and for hung processes. A live
worker wrongly reaped that way loses nothing but time: its writes are fenced, and its
next heartbeat puts its row back.

Everything here runs inside the writer's transaction (on the event loop or the writer's
thread, see `perdure.stores.sqlite._writer`).
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import quote

from perdure._process import WorkerProcess, this_process
from perdure._records import WorkerRecord
from perdure.stores.sqlite._ops import release_worker_runs
from perdure.stores.sqlite._rows import from_us, to_us

if TYPE_CHECKING:
    import sqlite3
    from collections.abc import Collection, Mapping
    from datetime import datetime, timedelta

__all__ = ["WorkerLocks"]


class WorkerLocks:
    """The lock files of one SQLite database, and the ones this store holds."""

    def __init__(self, database: Path) -> None:
        self.folder = Path(f"{database}.workers")
        self._held: dict[str, int] = {}

    def path(self, worker_id: str) -> Path:
        """The worker's lock file; the id is quoted so any id is one safe file name."""
        return self.folder / f"{quote(worker_id, safe='')}.lock"

    def register(
        self,
        conn: sqlite3.Connection,
        worker_id: str,
        now: datetime,
        workflows: Mapping[str, str] | None = None,
    ) -> None:
        """Take the worker's lock (before its row exists, so it is never seen unlocked).

        ``workflows`` (name -> version) replaces the ones recorded; None keeps them.

        Raises:
            RuntimeError: another live process, or another store, holds this worker id.
        """
        if worker_id not in self._held:
            self.folder.mkdir(parents=True, exist_ok=True)
            path = self.path(worker_id)
            fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(fd)
                raise RuntimeError(
                    f"worker id {worker_id!r} is in use by a live store ({path} is locked)"
                ) from None
            os.ftruncate(fd, 0)
            os.write(fd, f"{os.getpid()}\n".encode())  # for people looking at the folder
            self._held[worker_id] = fd
        at = to_us(now)
        defined = None if workflows is None else json.dumps(dict(workflows), sort_keys=True)
        host, pid, tag = this_process()
        conn.execute(
            "INSERT INTO workers (id, pid, hostname, started_at, heartbeat_at, workflows, "
            "process) VALUES (?, ?, ?, ?, ?, coalesce(?, '{}'), ?) ON CONFLICT (id) DO UPDATE "
            "SET pid = excluded.pid, hostname = excluded.hostname, "
            "heartbeat_at = excluded.heartbeat_at, "
            "workflows = coalesce(?, workflows), process = excluded.process",
            (worker_id, pid, host, at, at, defined, tag, defined),
        )

    def live(
        self, conn: sqlite3.Connection, now: datetime, stale_after: timedelta
    ) -> list[WorkerRecord]:
        """The workers whose heartbeat is recent and whose lock is held; oldest first.

        Only reads: a dead worker's row and file stay for the next reap to clear.
        """
        stale_before = to_us(now - stale_after)
        found = conn.execute(
            "SELECT id, hostname, pid, started_at, heartbeat_at, workflows FROM workers "
            "WHERE heartbeat_at >= ? ORDER BY started_at, id",
            (stale_before,),
        ).fetchall()
        return [
            WorkerRecord(worker_id, host, pid, from_us(started), from_us(beat), _workflows(defined))
            for worker_id, host, pid, started, beat, defined in found
            if self._is_locked(worker_id)
        ]

    def heartbeat(self, conn: sqlite3.Connection, worker_id: str, now: datetime) -> bool:
        """Record that the worker lives; whether its row was there.

        False: it was reaped as stale meanwhile, and its row is now back.
        """
        updated = conn.execute(
            "UPDATE workers SET heartbeat_at = ? WHERE id = ?", (to_us(now), worker_id)
        ).rowcount
        if not updated:
            self.register(conn, worker_id, now)
        return bool(updated)

    def reap(
        self, conn: sqlite3.Connection, worker_id: str, now: datetime, stale_after: timedelta
    ) -> int:
        """Release the runs and requeue the tasks of every other dead worker; how many."""
        stale_before = to_us(now - stale_after)
        others = conn.execute(
            "SELECT id, heartbeat_at FROM workers WHERE id != ?", (worker_id,)
        ).fetchall()
        released = 0
        for other, heartbeat_at in others:
            if self._is_dead(other) or heartbeat_at < stale_before:
                released += release_worker_runs(conn, other, now, dead=True)
                conn.execute("DELETE FROM workers WHERE id = ?", (other,))
        return released

    def on_host(self, conn: sqlite3.Connection, host: str) -> list[WorkerProcess]:
        """The workers registered on ``host``, with their pids and process tags."""
        found = conn.execute(
            "SELECT id, hostname, pid, process FROM workers WHERE hostname = ? ORDER BY id",
            (host,),
        ).fetchall()
        return [WorkerProcess(*row) for row in found]

    def reap_gone(
        self,
        conn: sqlite3.Connection,
        worker_id: str,
        gone: Collection[WorkerProcess],
        now: datetime,
    ) -> int:
        """Reap the workers of ``gone`` whose row is as given and whose lock is free.

        The lock is the kernel's word, so this reaps no worker `reap` would not: it is
        there for the contract's sake (`WorkerStore.reap_gone_workers`).
        """
        released = 0
        for worker in gone:
            if worker.id == worker_id or worker.process is None:
                continue
            same = conn.execute(
                "SELECT 1 FROM workers WHERE id = ? AND hostname = ? AND pid = ? AND process = ?",
                (worker.id, worker.host, worker.pid, worker.process),
            ).fetchone()
            if same is not None and self._is_dead(worker.id):
                released += release_worker_runs(conn, worker.id, now, dead=True)
                conn.execute("DELETE FROM workers WHERE id = ?", (worker.id,))
        return released

    def unregister(self, conn: sqlite3.Connection, worker_id: str, now: datetime) -> None:
        """Release the worker's runs, requeue its tasks, delete its row; `drop` the lock next."""
        release_worker_runs(conn, worker_id, now)
        conn.execute("DELETE FROM workers WHERE id = ?", (worker_id,))

    def drop(self, worker_id: str) -> None:
        """Delete the worker's lock file and let go of the lock.

        Called only once the row's deletion is committed: until then the lock must say
        "alive", or a reaper could release runs this worker is still handing back.
        """
        fd = self._held.pop(worker_id, None)
        if fd is not None:
            self.path(worker_id).unlink(missing_ok=True)
            os.close(fd)

    def close(self) -> None:
        """Let go of every lock, leaving the files: to others, these workers are now dead."""
        for fd in self._held.values():
            os.close(fd)
        self._held.clear()

    def _is_locked(self, worker_id: str) -> bool:
        """Whether the worker's lock is held (by this store, or a live process); no change."""
        if worker_id in self._held:
            return True
        try:
            fd = os.open(self.path(worker_id), os.O_RDWR)
        except FileNotFoundError:
            return False
        except OSError:
            return True  # another user's file tells nothing: the heartbeat decides
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
        else:
            fcntl.flock(fd, fcntl.LOCK_UN)
            return False
        finally:
            os.close(fd)

    def _is_dead(self, worker_id: str) -> bool:
        """Whether the worker's lock is free (its process is gone); if so, remove its file.

        A lock file that is missing also means dead. One that cannot be opened (another
        user's) tells nothing, and the heartbeat decides.
        """
        if worker_id in self._held:
            return False
        path = self.path(worker_id)
        try:
            fd = os.open(path, os.O_RDWR)
        except FileNotFoundError:
            return True
        except OSError:
            return False
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                return False
            with contextlib.suppress(FileNotFoundError):
                path.unlink()
            return True
        finally:
            os.close(fd)


def _workflows(text: object) -> dict[str, str]:
    """The ``workflows`` column; a value that is not an object of strings reads as none."""
    try:
        value = json.loads(text) if isinstance(text, str) else None
    except ValueError:
        return {}
    if not isinstance(value, dict):
        return {}
    return {str(name): str(version) for name, version in value.items()}
