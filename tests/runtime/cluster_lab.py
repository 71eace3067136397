"""What the cluster tests (test_cluster.py) drive: worker processes, a private PostgreSQL
server, and network namespaces standing in for hosts.

- `WorkerProcess`: a real ``python -m perdure worker`` process serving
  ``tests/runtime/cluster_programs/cluster_workflows.py`` (a `helpers.ChildProcess`).
- `Lab`: one test's folder (side-effect file, gates), database URL and workers; every
  worker it started is SIGKILLed when the test ends, pass or fail.
- `PrivatePostgres`: a PostgreSQL server of the test's own (`pg.private_postgres`,
  re-exported here), for tests that stop the server or cut hosts off from it: the
  machine's shared server, which other tests and people use, is never touched.
- `Hosts`: network namespaces joined to this one by veth pairs: two "hosts" whose
  only way to the server is their own virtual link, which a test can cut.

Every wait polls a condition with a deadline (`eventually`).
"""

from __future__ import annotations

import contextlib
import os
import secrets
import subprocess
import sys
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

import pytest

import helpers
from pg import PrivatePostgres, private_postgres

PROGRAMS = Path(__file__).resolve().parent / "cluster_programs"
sys.path.insert(0, str(PROGRAMS))  # the test process imports the workers' workflows too

from cluster_workflows import chain, expected, ticks  # noqa: E402

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable, Iterator

__all__ = [
    "PROGRAMS",
    "Effect",
    "Hosts",
    "Lab",
    "PrivatePostgres",
    "WorkerProcess",
    "chain",
    "eventually",
    "expected",
    "network_namespaces",
    "private_postgres",
    "ticks",
]

T = TypeVar("T")


async def eventually(condition: Callable[[], Awaitable[T | None]], what: str, timeout: float) -> T:
    """`helpers.eventually`, every 20 ms."""
    return await helpers.eventually(condition, what, timeout, every=0.02)


# -- worker processes ---------------------------------------------------------------------


class WorkerProcess(helpers.ChildProcess):
    """A ``perdure worker cluster_workflows`` process (optionally inside a namespace)."""

    def __init__(self, name: str, argv: list[str], env: dict[str, str], folder: Path) -> None:
        super().__init__(name, argv, folder, env=env, every=0.02, timeout=20.0)
        self.id = ""
        """The worker's id, once `ready` has seen it."""

    async def ready(self, timeout: float = 20.0) -> str:
        """Wait for the worker's ``perdure worker ID ready`` line; its id."""

        async def line() -> str | None:
            if self.process.poll() is not None:
                raise AssertionError(f"{self.name} exited with {self.process.returncode}")
            found = [x for x in self.lines() if x.startswith("perdure worker ")]
            return found[0].split()[2] if found else None

        self.id = await eventually(line, f"{self.name} to be ready", timeout)
        return self.id


@dataclass(frozen=True, slots=True)
class Effect:
    """One step attempt that began: which run, which step call, in which process."""

    run: str
    step: str
    pid: int


