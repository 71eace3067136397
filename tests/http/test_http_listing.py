"""Attributes, deadlines and pages in view: the HTTP API and ``perdure runs``/``show``.

The HTTP API answers through `httpx.ASGITransport` on every store; the CLI runs as a
real subprocess on SQLite.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from typing import TYPE_CHECKING, Any

import httpx
import pytest

import perdure
from helpers import fake_clock, wait_for_hook
from perdure import Engine, define_hook, workflow
from perdure.http import create_app

if TYPE_CHECKING:
    from pathlib import Path

    from conftest import EngineFactory

hold = define_hook(str, name="listing-hold")


@workflow
async def labelled(customer: str, n: int) -> str:
    """Label the run, then wait on a hook."""
    perdure.set_attributes(customer=customer, n=n, vip=n == 0)
    return await hold.create(token=f"listing-{customer}-{n}")


async def _start_four(engine: Engine) -> list[str]:
    """Four labelled runs, each waiting on its hook; their ids, oldest first."""
    ids = []
    for customer, n in [("acme", 0), ("acme", 1), ("globex", 2), ("acme", 3)]:
        fake_clock(engine).advance("1s")  # newest first, by created_at
        ids.append((await engine.start(labelled, customer, n, timeout="1d")).id)
        await wait_for_hook(engine, f"listing-{customer}-{n}")
    return ids


def _client(engine: Engine) -> httpx.AsyncClient:
    app = create_app(engine, token=None)
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://localhost")


async def test_runs_are_filtered_by_attribute_and_paged(engine: Engine) -> None:
    """GET /runs?attr=key:value (repeatable, ANDed) finds runs by attribute; limit and
    after page them with the `next` cursor; each run carries its attributes and
    deadline."""
    oldest, second, _, newest = await _start_four(engine)
    async with _client(engine) as http:
        acme = (await http.get("/runs", params={"attr": "customer:acme"})).json()
        assert [run["id"] for run in acme["runs"]] == [newest, second, oldest]
        assert acme["next"] is None
        assert acme["runs"][0]["attributes"] == {"customer": "acme", "n": 3, "vip": False}
        assert acme["runs"][0]["deadline_at"] is not None

        both = await http.get("/runs", params=[("attr", "customer:acme"), ("attr", "vip:true")])
        assert [run["id"] for run in both.json()["runs"]] == [oldest]

        first = (await http.get("/runs", params={"attr": "customer:acme", "limit": 2})).json()
        assert [run["id"] for run in first["runs"]] == [newest, second]
        rest = await http.get(
            "/runs", params={"attr": "customer:acme", "limit": 2, "after": first["next"]}
        )
        assert ([run["id"] for run in rest.json()["runs"]], rest.json()["next"]) == ([oldest], None)

        detail = (await http.get(f"/runs/{oldest}")).json()
        assert detail["attributes"] == {"customer": "acme", "n": 0, "vip": True}
        assert detail["deadline_at"] is not None

        for params, words in [
            ({"attr": "customer"}, "key:value"),
            ({"attr": "not a key:x"}, "identifier"),
            ({"after": "nope"}, "not a cursor"),
        ]:
            refused = await http.get("/runs", params=params)
            assert refused.status_code == 400, params
            assert words in refused.json()["error"], refused.json()
    for token in ["acme-0", "acme-1", "globex-2", "acme-3"]:
        await hold.resume(f"listing-{token}", "done")


def _openapi_list_parameters(document: dict[str, Any]) -> set[str]:
    return {p["name"] for p in document["paths"]["/runs"]["get"]["parameters"]}


async def test_the_openapi_document_describes_attr_and_after(engine: Engine) -> None:
    """The OpenAPI document lists attr and after, and the runs' new fields."""
    async with _client(engine) as http:
        document = (await http.get("/openapi.json")).json()
    assert {"attr", "after", "limit"} <= _openapi_list_parameters(document)
    assert "next" in json.dumps(document["components"]["schemas"]["RunList"])
    summary = json.dumps(document["components"]["schemas"]["RunSummary"])
    assert "attributes" in summary
    assert "deadline_at" in summary


@pytest.mark.slow
@pytest.mark.parametrize("store_kind", ["sqlite"])
async def test_perdure_runs_filters_pages_and_shows_attributes(
    make_engine: EngineFactory, tmp_path: Path
) -> None:
    """``perdure runs --attr`` (repeatable) filters, ``--limit``/``--after`` page with the
    printed cursor, the table has an attributes column, and ``perdure show`` prints the
    attributes and the deadline; a bad --attr is a usage error."""
    url = f"sqlite:///{tmp_path}/t.db"
    async with make_engine() as engine:
        oldest, second, _, newest = await _start_four(engine)
    listed = json.loads(await _cli(url, "runs", "--attr", "customer=acme", "--json"))
    assert [run["id"] for run in listed] == [newest, second, oldest]
    assert listed[0]["attributes"] == {"customer": "acme", "n": 3, "vip": False}
    both = json.loads(await _cli(url, "runs", "--attr", "customer=acme", "--attr", "n=1", "--json"))
    assert [run["id"] for run in both] == [second]

    table = await _cli(url, "runs", "--attr", "customer=acme", "--limit", "2")
    assert newest in table
    assert oldest not in table
    assert "customer=acme n=3 vip=false" in table
    cursor = table.split("next page: --after ")[1].split()[0]
    rest = await _cli(url, "runs", "--attr", "customer=acme", "--limit", "2", "--after", cursor)
    assert oldest in rest
    assert newest not in rest
    assert "next page" not in rest

    code, out, err = await _cli_result(
        url, "runs", "--attr", "customer=acme", "--limit", "2", "--json"
    )
    assert (code, len(json.loads(out))) == (0, 2)  # stdout stays one JSON array
    assert f"next page: --after {cursor}" in err

    # --since: the pages end with the runs created since then.
    async with make_engine() as engine:
        cutoff = (await engine.get_run(second)).record.created_at.isoformat()
    recent = await _cli(url, "runs", "--attr", "customer=acme", "--limit", "1", "--since", cutoff)
    assert newest in recent
    cursor = recent.split("next page: --after ")[1].split()[0]
    last = await _cli(
        url, "runs", "--attr", "customer=acme", "--limit", "1", "--since", cutoff, "--after", cursor
    )
    assert second in last
    assert "next page" not in last  # the oldest is before the cutoff

    shown = await _cli(url, "show", oldest)
    assert "customer=acme n=0 vip=true" in shown
    assert "deadline" in shown
    code, _, err = await _cli_result(url, "runs", "--attr", "customer")
    assert code == 2
    assert "KEY=VALUE" in err


async def _cli(url: str, *args: str) -> str:
    code, out, err = await _cli_result(url, *args)
    assert code == 0, err
    return out


async def _cli_result(url: str, *args: str) -> tuple[int | None, str, str]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "perdure",
        *args,
        "--database-url",
        url,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env={"NO_COLOR": "1", "COLUMNS": "250", "PATH": ""},
    )
    async with asyncio.timeout(30):
        out, err = await proc.communicate()
    return proc.returncode, out.decode(), err.decode()
