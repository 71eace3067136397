"""``perdure worker --processes N``: one supervisor process, N worker processes.

A worker is one asyncio loop, so it keeps one core busy at most: the others serve only
through more processes. Each child is a whole ``perdure worker`` (this command again,
with the same options and ``--processes 1``), with an Engine of its own on the same
database. The store already shares runs between any number of workers, wherever they
are, so the supervisor shares nothing with its children but signals: it holds no run,
reads no run, and sends nothing through a pipe (no pickle, no shared memory).

- A child that exits while the supervisor is not stopping is started again (logged on
  stderr). The delay doubles for each child in a row of that slot that lived less than
  `STABLE` seconds (1 s, 2 s, 4 s, ... up to 30 s), so a child that dies at once is
  not restarted in a tight loop; a child that lived longer is followed at once.
- SIGTERM or SIGINT is forwarded to every child, which stops as a lone worker does (its
  running steps get ``--grace`` seconds, then it hands its runs back). The supervisor
  waits for them the grace period and `HANDBACK_MARGIN` more, then kills what is left.
  A second signal kills the children at once.
- A child knows it is supervised (``--supervised-by PID``, `watch_supervisor`): a
  repeated signal does not make it leave at once (under systemd the whole control
  group gets SIGTERM, then the supervisor forwards it: two signals that mean one stop),
  and it stops, as on SIGTERM, when the supervisor dies, so a ``kill -9`` of the
  supervisor leaves no worker behind.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import os
import signal
import sys
import threading
from typing import TYPE_CHECKING

from perdure._cli._output import err, out

if TYPE_CHECKING:
    from collections.abc import Callable

__all__ = [
    "FIRST_DELAY",
    "HANDBACK_MARGIN",
    "MAX_DELAY",
    "STABLE",
    "Supervisor",
    "restart_delay",
    "watch_supervisor",
]

STABLE = 30.0
"""Seconds a child must live for its exit not to count as one more quick failure.

Counted from its start, Python's own included, which takes seconds on a busy machine
(6 s measured on two cores at a load average of 12)."""
FIRST_DELAY = 1.0
"""Seconds before a child that died young is started again (then doubled each time)."""
MAX_DELAY = 30.0
"""The longest wait before a restart, however often a slot's children died young."""
HANDBACK_MARGIN = 10.0
"""Seconds a stopping child gets past its grace period to hand its runs back."""

_PR_SET_PDEATHSIG = 1
"""prctl(2): the signal the kernel sends this process when its parent dies (Linux)."""


def restart_delay(quick_failures: int) -> float:
    """Seconds to wait before starting a slot's child again.

    ``quick_failures``: how many children in a row died within `STABLE` seconds (0: the
    last one lived longer, and the next starts at once).
    """
    if quick_failures <= 0:
        return 0.0
    return min(MAX_DELAY, FIRST_DELAY * 2.0 ** (quick_failures - 1))


def describe_exit(code: int) -> str:
    """``exit code 1`` or ``SIGKILL``: how a child ended, as `asyncio` reports it."""
    if code < 0:
        with contextlib.suppress(ValueError):
            return signal.Signals(-code).name
        return f"signal {-code}"
    return f"exit code {code}"


class Supervisor:
    """Keeps ``count`` children of ``argv(index)`` running until SIGTERM or SIGINT."""

    def __init__(
        self,
        argv: Callable[[int], list[str]],
        count: int,
        *,
        grace: float,
        env: dict[str, str],
    ) -> None:
        self._argv = argv
        self._count = count
        self._grace = grace
        self._env = env
        self._children: dict[int, asyncio.subprocess.Process] = {}
        self._stop = asyncio.Event()
        self._signal = signal.SIGTERM
        self._killed = False

    async def run(self) -> int:
        """Supervise until stopped; 0 when every child stopped cleanly, else 1."""
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(NotImplementedError):  # Windows
                loop.add_signal_handler(signum, self._on_signal, signum)
        out().print(
            f"perdure supervisor (pid {os.getpid()}): starting {self._count} worker processes. "
            "Ctrl-C or SIGTERM stops them all.",
            soft_wrap=True,
        )
        keepers = [asyncio.create_task(self._keep(index)) for index in range(self._count)]
        await self._stop.wait()
        _, late = await asyncio.wait(keepers, timeout=self._grace + HANDBACK_MARGIN)
        if late:
            err().print(
                f"perdure supervisor: {len(late)} worker process(es) still running "
                f"{self._grace + HANDBACK_MARGIN:g}s after the signal: killing them",
                soft_wrap=True,
            )
            self._kill_all()
        codes = await asyncio.gather(*keepers)
        # A child the signal reached before it set its handlers held no run yet: it
        # died of the signal itself, which is as clean a stop as any.
        clean = not self._killed and all(code in {None, 0, -self._signal} for code in codes)
        out().print(
            f"perdure supervisor: {self._count} worker processes stopped"
            + ("" if clean else " (not all cleanly)"),
            soft_wrap=True,
        )
        return 0 if clean else 1

    def _on_signal(self, signum: int) -> None:
        if self._stop.is_set():  # a second Ctrl-C: leave now; other workers reap the runs
            err().print(
                f"{signal.Signals(signum).name} again: killing the worker processes",
                soft_wrap=True,
            )
            self._kill_all()
            return
        self._signal = signal.Signals(signum)
        self._stop.set()
        for child in self._children.values():
            _send(child, self._signal)

    def _kill_all(self) -> None:
        self._killed = True
        for child in self._children.values():
            _send(child, signal.SIGKILL)

    async def _keep(self, index: int) -> int | None:
        """Keep slot ``index`` running; the exit code of its last child once stopping."""
        quick_failures = 0
        while not self._stop.is_set():
            child = await asyncio.create_subprocess_exec(*self._argv(index), env=self._env)
            self._children[index] = child
            if self._stop.is_set():  # the signal came while it was starting
                _send(child, signal.SIGKILL if self._killed else self._signal)
            began = asyncio.get_running_loop().time()
            out().print(
                f"perdure supervisor: worker process {index + 1} started (pid {child.pid})",
                soft_wrap=True,
            )
            code = await child.wait()
            if self._stop.is_set():
                return code
            lived = asyncio.get_running_loop().time() - began
            quick_failures = quick_failures + 1 if lived < STABLE else 0
            delay = restart_delay(quick_failures)
            err().print(
                f"perdure supervisor: worker process {index + 1} (pid {child.pid}) ended "
                f"with {describe_exit(code)} after {lived:.1f}s; starting it again in "
                f"{delay:g}s",
                soft_wrap=True,
            )
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stop.wait(), delay)
        return None


def _send(child: asyncio.subprocess.Process, signum: int) -> None:
    if child.returncode is None:
        with contextlib.suppress(ProcessLookupError):  # it has just exited
            child.send_signal(signum)


def watch_supervisor(pid: int) -> None:
    """Stop this process (SIGTERM: a clean stop) when its supervisor ``pid`` dies.

    On Linux the kernel does it (PR_SET_PDEATHSIG); elsewhere a daemon thread checks the
    parent every second. A supervisor already gone stops the process at once.
    """
    if sys.platform == "linux":
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)
    else:

        def watch() -> None:
            while os.getppid() == pid:
                threading.Event().wait(1.0)
            os.kill(os.getpid(), signal.SIGTERM)

        threading.Thread(target=watch, name="perdure-supervisor-watch", daemon=True).start()
    if os.getppid() != pid:  # it died before the watch began
        os.kill(os.getpid(), signal.SIGTERM)
