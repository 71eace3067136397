"""The dashboard shows child runs (issue 13): a parent's page has a timeline row per
child that links to it, and a child's page links its parent. In Chromium, as
`test_dashboard.py`'s browser test."""

from __future__ import annotations

from typing import TYPE_CHECKING

from perdure import Engine, step, workflow
from perdure.http import create_app
from test_dashboard import CHROMIUM, CHROMIUM_ARGS, TOKEN, _browser_or_skip, serving

if TYPE_CHECKING:
    from pathlib import Path


@step(name="dash-children-wrap")
async def wrap(item: str) -> str:
    """The item, wrapped."""
    return f"[{item}]"


@workflow(name="dash-children-child")
async def gift(item: str) -> str:
    """A child: wraps its item."""
    return await wrap(item)


@workflow(name="dash-children-parent")
async def gifts(items: list[str]) -> list[str]:
    """One child per item."""
    return [await gift(item) for item in items]


async def test_children_in_the_browser(tmp_path: Path) -> None:
    """The parent's timeline has a child row linking to the child's page, whose facts
    link back to the parent; the parent's children count opens the list of them."""
    _browser_or_skip()
    from playwright.async_api import async_playwright, expect  # noqa: PLC0415 (may be missing)

    expect.set_options(timeout=10_000)
    async with (
        Engine(f"sqlite:///{tmp_path}/dashboard.db") as engine,
        serving(create_app(engine, token=TOKEN)) as base,
        async_playwright() as playwright,
    ):
        run = await engine.start(gifts, ["book"], run_id="gifts-1")
        assert await run.result(timeout=10) == ["[book]"]
        (child,) = await engine.list_runs(parent_id=run.id)
        browser = await playwright.chromium.launch(
            executable_path=str(CHROMIUM), args=CHROMIUM_ARGS
        )
        page = await browser.new_page()
        await page.goto(f"{base}/login?token={TOKEN}")
        await expect(page).to_have_url(f"{base}/")
        await page.goto(f"{base}/runs/gifts-1")
        row = page.locator(".t-row.kind-child")
        await expect(row).to_have_count(1)
        await expect(row.locator(".kind")).to_have_text("child")
        await expect(row).to_contain_text("completed")
        await row.locator(".child-link").click()
        await expect(page).to_have_url(f"{base}/runs/{child.id}")
        parent_link = page.locator("#facts a.run-link")
        await expect(parent_link).to_have_text("gifts-1")
        await parent_link.click()
        await expect(page).to_have_url(f"{base}/runs/gifts-1")
        # The parent's "Children" fact opens the runs list of its children: the tree,
        # a level at a time, each child linking back to its parent.
        await page.locator("#facts a", has_text="1 (1 ended)").click()
        await expect(page).to_have_url(f"{base}/?parent=gifts-1")
        await expect(page.locator(".parent-note")).to_contain_text("Child runs of gifts-1")
        listed = page.locator("#rows tr")
        await expect(listed).to_have_count(1)
        await expect(listed.first).to_have_attribute("data-run-id", child.id)
        await expect(listed.first.locator(".child-of")).to_contain_text("child of gifts-1")
        await browser.close()
