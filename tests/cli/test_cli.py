"""The `perdure` command line, run as a real subprocess against a real SQLite file.

A module-wide database holds four runs made by an in-test Engine (completed, failed,
waiting on a hook, pending); tests that change runs make their own database.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sqlite3
import subprocess
import sys
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import pytest

import cli_workflows as wf
from helpers import run_fresh_python
from perdure import Engine, EventType, RunStatus, WorkflowCancelled, WorkflowFailed
from perdure._tracing import run_trace_id
from perdure.stores import open_store

TESTS = Path(__file__).resolve().parent
WORKFLOWS = str(TESTS / "cli_workflows.py")
DEADLINE = 15.0
"""Seconds to wait for a command or a condition before the test fails."""
CONTRACT_KEYS = {"id", "workflow", "status", "created_at"}


@dataclass
class Result:
    """What a command did."""

    code: int
    out: str
    err: str

    def json(self) -> object:
        return json.loads(self.out)


def _argv(url: str | None, args: tuple[str, ...]) -> list[str]:
    url_option = ["--database-url", url] if url is not None else []
    return [sys.executable, "-m", "perdure", *args, *url_option]


def _env(extra: dict[str, str] | None = None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in {"PERDURE_DATABASE_URL", "COLUMNS"}}
    env["NO_COLOR"] = "1"
    return env | (extra or {})


def cli(url: str | None, *args: str, env: dict[str, str] | None = None) -> Result:
    """Run ``perdure ARGS --database-url URL`` and wait for it."""
    done = subprocess.run(
        _argv(url, args),
        capture_output=True,
        text=True,
        timeout=DEADLINE,
        env=_env(env),
        check=False,
    )
    return Result(done.returncode, done.stdout, done.stderr)


async def acli(url: str, *args: str) -> Result:
    """`cli` without blocking the event loop (an in-test Engine keeps working)."""
    proc = await asyncio.create_subprocess_exec(
        *_argv(url, args), stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=_env()
    )
    async with asyncio.timeout(DEADLINE):
        out, err = await proc.communicate()
    assert proc.returncode is not None
    return Result(proc.returncode, out.decode(), err.decode())


def assert_clean_error(result: Result, code: int, text: str) -> None:
    """The command failed with ``code`` and one ``error:`` line containing ``text``."""
    assert result.code == code, result
    assert result.err.startswith("error: "), result.err
    assert text in result.err, result.err
    assert "Traceback" not in result.err


@dataclass
class Populated:
    """The module-wide database and the ids of its runs."""

    url: str
    path: Path
    completed: str
    failed: str
    waiting: str
    pending: str


async def _populate(url: str) -> Populated:
    async with Engine(url) as engine:
        completed = await engine.start(wf.double_it, 21)
        assert await completed.result(timeout=DEADLINE) == 42
        failed = await engine.start(wf.fail_it, "boom")
        with pytest.raises(WorkflowFailed):
            await failed.result(timeout=DEADLINE)
        waiting = await engine.start(wf.wait_for_decision, "tok-ro")
        async with asyncio.timeout(DEADLINE):
            while await engine.store.get_hook("tok-ro") is None:
                await engine.changed().wait()
    async with Engine(url, worker=False) as engine:
        pending = await engine.start(wf.double_it, 1)
    path = Path(url.removeprefix("sqlite:///"))
    return Populated(url, path, completed.id, failed.id, waiting.id, pending.id)


@pytest.fixture(scope="module")
def db(tmp_path_factory: pytest.TempPathFactory) -> Populated:
    """A database with a completed, a failed, a waiting and a pending run."""
    folder = tmp_path_factory.mktemp("cli")
    return asyncio.run(_populate(f"sqlite:///{folder}/runs.db"))


@pytest.fixture
def url(tmp_path: Path) -> str:
    """A fresh database of this test's own."""
    return f"sqlite:///{tmp_path}/own.db"


# -- help and reading -----------------------------------------------------------------


def test_help_lists_every_command() -> None:
    """`perdure --help` (as `python -m perdure` and as the script) names every command."""
    result = cli(None, "--help")
    assert result.code == 0
    for command in ("worker", "runs", "show", "events", "hooks", "cancel", "resume-hook"):
        assert command in result.out
    assert "rerun" in result.out
    assert "fork" in result.out
    assert "web" in result.out
    script = Path(sys.executable).parent / "perdure"
    version = subprocess.run(
        [str(script), "--version"], capture_output=True, text=True, timeout=DEADLINE, check=False
    )
    assert version.returncode == 0
    assert version.stdout.startswith("perdure ")


