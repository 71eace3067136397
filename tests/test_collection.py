"""Collecting the tests creates no file: importing a test module or an example has no
side effect on the disk.

A module that builds an `Engine` at import (examples/fastapi_app.py does, as ASGI apps
do) once created ``.perdure/`` in whatever folder pytest ran from, because the SQLite
store made its folder when it was constructed rather than when it was opened.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
COPIED = ("tests", "examples", "pyproject.toml")
"""What collection reads from the tree (src/ is imported from the installed package)."""


CACHES = {"__pycache__", ".hypothesis", ".pytest_cache", ".mypy_cache", ".ruff_cache"}
"""Tools' caches, ignored by git: Hypothesis fills ``.hypothesis/constants`` when it reads
the test modules' ``@given`` strategies, which happens at collection."""


def files_under(folder: Path) -> set[str]:
    """Every file and folder below ``folder``, as relative paths (tools' caches aside)."""
    return {
        str(path.relative_to(folder))
        for path in folder.rglob("*")
        if not CACHES.intersection(path.relative_to(folder).parts)
    }


def copy_of_the_tree(into: Path) -> Path:
    """A copy of what collection reads: the test compares files there, before and after,
    without racing other people's edits of the working tree."""
    tree = into / "tree"
    tree.mkdir()
    for name in COPIED:
        source = ROOT / name
        if source.is_dir():
            shutil.copytree(source, tree / name, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy2(source, tree / name)
    return tree


def collect(tree: Path, *options: str) -> subprocess.CompletedProcess[str]:
    """``pytest --collect-only OPTIONS...`` run in ``tree``, with the default database URL."""
    environment = {k: v for k, v in os.environ.items() if not k.startswith("PERDURE_")}
    environment["PYTHONDONTWRITEBYTECODE"] = "1"
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "--collect-only",
            "-q",
            "-p",
            "no:cacheprovider",
            *options,
        ],
        cwd=tree,
        env=environment,
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )


@pytest.mark.slow
def test_collecting_the_tests_creates_no_file(tmp_path: Path) -> None:
    """`pytest --collect-only` in a copy of the tree leaves the copy as it was."""
    tree = copy_of_the_tree(tmp_path)
    before = files_under(tree)

    done = collect(tree)

    assert done.returncode == 0, done.stdout + done.stderr
    assert " tests collected" in done.stdout, done.stdout  # it did import every test module
    assert [] == sorted(files_under(tree) - before)


def test_the_check_sees_a_file_made_at_import(tmp_path: Path) -> None:
    """A test module that writes a file when imported is caught by the same comparison."""
    tree = copy_of_the_tree(tmp_path)
    (tree / "tests" / "test_writes_at_import.py").write_text(
        "from pathlib import Path\n\nPath('.perdure').mkdir()\n"
    )
    before = files_under(tree)

    done = collect(tree)

    assert done.returncode == 0, done.stdout + done.stderr
    assert [".perdure"] == sorted(files_under(tree) - before)


def test_the_store_option_keeps_one_stores_variants() -> None:
    """``--store sqlite`` keeps the SQLite variants of the tests that run on every store,
    and drops the others."""
    done = collect(ROOT, "--store", "sqlite", "tests/stores/test_store_contract.py")

    assert done.returncode == 0, done.stdout + done.stderr
    ids = [line for line in done.stdout.splitlines() if "::" in line]
    variants = [test_id.partition("[")[2] for test_id in ids if "[" in test_id]
    assert len(variants) > 50
    assert all("sqlite" in v and "memory" not in v and "postgres" not in v for v in variants)
    assert "deselected" in done.stdout
