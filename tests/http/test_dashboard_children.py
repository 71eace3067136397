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


@workflow(name="dash-tree-leaf")
async def leaf(item: str) -> str:
    """The bottom of the tree: wraps its item."""
    return await wrap(item)


@workflow(name="dash-tree-branch")
async def branch(item: str) -> str:
    """The middle: one leaf child."""
    return await leaf(item)


@workflow(name="dash-tree-top")
async def top(items: list[str]) -> list[str]:
    """The top: a branch child per item, so the tree is three levels deep."""
    return [await branch(item) for item in items]


async def test_run_tree_in_the_browser(tmp_path: Path) -> None:
    """The runs list's Tree view shows only the top-level run; its expander opens its
    children, theirs their own (indented a level deeper each), a run without children
    says so, and closing a run hides its whole subtree."""
    _browser_or_skip()
    from playwright.async_api import async_playwright, expect  # noqa: PLC0415 (may be missing)

    expect.set_options(timeout=10_000)
    async with (
        Engine(f"sqlite:///{tmp_path}/dashboard.db") as engine,
        serving(create_app(engine, token=TOKEN)) as base,
        async_playwright() as playwright,
    ):
        run = await engine.start(top, ["a", "b"], run_id="tree-1")
        assert await run.result(timeout=10) == ["[a]", "[b]"]
        branches = await engine.list_runs(parent_id=run.id)
        first = min(branches, key=lambda child: (child.record.created_at, child.id))
        (grandchild,) = await engine.list_runs(parent_id=first.id)
        browser = await playwright.chromium.launch(
            executable_path=str(CHROMIUM), args=CHROMIUM_ARGS
        )
        page = await browser.new_page()
        await page.goto(f"{base}/login?token={TOKEN}")
        await expect(page).to_have_url(f"{base}/")
        listed = page.locator("#rows tr")
        await expect(listed).to_have_count(5)  # the flat list: every run
        await page.locator("#tree").check()
        await expect(page).to_have_url(f"{base}/?view=tree")
        await expect(listed).to_have_count(1)
        await expect(listed.first).to_have_attribute("data-run-id", "tree-1")
        await page.get_by_role("button", name="Child runs of tree-1").click()
        await expect(listed).to_have_count(3)
        await expect(page.locator("#rows tr[data-depth='1']")).to_have_count(2)
        # Children come oldest first, right under their parent.
        await expect(listed.nth(1)).to_have_attribute("data-run-id", first.id)
        await page.get_by_role("button", name=f"Child runs of {first.id}").click()
        await expect(listed).to_have_count(4)
        await expect(listed.nth(2)).to_have_attribute("data-run-id", grandchild.id)
        await expect(listed.nth(2)).to_have_attribute("data-depth", "2")
        bottom = page.get_by_role("button", name=f"Child runs of {grandchild.id}")
        await bottom.click()
        await expect(bottom).to_have_attribute("title", "No child runs")
        await expect(listed).to_have_count(4)
        await page.get_by_role("button", name="Child runs of tree-1").click()
        await expect(listed).to_have_count(1)
        # The view is in the address: a reload keeps it.
        await page.reload()
        await expect(page.locator("#tree")).to_be_checked()
        await expect(listed).to_have_count(1)
        await browser.close()
