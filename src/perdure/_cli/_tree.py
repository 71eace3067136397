"""``perdure runs --tree``: the runs listed, each followed by its child runs, to any depth.

The page is listed as without ``--tree`` (the filters and ``--limit`` apply to it);
then its top-level runs (or, with ``--parent``, that run's children) are kept, and
each one's children are read a level at a time, oldest first, as the dashboard's Tree
view shows them. A run's children are never filtered: the tree is whole. A level holds
at most `MAX_CHILDREN` runs (the newest); a larger one says so and how to list it all.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Callable

    from perdure._records import RunRecord
    from perdure.stores import Store

__all__ = ["MAX_CHILDREN", "TreeRow", "flatten", "indented", "read_tree", "tree_json"]

MAX_CHILDREN = 1000
"""The child runs of one run a tree shows at most (the newest)."""


@dataclass(frozen=True)
class TreeRow:
    """A run in the tree: how deep it is (0 at the top), and whether children were left out."""

    record: RunRecord
    depth: int = 0
    children: list[TreeRow] = field(default_factory=list)
    truncated: bool = False


async def read_tree(store: Store, found: list[RunRecord], parent: str | None) -> list[TreeRow]:
    """The top-level runs among ``found``, each with its subtree read from ``store``.

    With ``--parent``, the top level is that run's children.
    """
    roots = [r for r in found if r.parent_id is None or r.parent_id == parent]
    return [await _grow(store, r, 0, set()) for r in roots]


async def _grow(store: Store, record: RunRecord, depth: int, above: set[str]) -> TreeRow:
    # ``above``: the ids on the path here; a damaged parent_id could make a cycle.
    if record.id in above:
        return TreeRow(record, depth)
    newest = await store.list_runs(parent_id=record.id, limit=MAX_CHILDREN + 1)
    path = above | {record.id}
    children = [
        await _grow(store, child, depth + 1, path) for child in reversed(newest[:MAX_CHILDREN])
    ]
    return TreeRow(record, depth, children, truncated=len(newest) > MAX_CHILDREN)


def flatten(rows: list[TreeRow]) -> list[TreeRow]:
    """The tree's rows in the order they are printed: each run, then its subtree."""
    out: list[TreeRow] = []
    for row in rows:
        out.append(row)
        out.extend(flatten(row.children))
    return out


def indented(row: TreeRow) -> str:
    """The run's id, indented by its depth: ``  └ child``."""
    return row.record.id if row.depth == 0 else "  " * (row.depth - 1) + "└ " + row.record.id


def tree_json(rows: list[TreeRow], shape: Callable[[RunRecord], dict[str, Any]]) -> list[Any]:
    """The tree as JSON: each run as ``shape`` makes it, with ``children`` (oldest first)."""
    return [
        {
            **shape(row.record),
            "children": tree_json(row.children, shape),
            **({"children_truncated": True} if row.truncated else {}),
        }
        for row in rows
    ]
