"""``perdure stream``: a run's durable stream in a terminal, run as a real subprocess."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

import stream_cli_workflows as wf
from perdure import Engine

pytestmark = pytest.mark.slow

DEADLINE = 15.0


def argv(url: str, *args: str) -> list[str]:
    return [sys.executable, "-m", "perdure", "stream", *args, "--database-url", url]


def env() -> dict[str, str]:
    found = {k: v for k, v in os.environ.items() if k not in {"PERDURE_DATABASE_URL", "COLUMNS"}}
    return found | {"NO_COLOR": "1"}


def stream(url: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        argv(url, *args), capture_output=True, text=True, env=env(), timeout=DEADLINE, check=False
    )


async def test_an_ended_run_prints_text_json_and_retractions(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/cli.db"
    async with Engine(url) as engine:
        run = await engine.start(wf.speech, "ended")
        assert await run.result(timeout=DEADLINE) == "said"
    done = stream(url, run.id, "tokens")
    assert done.returncode == 0, done.stderr
    # Text runs together; a value that is not text gets a line of its own.
    assert done.stdout == '{"phase": "start"}\nOops\nHello, world!\n'
    assert "attempt 1 of speak#1 failed: chunks 1 are retracted" in done.stderr

    committed = stream(url, run.id, "tokens", "--committed")
    assert committed.stdout == '{"phase": "start"}\nHello, world!\n'
    assert committed.stderr == ""

    lines = [
        json.loads(line) for line in stream(url, run.id, "tokens", "--json").stdout.splitlines()
    ]
    assert lines[0] == {"index": 0, "value": {"phase": "start"}}
    assert lines[2] == {"index": 2, "retracted": [1], "step": "speak#1", "attempt": 1}
    assert [line.get("value") for line in lines[3:]] == ["Hello", ", world", "!\n"]

    assert stream(url, run.id, "tokens", "--from", "-2").stdout == ", world!\n"
    assert stream(url, run.id, "tokens", "--from", "4", "--json").stdout.count("\n") == 2
    assert stream(url, run.id).stdout == ""  # no stream "default": nothing, at once


async def test_it_follows_a_live_run_until_it_ends(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/live.db"
    wf.gates["live"] = asyncio.Event()
    async with Engine(url) as engine:
        run = await engine.start(wf.speech, "live")
        process = await asyncio.create_subprocess_exec(
            *argv(url, run.id, "tokens"),
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            env=env(),
        )
        assert process.stdout is not None
        got = b""
        async with asyncio.timeout(DEADLINE):
            while b"Hello" not in got:  # printed while the step still runs
                got += await process.stdout.read(1)
        assert (await run.status()).value == "running"
        wf.gates["live"].set()
        async with asyncio.timeout(DEADLINE):
            rest, _ = await process.communicate()
        assert process.returncode == 0
        assert (got + rest).decode() == '{"phase": "start"}\nOops\nHello, world!\n'


def test_unknown_runs_and_bad_names_are_usage_errors(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/empty.db"

    async def create() -> None:
        async with Engine(url, worker=False):
            pass

    asyncio.run(create())
    done = stream(url, "nope")
    assert (done.returncode, done.stderr.strip()) == (2, "error: no run with id 'nope'")
    done = stream(url, "nope", "")
    assert done.returncode == 2
    assert "stream name" in done.stderr
