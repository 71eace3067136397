"""The soak's faults (`soak.py`): workers killed, frozen and stopped, the server restarted.

Worker faults come one at a time, at random intervals (exponential, mean
``fault_every`` seconds), each of one kind chosen at random:

- ``kill``: SIGKILL of a worker, then a replacement is started (a crash, an OOM kill);
- ``stop``: SIGSTOP for 1.5 to 3 leases, then SIGCONT (a frozen VM, a long GC pause):
  the other workers take its runs over meanwhile, and when it comes back it must not
  begin anything for runs it lost. The worker frozen is the one that began the most
  steps in the last half second, and half the time the pause waits for the traffic's
  next burst of runs, so that the frozen worker holds many runs mid-step;
- ``term``: SIGTERM with the worker's grace period (a deploy), then a replacement; the
  worker must exit 0 within its grace, having finished its steps in flight.

Independently, the PostgreSQL server is restarted every 30 to 90 s: stopped (``fast``
most times, ``immediate`` -- a crash the server recovers from -- one time in three),
kept down for up to 1.5 leases, started again. Each fault is recorded with its times
(`soak_cluster.Fault`). A worker that exits when no fault asked it to is a finding, and
is replaced so that the soak goes on.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import signal
import time
from pathlib import Path

from soak_cluster import Fault, Server, Worker


async def _pause(seconds: float, until: float) -> bool:
    """Sleep ``seconds``, or until the monotonic time ``until``; whether it is not yet."""
    await asyncio.sleep(max(0.0, min(seconds, until - time.monotonic())))
    return time.monotonic() < until


class Chaos:
    """The worker processes, and the faults done to them and to the server."""

    def __init__(
        self,
        server: Server,
        folder: Path,
        chaos: random.Random,
        *,
        workers: int,
        lease: float,
        grace: float,
        fault_every: float,
    ) -> None:
        self.server = server
        self.folder = folder
        self.random = chaos
        self.size = workers
        self.lease = lease
        self.grace = grace
        self.fault_every = fault_every
        self.burst: asyncio.Event | None = None
        """Set by the traffic when a burst of runs has started (see `workers_loop`)."""
        self.workers: list[Worker] = []
        self.all_workers: list[Worker] = []
        self.faults: list[Fault] = []
        self.findings: list[str] = []
        self._named = 0

    async def spawn(self) -> Worker:
        """Start one more worker and wait until it is ready (again, while the server is
        down: a worker that cannot reach the database at start exits 1)."""
        for _ in range(30):
            self._named += 1
            name = f"w{self._named}"
            worker = Worker(name, self.folder, self.server.url, self.lease, self.grace)
            self.all_workers.append(worker)
            try:
                await worker.ready()
            except RuntimeError as exc:
                worker.expected_exit = True
                worker.signal(signal.SIGKILL)
                print(f"{name} did not start ({exc}); starting another", flush=True)
                await asyncio.sleep(1.0)
                continue
            self.workers.append(worker)
            return worker
        raise RuntimeError("no worker would start 30 times in a row")

    async def start(self) -> None:
        await asyncio.gather(*(self.spawn() for _ in range(self.size)))

    def _retire(self, worker: Worker) -> None:
        worker.expected_exit = True
        self.workers.remove(worker)

    async def workers_loop(self, until: float) -> None:
        """Inject worker faults until the monotonic time ``until``."""
        while await _pause(self.random.expovariate(1 / self.fault_every), until):
            kind = self.random.choice(["kill", "stop", "term"])
            if kind == "stop" and self.burst is not None and self.random.random() < 0.5:
                # Half the pauses land while a burst of runs is in flight.
                self.burst.clear()
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(max(0.0, until - time.monotonic())):
                        await self.burst.wait()
                await asyncio.sleep(self.random.uniform(0.5, 2.0))
            await self.check_workers()
            victim = await self.busiest() if kind == "stop" else self.random.choice(self.workers)
            await getattr(self, kind)(victim)

    async def busiest(self) -> Worker:
        """The worker that began the most steps in the last half second (a frozen worker
        that holds nothing proves little)."""

        def sizes() -> list[int]:
            files = [self.folder / "effects" / f"{w.pid}.log" for w in self.workers]
            return [f.stat().st_size if f.exists() else 0 for f in files]

        before = sizes()
        await asyncio.sleep(0.5)
        grown = [after - was for after, was in zip(sizes(), before, strict=True)]
        if max(grown) == 0:
            return self.random.choice(self.workers)
        return self.workers[grown.index(max(grown))]

    async def kill(self, victim: Worker) -> None:
        began = time.time()
        self._retire(victim)
        victim.signal(signal.SIGKILL)
        await victim.exited(10)
        self.faults.append(Fault("kill", victim.pid, began, time.time(), victim.name))
        await self.spawn()

    async def stop(self, victim: Worker) -> None:
        seconds = self.lease * self.random.uniform(1.5, 3.0)
        began = time.time()
        victim.signal(signal.SIGSTOP)
        try:
            await asyncio.sleep(seconds)
        finally:
            victim.signal(signal.SIGCONT)
            self.faults.append(Fault("stop", victim.pid, began, time.time(), victim.name))

    async def term(self, victim: Worker) -> None:
        began = time.time()
        self._retire(victim)
        victim.signal(signal.SIGTERM)
        code = await victim.exited(self.grace + 20)
        ended = time.time()
        if code is None:
            victim.signal(signal.SIGKILL)
            await victim.exited(10)
            self.findings.append(
                f"{victim.name} (pid {victim.pid}) had not exited {self.grace + 20:.0f}s after "
                f"SIGTERM with a {self.grace:g}s grace: killed"
            )
            self.faults.append(Fault("kill", victim.pid, ended, time.time(), "after SIGTERM"))
        elif code != 0:
            self.findings.append(
                f"{victim.name} (pid {victim.pid}) exited {code} after SIGTERM: {victim.tail()}"
            )
        self.faults.append(Fault("term", victim.pid, began, ended, f"{victim.name} exit {code}"))
        await self.spawn()

    async def server_loop(self, until: float) -> None:
        """Restart the server every 30 to 90 s until the monotonic time ``until``."""
        while await _pause(self.random.uniform(30, 90), until):
            mode = "immediate" if self.random.random() < 1 / 3 else "fast"
            down_for = self.random.uniform(0, 1.5 * self.lease)
            began = time.time()
            await asyncio.to_thread(self.server.stop, mode)
            await asyncio.sleep(down_for)
            await asyncio.to_thread(self.server.start)
            ended = time.time()
            detail = f"-m {mode}, down {ended - began:.1f}s"
            self.faults.append(Fault("restart", 0, began, ended, detail))

    async def check_workers(self) -> None:
        """Record and replace the workers that exited when no fault asked them to."""
        for worker in list(self.workers):
            if not worker.alive:
                self.findings.append(
                    f"{worker.name} (pid {worker.pid}) exited on its own with "
                    f"{worker.process.returncode}: {worker.tail()}"
                )
                self._retire(worker)
                await self.spawn()

    async def stop_all(self) -> None:
        """SIGTERM every worker and wait for them; SIGKILL those still there after it."""
        for worker in self.workers:
            worker.expected_exit = True
            worker.signal(signal.SIGTERM)
        for worker in self.workers:
            code = await worker.exited(self.grace + 20)
            if code is None:
                worker.signal(signal.SIGKILL)
                await worker.exited(10)
                self.findings.append(f"{worker.name} did not stop on SIGTERM at the end")
            elif code != 0:
                self.findings.append(f"{worker.name} exited {code} at the end: {worker.tail()}")

    def kill_all(self) -> None:
        """SIGKILL every worker still running (cleanup when the soak itself fails)."""
        for worker in self.all_workers:
            if worker.alive:
                worker.signal(signal.SIGCONT)
                worker.signal(signal.SIGKILL)
