"""What every command shares: errors with exit codes, the database, user modules."""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import importlib.util
import os
import sqlite3
import sys
import traceback
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, TypeVar
from urllib.parse import urlsplit, urlunsplit

import typer

from perdure._cli._output import error
from perdure._engine import Engine, default_database_url
from perdure._errors import RowFormatError, StoreError
from perdure._log import LogFormatError
from perdure.stores import open_store

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Coroutine, Iterator, Sequence

    from perdure._records import RunRecord
    from perdure.stores import Store

__all__ = [
    "USAGE",
    "CliError",
    "DatabaseUrl",
    "JsonFlag",
    "Modules",
    "database_error",
    "engine",
    "get_run",
    "import_modules",
    "opened",
    "reporting",
    "resolve_url",
    "run",
    "shown_url",
    "utcnow",
]

T = TypeVar("T")

USAGE = 2
"""The exit code for wrong usage, an unknown run id or an unknown token."""

DatabaseUrl = Annotated[
    str | None,
    typer.Option(
        "--database-url",
        metavar="URL",
        show_default=False,
        help="The database: sqlite:///relative.db, sqlite:////absolute.db or "
        "postgresql://user@host:port/database. "
        "Defaults to $PERDURE_DATABASE_URL, else sqlite:///.perdure/perdure.db.",
    ),
]
JsonFlag = Annotated[
    bool, typer.Option("--json", help="Print JSON (for scripts) instead of a table.")
]
Modules = Annotated[
    list[str] | None,
    typer.Option(
        "--module",
        "-m",
        metavar="MODULE",
        show_default=False,
        help="Import this module (a dotted name or a path/to/file.py) first, so its "
        "workflows and hooks are known. Repeat for several.",
    ),
]


class CliError(Exception):
    """A failure to report on one line of stderr, ending the command with ``code``."""

    def __init__(self, message: str, code: int = 1) -> None:
        super().__init__(message)
        self.code = code


@contextlib.contextmanager
def reporting() -> Iterator[None]:
    """Turn `CliError` and database errors into ``error: ...`` and an exit code."""
    try:
        yield
    except CliError as exc:
        error(str(exc))
        raise typer.Exit(exc.code) from None
    except (sqlite3.Error, StoreError) as exc:  # StoreError: what an Engine's call raises
        error(f"database error: {exc}")
        raise typer.Exit(1) from None
    except (LogFormatError, RowFormatError) as exc:  # a run's log or row it cannot read
        error(str(exc))
        raise typer.Exit(1) from None


def run(main: Coroutine[Any, Any, T]) -> T:
    """Run a command's coroutine, reporting its errors (see `reporting`)."""
    with reporting():
        return asyncio.run(main)


def utcnow() -> datetime:
    """The current time, aware, in UTC (what the Engine's clock gives)."""
    return datetime.now(UTC)


def resolve_url(url: str | None) -> str:
    """The ``--database-url`` given, else ``$PERDURE_DATABASE_URL``, else the default file."""
    return url or default_database_url()


def shown_url(url: str) -> str:
    """The URL for printing, with any password in it masked."""
    try:
        parts = urlsplit(url)
        password = parts.password
    except ValueError:
        return url
    if not password:
        return url
    netloc = parts.netloc.replace(f":{password}@", ":***@", 1)
    return urlunsplit(parts._replace(netloc=netloc))


def _malformed(url: str) -> bool:
    scheme, sep, _ = url.partition("://")
    if not sep or not scheme:
        return True
    if scheme == "sqlite":
        path = url.removeprefix("sqlite:///")
        return not url.startswith("sqlite:///") or not path or path.endswith("/")
    return False


def database_error(url: str, exc: BaseException) -> CliError:
    """The error for a database that cannot be opened (exit 2 for a malformed URL)."""
    shown = shown_url(url)
    if isinstance(exc, StoreError) and exc.__cause__ is not None:
        exc = exc.__cause__  # the database's own words: the message already says the rest
    if isinstance(exc, ValueError):
        reason = str(exc).replace(url, shown)
        return CliError(f"cannot open database {shown}: {reason}", USAGE if _malformed(url) else 1)
    if isinstance(exc, OSError) and exc.strerror:
        where = f": {exc.filename}" if exc.filename else ""
        return CliError(f"cannot open database {shown}: {exc.strerror}{where}")
    return CliError(f"cannot open database {shown}: {str(exc).replace(url, shown)}")


