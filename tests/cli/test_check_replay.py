"""``perdure check-replay``, ``perdure export`` and ``perdure.testing.check_replay``.

Real processes for each code version (one process holds one definition per workflow
name): v1 of a module ``shop`` starts a run and leaves it waiting on a hook; then the
check runs with an incompatible v2 (it charges before it reserves), with a compatible
v2 (it adds a step after the wait), and, on the exported log, in a "user's test suite"
process of each version. On SQLite and PostgreSQL, and the database is the same row for
row before and after every check.
"""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
import textwrap
from collections.abc import AsyncIterator
from pathlib import Path

import asyncpg
import pytest

from pg import fresh_database

DEADLINE = 60.0

V1 = """
from perdure import define_hook, step, workflow

go = define_hook(dict, name="shop-go")

@step(name="shop.reserve")
async def reserve(order: str) -> str:
    return f"reserved {order}"

@step(name="shop.charge")
async def charge(order: str) -> str:
    return f"charged {order}"

@workflow(name="shop-checkout", version="v1")
async def checkout(order: str) -> list[str]:
    done = [await reserve(order)]
    await go.create(token=f"go-{order}")
    done.append(await charge(order))
    return done
"""

V2_INCOMPATIBLE = V1.replace('version="v1"', 'version="v2"').replace(
    "    done = [await reserve(order)]\n", "    done = [await charge(order)]\n"
)
V2_COMPATIBLE = V1.replace('version="v1"', 'version="v2"').replace(
    "    done.append(await charge(order))\n",
    "    done.append(await charge(order))\n    done.append(await reserve(order + '-extra'))\n",
)

START_ON_V1 = """
import asyncio, sys
from perdure import Engine
import shop

async def main() -> None:
    async with Engine(sys.argv[1]) as engine:
        for order in ("o1", "o2"):
            await engine.start(shop.checkout, order, run_id=f"run-{order}")
        while not all([await engine.store.get_hook(f"go-{o}") for o in ("o1", "o2")]):
            await asyncio.sleep(0.02)
        await engine.start(shop.checkout, "o3", run_id="run-o3")  # this one ends
        while not await engine.store.get_hook("go-o3"):
            await asyncio.sleep(0.02)
        await shop.go.resume("go-o3", {})
        await (await engine.get_run("run-o3")).result(timeout=30)

asyncio.run(main())
"""

CHECK_EXPORT = """
import sys
from perdure.testing import check_replay
import shop
check_replay(shop.checkout, sys.argv[1])
print("replays")
"""


def _env(code: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in {"PERDURE_DATABASE_URL", "COLUMNS"}}
    env["NO_COLOR"] = "1"
    env["PYTHONPATH"] = os.pathsep.join([str(code), env.get("PYTHONPATH", "")])
    return env


def _run(code: Path, *argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, *argv],
        capture_output=True,
        text=True,
        check=False,
        timeout=DEADLINE,
        env=_env(code),
        cwd=code,
    )


def _perdure(code: Path, url: str, *args: str) -> subprocess.CompletedProcess[str]:
    return _run(code, "-m", "perdure", *args, "--database-url", url)


def _version(tmp_path: Path, name: str, source: str) -> Path:
    folder = tmp_path / name
    folder.mkdir()
    (folder / "shop.py").write_text(textwrap.dedent(source))
    return folder


@pytest.fixture(params=["sqlite", "postgres"])
async def database(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path}/shop.db"
        return
    async with fresh_database() as url:
        yield url


async def dump(url: str) -> list[str]:
    """Every row of every table, in a stable order: what "changes no row" compares."""
    if url.startswith("sqlite"):
        with sqlite3.connect(url.removeprefix("sqlite:///")) as lite:
            return list(lite.iterdump())
    conn = await asyncpg.connect(url)
    try:
        tables = await conn.fetch(
            "SELECT tablename FROM pg_tables WHERE schemaname = 'public' ORDER BY tablename"
        )
        rows: list[str] = []
        for (table,) in tables:
            found = await conn.fetch(f'SELECT * FROM "{table}"')  # noqa: S608 (catalog names)
            rows += sorted(f"{table}: {tuple(row.values())!r}" for row in found)
        return rows
    finally:
        await conn.close()


async def test_check_replay_and_check_replay_of_an_export(database: str, tmp_path: Path) -> None:
    v1 = _version(tmp_path, "v1", V1)
    bad = _version(tmp_path, "v2_bad", V2_INCOMPATIBLE)
    good = _version(tmp_path, "v2_good", V2_COMPATIBLE)
    started = _run(v1, "-c", START_ON_V1, database)
    assert started.returncode == 0, started.stderr
    before = await dump(database)

    same = _perdure(v1, database, "check-replay", "--module", "shop")
    assert (same.returncode, same.stdout) == (0, ""), same.stderr
    assert "all 2 runs replay" in same.stderr

    blocked = _perdure(bad, database, "check-replay", "--module", "shop")
    assert blocked.returncode == 1, blocked.stderr
    assert "run run-o1 of workflow 'shop-checkout' would block" in blocked.stdout
    assert "run run-o2 " in blocked.stdout
    assert "run-o3" not in blocked.stdout  # ended: not checked without --include-finished
    assert "started on version v1; this code is version v2" in blocked.stdout
    assert "durable call #1 is step 'shop.charge' (shop.charge#1)" in blocked.stdout
    assert "the log holds step 'shop.reserve' (shop.reserve#1" in blocked.stdout
    assert "shop.py:16 in checkout: done = [await charge(order)]" in blocked.stdout
    assert "2 of 2 runs would block" in blocked.stderr

    finished = _perdure(
        bad, database, "check-replay", "--module", "shop", "--include-finished", "--limit", "5"
    )
    assert finished.returncode == 1
    assert "run run-o3 " in finished.stdout
    assert "3 of 3 runs would block" in finished.stderr

    compatible = _perdure(good, database, "check-replay", "-m", "shop", "--include-finished")
    assert compatible.returncode == 0, compatible.stdout + compatible.stderr
    assert "all 3 runs replay" in compatible.stderr

    exported = _perdure(v1, database, "export", "run-o1")
    assert exported.returncode == 0, exported.stderr
    assert "run-o1" == json.loads(exported.stdout)["run_id"]
    path = tmp_path / "run.json"
    path.write_text(exported.stdout)

    assert await dump(database) == before  # nothing above wrote a row

    ok = _run(good, "-c", CHECK_EXPORT, str(path))
    assert (ok.returncode, ok.stdout.strip()) == (0, "replays"), ok.stderr
    refused = _run(bad, "-c", CHECK_EXPORT, str(path))
    assert refused.returncode == 1
    assert "perdure.ReplayDivergence" in refused.stderr or "ReplayDivergence" in refused.stderr
    assert "durable call #1 is step 'shop.charge'" in refused.stderr
    assert "shop.py:16 in checkout" in refused.stderr


async def test_unknown_modules_and_runs_are_usage_errors(tmp_path: Path) -> None:
    v1 = _version(tmp_path, "v1", V1)
    url = f"sqlite:///{tmp_path}/shop.db"
    assert _run(v1, "-c", START_ON_V1, url).returncode == 0

    missing = _perdure(v1, url, "check-replay", "--module", "no_such_module")
    assert missing.returncode == 2
    assert "no_such_module" in missing.stderr
    unknown = _perdure(v1, url, "export", "no-such-run")
    assert unknown.returncode == 2
    assert "no run with id 'no-such-run'" in unknown.stderr
