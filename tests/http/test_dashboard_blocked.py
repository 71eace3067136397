"""The dashboard shows blocked runs (issue 12): the runs list's filter and version
column, and a banner with the reason on the run's page. In Chromium, as
`test_dashboard.py`'s browser test."""

from __future__ import annotations

from typing import TYPE_CHECKING

from perdure import Engine, RunStatus, workflow
from perdure.http import create_app
from test_dashboard import CHROMIUM, CHROMIUM_ARGS, TOKEN, _browser_or_skip, serving

if TYPE_CHECKING:
    from pathlib import Path


@workflow(name="dash-blocked-bug", version="bug-1")
async def has_a_bug(order: str) -> str:
    """Calls a method a str does not have: a bug, so the run blocks."""
    return order.no_such_method()  # type: ignore[attr-defined,no-any-return]


async def test_a_blocked_run_in_the_browser(tmp_path: Path) -> None:
    """The status filter finds the blocked run, its version is listed, and its page says
    why it is blocked."""
    _browser_or_skip()
    from playwright.async_api import async_playwright, expect  # noqa: PLC0415 (may be missing)

    expect.set_options(timeout=10_000)
    async with (
        Engine(f"sqlite:///{tmp_path}/dashboard.db") as engine,
        serving(create_app(engine, token=TOKEN)) as base,
        async_playwright() as playwright,
    ):
        run = await engine.start(has_a_bug, "A-1", run_id="bug-A-1")
        browser = await playwright.chromium.launch(
            executable_path=str(CHROMIUM), args=CHROMIUM_ARGS
        )
        page = await browser.new_page()
        await page.goto(f"{base}/login?token={TOKEN}")
        await expect(page).to_have_url(f"{base}/")
        await page.get_by_label("Status").select_option("blocked")
        row = page.locator("tr", has=page.get_by_role("link", name="bug-A-1"))
        await expect(row.locator(".badge")).to_have_text("blocked")
        await expect(row).to_contain_text("bug-1")
        assert await run.status() is RunStatus.BLOCKED

        await row.get_by_role("link").click()
        banner = page.locator("#blocked")
        await expect(banner).to_be_visible()
        await expect(banner).to_contain_text("Blocked, not failed")
        await expect(banner).to_contain_text("no_such_method")
        await browser.close()
