"""``perdure migrate``: bring a database's schema up to date, as a deploy step.

Every store also migrates itself when it opens, under a lock (an advisory lock on
PostgreSQL, ``BEGIN IMMEDIATE`` on SQLite), so this is optional: it lets a deploy
apply new schema before the new workers start, and fail loudly if it cannot.
"""

from __future__ import annotations

import asyncio

from perdure._cli._common import (
    USAGE,
    CliError,
    DatabaseUrl,
    JsonFlag,
    database_error,
    reporting,
    resolve_url,
    shown_url,
)
from perdure._cli._output import out, print_json

__all__ = ["migrate"]


def _migrate(url: str) -> list[str]:
    if url.startswith(("postgresql://", "postgres://")):
        from perdure.stores.postgres import migrate as apply  # noqa: PLC0415

        return asyncio.run(apply(url))
    if url.startswith("sqlite:///") and url != "sqlite:///":
        from perdure.stores.sqlite import migrate as apply_sqlite  # noqa: PLC0415

        return apply_sqlite(url.removeprefix("sqlite:///"))
    raise CliError(
        f"cannot migrate {shown_url(url)}: only sqlite:/// and postgresql:// databases "
        "have a schema",
        USAGE,
    )


def migrate(database_url: DatabaseUrl = None, as_json: JsonFlag = False) -> None:
    """Apply the schema migrations the database lacks, and say which.

    Safe while workers run: migrations take a lock. Exits 1 when the database cannot
    be reached or was written by a newer perdure.
    """
    url = resolve_url(database_url)
    with reporting():
        try:
            applied = _migrate(url)
        except CliError:
            raise
        except Exception as exc:
            raise database_error(url, exc) from None
    if as_json:
        print_json({"database": shown_url(url), "applied": applied})
    elif applied:
        out().print(f"applied {len(applied)} migrations to {shown_url(url)}: {', '.join(applied)}")
    else:
        out().print(f"{shown_url(url)}: the schema is up to date")
