"""Prompt recovery on a store with a lease: reap at once the workers of this host that died.

On PostgreSQL a dead worker's runs wait for its lease to lapse (10 s by default) before
anyone takes them: from the database, a worker that died, one whose host was lost and
one cut off by a partition look alike, and only the lease is safe for all three. A
worker on the dead one's own host is not in that doubt: the kernel says whether its
process lives. So at start and in every maintenance round (about once a second) a
worker lists the workers registered on its host (one small query), checks each
process (`perdure._process.is_gone`: a pid gone, a zombie, or a pid reused, in the same
boot and pid namespace), and hands those that are gone to the store's fenced reap,
which releases their runs at once as a lapsed lease would. A restarted service thus
takes back its runs as soon as it starts; a worker on another host still waits for
the lease.

Stores without a lease (SQLite, memory) already tell a dead worker at once (a lock the
kernel drops, a single process): nothing is done for them here.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from perdure._process import is_gone, this_process

if TYPE_CHECKING:
    from datetime import datetime

    from perdure._process import WorkerProcess
    from perdure.stores._protocol import WorkerStore

__all__ = ["reap_gone"]

logger = logging.getLogger("perdure.worker")


async def reap_gone(store: WorkerStore, worker_id: str, now: datetime) -> int:
    """Reap the workers of this host whose processes are gone; how many runs and tasks.

    Does nothing on a store without a lease, one of its own that predates
    `WorkerStore.host_workers`, or where this host cannot tell (no ``/proc``:
    `perdure._process`). Raises what the store raises.
    """
    if store.lease is None:
        return 0
    host, _, tag = this_process()
    if tag is None:
        return 0
    listing = getattr(store, "host_workers", None)
    if listing is None:  # a store of its own, written before this: the lease decides
        return 0
    listed: list[WorkerProcess] = await listing(host)
    gone = [worker for worker in listed if worker.id != worker_id and is_gone(worker)]
    if not gone:
        return 0
    released = await store.reap_gone_workers(worker_id, gone, now)
    logger.info(
        "worker %s: %s gone from this host (pid %s); %d runs and step tasks taken back now",
        worker_id,
        ", ".join(worker.id for worker in gone),
        ", ".join(str(worker.pid) for worker in gone),
        released,
    )
    return released
