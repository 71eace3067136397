"""The layers of perdure, as tests: which code may import which.

- the replay core, `perdure._replay`, reaches no store, worker, engine, HTTP or CLI
  code, so it can be read and tested alone;
- the stores reach no runtime (worker, run actor, queue runner), engine, HTTP or CLI
  code; the runtime reaches no engine, HTTP or CLI code; serialization (`_serde`)
  reaches none of the runtime, the stores, the engine, HTTP or the CLI;
- the front ends (`perdure.http`, `perdure._cli`, `perdure.cli`) never import a
  private module of `perdure._runtime` or `perdure.stores` themselves: they go through
  `Engine` and the stores' public names.

"Reaches" is transitive, through every import anywhere in a file (inside functions
too); reaching the package root ``perdure`` counts as reaching everything it exports.
The import cycles rule is in `test_import_cycles.py`, which reads the graph with this
module's functions.

The imports are read from the source with `ast` rather than by importing: importing
``perdure._replay`` runs ``perdure/__init__.py`` first, which imports everything.
"""

from __future__ import annotations

import ast
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from collections.abc import Iterable, Iterator

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

CLI = ("perdure._cli", "perdure.cli")
LAYERS = {
    "perdure.stores": ("perdure._runtime", "perdure._engine", "perdure.http", *CLI),
    "perdure._runtime": ("perdure._engine", "perdure.http", *CLI),
    "perdure._serde": (
        "perdure._runtime",
        "perdure.stores",
        "perdure._engine",
        "perdure.http",
        *CLI,
    ),
}
"""Each package, and the packages it must not reach."""

FRONT_ENDS = ("perdure.http", *CLI)

KNOWN_PRIVATE_IMPORTS: set[tuple[str, str]] = set()
"""The front ends' imports of private runtime and store modules that remain, each a
debt with its reason: a new one fails the test, and so does one that is gone (remove it
here)."""


def module_file(name: str) -> Path | None:
    """The source file of a perdure module, or None for modules outside perdure."""
    path = SRC.joinpath(*name.split("."))
    if path.is_dir():
        return path / "__init__.py"
    file = path.with_suffix(".py")
    return file if file.exists() else None


def module_name(file: Path) -> str:
    """The dotted name of a source file under SRC (a package's is its folder's)."""
    parts = file.relative_to(SRC).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def files_of(package: str) -> list[Path]:
    """Every source file of a package (or the one file of a module)."""
    path = SRC.joinpath(*package.split("."))
    return sorted(path.rglob("*.py")) if path.is_dir() else [path.with_suffix(".py")]


def module_level(body: list[ast.stmt]) -> Iterator[ast.stmt]:
    """The statements that run when a module is imported: those at its top, and inside
    its ``if`` (``if TYPE_CHECKING:`` too), ``try`` and ``with`` blocks and class
    bodies; not those inside functions, which run when called."""
    for node in body:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            continue
        yield node
        for block in ("body", "orelse", "finalbody"):
            inner = getattr(node, block, None)
            if isinstance(inner, list):
                yield from module_level(inner)
        if isinstance(node, ast.Try | ast.TryStar):
            for handler in node.handlers:
                yield from module_level(handler.body)


def imported(nodes: Iterable[ast.AST], file: Path) -> dict[str, int]:
    """The modules the import statements among ``nodes`` name, by absolute name, each
    with the line of its first import.

    ``from perdure import x`` names ``perdure.x`` when that is a module, and ``perdure``
    (the whole public API) otherwise; the parent packages Python runs first are not
    named.
    """
    package = module_name(file)  # what relative imports start from
    if file.name != "__init__.py":
        package = package.rpartition(".")[0]
    found: dict[str, int] = {}
    for node in nodes:
        if isinstance(node, ast.Import):
            for alias in node.names:
                found.setdefault(alias.name, node.lineno)
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
                found.setdefault(candidate if module_file(candidate) else base, node.lineno)
    return found


def imports_of(file: Path) -> set[str]:
    """Every module a source file imports, anywhere in it (in functions too)."""
    return set(imported(ast.walk(ast.parse(file.read_text(), str(file))), file))


def module_level_imports(file: Path) -> dict[str, int]:
    """The modules a source file imports when it is imported (typing-only imports
    included), each with the line of its first import."""
    return imported(module_level(ast.parse(file.read_text(), str(file)).body), file)


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


def inside(module: str, packages: Iterable[str]) -> bool:
    """Whether ``module`` is one of ``packages`` or inside one."""
    return any(module == p or module.startswith(f"{p}.") for p in packages)


def offenders(modules: set[str], forbidden: Iterable[str] = FORBIDDEN) -> list[str]:
    """The modules that are, or are inside, a forbidden one (the package root included)."""
    return sorted(m for m in modules if m == "perdure" or inside(m, forbidden))


def private_internals(file: Path) -> set[str]:
    """The private modules of the runtime and the stores that a file imports itself."""
    return {
        m
        for m in imports_of(file)
        if inside(m, ["perdure._runtime"])
        or (inside(m, ["perdure.stores"]) and any(p.startswith("_") for p in m.split(".")))
    }


def test_the_replay_core_imports_nothing_above_it() -> None:
    """No module of perdure._replay reaches a store, the worker, the engine, HTTP or the CLI."""
    files = sorted(REPLAY.glob("*.py"))
    assert len(files) >= 8

    reached = reachable_from(files)

    assert [] == offenders(reached)
    assert "perdure._replay._loop" in reached  # the walk does see the core's own modules


@pytest.mark.parametrize("package", sorted(LAYERS))
def test_each_layer_reaches_nothing_above_it(package: str) -> None:
    """The stores, the runtime and serialization reach none of the layers built on them."""
    files = files_of(package)
    assert len(files) >= 3

    reached = reachable_from(files)

    assert [] == offenders(reached, LAYERS[package])
    assert any(inside(m, [package]) for m in reached)  # the walk sees the package itself


def test_the_front_ends_use_no_private_runtime_or_store_module() -> None:
    """HTTP and the CLI import no private module of the runtime or the stores, but for
    the known debts listed in KNOWN_PRIVATE_IMPORTS."""
    files = [file for package in FRONT_ENDS for file in files_of(package)]
    assert len(files) >= 10

    found = {(module_name(file), m) for file in files for m in private_internals(file)}

    assert KNOWN_PRIVATE_IMPORTS == found


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


@pytest.mark.parametrize(
    ("module", "layer", "expected"),
    [
        ("perdure._engine", "perdure.stores", "perdure._runtime"),
        ("perdure.http._app", "perdure._runtime", "perdure._engine"),
        ("perdure._engine", "perdure._serde", "perdure.stores"),
    ],
)
def test_the_layer_check_sees_forbidden_imports(module: str, layer: str, expected: str) -> None:
    """A layer's check applied to a module above it flags what that module reaches."""
    file = module_file(module)
    assert file is not None

    assert expected in offenders(reachable_from([file]), LAYERS[layer])


def test_the_front_end_check_sees_private_imports() -> None:
    """The front ends' check applied to the engine flags its import of the runtime."""
    file = module_file("perdure._engine")
    assert file is not None

    assert any(inside(m, ["perdure._runtime"]) for m in private_internals(file))
