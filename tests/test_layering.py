"""perdure._replay, the core, imports no store, worker, engine, HTTP or CLI code.

The imports are read from the source with `ast` rather than by importing: importing
``perdure._replay`` runs ``perdure/__init__.py`` first, which imports everything.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parent.parent / "src"
REPLAY = SRC / "perdure" / "_replay"

FORBIDDEN = (
    "perdure.stores",
    "perdure._runtime._worker",
    "perdure._runtime._actor",
    "perdure._engine",
    "perdure._hooks",
    "perdure._workflow",
    "perdure._clock",
    "perdure.testing",
    "perdure.http",
    "perdure.cli",
    "perdure.web",
    "sqlite3",
    "asyncpg",
    "psycopg",
    "http",
    "socket",
    "starlette",
    "argparse",
)
"""Modules (and their submodules) the core must not reach, directly or through others."""


def module_file(name: str) -> Path | None:
    """The source file of a perdure module, or None for modules outside perdure."""
    path = SRC.joinpath(*name.split("."))
    if path.is_dir():
        return path / "__init__.py"
    file = path.with_suffix(".py")
    return file if file.exists() else None


def imports_of(file: Path) -> set[str]:
    """Every module a source file imports, anywhere in it, by absolute name.

    ``from perdure import x`` counts as importing ``perdure.x`` when that is a module, and
    as importing ``perdure`` (the whole public API) otherwise.
    """
    package = ".".join(file.relative_to(SRC).with_suffix("").parts)
    if file.name != "__init__.py":
        package = package.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(file.read_text(), str(file))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")
                anchor = ".".join(parts[: len(parts) - node.level + 1])
                base = f"{anchor}.{base}" if base else anchor
            if base == "__future__":
                continue
            for alias in node.names:
                candidate = f"{base}.{alias.name}"
                found.add(candidate if module_file(candidate) else base)
    return found


def reachable_from(files: list[Path]) -> set[str]:
    """The modules the files import, and the modules those import, within perdure."""
    seen: set[str] = set()
    todo = [name for file in files for name in imports_of(file)]
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        file = module_file(name)
        if file is not None and name.startswith("perdure"):
            todo.extend(imports_of(file))
    return seen


def offenders(modules: set[str]) -> list[str]:
    """The modules that are, or are inside, a forbidden one (the package root included)."""
    return sorted(
        m
        for m in modules
        if m == "perdure" or any(m == f or m.startswith(f"{f}.") for f in FORBIDDEN)
    )


def test_the_replay_core_imports_nothing_above_it() -> None:
    """No module of perdure._replay reaches a store, the worker, the engine, HTTP or the CLI."""
    files = sorted(REPLAY.glob("*.py"))
    assert len(files) >= 8

    reached = reachable_from(files)

    assert [] == offenders(reached)
    assert "perdure._replay._loop" in reached  # the walk does see the core's own modules


@pytest.mark.parametrize(
    ("module", "expected"),
    [
        ("perdure._runtime._worker", "perdure.stores"),
        ("perdure._engine", "perdure._runtime._worker"),
        ("perdure.testing", "perdure._engine"),
    ],
)
def test_the_check_sees_forbidden_imports(module: str, expected: str) -> None:
    """The same check applied to modules above the core does flag what they import."""
    file = module_file(module)
    assert file is not None

    assert expected in offenders(reachable_from([file]))
