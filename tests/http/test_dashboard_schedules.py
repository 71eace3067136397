"""The dashboard's Schedules page in Chromium: next fire time, pause and resume, a run
started by hand appearing among the last runs (skipped without a browser, as
test_dashboard.py's browser test is)."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

from perdure import Engine, workflow
from perdure.http import create_app
from test_dashboard import CHROMIUM, CHROMIUM_ARGS, TOKEN, _browser_or_skip, serving

if TYPE_CHECKING:
    from pathlib import Path

    from playwright.async_api import ConsoleMessage, Error


@workflow(name="dashboard-scheduled-report")
async def report(day: str) -> str:
    """A scheduled job."""
    return day


async def test_the_schedules_page_in_a_browser(tmp_path: Path) -> None:
    """The page lists the schedule with its next fire time; Pause and Resume change it,
    and Run now starts a run that the page lists and links."""
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
        Engine(f"sqlite:///{tmp_path}/schedules.db") as engine,
        serving(create_app(engine, token=TOKEN)) as base,
        async_playwright() as playwright,
    ):
        tomorrow = datetime.now(UTC) + timedelta(days=1)
        stored = await engine.schedule(
            "nightly", report, cron="0 3 * * *", args=("x",), start_at=tomorrow
        )
        assert stored.next_fire_at is not None
        browser = await playwright.chromium.launch(
            executable_path=str(CHROMIUM), args=CHROMIUM_ARGS
        )
        page = await browser.new_page(viewport={"width": 1280, "height": 900})
        page.on("console", on_console)
        page.on("pageerror", on_page_error)
        await page.goto(f"{base}/login?token={TOKEN}")
        await page.get_by_role("link", name="Schedules").click()
        await expect(page).to_have_url(f"{base}/schedules")
        row = page.locator('tr[data-id="nightly"]')
        await expect(row).to_contain_text("dashboard-scheduled-report")
        await expect(row).to_contain_text("0 3 * * *")
        await expect(row.locator("time")).to_have_attribute(
            "datetime", stored.next_fire_at.isoformat()
        )

        await row.get_by_role("button", name="Pause").click()
        await expect(row).to_contain_text("paused")
        assert (await engine.get_schedule("nightly")).paused
        await row.get_by_role("button", name="Resume").click()
        await expect(row.get_by_role("button", name="Pause")).to_be_visible()
        assert not (await engine.get_schedule("nightly")).paused

        await row.get_by_role("button", name="Run now").click()
        link = row.locator(".last-runs a")
        await expect(link).to_have_count(1)
        await expect(link).to_have_attribute("href", re.compile(r"/runs/nightly%40manual-"))
        (run,) = await engine.list_runs(attributes={"schedule": "nightly"})
        assert await run.result(timeout=10) == "x"
        await browser.close()
    assert problems == []
