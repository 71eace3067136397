"""What the soak (`soak.py`) runs and breaks: a private PostgreSQL server and worker processes.

- `Server`: a PostgreSQL server of the soak's own (``initdb`` into the soak's folder, a
  free port), because the soak restarts it every 30 to 90 s: the machine's shared
  server, which others use, is never touched. Debian's binaries
  (``/usr/lib/postgresql/*/bin``); as root, they run as the ``postgres`` user.
- `Worker`: one ``python -m perdure worker bench/soak_workflows.py --queue soak``
  process, its output in files of the soak's folder (a pipe nobody reads would block it).
- `Fault`: one fault the soak injected, with when it began and ended (wall clock, the
  clock the side-effect lines use), which the checks use to explain re-executions.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

BENCH = Path(__file__).resolve().parent
WORKFLOWS = BENCH / "soak_workflows.py"


@dataclass(frozen=True, slots=True)
class Fault:
    """A fault injected at ``began`` (epoch seconds) and over at ``ended``.

    ``kind`` is ``kill`` (SIGKILL), ``stop`` (SIGSTOP until ``ended``, then SIGCONT),
    ``term`` (SIGTERM; ``ended`` when the process exited) or ``restart`` (the server
    down from ``began`` to ``ended``); ``pid`` is the worker's (0 for a restart).
    """

    kind: str
    pid: int
    began: float
    ended: float
    detail: str = ""


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


class Server:
    """A private PostgreSQL server in ``folder``."""

    def __init__(self, folder: Path) -> None:
        found = sorted(
            Path("/usr/lib/postgresql").glob("*/bin/initdb"), key=lambda p: int(p.parts[-3])
        )
        if not found:
            raise SystemExit("PostgreSQL server binaries (/usr/lib/postgresql/*/bin) not found")
        self.bindir = found[-1].parent
        self.folder = folder
        self.port = _free_port()
        self.folder.mkdir(parents=True, exist_ok=True)
        if os.geteuid() == 0:  # initdb and postgres refuse to run as root
            shutil.chown(self.folder, "postgres", "postgres")

    @property
    def url(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    @property
    def log(self) -> Path:
        return self.folder / "server.log"

    def _run(self, *argv: str) -> None:
        command = [str(self.bindir / argv[0]), *argv[1:]]
        if os.geteuid() == 0:
            command = ["runuser", "-u", "postgres", "--", *command]
        done = subprocess.run(command, capture_output=True, text=True, check=False)
        if done.returncode != 0:
            raise RuntimeError(f"{' '.join(command)} failed:\n{done.stdout}{done.stderr}")

    def init(self) -> None:
        """Create the cluster: trust authentication, no fsync (see RELIABILITY.md)."""
        data = str(self.folder / "data")
        self._run("initdb", "-D", data, "-U", "postgres", "--auth=trust", "--no-sync")

    def start(self) -> None:
        """Start the server; return once it accepts connections."""
        options = (
            f"-c listen_addresses=127.0.0.1 -p {self.port} -k {self.folder} "
            "-c fsync=off -c max_connections=300"
        )
        data = str(self.folder / "data")
        self._run("pg_ctl", "-D", data, "-l", str(self.log), "-w", "-o", options, "start")

    def stop(self, mode: str = "fast") -> None:
        """Stop the server (``fast``: sessions are ended cleanly; ``immediate``: a crash
        that the next start recovers from)."""
        self._run("pg_ctl", "-D", str(self.folder / "data"), "-m", mode, "-w", "stop")


class Worker:
    """A ``perdure worker`` process serving the soak's workflows and its queue."""

    def __init__(self, name: str, folder: Path, url: str, lease: float, grace: float) -> None:
        self.name = name
        self.out = folder / f"{name}.out"
        self.err = folder / f"{name}.err"
        env = {
            **os.environ,
            "SOAK_DIR": str(folder),
            "PYTHONUNBUFFERED": "1",
            "NO_COLOR": "1",
            "PYTHONPATH": os.pathsep.join(filter(None, [str(BENCH), os.environ.get("PYTHONPATH")])),
        }
        argv = [
            *(sys.executable, "-m", "perdure", "worker", str(WORKFLOWS), "--queue", "soak"),
            *("--processes", "1"),  # a SIGKILL kills the worker itself
            *("--database-url", url, "--lease", str(lease), "--grace", str(grace)),
        ]
        with self.out.open("wb") as out, self.err.open("wb") as err:
            self.process = subprocess.Popen(argv, stdout=out, stderr=err, env=env)
        self.pid = self.process.pid
        self.id = ""
        self.expected_exit = False
        """Set when the soak kills or stops it on purpose."""

    @property
    def alive(self) -> bool:
        return self.process.poll() is None

    async def ready(self, timeout: float = 60.0) -> None:
        """Wait for the ``perdure worker ID ready`` line."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for line in self.out.read_text(errors="replace").splitlines():
                if line.startswith("perdure worker ") and " ready " in line:
                    self.id = line.split()[2]
                    return
            if not self.alive:
                raise RuntimeError(f"{self.name} exited ({self.process.returncode}): {self.tail()}")
            await asyncio.sleep(0.05)
        raise RuntimeError(f"{self.name} not ready after {timeout:.0f}s: {self.tail()}")

    def tail(self, lines: int = 8) -> str:
        """The last lines of its standard error, for a report."""
        text = self.err.read_text(errors="replace") if self.err.exists() else ""
        return " | ".join(text.strip().splitlines()[-lines:])

    def signal(self, signum: int) -> None:
        if self.alive:
            self.process.send_signal(signum)

    async def exited(self, timeout: float) -> int | None:
        """Its exit code, or None if it is still running after ``timeout`` seconds."""
        deadline = time.monotonic() + timeout
        while self.alive and time.monotonic() < deadline:  # noqa: ASYNC110 - a child process
            await asyncio.sleep(0.05)
        return self.process.poll()
