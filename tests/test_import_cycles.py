"""No import cycles between the modules of perdure.

The graph, read from the source with `ast` (`test_layering`'s reader):

- a node is a module under ``src/perdure``; a package is its ``__init__.py``;
- an edge A -> B is a statement that runs when A is imported and names B:
  ``import B``, or ``from B import x`` (an edge to ``B.x`` when that is a module). The
  statements counted are those at A's top and in its ``if``, ``try`` and ``with``
  blocks and class bodies, so typing-only imports (``if TYPE_CHECKING:``) count: a
  cycle that only type checkers follow is still two modules that cannot be read, or
  moved, one without the other. Imports inside functions do not count: they run when
  called, after every module has loaded;
- the parent packages Python runs before a module are not edges. So a package whose
  ``__init__`` re-exports its own submodules is fine; but a submodule that names its
  package (``from perdure.stores import Store`` inside ``perdure.stores.sqlite._store``)
  closes a cycle through that ``__init__``, and is reported.

A cycle is a strongly connected set of two or more modules (or a module importing
itself); each is printed with every import inside it, file and line, to show where
to cut.
"""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING

import pytest

import test_layering
from test_layering import SRC, module_file, module_level_imports, module_name

if TYPE_CHECKING:
    from pathlib import Path

Graph = dict[str, dict[str, int]]
"""Each module, and the perdure modules it imports with the line of each import."""


def import_graph() -> Graph:
    """The module-level import graph of src/perdure."""
    graph: Graph = {}
    for file in sorted((SRC / "perdure").rglob("*.py")):
        imports = module_level_imports(file)
        graph[module_name(file)] = {
            name: line for name, line in imports.items() if name.split(".")[0] == "perdure"
        }
    return graph


def cycles(graph: Graph) -> list[list[str]]:
    """The strongly connected sets of modules that form a cycle, each sorted, in order
    (Tarjan's algorithm, iterative: no recursion limit to meet)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    for root in sorted(graph):
        if root in index:
            continue
        work = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            node, targets = work[-1]
            target = next((t for t in targets if t in graph), None)
            if target is not None:
                if target not in index:
                    index[target] = low[target] = len(index)
                    stack.append(target)
                    on_stack.add(target)
                    work.append((target, iter(sorted(graph[target]))))
                elif target in on_stack:
                    low[node] = min(low[node], index[target])
                continue
            work.pop()
            if work:
                parent = work[-1][0]
                low[parent] = min(low[parent], low[node])
            if low[node] == index[node]:
                members = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    members.append(member)
                    if member == node:
                        break
                if len(members) > 1 or node in graph[node]:
                    found.append(sorted(members))
    return sorted(found)


def describe(graph: Graph, cycle: list[str]) -> str:
    """A cycle as its modules and every import between them, one per line."""
    lines = [" <-> ".join(cycle)]
    for module in cycle:
        file = module_file(module)
        path = file.relative_to(SRC.parent) if file else module
        for target, line in sorted(graph[module].items(), key=lambda item: item[1]):
            if target in cycle:
                lines.append(f"    {path}:{line} imports {target}")
    return "\n".join(lines)


def test_no_module_of_perdure_is_in_an_import_cycle() -> None:
    """The module-level import graph of src/perdure, typing-only imports included, has
    no cycle."""
    graph = import_graph()
    assert len(graph) >= 50  # the reader did find the package

    found = [describe(graph, cycle) for cycle in cycles(graph)]

    assert not found, f"{len(found)} import cycle(s):\n" + "\n".join(found)


def test_the_check_finds_every_cycle_and_only_cycles() -> None:
    """Two cycles, a self-import, and a package that merely re-exports its submodules."""
    graph: Graph = {
        "p": {"p.a": 1, "p.b": 2},  # re-exports its submodules: no cycle by itself
        "p.a": {"p.b": 3},
        "p.b": {"p.c": 4},
        "p.c": {"p.a": 5, "q": 6},
        "q": {"r": 7},
        "r": {"q": 8},
        "s": {"s": 9},
        "t": {"p": 10, "outside": 11},
    }

    assert [["p.a", "p.b", "p.c"], ["q", "r"], ["s"]] == cycles(graph)
    assert describe(graph, ["q", "r"]) == "q <-> r\n    q:7 imports r\n    r:8 imports q"


def test_the_graph_counts_typing_only_imports_and_not_imports_in_functions(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An import under ``if TYPE_CHECKING:``, in a ``try`` or a class body is an edge;
    one inside a function is not; a package's submodules are not edges to it."""
    package = tmp_path / "perdure"
    package.mkdir()
    for name in ("__init__", "top", "typing_only", "guarded", "in_class", "in_function"):
        (package / f"{name}.py").write_text("")
    (package / "top.py").write_text(
        "from typing import TYPE_CHECKING\n"
        "from perdure import typing_only\n"
        "if TYPE_CHECKING:\n"
        "    from perdure.typing_only import Thing\n"
        "try:\n"
        "    from perdure import guarded\n"
        "except ImportError:\n"
        "    pass\n"
        "class Holder:\n"
        "    from perdure.in_class import x\n"
        "def later() -> None:\n"
        "    from perdure.in_function import y\n"
    )
    (package / "typing_only.py").write_text(
        "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from perdure.top import Holder\n"
    )
    monkeypatch.setattr(test_layering, "SRC", tmp_path)
    monkeypatch.setattr(sys.modules[__name__], "SRC", tmp_path)

    graph = import_graph()

    assert {
        "perdure": {},
        "perdure.top": {"perdure.typing_only": 2, "perdure.guarded": 6, "perdure.in_class": 10},
        "perdure.typing_only": {"perdure.top": 3},
        "perdure.guarded": {},
        "perdure.in_class": {},
        "perdure.in_function": {},
    } == graph
    assert [["perdure.top", "perdure.typing_only"]] == cycles(graph)