@dataclass
class Lab:
    """One test's folder, database and worker processes."""

    folder: Path
    url: str
    settings: dict[str, str] = field(default_factory=dict)
    """Environment variables every worker started from now on gets (CLUSTER_...)."""
    workers: list[WorkerProcess] = field(default_factory=list)

    def worker(
        self,
        name: str,
        *options: str,
        lease: float = 2.0,
        url: str | None = None,
        prefix: tuple[str, ...] = (),
    ) -> WorkerProcess:
        """Start ``[PREFIX...] python -m perdure worker cluster_workflows --lease L ...``."""
        argv = [
            *prefix,
            sys.executable,
            *("-m", "perdure", "worker", "cluster_workflows"),
            *("--database-url", url or self.url, "--lease", str(lease), *options),
        ]
        inherited = {k: v for k, v in os.environ.items() if k != "PERDURE_DATABASE_URL"}
        path = os.pathsep.join(filter(None, [str(PROGRAMS), inherited.get("PYTHONPATH")]))
        env = {
            **inherited,
            "PYTHONPATH": path,
            "PYTHONUNBUFFERED": "1",
            "NO_COLOR": "1",
            "CLUSTER_DIR": str(self.folder),
            **self.settings,
        }
        started = WorkerProcess(name, argv, env, self.folder)
        self.workers.append(started)
        return started

    def open_gate(self, name: str) -> None:
        (self.folder / f"gate-{name}").touch()

    def close_gate(self, name: str) -> None:
        (self.folder / f"gate-{name}").unlink(missing_ok=True)

    def effects(self) -> list[Effect]:
        """Every step attempt begun so far, in the order they began."""
        path = self.folder / "effects.log"
        if not path.exists():
            return []
        found = []
        for line in path.read_text().splitlines():
            run, step, pid = line.split(" ")
            found.append(Effect(run, step, int(pid)))
        return found

    def executions(self) -> Counter[tuple[str, str]]:
        """How many times each (run, step call) began."""
        return Counter((e.run, e.step) for e in self.effects())

    def close(self) -> None:
        for worker in self.workers:
            worker.close()


# -- hosts: network namespaces ------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Host:
    """A network namespace, and the veth pair that is its only link to this one."""

    namespace: str
    link: str
    """The veth end in this (the server's) namespace: cutting it cuts the host off."""
    server_ip: str
    """The address of this namespace on the link: where the host reaches the server."""

    @property
    def prefix(self) -> tuple[str, ...]:
        """The command prefix that runs a program on this host."""
        return ("ip", "netns", "exec", self.namespace)


@dataclass
class Hosts:
    """Network namespaces made for one test."""

    hosts: list[Host]
    subnet: str
    """The /16 every host's link is in."""

    def cut(self, host: Host) -> None:
        """Take the host's link down: its packets to and from the server are dropped."""
        _ip("link", "set", host.link, "down")


def _ip(*argv: str, namespace: str | None = None) -> None:
    command = ["ip", *(("-n", namespace) if namespace else ()), *argv]
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(command)}: {done.stderr.strip()}")


@contextlib.contextmanager
def network_namespaces(count: int) -> Iterator[Hosts]:
    """``count`` network namespaces, each with a veth pair to this one (10.X.N.0/24).

    Fails the test, saying why, when the namespaces cannot be made (not root, no
    ``ip``, no kernel support): a test about separate hosts must not pass without them.
    """
    tag = secrets.token_hex(3)
    second = 200 + secrets.randbelow(50)
    made: list[Host] = []
    try:
        for n in range(1, count + 1):
            namespace, link = f"perdure-{tag}-{n}", f"pd{tag}h{n}"
            try:
                _ip("netns", "add", namespace)
            except (RuntimeError, OSError) as exc:
                pytest.fail(
                    f"could not make network namespaces (root and `ip netns` are needed): {exc}",
                    pytrace=False,
                )
            host = Host(namespace, link, f"10.{second}.{n}.1")
            made.append(host)
            inside = f"pd{tag}n{n}"
            _ip("link", "add", link, "type", "veth", "peer", "name", inside)
            _ip("link", "set", inside, "netns", namespace)
            _ip("addr", "add", f"{host.server_ip}/24", "dev", link)
            _ip("link", "set", link, "up")
            _ip("addr", "add", f"10.{second}.{n}.2/24", "dev", inside, namespace=namespace)
            _ip("link", "set", inside, "up", namespace=namespace)
            _ip("link", "set", "lo", "up", namespace=namespace)
        yield Hosts(made, f"10.{second}.0.0/16")
    finally:
        for host in made:
            with contextlib.suppress(RuntimeError):
                _ip("link", "del", host.link)
            with contextlib.suppress(RuntimeError):
                _ip("netns", "del", host.namespace)
