"""The dashboard shows the workers registry (issue 12): the runs page's Live workers
section with each worker's versions, a stranded run's version cell, and on a run's
page its workers' version and the run it was forked from (a link). In Chromium, as
`test_dashboard.py`'s browser test."""

from __future__ import annotations

from typing import TYPE_CHECKING

from perdure import Engine, workflow
from perdure._records import NewRun
from perdure.http import create_app
from test_dashboard import CHROMIUM, CHROMIUM_ARGS, TOKEN, _browser_or_skip, serving

if TYPE_CHECKING:
    from pathlib import Path


@workflow(name="dash-workers-defined", version="dw-2")
async def defined(order: str) -> str:
    """Defined by this process: its worker lists it."""
    return order


async def test_workers_and_versions_in_the_browser(tmp_path: Path) -> None:
    """Live workers lists this worker and its version; a run no live worker defines
    says so in the list; a fork's page links to the run it was forked from."""
    _browser_or_skip()
    from playwright.async_api import async_playwright, expect  # noqa: PLC0415 (may be missing)

    expect.set_options(timeout=10_000)
    async with (
        Engine(f"sqlite:///{tmp_path}/dashboard.db") as engine,
        serving(create_app(engine, token=TOKEN)) as base,
        async_playwright() as playwright,
    ):
        assert engine.worker is not None
        now = engine.clock.now()
        await engine.store.create_run(NewRun("lost-1", "dash-workers-gone", {"order": "x"}), now)
        await engine.store.fork_run(
            NewRun("copy-1", "dash-workers-gone", {"order": "x"}), "lost-1", [], now
        )
        browser = await playwright.chromium.launch(
            executable_path=str(CHROMIUM), args=CHROMIUM_ARGS
        )
        page = await browser.new_page()
        await page.goto(f"{base}/login?token={TOKEN}")
        await expect(page).to_have_url(f"{base}/")
        worker = page.locator(f'tr[data-worker-id="{engine.worker.id}"]')
        await expect(worker).to_contain_text("dash-workers-defined (dw-2)")
        row = page.locator("tr", has=page.get_by_role("link", name="lost-1", exact=True))
        await expect(row).to_contain_text("no live worker")

        await page.goto(f"{base}/runs/copy-1")
        await expect(page.locator("#facts")).to_contain_text("no live worker defines")
        await page.get_by_role("link", name="lost-1").click()
        await expect(page).to_have_url(f"{base}/runs/lost-1")
        await browser.close()