def test_runs_table_shows_every_run(db: Populated) -> None:
    """`perdure runs` prints a table with every run's id, workflow and status."""
    result = cli(db.url, "runs")
    assert result.code == 0, result
    for run_id in (db.completed, db.failed, db.waiting, db.pending):
        assert run_id in result.out
    for word in ("completed", "failed", "running", "pending", "cli-double", "cli-wait"):
        assert word in result.out
    assert "\x1b[" not in result.out  # no colour when not a terminal


def test_runs_json_has_the_contract_keys(db: Populated) -> None:
    """`perdure runs --json` prints a JSON array, newest first, with the contract's keys."""
    result = cli(db.url, "runs", "--json")
    assert result.code == 0, result
    listed = result.json()
    assert isinstance(listed, list)
    assert [r["id"] for r in listed] == [db.pending, db.waiting, db.failed, db.completed]
    for row in listed:
        assert set(row) >= CONTRACT_KEYS | {"updated_at", "started_at", "completed_at", "error"}
        assert datetime.fromisoformat(row["created_at"]).tzinfo is not None
    by_id = {r["id"]: r for r in listed}
    assert by_id[db.completed]["status"] == "completed"
    assert by_id[db.waiting]["status"] == "running"
    assert by_id[db.pending]["status"] == "pending"
    assert by_id[db.failed]["error"]["message"] == "boom"


def test_runs_filters(db: Populated) -> None:
    """--status, --workflow, --limit and --since narrow the list; a bad --since is usage."""

    def ids(*args: str) -> list[str]:
        result = cli(db.url, "runs", "--json", *args)
        assert result.code == 0, result
        listed = result.json()
        assert isinstance(listed, list)
        return [r["id"] for r in listed]

    assert ids("--status", "failed") == [db.failed]
    assert ids("--workflow", "cli-double") == [db.pending, db.completed]
    assert ids("--limit", "1") == [db.pending]
    assert len(ids("--since", "1h")) == 4
    assert ids("--since", "2999-01-01T00:00:00") == []
    assert cli(db.url, "runs", "--since", "yesterday-ish").code == 2
    assert cli(db.url, "runs", "--status", "sleeping").code == 2


def test_database_url_defaults_to_the_environment(db: Populated) -> None:
    """Without --database-url, commands use $PERDURE_DATABASE_URL."""
    result = cli(None, "runs", "--json", env={"PERDURE_DATABASE_URL": db.url})
    assert result.code == 0, result
    listed = result.json()
    assert isinstance(listed, list)
    assert len(listed) == 4


def test_show_prints_the_timeline(db: Populated) -> None:
    """`perdure show` gives steps, sleeps, hooks, outputs and errors with tracebacks."""
    done = cli(db.url, "show", db.completed)
    assert done.code == 0, done
    for text in (db.completed, "cli-double", "sleep#1", "double#1", "completed", "output: 42"):
        assert text in done.out
    failed = cli(db.url, "show", db.failed)
    assert failed.code == 0, failed
    for text in ("explode#1", "FatalError: boom", "Traceback (most recent call last)"):
        assert text in failed.out
    waiting = cli(db.url, "show", db.waiting)
    assert waiting.code == 0, waiting
    assert "waiting on: hook 'cli-decision' (token 'tok-ro')" in waiting.out


def test_show_json_has_the_run_and_its_events(db: Populated) -> None:
    """`perdure show --json` prints one object: the run's fields, its events and steps."""
    result = cli(db.url, "show", db.completed, "--json")
    assert result.code == 0, result
    shown = result.json()
    assert isinstance(shown, dict)
    assert set(shown) >= CONTRACT_KEYS | {"events", "steps", "input", "output"}
    assert shown["id"] == db.completed
    assert shown["output"] == 42
    events = shown["events"]
    assert [e["seq"] for e in events] == list(range(1, len(events) + 1))
    assert events[0]["type"] == EventType.RUN_CREATED.value
    assert events[-1]["type"] == EventType.RUN_COMPLETED.value
    assert set(events[0]) == {"seq", "type", "correlation_id", "data", "created_at"}
    assert [s["name"] for s in shown["steps"]] == ["double"]


