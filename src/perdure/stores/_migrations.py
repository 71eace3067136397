"""The numbered schema files shipped with perdure, one folder per SQL dialect.

Each store applies the ones its database has not recorded yet, in order; loading them
is the same for every dialect, so it lives here once.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from importlib import resources

__all__ = ["Migration", "load_migrations", "missing_migrations"]

_MIGRATION_NAME = re.compile(r"(\d{4})_\w+\.sql")


@dataclass(frozen=True, slots=True)
class Migration:
    """One numbered schema file."""

    version: int
    name: str
    sql: str


def load_migrations(dialect: str) -> list[Migration]:
    """The schema files of ``dialect`` (``stores/<dialect>/migrations/``), in order.

    Raises:
        RuntimeError: two files share a number (a packaging mistake, never user input).
    """
    folder = resources.files(f"perdure.stores.{dialect}").joinpath("migrations")
    found = [
        Migration(int(match[1]), entry.name, entry.read_text(encoding="utf-8"))
        for entry in folder.iterdir()
        if (match := _MIGRATION_NAME.fullmatch(entry.name))
    ]
    found.sort(key=lambda migration: migration.version)
    versions = [migration.version for migration in found]
    if len(set(versions)) != len(versions):
        raise RuntimeError(f"two {dialect} migrations share a number: {[m.name for m in found]}")
    return found


def missing_migrations(known: list[Migration], applied: set[int]) -> list[Migration]:
    """Of ``known`` (in order), the migrations whose versions are not in ``applied``.

    Raises:
        RuntimeError: the database records a migration this perdure does not know: it
            was written by a newer perdure, and this one must not touch it.
    """
    if unknown := applied - {migration.version for migration in known}:
        raise RuntimeError(
            f"the database has schema migrations {sorted(unknown)} that this version of "
            "perdure does not know: it was written by a newer perdure; upgrade perdure"
        )
    return [migration for migration in known if migration.version not in applied]
