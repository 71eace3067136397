"""`perdure._process`: telling, on the same host, that a worker's process is gone.

Real processes: a child that is killed and waited for (its pid names nothing), one
killed and not waited for (a zombie), one alive; and tags that differ from the live
process's in start time (its pid reused), namespace or host. Linux only, as the module
itself: elsewhere no tag is recorded and nothing is told.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from helpers import eventually
from perdure._process import WorkerProcess, is_gone, process_tag, this_process

if TYPE_CHECKING:
    from collections.abc import Iterator

pytestmark = pytest.mark.skipif(
    process_tag(os.getpid()) is None, reason="no /proc to tell a process by (not Linux)"
)


@pytest.fixture
def child() -> Iterator[subprocess.Popen[bytes]]:
    """A live child process (it waits on its stdin); killed and reaped afterwards."""
    process = subprocess.Popen(
        [sys.executable, "-c", "import sys; sys.stdin.read()"], stdin=subprocess.PIPE
    )
    try:
        yield process
    finally:
        if process.poll() is None:
            process.kill()
        process.wait()


def worker(pid: int, tag: str | None, host: str | None = None) -> WorkerProcess:
    return WorkerProcess("w1", host or socket.gethostname(), pid, tag)


def test_this_process_is_not_gone() -> None:
    """The tag of this process, read twice, is the same and names a live process."""
    host, pid, tag = this_process()
    assert (host, pid) == (socket.gethostname(), os.getpid())
    assert tag is not None
    assert tag == process_tag(os.getpid())
    assert not is_gone(worker(pid, tag))


def test_a_live_child_is_not_gone(child: subprocess.Popen[bytes]) -> None:
    """A live process with the tag it has is not gone."""
    tag = process_tag(child.pid)
    assert tag is not None
    assert not is_gone(worker(child.pid, tag))


def test_a_killed_and_reaped_process_is_gone(child: subprocess.Popen[bytes]) -> None:
    """Once killed and waited for, its pid names nothing: gone."""
    tag = process_tag(child.pid)
    child.kill()
    child.wait()
    assert is_gone(worker(child.pid, tag))


async def test_a_zombie_is_gone(child: subprocess.Popen[bytes]) -> None:
    """Killed but not yet waited for by its parent, the pid still exists: a zombie, gone."""
    tag = process_tag(child.pid)
    os.kill(child.pid, signal.SIGKILL)
    stat = Path(f"/proc/{child.pid}/stat")

    async def zombie() -> bool:
        return stat.read_text().rpartition(")")[2].split()[0] == "Z"

    await eventually(zombie, "the killed child to be a zombie", 10.0, every=0.005)
    assert is_gone(worker(child.pid, tag))


def test_a_pid_reused_by_another_process_is_gone(child: subprocess.Popen[bytes]) -> None:
    """A live pid whose start time is not the recorded one: the worker's pid was reused."""
    tag = process_tag(child.pid)
    assert tag is not None
    namespace, _, started = tag.rpartition("/")
    assert not is_gone(worker(child.pid, tag))
    assert is_gone(worker(child.pid, f"{namespace}/{int(started) + 1}"))


def test_what_this_host_cannot_tell_is_not_gone(child: subprocess.Popen[bytes]) -> None:
    """Another host name, another boot or pid namespace, no tag, a pid <= 0: never gone,
    even for a pid that names nothing here (the lease decides)."""
    tag = process_tag(child.pid)
    assert tag is not None
    child.kill()
    child.wait()
    boot, pid_ns, started = tag.split("/")
    assert is_gone(worker(child.pid, tag))
    assert not is_gone(worker(child.pid, tag, host="elsewhere.example"))
    assert not is_gone(worker(child.pid, f"{boot}/pid:[1]/{started}"))
    assert not is_gone(worker(child.pid, f"another-boot/{pid_ns}/{started}"))
    assert not is_gone(worker(child.pid, None))
    assert not is_gone(worker(0, tag))
    assert not is_gone(worker(-1, tag))