def test_events_prints_the_raw_log(db: Populated) -> None:
    """`perdure events` lists every entry of the log, as a table or as JSON."""
    listed = cli(db.url, "events", db.completed, "--json")
    assert listed.code == 0, listed
    events = listed.json()
    assert isinstance(events, list)
    table = cli(db.url, "events", db.completed)
    assert table.code == 0, table
    for event in events:
        assert event["type"] in table.out
    assert {"run_created", "sleep_started", "step_completed", "run_completed"} <= {
        e["type"] for e in events
    }


def test_hooks_lists_live_tokens(db: Populated) -> None:
    """`perdure hooks` lists the live hook's token and run; --run narrows to one run."""
    table = cli(db.url, "hooks")
    assert table.code == 0, table
    assert "tok-ro" in table.out
    assert db.waiting in table.out
    listed = cli(db.url, "hooks", "--json").json()
    assert listed == [
        {
            "token": "tok-ro",
            "name": "cli-decision",
            "kind": "hook",
            "run_id": db.waiting,
            "correlation_id": listed[0]["correlation_id"],  # type: ignore[index]
            "created_at": listed[0]["created_at"],  # type: ignore[index]
        }
    ]
    assert cli(db.url, "hooks", "--run", db.completed, "--json").json() == []


def test_unknown_run_id_exits_2(db: Populated) -> None:
    """Every command given a run id that does not exist says so on one line, exit 2."""
    for args in (
        ("show", "no-such-run"),
        ("events", "no-such-run"),
        ("rerun", "no-such-run"),
        ("fork", "no-such-run", "--from-step", "a#1"),
        ("hooks", "--run", "no-such-run"),
    ):
        assert_clean_error(cli(db.url, *args), 2, "no run with id 'no-such-run'")
    cancelled = cli(db.url, "cancel", "no-such-run")
    assert_clean_error(cancelled, 2, "no run with id 'no-such-run'")


def test_database_that_cannot_be_opened(tmp_path: Path) -> None:
    """An unsupported, malformed or unusable database URL is one clear error line."""
    unsupported = cli("mysql://localhost/app", "runs")
    assert_clean_error(unsupported, 1, "cannot open database mysql://localhost/app")
    assert_clean_error(cli("sqlite:///", "runs"), 2, "cannot open database sqlite:///")
    (tmp_path / "a-file").write_text("not a folder")
    blocked = f"sqlite:///{tmp_path}/a-file/runs.db"
    assert_clean_error(cli(blocked, "runs"), 2, f"cannot open database {blocked}: ")
    (tmp_path / "garbage.db").write_text("this is not an SQLite database, not at all" * 100)
    garbage = f"sqlite:///{tmp_path}/garbage.db"
    assert_clean_error(cli(garbage, "show", "x"), 1, f"cannot open database {garbage}: ")


def _inbox_rows(path: Path) -> int:
    with sqlite3.connect(path) as conn:
        (count,) = conn.execute("SELECT count(*) FROM hook_inbox").fetchone()
    assert isinstance(count, int)
    return count


async def _snapshot(url: str, run_id: str) -> tuple[object, ...]:
    store = open_store(url)
    await store.open()
    try:
        record = await store.get_run(run_id)
        events = await store.events(run_id)
        hook = await store.get_hook("tok-ro")
    finally:
        await store.close()
    assert record is not None
    return (record, len(events), hook)


def test_resume_hook_rejects_bad_input_and_writes_nothing(db: Populated) -> None:
    """Bad JSON and unknown tokens exit 2; a payload failing the schema exits 1; none writes."""
    before = asyncio.run(_snapshot(db.url, db.waiting))
    assert_clean_error(
        cli(db.url, "resume-hook", "tok-ro", "--data", "{not json"), 2, "not valid JSON"
    )
    assert_clean_error(
        cli(db.url, "resume-hook", "tok-nope", "--data", "{}"),
        2,
        "no live hook holds token 'tok-nope'",
    )
    invalid = cli(
        db.url, "resume-hook", "tok-ro", "--data", '{"approved": "perhaps"}', "--module", WORKFLOWS
    )
    assert_clean_error(invalid, 1, "approved")
    assert "cli-decision" in invalid.err
    assert asyncio.run(_snapshot(db.url, db.waiting)) == before
    assert _inbox_rows(db.path) == 0


