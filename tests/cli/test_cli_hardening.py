"""The command line refuses bad input in one line, creates no database by reading, and
never prints JSON a parser refuses (issue 11). Real ``perdure`` subprocesses, real
SQLite files.

A module-wide database holds a completed run, a run waiting on a webhook and a run
waiting on a hook that takes any JSON object; its worker is gone, so what a command
would store stays in the hook inbox, where the tests count it.
"""

from __future__ import annotations

import asyncio
import json
import os
import sqlite3
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

import cli_hardening_workflows as wf
import cli_workflows
from helpers import wait_for_hook
from perdure import Engine

DEADLINE = 15.0
"""Seconds a command may take before the test fails."""

pytestmark = pytest.mark.slow


@dataclass
class Result:
    code: int
    out: str
    err: str


def cli(url: str, *args: str, stdin: bytes | None = None) -> Result:
    """Run ``perdure ARGS --database-url URL`` in a subprocess and wait for it."""
    env = {k: v for k, v in os.environ.items() if k not in {"PERDURE_DATABASE_URL", "COLUMNS"}}
    done = subprocess.run(
        [sys.executable, "-m", "perdure", *args, "--database-url", url],
        input=stdin,
        capture_output=True,
        timeout=DEADLINE,
        env=env | {"NO_COLOR": "1"},
        check=False,
    )
    return Result(done.returncode, done.stdout.decode(), done.stderr.decode())


def assert_usage_error(result: Result, text: str) -> None:
    """Exit 2 with one ``error:`` line that says ``text``, and no traceback."""
    assert result.code == 2, result
    assert result.err.startswith("error: "), result
    assert result.err.count("\n") == 1, result  # one line
    assert text in result.err, result
    assert "Traceback" not in result.err


def strict_json(text: str) -> Any:
    """``text`` parsed as JSON, refusing NaN and the infinities (as browsers and jq do)."""

    def refuse(name: str) -> Any:
        raise AssertionError(f"{name} is not JSON: {text[:300]}")

    return json.loads(text, parse_constant=refuse)


@dataclass
class Waiting:
    url: str
    path: Path
    completed: str
    webhook_token: str
    anything_token: str = "anything-1"


async def _populate(url: str) -> Waiting:
    async with Engine(url) as engine:
        done = await engine.start(cli_workflows.double_it, 21)
        assert await done.result(timeout=DEADLINE) == 42
        webhook = await engine.start(wf.wait_for_webhook)
        await engine.start(wf.wait_for_anything, "anything-1")
        await wait_for_hook(engine, "anything-1")
        hooks = await engine.store.list_hooks(run_id=webhook.id)
        while not hooks:
            await engine.changed().wait()
            hooks = await engine.store.list_hooks(run_id=webhook.id)
    path = Path(url.removeprefix("sqlite:///"))
    return Waiting(url, path, done.id, hooks[0].token)


@pytest.fixture(scope="module")
def db(tmp_path_factory: pytest.TempPathFactory) -> Waiting:
    folder = tmp_path_factory.mktemp("hardening")
    return asyncio.run(_populate(f"sqlite:///{folder}/runs.db"))


def inbox(path: Path) -> int:
    with sqlite3.connect(path) as conn:
        (count,) = conn.execute("SELECT count(*) FROM hook_inbox").fetchone()
    assert isinstance(count, int)
    return count


# -- --data and --since ----------------------------------------------------------------


def test_data_from_a_file_that_is_not_utf8_is_a_usage_error(db: Waiting, tmp_path: Path) -> None:
    """``--data @file`` and ``@-`` with bytes that are not UTF-8: exit 2, one line."""
    latin1 = tmp_path / "latin1.json"
    latin1.write_bytes('{"note": "café"}'.encode("latin-1"))

    from_file = cli(db.url, "resume-hook", db.anything_token, "--data", f"@{latin1}")
    from_stdin = cli(db.url, "resume-hook", db.anything_token, "--data", "@-", stdin=b"\xff{}")

    assert_usage_error(from_file, "is not UTF-8 text")
    assert_usage_error(from_stdin, "standard input is not UTF-8 text")
    assert inbox(db.path) == 0


def test_data_nested_deeper_than_json_parses_is_a_usage_error(db: Waiting, tmp_path: Path) -> None:
    """``--data`` 5,000 arrays deep, inline or in a file: exit 2 (not valid JSON)."""
    deep = "[" * 5000 + "]" * 5000
    (tmp_path / "deep.json").write_text(deep)

    inline = cli(db.url, "resume-hook", db.anything_token, "--data", deep)
    from_file = cli(db.url, "resume-hook", db.anything_token, "--data", f"@{tmp_path}/deep.json")

    assert_usage_error(inline, "--data is not valid JSON: nested too deeply")
    assert_usage_error(from_file, "is not valid JSON: nested too deeply")
    assert inbox(db.path) == 0


def test_a_payload_nested_deeper_than_a_workflow_reads_is_refused(db: Waiting) -> None:
    """JSON that parses but nests deeper than a workflow can decode (pydantic stops at
    200 levels) is refused (exit 1, nothing stored), as over HTTP and in Python."""
    deep = '{"a": ' * 250 + "1" + "}" * 250

    result = cli(db.url, "resume-hook", db.anything_token, "--data", deep)

    assert result.code == 1, result
    assert "nested more than 100 arrays or objects deep" in result.err
    assert "Traceback" not in result.err
    assert inbox(db.path) == 0


