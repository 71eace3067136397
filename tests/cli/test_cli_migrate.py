"""``perdure migrate``: applies the schema as a deploy step, then reports it up to date."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from perdure.stores._migrations import load_migrations
from pg import fresh_database


def perdure(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "perdure", *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env={"PATH": "/usr/bin:/bin", "NO_COLOR": "1"},
    )


def test_migrate_applies_every_sqlite_migration_once(tmp_path: Path) -> None:
    """A new SQLite file gets every shipped migration; a second run applies none."""
    url = f"sqlite:///{tmp_path}/deploy/perdure.db"
    first = perdure("migrate", "--database-url", url, "--json")
    assert 0 == first.returncode, first.stderr
    shipped = [migration.name for migration in load_migrations("sqlite")]
    assert shipped == json.loads(first.stdout)["applied"]
    again = perdure("migrate", "--database-url", url)
    assert 0 == again.returncode, again.stderr
    assert "the schema is up to date" in again.stdout


async def test_migrate_applies_every_postgresql_migration_once() -> None:
    """A new PostgreSQL database gets every shipped migration; a second run applies none."""
    async with fresh_database() as url:
        first = perdure("migrate", "--database-url", url, "--json")
        assert 0 == first.returncode, first.stderr
        shipped = [migration.name for migration in load_migrations("postgres")]
        assert shipped == json.loads(first.stdout)["applied"]
        again = perdure("migrate", "--database-url", url, "--json")
        assert [] == json.loads(again.stdout)["applied"]


def test_migrate_refuses_a_database_without_a_schema() -> None:
    """memory:// has nothing to migrate: exit 2 with a message saying so."""
    result = perdure("migrate", "--database-url", "memory://")
    assert 2 == result.returncode
    assert "only sqlite:/// and postgresql:// databases have a schema" in result.stderr


def test_migrate_reports_an_unreachable_database_in_one_line() -> None:
    """A PostgreSQL server that does not answer is exit 1 and one error line."""
    result = perdure("migrate", "--database-url", "postgresql://postgres@127.0.0.1:1/none")
    assert 1 == result.returncode
    assert result.stderr.startswith("error: cannot open database postgresql://")
    assert 1 == len(result.stderr.strip().splitlines())