def test_resume_hook_without_the_module_checks_the_schema_the_run_stored(db: Populated) -> None:
    """Without --module, a payload failing the JSON Schema the run stored with its hook
    exits 1 naming the field, and nothing is written (the run would fail to decode it)."""
    before = asyncio.run(_snapshot(db.url, db.waiting))
    wrong_type = cli(db.url, "resume-hook", "tok-ro", "--data", '{"approved": "perhaps"}')
    assert_clean_error(wrong_type, 1, "hook 'cli-decision': approved: ")
    missing = cli(db.url, "resume-hook", "tok-ro", "--data", '{"note": "no decision"}')
    assert_clean_error(missing, 1, "hook 'cli-decision': approved: Field required")
    assert asyncio.run(_snapshot(db.url, db.waiting)) == before
    assert _inbox_rows(db.path) == 0


def test_resume_hook_refuses_what_no_database_keeps_and_writes_nothing(db: Populated) -> None:
    """The HTTP API's checks hold here too: NaN is not JSON (exit 2); a NUL character,
    validated or not, is refused (exit 1); nothing is written."""
    before = asyncio.run(_snapshot(db.url, db.waiting))
    assert_clean_error(
        cli(db.url, "resume-hook", "tok-ro", "--data", '{"approved": NaN}'), 2, "NaN is not JSON"
    )
    nul = '{"approved": true, "note": "a\\u0000b"}'
    assert_clean_error(cli(db.url, "resume-hook", "tok-ro", "--data", nul), 1, "NUL")
    validated = cli(db.url, "resume-hook", "tok-ro", "--data", nul, "--module", WORKFLOWS)
    assert_clean_error(validated, 1, "NUL")
    assert asyncio.run(_snapshot(db.url, db.waiting)) == before
    assert _inbox_rows(db.path) == 0


_TRACED_CLI = """
import json, sys
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

exporter = InMemorySpanExporter()
provider = TracerProvider()
provider.add_span_processor(SimpleSpanProcessor(exporter))
trace.set_tracer_provider(provider)

from perdure.cli import main

sys.argv = ["perdure", *ARGV]
try:
    main()
except SystemExit as stop:
    code = stop.code
print(json.dumps({
    "code": code,
    "spans": [
        {
            "name": span.name,
            "run_id": (span.attributes or {}).get("perdure.run_id"),
            "links": [link.context.trace_id for link in span.links],
        }
        for span in exporter.get_finished_spans()
    ],
}))
"""


# -- changing runs ----------------------------------------------------------------------


async def test_cancel_reports_each_run(url: str) -> None:
    """`perdure cancel` cancels pending runs, and exits 1 for an ended run, 2 for an unknown."""
    async with Engine(url) as engine:
        done = await engine.start(wf.double_it, 2)
        assert await done.result(timeout=DEADLINE) == 4
    async with Engine(url, worker=False) as engine:
        pending = [(await engine.start(wf.double_it, n)).id for n in range(5)]
        result = await acli(url, "cancel", *pending)
        assert result.code == 0, result
        assert result.out.count(": cancelled") == 5
        for run_id in pending:
            assert await (await engine.get_run(run_id)).status() is RunStatus.CANCELLED
        again = await acli(url, "cancel", pending[0], done.id, "--json")
        assert again.code == 1, again
        assert again.json() == [
            {"id": pending[0], "result": "already_cancelled", "status": "cancelled"},
            {"id": done.id, "result": "already_completed", "status": "completed"},
        ]
        mixed = await acli(url, "cancel", done.id, "nope")
        assert mixed.code == 2, mixed
        assert await (await engine.get_run(done.id)).status() is RunStatus.COMPLETED


async def _wait_for_hook(engine: Engine, token: str) -> None:
    async with asyncio.timeout(DEADLINE):
        while await engine.store.get_hook(token) is None:
            await engine.changed().wait()


