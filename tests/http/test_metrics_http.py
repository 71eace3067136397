"""``/metrics`` and ``/stats`` served by a real server, and the Metrics page in Chromium.

The app is served by uvicorn on 127.0.0.1 (`test_dashboard.serving`); ``/metrics`` is
parsed with prometheus_client's own text parser. Counters are cumulative in the
process, so the tests compare a scrape before with one after. With
PERDURE_SCREENSHOTS=1 the browser test also writes docs/metrics.png.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import TYPE_CHECKING

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from perdure import Engine, RetryPolicy, WorkflowFailed, step, workflow
from perdure.http import create_app
from perdure.testing import FakeClock
from test_dashboard import CHROMIUM_ARGS, _browser_or_skip, serving

if TYPE_CHECKING:
    from playwright.async_api import ConsoleMessage, Error

TOKEN = "metrics-test-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
ROOT = Path(__file__).resolve().parents[2]


@step(name="scraped-step")
async def scraped_step(n: int) -> int:
    return n * 2


@step(name="scraped-fails", retry=RetryPolicy(max_retries=1, initial_delay=1))
async def scraped_fails(n: int) -> int:
    raise ValueError(f"no {n}")


@workflow(name="scraped")
async def scraped(n: int) -> int:
    return await scraped_step(n)


@workflow(name="scraped-failing")
async def scraped_failing(n: int) -> int:
    return await scraped_fails(n)


Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def samples(text: str) -> Samples:
    """Every sample of a Prometheus text page, by name and labels (scope labels dropped)."""
    found: Samples = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            labels = frozenset(
                (k, v) for k, v in sample.labels.items() if not k.startswith("otel_scope")
            )
            found[sample.name, labels] = sample.value
    return found


def moved(before: Samples, after: Samples, name: str, **labels: str) -> float:
    """How far one sample moved between two scrapes."""
    key = (name, frozenset(labels.items()))
    return after.get(key, 0.0) - before.get(key, 0.0)


async def test_metrics_are_scraped_from_a_real_server(tmp_path: Path) -> None:
    """Two runs completed and one failed after a retry: the scraped counters moved so."""
    async with (
        Engine(f"sqlite:///{tmp_path}/m.db", clock=FakeClock()) as engine,
        serving(create_app(engine, token=TOKEN, metrics=True)) as base,
        httpx.AsyncClient(base_url=base) as http,
    ):
        first = await http.get("/metrics", headers=AUTH)
        assert first.status_code == 200
        assert first.headers["content-type"].startswith("text/plain; version=0.0.4")
        before = samples(first.text)
        for n in (1, 2):
            assert await (await engine.start(scraped, n)).result(timeout=10) == n * 2
        with pytest.raises(WorkflowFailed):
            await (await engine.start(scraped_failing, 1)).result(timeout=10)
        after = samples((await http.get("/metrics", headers=AUTH)).text)

    assert moved(before, after, "perdure_runs_started_total", perdure_workflow="scraped") == 2
    assert moved(before, after, "perdure_runs_completed_total", perdure_workflow="scraped") == 2
    failed = moved(before, after, "perdure_runs_failed_total", perdure_workflow="scraped-failing")
    assert failed == 1
    attempts = "perdure_steps_attempts_total"
    assert (
        moved(before, after, attempts, perdure_step="scraped-step", perdure_outcome="succeeded")
        == 2
    )
    assert (
        moved(before, after, attempts, perdure_step="scraped-fails", perdure_outcome="failed") == 2
    )
    assert moved(before, after, "perdure_steps_retries_total", perdure_step="scraped-fails") == 1
    assert moved(before, after, "perdure_steps_failures_total", perdure_step="scraped-fails") == 1
    durations = "perdure_runs_duration_seconds_count"
    assert (
        moved(before, after, durations, perdure_workflow="scraped", perdure_outcome="completed")
        == 2
    )
    latency = "perdure_wakeup_latency_seconds_count"
    assert moved(before, after, latency, perdure_workflow="scraped", perdure_wakeup="start") == 2
    assert moved(before, after, "perdure_store_commits_total", perdure_store="sqlite") > 0
    assert not any(
        "run_id" in label or "token" in label for _, labels in after for label, _ in labels
    )


async def test_metrics_and_stats_are_refused_without_the_token(tmp_path: Path) -> None:
    """The bearer token guards /metrics and /stats as it guards the rest of the API."""
    async with (
        Engine(f"sqlite:///{tmp_path}/m.db", clock=FakeClock()) as engine,
        serving(create_app(engine, token=TOKEN, metrics=True)) as base,
        httpx.AsyncClient(base_url=base) as http,
    ):
        for path in ("/metrics", "/stats"):
            missing = await http.get(path)
            wrong = await http.get(path, headers={"Authorization": "Bearer nope"})
            assert (missing.status_code, wrong.status_code) == (401, 403), path
            assert "perdure_" not in missing.text + wrong.text
        assert (await http.get("/metrics", headers=AUTH)).status_code == 200


async def test_no_metrics_route_unless_asked(tmp_path: Path) -> None:
    """Without metrics=True, /metrics is not served."""
    async with (
        Engine(f"sqlite:///{tmp_path}/m.db", clock=FakeClock()) as engine,
        httpx.AsyncClient(
            transport=httpx.ASGITransport(app=create_app(engine)), base_url="http://localhost"
        ) as http,
    ):
        assert (await http.get("/metrics")).status_code == 404


async def test_stats_over_http(tmp_path: Path) -> None:
    """GET /stats answers the store's aggregates; a bad window is a 400 naming it."""
    async with (
        Engine(f"sqlite:///{tmp_path}/m.db", clock=FakeClock()) as engine,
        httpx.AsyncClient(
            transport=httpx.ASGITransport(app=create_app(engine, token=TOKEN)),
            base_url="http://localhost",
            headers=AUTH,
        ) as http,
    ):
        for n in (1, 2, 3):
            await (await engine.start(scraped, n)).result(timeout=10)
        with pytest.raises(WorkflowFailed):
            await (await engine.start(scraped_failing, 1)).result(timeout=10)
        answer = await http.get("/stats", params={"since": "1h"})
        bad = await http.get("/stats", params={"since": "1 year"})
        day = await http.get("/stats", params={"since": "24h", "workflow": "scraped"})

    assert answer.status_code == 200
    body = answer.json()
    assert body["totals"] == {
        "started": 4,
        "completed": 3,
        "failed": 1,
        "cancelled": 0,
        "pending": 0,
        "blocked": 0,
    }
    assert (body["bucket_seconds"], len(body["started"])) == (60, 60)
    rates = {w["workflow"]: w["failure_rate"] for w in body["workflows"]}
    assert rates == {"scraped": 0.0, "scraped-failing": 1.0}
    steps = {s["name"]: (s["calls"], s["retries"], s["failed"]) for s in body["steps"]}
    assert steps == {"scraped-step": (3, 0, 0), "scraped-fails": (1, 1, 1)}
    assert bad.status_code == 400
    assert "since='1 year'" in bad.json()["error"]
    assert day.json()["totals"]["started"] == 3
    assert day.json()["bucket_seconds"] == 720


