"""Versions in view, ``perdure workers``, and a fork run by another process (issue 12).

Real processes for each code version (one process holds one definition per name): v1
of a module ``ship`` runs a run to its end and exits; a process with v2 forks it from
its second step and runs the fork (the first step's side effect is not repeated: the
effects are counted in a file), then stays up as a worker. Meanwhile ``perdure
workers`` lists it with the version it defines, ``perdure show`` and ``perdure runs``
give each run's version beside the live workers', the fork's origin, and say which
run no live worker can take. On SQLite and PostgreSQL.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from collections import Counter
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from helpers import ChildProcess
from perdure import Engine
from perdure._records import NewRun
from pg import fresh_database

pytestmark = pytest.mark.slow

DEADLINE = 60.0

V1 = """
import os
from pathlib import Path
from perdure import step, workflow

def effect(what: str) -> None:
    with (Path(os.environ["EFFECTS"])).open("a") as out:
        out.write(f"{what} {os.getpid()}\\n")

@step(name="ship.pay")
async def pay(order: str) -> str:
    effect("pay")
    return f"paid {order}"

@step(name="ship.send")
async def send(order: str) -> str:
    effect("send")
    return f"sent {order} by post"

@workflow(name="ship-order", version="v1")
async def ship(order: str) -> list[str]:
    return [await pay(order), await send(order)]
"""

V2 = V1.replace('version="v1"', 'version="v2"').replace("by post", "by courier")

RUN_ON_V1 = """
import asyncio, sys
from perdure import Engine
import ship

async def main() -> None:
    async with Engine(sys.argv[1]) as engine:
        run = await engine.start(ship.ship, "o-1", run_id="orig")
        print(await run.result(timeout=30))

asyncio.run(main())
"""

FORK_ON_V2 = """
import asyncio, json, sys
from perdure import Engine
import ship

async def main() -> None:
    async with Engine(sys.argv[1]) as engine:
        fork = await engine.fork("orig", from_step="ship.send#1")
        print("fork", fork.id, json.dumps(await fork.result(timeout=30)), flush=True)
        await asyncio.to_thread(sys.stdin.read)  # a live worker until the test is done

asyncio.run(main())
"""


def _env(code: Path, effects: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in {"PERDURE_DATABASE_URL", "COLUMNS"}}
    env.update(NO_COLOR="1", EFFECTS=str(effects), PYTHONUNBUFFERED="1")
    env["PYTHONPATH"] = os.pathsep.join([str(code), env.get("PYTHONPATH", "")])
    return env


def _version(tmp_path: Path, name: str, source: str) -> Path:
    folder = tmp_path / name
    folder.mkdir()
    (folder / "ship.py").write_text(textwrap.dedent(source))
    return folder


@pytest.fixture(params=["sqlite", "postgres"])
async def database(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path}/ship.db"
        return
    async with fresh_database() as url:
        yield url


async def test_a_fork_on_other_code_in_another_process_and_versions_in_view(
    database: str, tmp_path: Path
) -> None:
    """A v2 process forks a v1 run from its second step without paying again; the CLI
    shows the live worker's version, each run's, the fork's origin, and a run that no
    live worker defines."""
    effects = tmp_path / "effects.log"
    v1, v2 = _version(tmp_path, "v1", V1), _version(tmp_path, "v2", V2)

    def perdure(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "perdure", *args, "--database-url", database],
            capture_output=True,
            text=True,
            check=False,
            timeout=DEADLINE,
            env=_env(v2, effects),
            cwd=tmp_path,
        )

    def counted() -> Counter[str]:
        return Counter(line.split()[0] for line in effects.read_text().splitlines())

    first = subprocess.run(
        [sys.executable, "-c", RUN_ON_V1, database],
        capture_output=True,
        text=True,
        check=False,
        timeout=DEADLINE,
        env=_env(v1, effects),
        cwd=tmp_path,
    )
    assert first.returncode == 0, first.stderr
    assert counted() == Counter(pay=1, send=1)

    second = ChildProcess(
        "v2", [sys.executable, "-c", FORK_ON_V2, database], tmp_path, env=_env(v2, effects)
    )
    try:
        line = await second.line("fork ", timeout=DEADLINE)
        _, fork_id, result = line.split(" ", 2)
        assert json.loads(result) == ["paid o-1", "sent o-1 by courier"]
        assert counted() == Counter(pay=1, send=2)  # pay was not run again

        async with Engine(database, worker=False) as watcher:
            now = watcher.clock.now()
            await watcher.store.create_run(NewRun("lost", "ship-gone", {"order": "o"}), now)
            await watcher.store.create_run(NewRun("queued", "ship-order", {"order": "o"}), now)

        listed = perdure("workers", "--json")
        assert listed.returncode == 0, listed.stderr
        (worker,) = json.loads(listed.stdout)
        assert worker["pid"] == second.pid
        assert worker["workflows"]["ship-order"] == "v2"

        shown = perdure("show", fork_id, "--json")
        assert shown.returncode == 0, shown.stderr
        fork = json.loads(shown.stdout)
        assert (fork["forked_from"], fork["version"]) == ("orig", "v2")
        assert fork["live_versions"] == ["v2"]
        original = json.loads(perdure("show", "orig", "--json").stdout)
        assert (original["forked_from"], original["version"]) == (None, "v1")

        runs = {run["id"]: run for run in json.loads(perdure("runs", "--json").stdout)}
        assert runs["lost"]["stranded"] == "no live worker defines workflow 'ship-gone'"
        assert runs["lost"]["live_versions"] == []
        assert runs["queued"]["stranded"] is None
        assert runs["queued"]["live_versions"] == ["v2"]
        assert runs[fork_id]["forked_from"] == "orig"

        text = perdure("show", "lost").stdout
        assert "no live worker defines workflow 'ship-gone'" in text
        table = perdure("runs")  # the table on stdout, notes on stderr
        assert "ship-gone" in table.stdout
        assert "run lost: no live worker defines workflow 'ship-gone'" in table.stderr
        people = perdure("workers").stdout
        assert "ship-order (v2)" in people
        assert str(second.pid) in people
        assert "forked from  orig" in perdure("show", fork_id).stdout
    finally:
        second.close()
