"""Consoles, formatting, and the JSON shapes the commands print (from `perdure._views`).

People get rich tables and colour (none when the stream is not a terminal or when
``NO_COLOR`` is set); scripts get ``--json``: JSON any parser reads (`json_text`), always
the same keys.
"""

from __future__ import annotations

import os
import sys
from datetime import UTC, datetime
from functools import cache
from typing import TYPE_CHECKING, Any, TextIO

from rich.console import Console
from rich.text import Text

from perdure._records import RunStatus
from perdure._views import event_json, hook_json, iso, json_text, run_json, shown_run_json

if TYPE_CHECKING:
    from perdure._records import RunRecord

__all__ = [
    "STATUS_STYLES",
    "duration",
    "err",
    "error",
    "event_json",
    "hook_json",
    "iso",
    "note",
    "out",
    "print_json",
    "run_duration",
    "run_json",
    "shown_run_json",
    "status_text",
    "when",
]

STATUS_STYLES: dict[RunStatus, str] = {
    RunStatus.PENDING: "yellow",
    RunStatus.RUNNING: "cyan",
    RunStatus.COMPLETED: "green",
    RunStatus.FAILED: "bold red",
    RunStatus.CANCELLED: "magenta",
    RunStatus.BLOCKED: "bold yellow",
}

_PIPE_WIDTH = 200
"""Columns for output that is not a terminal: wide enough that table rows stay whole."""


def _width(stream: TextIO) -> int | None:
    if "COLUMNS" in os.environ:
        return None
    try:
        tty = stream.isatty()
    except (AttributeError, ValueError):
        tty = False
    return None if tty else _PIPE_WIDTH


@cache
def out() -> Console:
    """The console on stdout."""
    return Console(highlight=False, width=_width(sys.stdout))


@cache
def err() -> Console:
    """The console on stderr: errors, notes, progress."""
    return Console(stderr=True, highlight=False, width=_width(sys.stderr))


def error(message: str) -> None:
    """Print ``error: message`` on one line of stderr."""
    err().print(Text.assemble(("error:", "bold red"), " ", message), soft_wrap=True)


def note(message: str, *, label: str = "note") -> None:
    """Print ``note: message`` (or another label) on stderr."""
    err().print(Text.assemble((f"{label}:", "yellow"), " ", message), soft_wrap=True)


def print_json(value: Any) -> None:
    """Print ``value`` as indented JSON on stdout, without colour.

    Text is printed as it is, unless stdout cannot encode it (a lone surrogate an older
    release stored, or a terminal that is not UTF-8): then all of it as ASCII escapes,
    the same JSON to a parser.
    """
    try:
        sys.stdout.write(json_text(value, indent=2, ascii_only=False) + "\n")
    except UnicodeEncodeError:  # the whole text is encoded before any of it is written
        sys.stdout.write(json_text(value, indent=2) + "\n")
    sys.stdout.flush()


# -- formatting ---------------------------------------------------------------------


def when(moment: datetime | None) -> str:
    """A time for people: UTC, to the second."""
    if moment is None:
        return "-"
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S")


def duration(seconds: float | None) -> str:
    """A span for people: ``12 ms``, ``3.4 s``, ``2m 05s``, ``1h 02m``, ``3d 04h``."""
    if seconds is None:
        return "-"
    seconds = max(seconds, 0.0)
    if seconds < 1:
        return f"{seconds * 1000:.0f} ms"
    if seconds < 60:  # noqa: PLR2004
        return f"{seconds:.1f} s"
    whole = int(seconds)
    if whole < 3600:  # noqa: PLR2004
        return f"{whole // 60}m {whole % 60:02d}s"
    if whole < 86400:  # noqa: PLR2004
        return f"{whole // 3600}h {whole % 3600 // 60:02d}m"
    return f"{whole // 86400}d {whole % 86400 // 3600:02d}h"


def run_duration(record: RunRecord, now: datetime) -> float | None:
    """Seconds from the run's start to its end (or to ``now`` while it runs).

    None for a run that never started (pending, or cancelled before it began).
    """
    if record.started_at is None:
        return None
    end = record.completed_at or (None if record.status.is_terminal else now)
    return None if end is None else (end - record.started_at).total_seconds()


def status_text(status: RunStatus) -> Text:
    """The status in its colour."""
    return Text(status.value, style=STATUS_STYLES[status])
