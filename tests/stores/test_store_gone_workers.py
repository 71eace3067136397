"""The store contract of prompt recovery on the same host (issue 16, item 4).

`host_workers` lists the workers a host registered, with the process tag each recorded;
`reap_gone_workers` reaps at once, lease or no lease, the workers a caller on their
host found gone, but only while their rows record what the caller checked (host, pid,
tag), never the caller, and never a worker the store itself sees alive (SQLite: its
lock held; memory: every worker shares its process). Run on every store.
"""

from __future__ import annotations

import os
import socket

from helpers import T0, at, hold
from perdure._process import WorkerProcess, this_process
from perdure.stores import MemoryStore, PostgresStore, SQLiteStore

AnyStore = MemoryStore | SQLiteStore | PostgresStore


async def owner(store: AnyStore, run_id: str = "r1") -> str | None:
    run = await store.get_run(run_id)
    assert run is not None
    return run.owner


async def test_host_workers_lists_a_hosts_workers_with_their_process(store: AnyStore) -> None:
    """Every worker registered on the host, heartbeating or not, with pid and tag."""
    await store.register_worker("w2", T0, workflows={"a": "1"})
    await store.register_worker("w1", T0)
    await store.heartbeat("w1", at(1))
    host, pid, tag = this_process()
    assert host == socket.gethostname()
    listed = sorted(await store.host_workers(host))
    assert listed == [WorkerProcess("w1", host, pid, tag), WorkerProcess("w2", host, pid, tag)]
    assert pid == os.getpid()
    assert await store.host_workers("elsewhere.example") == []


async def test_a_reap_of_gone_workers_is_fenced_by_their_rows(store: AnyStore) -> None:
    """A row that records another host, pid or tag than the one given is not reaped, nor
    the caller itself: the run stays held, and its worker still registered."""
    await store.register_worker("w1", T0)
    await hold(store, "r1", worker="w1")
    await store.register_worker("reaper", at(1))
    (listed,) = [w for w in await store.host_workers(socket.gethostname()) if w.id == "w1"]
    differing = [
        listed._replace(host="elsewhere.example"),
        listed._replace(pid=listed.pid + 1),
        listed._replace(process=f"{listed.process}0"),
        listed._replace(process=None),
    ]
    for each in differing:
        assert await store.reap_gone_workers("reaper", [each], at(2)) == 0
        assert await owner(store) == "w1"
    assert await store.reap_gone_workers("w1", [listed], at(2)) == 0  # the caller: never
    assert await owner(store) == "w1"
    assert await store.reap_gone_workers("reaper", [], at(2)) == 0
    assert await store.heartbeat("w1", at(3))


async def test_a_gone_worker_is_reaped_within_its_lease(store: AnyStore) -> None:
    """Given as its row records it, a worker's runs are released at once, long before its
    lease; on SQLite only once its lock is free (the kernel's word comes first); the memory
    store's workers share its process and are never gone."""
    await store.register_worker("w1", T0)
    await hold(store, "r1", worker="w1")
    await store.register_worker("reaper", at(1))
    (listed,) = [w for w in await store.host_workers(socket.gethostname()) if w.id == "w1"]
    if isinstance(store, MemoryStore):
        assert await store.reap_gone_workers("reaper", [listed], at(2)) == 0
        assert await owner(store) == "w1"
        return
    if isinstance(store, SQLiteStore):
        # Its lock is held by this very store: alive, whatever the caller thinks.
        assert await store.reap_gone_workers("reaper", [listed], at(2)) == 0
        assert await owner(store) == "w1"
        store._locks.drop("w1")  # as if its process had died: its lock is free
    assert await store.reap_gone_workers("reaper", [listed], at(2)) == 1
    run = await store.get_run("r1")
    assert run is not None
    assert (run.owner, run.recoveries) == (None, 1)
    assert [w.id for w in await store.host_workers(socket.gethostname())] == ["reaper"]
    assert [r.id for r in await store.claim_runs("reaper", at(2), 1)] == ["r1"]
    if isinstance(store, PostgresStore):
        assert not await store.heartbeat("w1", at(3))  # it was reaped: it must let go
