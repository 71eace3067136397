"""Telling, from the same host, that a worker's process is gone: prompt recovery without a lease.

A store with a lease (PostgreSQL) learns that a worker died only when its heartbeat
stops for a whole lease: a lost host and a partitioned one look alike from the
database. On the dead worker's own host there is no such doubt: the kernel knows
whether a process lives. So each worker records, beside its host name and pid, a
*process tag* (`this_process`), and a worker on the same host that finds the process
gone (`is_gone`) reaps it at once, through the store's fenced `reap_gone_workers`.

The tag is ``<boot id>/<pid namespace>/<start time>``, read from ``/proc``:

- the boot id (``/proc/sys/kernel/random/boot_id``) and the pid namespace
  (``/proc/self/ns/pid``) say whether a pid recorded by the other process means the
  same thing here. Two containers may share a host name (a pod's containers do) and
  not a pid namespace: a pid absent from ours may be alive in theirs, so without an
  equal namespace nothing is told, and the lease decides;
- the start time (field 22 of ``/proc/<pid>/stat``, in clock ticks since boot) guards
  against pid reuse: a new process given a dead worker's pid has another start time,
  so the worker is known dead rather than taken for alive until its lease lapses.

Where ``/proc`` cannot tell (not Linux, or a namespace we cannot read) the tag is None
and such workers are never reaped early: the lease bounds their recovery, as before.
A zombie (killed, not yet waited for by its parent) counts as gone: it runs nothing.
"""

from __future__ import annotations

import os
import socket
from pathlib import Path
from typing import NamedTuple

__all__ = ["WorkerProcess", "is_gone", "process_tag", "this_process"]


class WorkerProcess(NamedTuple):
    """A registered worker's process as its row records it (`WorkerStore.host_workers`)."""

    id: str
    host: str
    pid: int
    process: str | None
    """The process tag (`process_tag`) it registered with; None if it recorded none."""


def _read(path: str) -> str | None:
    try:
        return Path(path).read_text(encoding="ascii", errors="replace")
    except OSError:
        return None


def _stat(pid: int) -> tuple[str, str] | None:
    """The state and start time (fields 3 and 22) of ``/proc/<pid>/stat``; None if unreadable."""
    text = _read(f"/proc/{pid}/stat")
    if text is None:
        return None
    # The command name (field 2) is in parentheses and may hold spaces and ')' itself.
    fields = text[text.rfind(")") + 2 :].split()
    if len(fields) < 20:  # noqa: PLR2004 (field 22 is the 20th after the name)
        return None
    return fields[0], fields[19]


def _namespace() -> str | None:
    """This process's boot id and pid namespace, or None where they cannot be read."""
    boot = _read("/proc/sys/kernel/random/boot_id")
    try:
        pid_ns = str(Path("/proc/self/ns/pid").readlink())
    except OSError:
        return None
    if boot is None or not boot.strip() or "/" in pid_ns:
        return None
    return f"{boot.strip()}/{pid_ns}"


def process_tag(pid: int) -> str | None:
    """The tag a worker in process ``pid`` of this namespace records; None if unknown."""
    namespace = _namespace()
    stat = _stat(pid)
    if namespace is None or stat is None:
        return None
    return f"{namespace}/{stat[1]}"


_mine: tuple[int, str | None] | None = None


def this_process() -> tuple[str, int, str | None]:
    """This process's host name, pid and tag, as a worker registers them.

    The tag is read once per process (a fork reads its own).
    """
    global _mine  # noqa: PLW0603 (a cache per process)
    pid = os.getpid()
    if _mine is None or _mine[0] != pid:
        _mine = (pid, process_tag(pid))
    return socket.gethostname(), pid, _mine[1]


def is_gone(worker: WorkerProcess) -> bool:
    """Whether ``worker``'s process is known, on this host, to be gone.

    True only when its host name and namespace are ours and its pid names no process,
    a zombie, or a process started at another time (its pid reused). Anything this
    host cannot be sure of is False: the lease decides then.
    """
    host, _, mine = this_process()
    if worker.host != host or worker.process is None or mine is None or worker.pid <= 0:
        return False
    namespace, _, started = worker.process.rpartition("/")
    if namespace != mine.rpartition("/")[0]:
        return False
    try:
        os.kill(worker.pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        pass  # another user's process: it exists
    except OSError:
        return False
    stat = _stat(worker.pid)
    if stat is None:  # hidden from us (hidepid), or ended just now: the next look tells
        return False
    state, now_started = stat
    return state in {"Z", "X"} or now_started != started
