"""``perdure resume-hook`` under arbitrary ``--data`` and tokens (hypothesis), on SQLite.

The command runs in this process (Typer's `CliRunner`), which is what keeps many examples
fast; the real subprocess is tests/cli/test_cli.py's. Never a traceback: a valid payload
exits 0 and is stored exactly once, a payload that fails the hook's schema or holds what
no database keeps exits 1, text that is not JSON or a token no live hook holds exits 2,
and nothing is stored but valid payloads. What is valid is decided by
`helpers.approval_outcome`, apart from perdure's own checks.
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
from typing import TYPE_CHECKING, Any, Literal

import pydantic
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from helpers import REFUSED, approval_outcome, approval_payloads, wait_for_hook
from perdure import Engine, _hooks, define_hook, workflow
from perdure.cli import app

if TYPE_CHECKING:
    from pathlib import Path

TOKEN = "t-cli-props"


class Approval(pydantic.BaseModel):
    """The hook's type."""

    decision: Literal["approved", "changes"]
    notes: str | None = None


approvals = define_hook(Approval, name="cli-props-approval")


@workflow(name="cli-props-collect")
async def collect(token: str) -> None:
    """Take approvals for ever."""
    async for _ in approvals.create(token=token):
        pass


SETTINGS = settings(
    max_examples=40,
    derandomize=True,
    database=None,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)


def _waiting_run(tmp_path: Path) -> str:
    """A database with a run waiting on `TOKEN` (its worker gone: payloads stay in the
    inbox, where the test counts them); its URL."""
    url = f"sqlite:///{tmp_path}/t.db"

    async def start() -> None:
        async with Engine(url) as engine:
            await engine.start(collect, TOKEN)
            await wait_for_hook(engine, TOKEN)

    asyncio.run(start())
    return url


def _inbox(url: str) -> list[Any]:
    with sqlite3.connect(url.removeprefix("sqlite:///")) as conn:
        rows = conn.execute("SELECT payload FROM hook_inbox ORDER BY id").fetchall()
    return [json.loads(payload) for (payload,) in rows]


def _no_constant(name: str) -> Any:
    raise ValueError(name)


def _expected_exit(text: str, *, typed: bool) -> tuple[int, Any]:
    """The exit code ``--data TEXT`` must give, and what it stores (`REFUSED`: nothing)."""
    if text.startswith("@"):
        return 2, REFUSED  # a file that does not exist (or stdin, empty here)
    try:
        payload = json.loads(text, parse_constant=_no_constant)
    except (ValueError, RecursionError):
        return 2, REFUSED
    stored = approval_outcome(payload, typed=typed)
    return (1, stored) if stored is REFUSED else (0, stored)


def _texts() -> st.SearchStrategy[str]:
    def dumped(payload: Any) -> str:
        return json.dumps(payload, ensure_ascii=False)

    return st.one_of(approval_payloads().map(dumped), approval_payloads().map(dumped), st.text())


def _check(url: str, args: list[str], expected: int, stored: Any) -> int:
    before = _inbox(url)
    result = CliRunner().invoke(app, [*args, "--database-url", url])
    output = f"{result.output}{getattr(result, 'stderr', '')}"
    assert result.exception is None or isinstance(result.exception, SystemExit), (
        args,
        result.exception,
    )
    assert "Traceback" not in output, (args, output)
    assert expected == result.exit_code, (args, output)
    if stored is REFUSED:
        assert before == _inbox(url), args
    else:
        assert [*before, stored] == _inbox(url), args
    return result.exit_code


@pytest.mark.parametrize("typed", [True, False], ids=["module", "no-module"])
def test_resume_hook_stores_a_valid_payload_once_and_refuses_the_rest(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, typed: bool
) -> None:
    """Any ``--data``: exit 0 and stored once, or exit 1 (fails the schema, or holds what
    no database keeps) or 2 (not JSON) and nothing stored; never a traceback. Without
    the hook's module, the schema the run stored is what judges."""
    url = _waiting_run(tmp_path)
    if not typed:
        monkeypatch.delitem(_hooks._registry, approvals.name)
    codes: list[int] = []

    @SETTINGS
    @given(text=_texts())
    @example(text='{"decision": "approved"}')
    @example(text='{"decision": "maybe"}')
    @example(text='{"decision": "approved", "notes": "a\\u0000b"}')
    @example(text='{"decision": "approved", "x": NaN}')
    @example(text="@/no/such/file.json")
    def resume(text: str) -> None:
        expected, stored = _expected_exit(text, typed=typed)
        codes.append(_check(url, ["resume-hook", TOKEN, "--data", text], expected, stored))

    resume()
    assert {0, 1, 2} <= set(codes), codes


def test_resume_hook_with_any_token_exits_2_and_stores_nothing(tmp_path: Path) -> None:
    """A token no live hook holds, whatever its text, exits 2 (unknown token or wrong
    usage), with no traceback, and nothing is stored."""
    url = _waiting_run(tmp_path)

    @SETTINGS
    @given(token=st.text(min_size=1, max_size=20) | st.sampled_from(["x\ud800", "-x", "--"]))
    def resume(token: str) -> None:
        if token == TOKEN:
            return
        _check(url, ["resume-hook", token, "--data", '{"decision": "approved"}'], 2, REFUSED)

    resume()
