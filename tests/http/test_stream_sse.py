"""``GET /runs/{id}/streams/{name}``: a run's durable stream as Server-Sent Events.

Through a real server first: uvicorn in a child process (``stream_programs/
sse_server.py``, with a worker), an HTTP client following the stream live, dropping
the connection and coming back with ``Last-Event-ID``; on SQLite and PostgreSQL. Then
the refusals and the OpenAPI document, in process.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import socket
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import asyncpg
import httpx
import pytest

from conftest import EngineFactory
from helpers import ChildProcess
from perdure import Engine
from perdure.http import create_app
from pg import clear_tables, run_in_thread

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Iterator

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "runtime" / "stream_programs"))

import stream_workflows

SERVER = Path(__file__).resolve().parent / "stream_programs" / "sse_server.py"
TOKEN = "sse-test-token"
DEADLINE = 30.0


async def events(response: httpx.Response) -> AsyncIterator[dict[str, Any]]:
    """The events of an SSE response, parsed: ``{"id", "event", "data"}``."""
    fields: dict[str, Any] = {}
    async for line in response.aiter_lines():
        if line:
            key, _, value = line.partition(": ")
            fields[key] = value
            continue
        if "event" in fields:
            yield {
                "id": int(fields["id"]) if "id" in fields else None,
                "event": fields["event"],
                "data": json.loads(fields["data"]),
            }
        fields = {}


async def read(
    http: httpx.AsyncClient,
    path: str,
    *,
    stop_at: int | None = None,
    headers: dict[str, str] | None = None,
) -> list[dict[str, Any]]:
    """The events of ``path`` until ``end`` (or the one with id ``stop_at``, then hang up)."""
    got: list[dict[str, Any]] = []
    async with http.stream("GET", path, headers=headers) as response:
        assert response.status_code == 200, await response.aread()
        assert response.headers["content-type"].startswith("text/event-stream")
        async for event in events(response):
            got.append(event)
            if event["event"] == "end" or event["id"] == stop_at:
                break
    return got


# -- through a real server --------------------------------------------------------------


@pytest.fixture(params=["sqlite", "postgres"])
def url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path}/sse.db"
    database: str = request.getfixturevalue("postgres_database")
    with contextlib.suppress(asyncpg.UndefinedTableError):  # no Engine opened it yet
        run_in_thread(clear_tables(database))
    return database


@pytest.fixture
def server(url: str, tmp_path: Path) -> Iterator[str]:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    child = ChildProcess(
        "server",
        [sys.executable, str(SERVER), str(port)],
        tmp_path,
        env={**os.environ, "PERDURE_DATABASE_URL": url},
        timeout=DEADLINE,
    )
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        child.close()


@pytest.mark.slow
async def test_sse_through_uvicorn_resumes_with_last_event_id(
    url: str, server: str, tmp_path: Path
) -> None:
    async with (
        Engine(url, worker=False) as engine,
        httpx.AsyncClient(
            base_url=server, headers={"Authorization": f"Bearer {TOKEN}"}, timeout=DEADLINE
        ) as http,
    ):
        await _wait_until_serving(http)
        run = await engine.start(stream_workflows.many_tokens, 10, 5)
        path = f"/runs/{run.id}/streams/tokens"
        # Live: the step holds at chunk 5 until the gate opens; hang up after chunk 4.
        first = await read(http, path, stop_at=4)
        assert [(e["id"], e["event"], e["data"]) for e in first] == [
            (n, "chunk", {"index": n, "value": f"token {n}"}) for n in range(5)
        ]
        assert (await run.status()).value == "running"
        (tmp_path / "more").touch()
        rest = await read(http, path, headers={"Last-Event-ID": "4"})
        assert [e["id"] for e in rest] == [5, 6, 7, 8, 9, None]
        assert [e["data"].get("value") for e in rest[:-1]] == [f"token {n}" for n in range(5, 10)]
        assert rest[-1] == {"id": None, "event": "end", "data": {}}
        assert await run.result(timeout=DEADLINE) == 10

        # A failed attempt: its chunks, then an event retracting them, then the retry's.
        shaky = await engine.start(stream_workflows.shaky_tokens, "one")
        path = f"/runs/{shaky.id}/streams/tokens"
        drafts = await read(http, path, stop_at=1)
        assert [e["data"]["value"] for e in drafts] == ["draft a", "draft b"]
        (tmp_path / "fail-one").touch()
        after = await read(http, path, headers={"Last-Event-ID": "1"})
        assert [(e["id"], e["event"]) for e in after] == [
            (2, "retracted"),
            (3, "chunk"),
            (None, "end"),
        ]
        assert after[0]["data"] == {"index": 2, "step": "shaky#1", "attempt": 1, "indices": [0, 1]}
        assert after[1]["data"] == {"index": 3, "value": "final"}
        committed = await read(http, f"{path}?committed=true")
        assert [(e["id"], e["event"]) for e in committed] == [(3, "chunk"), (None, "end")]
        assert await shaky.result(timeout=DEADLINE) == "final"


async def _wait_until_serving(http: httpx.AsyncClient) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + DEADLINE
    while True:
        try:
            if (await http.get("/openapi.json")).status_code == 200:
                return
        except httpx.TransportError:
            if loop.time() > deadline:
                raise
        await asyncio.sleep(0.05)


# -- refusals and the document ---------------------------------------------------------


@pytest.fixture
async def client(make_engine: EngineFactory) -> AsyncIterator[tuple[Engine, httpx.AsyncClient]]:
    async with make_engine() as engine:
        transport = httpx.ASGITransport(app=create_app(engine, token=TOKEN))
        async with httpx.AsyncClient(
            transport=transport,
            base_url="http://localhost",
            headers={"Authorization": f"Bearer {TOKEN}"},
        ) as http:
            yield engine, http


async def test_an_ended_run_streams_its_entries_and_ends(
    client: tuple[Engine, httpx.AsyncClient],
) -> None:
    engine, http = client
    run = await engine.start(stream_workflows.many_tokens, 3, -1)
    await run.result(timeout=DEADLINE)
    got = await read(http, f"/runs/{run.id}/streams/tokens")
    assert [e["id"] for e in got] == [0, 1, 2, None]
    assert [e["id"] for e in await read(http, f"/runs/{run.id}/streams/tokens?start=-1")] == [
        2,
        None,
    ]
    listed = await http.get(f"/runs/{run.id}/streams")
    assert listed.json() == {"streams": [{"name": "tokens", "length": 3}]}
    assert (await http.get(f"/runs/{run.id}/streams/nothing")).text.endswith(
        "event: end\ndata: {}\n\n"
    )


@pytest.mark.parametrize(
    ("query", "headers", "message"),
    [
        ("?start=x", {}, "start must be an integer"),
        ("?committed=maybe", {}, "committed must be true or false"),
        ("", {"Last-Event-ID": "seven"}, "Last-Event-ID must be the index"),
        ("", {"Last-Event-ID": "-2"}, "Last-Event-ID must be the index"),
    ],
)
async def test_bad_requests_are_400_naming_what(
    client: tuple[Engine, httpx.AsyncClient], query: str, headers: dict[str, str], message: str
) -> None:
    engine, http = client
    run = await engine.start(stream_workflows.many_tokens, 1, -1)
    answer = await http.get(f"/runs/{run.id}/streams/tokens{query}", headers=headers)
    assert answer.status_code == 400
    assert message in answer.json()["error"]


async def test_unknown_runs_are_404_and_the_token_is_required(
    client: tuple[Engine, httpx.AsyncClient],
) -> None:
    _, http = client
    assert (await http.get("/runs/nope/streams/tokens")).status_code == 404
    assert (await http.get("/runs/nope/streams")).status_code == 404
    http.headers.pop("Authorization")
    assert (await http.get("/runs/nope/streams/tokens")).status_code == 401


async def test_the_streams_are_in_the_openapi_document(
    client: tuple[Engine, httpx.AsyncClient],
) -> None:
    _, http = client
    paths = (await http.get("/openapi.json")).json()["paths"]
    operation = paths["/runs/{run_id}/streams/{name}"]["get"]
    assert "text/event-stream" in operation["responses"]["200"]["content"]
    assert {p["name"] for p in operation["parameters"]} == {
        "run_id",
        "name",
        "start",
        "committed",
        "Last-Event-ID",
    }
    assert "/runs/{run_id}/streams" in paths
