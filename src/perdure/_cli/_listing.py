"""``perdure runs``' attribute filters and pages, and how attributes are shown.

``--attr KEY=VALUE`` (repeatable, all must match) and ``--after CURSOR`` are checked
here with the rules the engine applies (`perdure._attributes`, `perdure._listing`), so
a bad one is a usage error (exit 2) before the database is opened. A page is read one
run longer than ``--limit``: that run tells whether there is a next page, and the last
run shown is where it starts.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from perdure._attributes import search_terms
from perdure._cli._common import USAGE, CliError
from perdure._cli._output import err, out
from perdure._listing import decode_cursor, encode_cursor

if TYPE_CHECKING:
    from collections.abc import Mapping
    from datetime import datetime

    from perdure._records import JSON, RunRecord

__all__ = ["attributes_text", "list_filters", "next_page", "page_of"]


def list_filters(
    attrs: list[str], after: str | None
) -> tuple[dict[str, str], tuple[datetime, str] | None]:
    """The search terms of ``--attr`` options and the place ``--after`` names.

    Raises:
        CliError: (usage) a term not ``KEY=VALUE``, a bad key, or a bad cursor.
    """
    pairs: dict[str, str] = {}
    for term in attrs:
        key, equals, value = term.partition("=")
        if not equals:
            raise CliError(f"--attr {term!r} must be KEY=VALUE (customer=acme)", USAGE)
        pairs[key] = value
    try:
        terms = search_terms(pairs)
        before = decode_cursor(after) if after is not None else None
    except (TypeError, ValueError) as exc:
        raise CliError(str(exc).replace("list_runs(attributes=...)", "--attr"), USAGE) from None
    return terms, before


def page_of(
    found: list[RunRecord], limit: int, *, since: datetime | None = None
) -> tuple[list[RunRecord], str | None]:
    """The first ``limit`` runs (created ``since``), and the next page's cursor if any.

    ``found`` is read one run longer than a page: that run, if created since the cutoff,
    says there is a next page. Newest first, so the runs created since a cutoff are a
    prefix: the pages after an older run hold only older runs.
    """
    page = found[:limit]
    if since is not None:
        page = [r for r in page if r.created_at >= since]
    more = len(found) > limit and (since is None or found[limit].created_at >= since)
    return page, encode_cursor(found[limit - 1]) if more else None


def next_page(cursor: str | None, *, to_stderr: bool) -> None:
    """Say how to list the next page, if there is one."""
    if cursor is None:
        return
    (err() if to_stderr else out()).print(
        f"next page: --after {cursor}", highlight=False, soft_wrap=True
    )


def attributes_text(attributes: Mapping[str, JSON]) -> str:
    """``customer=acme tier=gold``: a run's attributes on one line, by key."""
    return " ".join(f"{key}={_shown(attributes[key])}" for key in sorted(attributes))


def _shown(value: JSON) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)
