"""Pages of runs: ``engine.list_runs_page`` and ``list_runs(after=...)``, newest first.

Stable under inserts: runs created between two pages never shift a later page, and no
run is listed twice or skipped. On memory, SQLite and PostgreSQL, with a fake clock.
"""

from __future__ import annotations

import pytest

from helpers import fake_clock
from perdure import Engine, workflow


@workflow
async def noop(n: int) -> int:
    """Return ``n``."""
    return n


async def test_pages_are_stable_while_runs_are_created(engine: Engine) -> None:
    """Paging 10 runs 3 at a time lists each once, newest first, though runs are created
    between the pages, some at the very time of the runs already listed."""
    clock = fake_clock(engine)
    made = []
    for n in range(10):
        if n % 4 == 0:
            clock.advance("1s")  # several runs share each created_at
        made.append((await engine.start(noop, n, run_id=f"run-{n:02}")).id)
    expected = [run.id for run in await engine.list_runs()]
    assert sorted(expected) == sorted(made)

    listed: list[str] = []
    page = await engine.list_runs_page(limit=3)
    while True:
        listed.extend(run.id for run in page.runs)
        # New runs between pages: later ones, and one at the time of the page's last run.
        await engine.start(noop, 100, run_id=f"new-{len(listed)}")
        if page.next is None:
            break
        page = await engine.list_runs_page(limit=3, after=page.next)
    assert listed == expected
    assert len(page.runs) == 1  # 10 = 3 + 3 + 3 + 1: the last page says it is the last


async def test_a_page_exactly_full_says_it_is_the_last(engine: Engine) -> None:
    """A page holding the last runs, however many, has no next cursor."""
    for n in range(4):
        await engine.start(noop, n)
    first = await engine.list_runs_page(limit=2)
    assert first.next is not None
    second = await engine.list_runs_page(limit=2, after=first.next)
    assert (len(second.runs), second.next) == (2, None)


async def test_filters_page_too(engine: Engine) -> None:
    """list_runs(after=...) takes the filters with it: a page of one workflow's runs."""
    for n in range(3):
        await engine.start(noop, n)
    page = await engine.list_runs_page(limit=2, workflow="noop")
    rest = await engine.list_runs(workflow="noop", after=page.next)
    assert len(page.runs) + len(rest) == 3
    assert await engine.list_runs_page(limit=2, workflow="other") == type(page)([], None)


@pytest.mark.parametrize("cursor", ["", "nope", "bm9wZQ", "WzEsMl0"])
async def test_a_bad_cursor_is_refused(engine: Engine, cursor: str) -> None:
    """A cursor no page made is a ValueError saying so."""
    with pytest.raises(ValueError, match="not a cursor"):
        await engine.list_runs_page(after=cursor)


@pytest.mark.parametrize("limit", [0, -1, 1001, True, 2.5])
async def test_a_bad_limit_is_refused(engine: Engine, limit: object) -> None:
    """A page holds from 1 to 1000 runs."""
    with pytest.raises(ValueError, match="limit"):
        await engine.list_runs_page(limit=limit)  # type: ignore[arg-type]