def _missing_database(url: str) -> CliError | None:
    """The error for a SQLite file that does not exist, if it does not (None: it does).

    Opening a SQLite store creates its file and folders. Commands that only read, or
    act on runs that must already exist, would turn a mistyped path into a new empty
    database and report "no runs" (exit 0), leaving the folders behind: they refuse it
    instead, and create nothing. PostgreSQL databases are never created by opening.
    """
    if _malformed(url) or not url.startswith("sqlite:///"):
        return None  # opening it says what is wrong
    path = Path(url.removeprefix("sqlite:///"))
    if path.is_file():
        return None
    what = "is not a file" if path.exists() else "does not exist"
    return CliError(
        f"cannot open database {shown_url(url)}: {path} {what} (this command creates no "
        "database; perdure worker, perdure web and perdure migrate do)",
        USAGE,
    )


@contextlib.asynccontextmanager
async def opened(url: str) -> AsyncIterator[Store]:
    """The store ``url`` names, opened for the block, then closed; never created."""
    missing = _missing_database(url)
    if missing is not None:
        raise missing
    try:
        store = open_store(url)
    except (ValueError, OSError, ImportError) as exc:
        raise database_error(url, exc) from None
    try:
        await store.open()
    except Exception as exc:
        with contextlib.suppress(Exception):
            await store.close()
        raise database_error(url, exc) from None
    try:
        yield store
    finally:
        await store.close()


@contextlib.asynccontextmanager
async def engine(url: str) -> AsyncIterator[Engine]:
    """An Engine on ``url`` without a worker, running for the block.

    The commands that change runs act through it, as the HTTP API does, so that each
    action is the Engine's one implementation of it (checks, trace spans and all). They
    act on runs and hooks that exist, so a database that does not is refused, as by
    `opened`, rather than created.
    """
    missing = _missing_database(url)
    if missing is not None:
        raise missing
    try:
        running = Engine(url, worker=False)
    except (ValueError, OSError, ImportError) as exc:
        raise database_error(url, exc) from None
    async with contextlib.AsyncExitStack() as stack:
        try:
            await stack.enter_async_context(running)
        except Exception as exc:
            with contextlib.suppress(Exception):
                await running.store.close()  # entering failed: nothing else closes it
            raise database_error(url, exc) from None
        yield running


async def get_run(store: Store, run_id: str) -> RunRecord:
    """The run with this id, or a `CliError` (exit 2) saying there is none.

    A row this release cannot read in full (damaged, or a newer release's status) is a
    `CliError` (exit 1) naming the columns: ``perdure runs`` lists it, flagged.
    """
    record = await store.get_run(run_id)
    if record is None:
        raise CliError(f"no run with id {run_id!r}", USAGE)
    if record.malformed is not None:
        raise CliError(str(RowFormatError("runs", run_id, record.malformed)))
    return record


# -- user modules ---------------------------------------------------------------------


def _is_path(spec: str) -> bool:
    return spec.endswith(".py") or "/" in spec or os.sep in spec


def _import_file(spec: str) -> None:
    path = Path(spec)
    if not path.is_file():
        raise CliError(f"cannot import {spec}: no such file", USAGE)
    path = path.resolve()
    folder = str(path.parent)
    if folder not in sys.path:
        sys.path.insert(0, folder)  # its sibling modules import as when run as a script
    name = path.stem
    loaded = sys.modules.get(name)
    if loaded is not None and getattr(loaded, "__file__", None) == str(path):
        return
    module_spec = importlib.util.spec_from_file_location(name, path)
    if module_spec is None or module_spec.loader is None:
        raise CliError(f"cannot import {spec}: not a Python module", USAGE)
    module = importlib.util.module_from_spec(module_spec)
    sys.modules[name] = module
    try:
        module_spec.loader.exec_module(module)
    except BaseException:
        del sys.modules[name]
        raise


def _import_name(spec: str) -> None:
    try:
        importlib.import_module(spec)
    except ModuleNotFoundError as exc:
        missing = exc.name or ""
        if missing and (spec == missing or spec.startswith(missing + ".")):
            raise CliError(
                f"cannot import {spec}: no module named {missing!r} "
                "(the current directory is on the path; a file may be given as path/to/file.py)",
                USAGE,
            ) from None
        raise


def import_modules(specs: Sequence[str]) -> None:
    """Import the user's modules: dotted names (the CWD is on the path) or ``.py`` files.

    Raises:
        CliError: exit 2 when a module does not exist, exit 1 (after printing the
            traceback) when importing it raised.
    """
    cwd = str(Path.cwd())
    if cwd not in sys.path:
        sys.path.insert(0, cwd)
    for spec in specs:
        try:
            if _is_path(spec):
                _import_file(spec)
            else:
                _import_name(spec)
        except CliError:
            raise
        except Exception as exc:
            traceback.print_exc()
            raise CliError(f"importing {spec} failed: {type(exc).__name__}: {exc}") from None