@pytest.mark.parametrize("since", ["99999999999d", "999999999d", "10000000000000000000000000d"])
def test_a_since_further_back_than_time_goes_is_a_usage_error(db: Waiting, since: str) -> None:
    """``perdure runs --since`` with a duration no date can be that far back: exit 2."""
    assert_usage_error(cli(db.url, "runs", "--since", since), f"--since {since!r}")


# -- one validation for every path -------------------------------------------------------


def test_resume_hook_refuses_a_webhooks_token(db: Waiting) -> None:
    """A webhook's token never takes a payload from the CLI, even one shaped like the
    request the HTTP app stores: exit 2, nothing stored (over HTTP they never cross)."""
    forged = json.dumps(
        {
            "method": "POST",
            "path": f"/webhooks/{db.webhook_token}",
            "query_string": "",
            "headers": {"x-signature": "forged"},
            "body": "{}",
            "body_encoding": "utf-8",
        }
    )

    result = cli(db.url, "resume-hook", db.webhook_token, "--data", forged)

    assert_usage_error(result, f"no live hook holds token {db.webhook_token!r}")
    assert inbox(db.path) == 0


@pytest.mark.parametrize(
    ("data", "code", "says"),
    [
        ('{"x": NaN}', 2, "NaN is not JSON"),
        ('{"x": Infinity}', 2, "Infinity is not JSON"),
        ('{"x": -Infinity}', 2, "-Infinity is not JSON"),
        ('{"x": "a\\u0000b"}', 1, "NUL character"),
        ('{"x": "\\ud800"}', 1, "lone surrogate"),
        ('{"\\udfff": 1}', 1, "lone surrogate"),
    ],
)
def test_resume_hook_refuses_what_the_http_api_refuses(
    db: Waiting, data: str, code: int, says: str
) -> None:
    """NaN and the infinities (not JSON: exit 2), NUL characters and lone surrogates
    (exit 1), in values or keys: refused by the CLI as by the HTTP API, nothing stored."""
    result = cli(db.url, "resume-hook", db.anything_token, "--data", data)

    assert result.code == code, result
    assert says in result.err
    assert "Traceback" not in result.err
    assert inbox(db.path) == 0


def test_json_output_never_holds_a_bare_nan(tmp_path: Path) -> None:
    """A NaN in a stored log (an older release, or a hand, wrote it) is printed by
    ``--json`` as the string "NaN": `show`, `events` and `runs` print JSON any parser
    reads."""
    url = f"sqlite:///{tmp_path}/nan.db"

    async def completed() -> str:
        async with Engine(url) as engine:
            run = await engine.start(cli_workflows.double_it, 21)
            assert await run.result(timeout=DEADLINE) == 42
            return run.id

    run_id = asyncio.run(completed())
    with sqlite3.connect(tmp_path / "nan.db") as conn:
        conn.execute("UPDATE runs SET output = 'NaN' WHERE id = ?", (run_id,))
        conn.execute(
            "UPDATE events SET data = replace(data, '42', 'NaN') "
            "WHERE run_id = ? AND type = 'run_completed'",
            (run_id,),
        )

    shown = cli(url, "show", run_id, "--json")
    events = cli(url, "events", run_id, "--json")

    assert (0, 0) == (shown.code, events.code), (shown, events)
    assert strict_json(shown.out)["output"] == "NaN"
    completed_event = strict_json(events.out)[-1]
    assert completed_event["type"] == "run_completed"
    assert "NaN" in json.dumps(completed_event["data"])


# -- reading creates nothing ---------------------------------------------------------------


@pytest.mark.parametrize(
    "args",
    [
        ("runs",),
        ("runs", "--json"),
        ("show", "r1"),
        ("events", "r1"),
        ("hooks",),
        ("cancel", "r1"),
        ("resume-hook", "t1", "--data", "{}"),
        ("rerun", "r1"),
        ("fork", "r1", "--from-step", "a#1"),
    ],
    ids=lambda args: args[0] if isinstance(args, tuple) else str(args),
)
def test_commands_refuse_a_database_that_does_not_exist(
    tmp_path: Path, args: tuple[str, ...]
) -> None:
    """A mistyped path is not made into an empty database: exit 2 naming the path, and
    neither the file nor its folders are created."""
    missing = tmp_path / "no" / "such" / "dir" / "x.db"

    result = cli(f"sqlite:///{missing}", *args)

    assert_usage_error(result, f"{missing} does not exist")
    assert not (tmp_path / "no").exists()


def test_a_relative_path_that_does_not_exist_is_refused_too(tmp_path: Path) -> None:
    """``sqlite:///relative.db`` is relative to the working directory: refused there."""
    env = {k: v for k, v in os.environ.items() if k != "PERDURE_DATABASE_URL"}
    done = subprocess.run(
        [sys.executable, "-m", "perdure", "runs", "--database-url", "sqlite:///sub/x.db"],
        capture_output=True,
        text=True,
        timeout=DEADLINE,
        cwd=tmp_path,
        env=env | {"NO_COLOR": "1"},
        check=False,
    )

    assert done.returncode == 2, done
    assert "sub/x.db does not exist" in done.stderr
    assert list(tmp_path.iterdir()) == []


def test_reading_an_existing_database_still_works(db: Waiting) -> None:
    """The check refuses only what does not exist: the module's database is listed."""
    listed = cli(db.url, "runs", "--json")

    assert listed.code == 0, listed
    assert db.completed in {run["id"] for run in strict_json(listed.out)}
