"""Pages of runs: the cursor a page ends with, and what `Engine.list_runs_page` returns.

Runs are listed newest first, by ``(created_at, id)``. A cursor is the place of the
last run of a page in that order; the next page is the runs strictly after it. So a
run created meanwhile (which sorts first) never shifts a page, and no run is listed
twice or skipped, whatever is created between two pages. A cursor is opaque text
(base64url of the time and the id), safe in a URL and a shell.
"""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Generic, TypeVar

if TYPE_CHECKING:
    from perdure._records import RunRecord

__all__ = ["MAX_PAGE", "RunPage", "check_limit", "decode_cursor", "encode_cursor"]

MAX_PAGE = 1000
"""The most runs one page may hold: a listing is for people and dashboards."""

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class RunPage(Generic[T]):
    """One page of runs, newest first, and the cursor of the next one.

    Attributes:
        runs: the runs of this page (`perdure.Run` handles).
        next: pass it as ``after=`` for the next page; None when this is the last.
    """

    runs: list[T]
    next: str | None


def encode_cursor(record: RunRecord) -> str:
    """The cursor that lists the runs after ``record``."""
    text = json.dumps([record.created_at.astimezone(UTC).isoformat(), record.id])
    return base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[datetime, str]:
    """The (created_at, id) a cursor stands for.

    Raises:
        ValueError: ``cursor`` is not one `encode_cursor` made.
    """
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        moment, run_id = json.loads(base64.urlsafe_b64decode(padded.encode()))
        when = datetime.fromisoformat(moment)
        if when.tzinfo is None or not isinstance(run_id, str):
            raise ValueError  # noqa: TRY301 - one message for every way it is wrong
    except (ValueError, TypeError, binascii.Error, UnicodeError):
        raise ValueError(
            f"after={cursor!r} is not a cursor of perdure's run listings (use the `next` of a page)"
        ) from None
    return when, run_id


def check_limit(limit: Any) -> int:
    """``limit`` if it is an int from 1 to `MAX_PAGE`.

    Raises:
        ValueError: naming it otherwise.
    """
    if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= MAX_PAGE:
        raise ValueError(f"limit must be an int from 1 to {MAX_PAGE}, got {limit!r}")
    return limit
