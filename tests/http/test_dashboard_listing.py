"""The dashboard shows attributes and deadlines, filters by attribute and pages (issue
13): in Chromium, as `test_dashboard.py`'s browser test."""

from __future__ import annotations

import contextlib
from typing import TYPE_CHECKING

import perdure
from perdure import Engine, WorkflowCancelled, workflow
from perdure.http import create_app
from test_dashboard import CHROMIUM, CHROMIUM_ARGS, TOKEN, _browser_or_skip, serving

if TYPE_CHECKING:
    from pathlib import Path


@workflow(name="dash-labelled")
async def labelled(customer: str) -> str:
    """Label the run with its customer."""
    perdure.set_attributes(customer=customer, tier="gold")
    return customer


@workflow(name="dash-overdue")
async def overdue() -> None:
    """Sleep past its deadline."""
    await perdure.sleep("1h")


async def test_attributes_filter_pages_and_deadline_in_the_browser(tmp_path: Path) -> None:
    """The attribute filter finds the runs of one customer, "More runs" pages through
    them, and a run's page shows its attributes, and why it was cancelled."""
    _browser_or_skip()
    from playwright.async_api import async_playwright, expect  # noqa: PLC0415 (may be missing)

    expect.set_options(timeout=10_000)
    async with (
        Engine(f"sqlite:///{tmp_path}/dashboard.db") as engine,
        serving(create_app(engine, token=TOKEN)) as base,
        async_playwright() as playwright,
    ):
        for n in range(3):
            run = await engine.start(labelled, "acme", run_id=f"acme-{n}")
            await run.result(timeout=10)
        await (await engine.start(labelled, "globex", run_id="globex-0")).result(timeout=10)
        late = await engine.start(overdue, run_id="late-0", timeout=0.2)
        with contextlib.suppress(WorkflowCancelled):
            await late.result(timeout=10)
        browser = await playwright.chromium.launch(
            executable_path=str(CHROMIUM), args=CHROMIUM_ARGS
        )
        page = await browser.new_page()
        await page.goto(f"{base}/login?token={TOKEN}")
        await expect(page).to_have_url(f"{base}/")
        await page.goto(f"{base}/?limit=2")
        await page.get_by_label("Attributes").fill("customer:acme")
        await page.get_by_label("Attributes").press("Enter")
        rows = page.locator("#rows tr")
        await expect(rows).to_have_count(2)  # two a page: acme-2, acme-1
        await expect(rows.first).to_contain_text("acme-2")
        await expect(rows.first).to_contain_text("customer=acme tier=gold")
        assert "attr=customer%3Aacme" in page.url
        await page.get_by_role("link", name="More runs").click()
        await expect(rows).to_have_count(1)  # the rest: acme-0 (never globex-0)
        await expect(rows.first).to_contain_text("acme-0")
        await expect(page.get_by_role("link", name="More runs")).to_be_hidden()
        await page.get_by_role("link", name="Newest runs").click()
        await expect(rows.first).to_contain_text("acme-2")

        await page.goto(f"{base}/runs/acme-0")
        await expect(page.locator("#facts")).to_contain_text("customer=acme tier=gold")
        await page.goto(f"{base}/runs/late-0")
        await expect(page.locator("#facts")).to_contain_text("Deadline")
        await expect(page.locator("#cancelled-why")).to_contain_text("deadline of 0.2s passed")
        await browser.close()
