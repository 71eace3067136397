"""Durable streams across real processes: a worker, a reader, and a SIGKILL.

A worker process (``stream_programs/stream_child.py worker``) runs the workflows of
``stream_programs/stream_workflows.py``; a reader process (``... read``) follows a
stream and prints each item as it arrives. The test process starts runs and watches
through an Engine without a worker. On SQLite and on PostgreSQL.
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import asyncpg
import pytest

from helpers import ChildProcess
from perdure import Engine, StreamItem
from pg import clear_tables, run_in_thread

if TYPE_CHECKING:
    from collections.abc import Iterator

PROGRAMS = Path(__file__).resolve().parent / "stream_programs"
sys.path.insert(0, str(PROGRAMS))

import stream_workflows  # noqa: E402

pytestmark = pytest.mark.slow

DEADLINE = 60.0


@pytest.fixture(params=["sqlite", "postgres"])
def url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path}/streams.db"
    database: str = request.getfixturevalue("postgres_database")
    with contextlib.suppress(asyncpg.UndefinedTableError):  # no Engine opened it yet
        run_in_thread(clear_tables(database))
    return database


@pytest.fixture
def children(tmp_path: Path) -> Iterator[list[ChildProcess]]:
    started: list[ChildProcess] = []
    yield started
    for child in started:
        child.close()


def spawn(
    children: list[ChildProcess], folder: Path, url: str, *argv: str, **env: str
) -> ChildProcess:
    environment = {**os.environ, "PERDURE_DATABASE_URL": url, **env}
    child = ChildProcess(
        argv[0],
        [sys.executable, str(PROGRAMS / "stream_child.py"), *argv],
        folder,
        env=environment,
        every=0.01,
        timeout=DEADLINE,
    )
    children.append(child)
    return child


def items(child: ChildProcess) -> list[dict[str, Any]]:
    return [json.loads(line) for line in child.lines() if line.startswith("{")]


async def test_ten_thousand_chunks_reach_a_reader_in_another_process(
    url: str, tmp_path: Path, children: list[ChildProcess]
) -> None:
    count, pause_at = 10_000, 5_000
    async with Engine(url, worker=False) as engine:
        worker = spawn(children, tmp_path, url, "worker")
        await worker.line("worker ")
        run = await engine.start(stream_workflows.many_tokens, count, pause_at)
        reader = spawn(children, tmp_path, url, "read", run.id, "tokens")
        # The step holds at chunk 5,000 until the reader has shown one: it reads live.
        await reader.line('{"index": 0,')
        assert (await run.status()).value == "running"
        (tmp_path / "more").touch()
        await reader.line("end")
        assert await run.result(timeout=DEADLINE) == count
        got = items(reader)
        assert [item["index"] for item in got] == list(range(count))
        assert [item["value"] for item in got] == [f"token {n}" for n in range(count)]
        # A late reader, from an index, committed: the same chunks.
        late = spawn(
            children, tmp_path, url, "read", run.id, "tokens", "--start", "9990", "--committed"
        )
        await late.line("end")
        assert [item["index"] for item in items(late)] == list(range(9990, count))
        assert await worker.finish() == 0


async def test_after_a_sigkill_the_committed_stream_has_each_chunk_once(
    url: str, tmp_path: Path, children: list[ChildProcess]
) -> None:
    parts = 6
    async with Engine(url, worker=False) as engine:
        doomed = spawn(children, tmp_path, url, "worker", STREAM_HANG_AT="3")
        await doomed.line("worker ")
        run = await engine.start(stream_workflows.story, parts)
        reader = spawn(children, tmp_path, url, "read", run.id, "story")
        await doomed.line("step 3 ")  # it wrote "step 3" and hangs there
        await reader.line('{"index": 7,')  # the live reader saw it
        doomed.kill()
        survivor = spawn(children, tmp_path, url, "worker")
        assert await run.result(timeout=DEADLINE) == parts
        await reader.line("end")
        expected: list[Any] = []
        for n in range(parts):
            expected += [f"body {n}", f"step {n}"]
        expected.append("the end")
        committed = [item async for item in run.stream("story", committed=True)]
        assert [item.value for item in committed if isinstance(item, StreamItem)] == expected
        # The live reader saw the killed attempt's chunk, then its retraction.
        live = items(reader)
        assert live[7:10] == [
            {"index": 7, "value": "step 3"},
            {"index": 8, "retracted": [7]},
            {"index": 9, "value": "step 3"},
        ]
        assert [item["value"] for item in live if "value" in item] == [
            *expected[:8],
            *expected[7:],
        ]
        assert "step 3 2" in survivor.stdout()  # the second life ran attempt 2
        assert await survivor.finish() == 0
