"""Fixtures for the behaviour tests: an Engine on each store, and ways to wait on it.

Every Engine here runs on a `FakeClock` that jumps to the next timer whenever the
worker is idle, so sleeps and retry backoffs take no wall time.

The tests that run on every store (the `store_kind` fixture here, the `store` fixture of
tests/stores/) run on all three unless ``--store`` names some: ``pytest --store sqlite``
runs their SQLite variants only, and leaves the other tests as they are.
"""

from __future__ import annotations

import contextlib
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import asyncpg
import pytest

from perdure import Engine
from perdure.stores import Store
from perdure.testing import FakeClock, memory_engine
from pg import clear_tables, postgres_database, run_in_thread

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

__all__ = ["EngineFactory", "engine", "make_engine", "postgres_database", "store_kind"]

# The seed examples live in examples/, which is not a package.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "examples"))

# A `perdure worker` the tests start is one process, as they count on (a kill -9 kills
# the worker itself, its id is the one it prints), not a supervisor of one per core:
# the tests of --processes (tests/runtime/test_worker_processes.py) say how many.
os.environ.setdefault("PERDURE_WORKER_PROCESSES", "1")


STORES = ("memory", "sqlite", "postgres")
"""The stores the tests that run on every store run on."""


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--store",
        action="append",
        choices=STORES,
        dest="stores",
        help="run the tests that run on every store on this one only (repeatable)",
    )


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """With ``--store``, deselect the variants of the every-store tests on other stores."""
    chosen: list[str] | None = config.getoption("stores")
    if not chosen:
        return
    kept: list[pytest.Item] = []
    dropped: list[pytest.Item] = []
    for item in items:
        callspec = getattr(item, "callspec", None)
        params: dict[str, object] = callspec.params if callspec is not None else {}
        kind = params.get("store_kind", params.get("store"))
        (dropped if kind is not None and kind not in chosen else kept).append(item)
    if dropped:
        config.hook.pytest_deselected(items=dropped)
        items[:] = kept


class EngineFactory(Protocol):
    """Makes a not-yet-entered Engine on the store under test."""

    def __call__(self, **options: Any) -> Engine: ...


@pytest.fixture(params=STORES)
def store_kind(request: pytest.FixtureRequest) -> str:
    """Which store the test runs on."""
    kind: str = request.param
    return kind


async def _clear(url: str) -> None:
    """Empty perdure's tables, if an earlier test created them (else there is nothing)."""
    with contextlib.suppress(asyncpg.UndefinedTableError):
        await clear_tables(url)


@pytest.fixture
def make_engine(store_kind: str, tmp_path: Path, request: pytest.FixtureRequest) -> EngineFactory:
    """A factory of Engines on the store under test, with an autojumping fake clock.

    Engines made for one test share one store (one SQLite file, this session's
    PostgreSQL database with its tables emptied, or the first Engine's MemoryStore), so
    a second Engine sees what the first stored.
    """
    shared: list[Store] = []
    postgres_url = ""
    if store_kind == "postgres":
        postgres_url = request.getfixturevalue("postgres_database")
        run_in_thread(_clear(postgres_url))

    def make(**options: Any) -> Engine:
        if store_kind == "postgres":
            options.setdefault("clock", FakeClock())
            return Engine(postgres_url, **options)
        if store_kind == "sqlite":
            options.setdefault("clock", FakeClock())
            return Engine(f"sqlite:///{tmp_path}/t.db", **options)
        if not shared:
            engine = memory_engine(**options)
            shared.append(engine.store)
            return engine
        options["clock"] = options.get("clock") or FakeClock()
        return Engine("memory://", store=shared[0], **options)

    return make


@pytest.fixture
async def engine(make_engine: EngineFactory) -> AsyncIterator[Engine]:
    """A running Engine on the store under test."""
    async with make_engine() as running:
        yield running