async def test_the_metrics_page_in_a_browser(tmp_path: Path) -> None:
    """In Chromium: the Metrics page shows the totals, draws the chart, lists the steps."""
    _browser_or_skip()
    from playwright.async_api import async_playwright, expect  # noqa: PLC0415 (may be missing)

    problems: list[str] = []

    def on_console(message: ConsoleMessage) -> None:
        if message.type in ("error", "warning"):
            problems.append(f"console {message.type}: {message.text}")

    def on_page_error(error: Error) -> None:
        problems.append(f"page error: {error}")

    expect.set_options(timeout=10_000)
    async with (
        Engine(f"sqlite:///{tmp_path}/m.db", clock=FakeClock()) as engine,
        serving(create_app(engine, token=TOKEN)) as base,
        async_playwright() as playwright,
    ):
        for n in (1, 2):
            await (await engine.start(scraped, n)).result(timeout=10)
        with pytest.raises(WorkflowFailed):
            await (await engine.start(scraped_failing, 1)).result(timeout=10)
        browser = await playwright.chromium.launch(
            executable_path="/usr/bin/chromium", args=CHROMIUM_ARGS
        )
        page = await browser.new_page(viewport={"width": 1200, "height": 1300})
        page.on("console", on_console)
        page.on("pageerror", on_page_error)
        await page.goto(f"{base}/login#token={TOKEN}")
        await page.wait_for_url(re.compile(r".*/$"))
        await page.get_by_role("link", name="Metrics").click()
        await page.wait_for_url(re.compile(r".*/stats$"))
        await expect(page.locator('[data-total="started"] dd')).to_have_text("3")
        await expect(page.locator('[data-total="completed"] dd')).to_have_text("2")
        await expect(page.locator('[data-total="failed"] dd')).to_have_text("1")
        await expect(page.locator("#chart canvas")).to_have_count(1)
        await expect(page.locator("#workflows tr")).to_have_count(2)
        failing = page.locator("#workflows tr", has_text="scraped-failing")
        await expect(failing.locator("td").last).to_have_text("100 %")
        await expect(page.locator("#steps tr", has_text="scraped-fails")).to_have_count(1)
        await expect(page.locator("#backlog")).to_contain_text("Nothing waits")
        # Live: a run that ends now shows up without a reload.
        await (await engine.start(scraped, 3)).result(timeout=10)
        await expect(page.locator('[data-total="started"] dd')).to_have_text("4")
        await page.select_option("#since", "7d")
        await expect(page).to_have_url(re.compile(r"since=7d"))
        await expect(page.locator("#chart-title")).to_contain_text("84 min")
        await page.select_option("#since", "1h")
        await expect(page.locator("#chart-title")).to_contain_text("1 min")
        if os.environ.get("PERDURE_SCREENSHOTS"):
            await page.screenshot(path=str(ROOT / "docs" / "metrics.png"), full_page=True)
        await browser.close()
    assert problems == []
