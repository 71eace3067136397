"""The web dashboard's files: HTML pages, a style sheet, hand-written JavaScript.

They ship inside the package and are read with `importlib.resources`, so the dashboard
works offline and needs no build step: nothing is fetched from anywhere at run time.
`perdure.http.create_app` serves them (pages under ``/``, files under ``/static/``)
next to the JSON API the scripts call.

- ``pages/``: ``runs.html`` (the runs list), ``run.html`` (one run), ``metrics.html``
  (charts of ``GET /stats``), ``schedules.html`` (next fire times, last runs),
  ``login.html``;
  ``{{name}}`` marks a value filled in, HTML-escaped, when a page is served;
- ``static/``: ``dashboard.css``, ``dashboard.js`` (helpers both pages import),
  ``runs.js``, ``run.js`` (and ``streams.js``, ``streams.css``: the run's durable
  streams, live), ``metrics.js``, ``schedules.js``, ``login.js`` (signs in from a
  ``/login#token=`` link), ``favicon.svg``; ``uplot.esm.js`` and ``uplot.min.css``:
  uPlot 1.6.31, the Metrics page's charts, vendored unchanged (``uplot.LICENSE``).
"""

from __future__ import annotations

import hashlib
import html
import re
from dataclasses import dataclass
from functools import cache
from importlib import resources

__all__ = ["Asset", "asset", "page"]

_TYPES = {
    ".css": "text/css; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".svg": "image/svg+xml",
}

_PLACEHOLDER = re.compile(r"\{\{(\w+)\}\}")


@dataclass(frozen=True, slots=True)
class Asset:
    """A static file: its bytes, media type and entity tag."""

    body: bytes
    media_type: str
    etag: str


@cache
def _static() -> dict[str, Asset]:
    found: dict[str, Asset] = {}
    for entry in (resources.files(__name__) / "static").iterdir():
        suffix = "." + entry.name.rpartition(".")[2]
        if entry.is_file() and suffix in _TYPES:
            body = entry.read_bytes()
            etag = '"' + hashlib.sha256(body).hexdigest()[:20] + '"'
            found[entry.name] = Asset(body, _TYPES[suffix], etag)
    return found


def asset(name: str) -> Asset | None:
    """The static file called ``name`` (no folders), or None."""
    return _static().get(name)


@cache
def _template(name: str) -> str:
    return (resources.files(__name__) / "pages" / name).read_text(encoding="utf-8")


def page(name: str, **values: str) -> str:
    """The page ``name`` with each ``{{key}}`` replaced by ``values[key]``, HTML-escaped.

    Raises:
        KeyError: the page holds a placeholder that ``values`` does not fill.
    """
    return _PLACEHOLDER.sub(lambda m: html.escape(values[m.group(1)]), _template(name))