async def test_cancel_ends_a_waiting_run_cancelled(url: str) -> None:
    """A run waiting on a hook, cancelled from the command line, ends cancelled."""
    async with Engine(url) as engine:
        run = await engine.start(wf.wait_for_decision, "tok-cancel")
        await _wait_for_hook(engine, "tok-cancel")
        result = await acli(url, "cancel", run.id)
        assert result.code == 0, result
        assert "cancel requested" in result.out
        with pytest.raises(WorkflowCancelled):
            await run.result(timeout=DEADLINE)
        assert await engine.store.get_hook("tok-cancel") is None


async def test_resume_hook_completes_a_waiting_run(url: str, tmp_path: Path) -> None:
    """`perdure resume-hook` delivers a payload, validated with --module or, without it,
    against the schema the run stored."""
    async with Engine(url) as engine:
        validated = await engine.start(wf.wait_for_decision, "tok-a")
        as_given = await engine.start(wf.wait_for_decision, "tok-b")
        await _wait_for_hook(engine, "tok-a")
        await _wait_for_hook(engine, "tok-b")
        result = await acli(
            url, "resume-hook", "tok-a", "--data", '{"approved": true}', "--module", WORKFLOWS
        )
        assert result.code == 0, result
        assert "not validated" not in result.err
        assert await validated.result(timeout=DEADLINE) == "approved"
        payload = tmp_path / "payload.json"
        payload.write_text('{"approved": false, "note": "later"}')
        result = await acli(url, "resume-hook", "tok-b", "--data", f"@{payload}")
        assert result.code == 0, result
        assert "not validated" not in result.err
        assert await as_given.result(timeout=DEADLINE) == "rejected: later"


async def test_resume_hook_emits_the_resume_span(url: str) -> None:
    """`perdure resume-hook` resumes as the Engine does: a ``perdure.resume_hook`` span
    naming the run it reached, linked to the run's trace."""
    async with Engine(url) as engine:
        waiting = await engine.start(wf.wait_for_decision, "tok-traced")
        await _wait_for_hook(engine, "tok-traced")
        argv = ["resume-hook", "tok-traced", "--data", '{"approved": true}']
        argv += ["--module", WORKFLOWS, "--database-url", url]
        printed = await asyncio.to_thread(run_fresh_python, _TRACED_CLI.replace("ARGV", repr(argv)))
        assert await waiting.result(timeout=DEADLINE) == "approved"

    traced = json.loads(printed.splitlines()[-1])
    assert traced["code"] == 0
    resumes = [span for span in traced["spans"] if span["name"] == "perdure.resume_hook"]
    assert [(waiting.id, [run_trace_id(waiting.id)])] == [
        (span["run_id"], span["links"]) for span in resumes
    ]


async def test_rerun_starts_the_same_workflow_with_the_same_input(url: str) -> None:
    """`perdure rerun` prints a new run's id; that run completes with the same result."""
    async with Engine(url) as engine:
        original = await engine.start(wf.double_it, 21)
        assert await original.result(timeout=DEADLINE) == 42
        result = await acli(url, "rerun", original.id, "--module", WORKFLOWS)
        assert result.code == 0, result
        new_id = result.out.strip()
        assert new_id
        assert new_id != original.id
        again = await engine.get_run(new_id)
        assert again.workflow == "cli-double"
        assert await again.result(timeout=DEADLINE) == 42
        assert (await again.refresh()).input == (await original.refresh()).input


async def test_worker_runs_a_pending_run_and_exits_0_on_sigterm(url: str) -> None:
    """`perdure worker MODULE` picks up a pending run, and SIGTERM stops it cleanly."""
    async with Engine(url, worker=False) as engine:
        run = await engine.start(wf.double_it, 5)
        proc = await asyncio.create_subprocess_exec(
            *_argv(url, ("worker", "cli_workflows")),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=_env(),
            cwd=TESTS,  # the current directory is on the path: `cli_workflows` imports
        )
        try:
            assert proc.stdout is not None
            async with asyncio.timeout(DEADLINE):
                ready = (await proc.stdout.readline()).decode()
            assert ready.startswith("perdure worker "), ready
            assert "cli-double" in ready
            assert await run.result(timeout=DEADLINE) == 10
            proc.send_signal(signal.SIGTERM)
            async with asyncio.timeout(DEADLINE):
                rest, err = await proc.communicate()
        finally:
            if proc.returncode is None:
                proc.kill()
                await proc.wait()
        assert proc.returncode == 0, err.decode()
        assert "stopped" in rest.decode()
