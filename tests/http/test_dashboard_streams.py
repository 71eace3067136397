"""The run page shows each durable stream live, in a real browser (Chromium, Playwright).

A step writes text tokens, fails once after two of them, and on its retry writes the
rest while the test watches: the page shows the tokens as text, strikes out the
retracted ones, and says when the stream ended. Skipped without Chromium or Playwright,
as the dashboard's browser test is (failed in CI).
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib.util
import os
import socket
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
import uvicorn

from perdure import Engine, get_step_metadata, get_writable, step, workflow
from perdure.http import create_app

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

CHROMIUM = Path("/usr/bin/chromium")
TOKEN = "streams-dashboard-token"
gates: dict[str, asyncio.Event] = {}


@step(max_retries=1)
async def write_story(key: str) -> str:
    out = get_writable("draft")
    if get_step_metadata().attempt == 1:
        await out.write("A first ")
        await out.write("try")
        await gates[f"{key}-fail"].wait()
        raise RuntimeError("the model stopped")
    await out.write("Once upon ")
    await out.write("a time")
    await gates[f"{key}-more"].wait()
    await out.write(", the end.")
    return "ok"


@workflow(name="streams.dashboard_story")
async def dashboard_story(key: str) -> str:
    out = get_writable("events")
    await out.write({"phase": "drafting"})
    return await write_story(key)


def _browser_or_skip() -> None:
    problem = None
    if importlib.util.find_spec("playwright") is None:
        problem = "Python Playwright is not installed"
    elif not CHROMIUM.is_file():
        problem = f"Chromium is not installed at {CHROMIUM}"
    if problem is None:
        return
    if os.environ.get("CI"):
        pytest.fail(f"the browser test cannot run in CI: {problem}")
    pytest.skip(f"no browser test: {problem}")


@contextlib.asynccontextmanager
async def serving(app: Any) -> AsyncIterator[str]:
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(64)
    server = uvicorn.Server(uvicorn.Config(app, lifespan="off", log_config=None))
    task = asyncio.create_task(server.serve(sockets=[listener]))
    try:
        yield f"http://127.0.0.1:{listener.getsockname()[1]}"
    finally:
        server.should_exit = True
        await task
        listener.close()


@pytest.mark.slow
async def test_the_run_page_shows_its_streams_live(tmp_path: Path) -> None:
    _browser_or_skip()
    from playwright.async_api import async_playwright, expect  # noqa: PLC0415 (may be missing)

    for name in ("b-fail", "b-more"):
        gates[name] = asyncio.Event()
    problems: list[str] = []
    expect.set_options(timeout=10_000)
    async with (
        Engine(f"sqlite:///{tmp_path}/dashboard.db") as engine,
        serving(create_app(engine, token=TOKEN)) as base,
        async_playwright() as playwright,
    ):
        run = await engine.start(dashboard_story, "b")
        browser = await playwright.chromium.launch(
            executable_path=str(CHROMIUM), args=["--no-sandbox", "--disable-gpu"]
        )
        page = await browser.new_page()
        page.on("pageerror", lambda error: problems.append(f"page error: {error}"))
        await page.goto(f"{base}/login?token={TOKEN}")
        await page.goto(f"{base}/runs/{run.id}")

        draft = page.locator('section[data-stream="draft"]')
        output = draft.locator(".stream-output")
        await expect(output).to_have_text("A first try")  # text chunks run together
        events = page.locator('section[data-stream="events"] .stream-output')
        await expect(events).to_have_text('{"phase":"drafting"}')  # other values as JSON

        gates["b-fail"].set()  # attempt 1 fails: its chunks are struck out
        await expect(output.locator(".retracted")).to_have_count(2)
        await expect(output.locator(".retraction")).to_contain_text("attempt 1 of write_story#1")
        await expect(output).to_contain_text("Once upon a time")
        assert await run.status() == "running"

        gates["b-more"].set()
        await expect(output).to_contain_text("a time, the end.")
        await expect(draft.locator(".stream-state")).to_have_text("ended")
        assert await run.result(timeout=10) == "ok"
        await browser.close()
    assert problems == []
