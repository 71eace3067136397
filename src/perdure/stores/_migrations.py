"""The numbered schema files shipped with perdure, one folder per SQL dialect.

Each store applies the ones its database has not recorded yet, in order; loading them
is the same for every dialect, so it lives here once.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from importlib import resources

__all__ = ["Migration", "load_migrations"]

_MIGRATION_NAME = re.compile(r"(\d{4})_\w+\.sql")


@dataclass(frozen=True, slots=True)
class Migration:
    """One numbered schema file."""

    version: int
    name: str
    sql: str


def load_migrations(dialect: str) -> list[Migration]:
    """The schema files of ``dialect`` (a folder under ``migrations/``), in order.

    Raises:
        RuntimeError: two files share a number (a packaging mistake, never user input).
    """
    folder = resources.files("perdure.stores").joinpath("migrations").joinpath(dialect)
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
