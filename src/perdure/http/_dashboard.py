"""The web dashboard's pages, files and browser sign-in, served by `create_app`.

- ``GET /``: the runs list; ``GET /runs/{id}`` with ``Accept: text/html`` (a browser
  following a link): the run's page; ``GET /stats`` likewise: the Metrics page. The
  same URLs answer JSON to everyone else.
- ``GET /static/{name}``: the style sheet, scripts and icon (`perdure.web`).
- ``GET|POST /login``, ``POST /logout``: signing in, when the app has a token.

The pages are static shells; their scripts read and steer runs through the JSON API.

Signing in. With a token, a browser signs in once at ``/login``: a form, or a link.
``/login#token=...`` (what ``perdure web`` prints) keeps the token after ``#``, which
browsers never send: the page's script posts it with the form, so it reaches no
access log, ours or a proxy's. ``/login?token=...`` works too, answered with a
redirect to a URL without the token (``perdure web`` keeps it out of its access log).
Each sets an HttpOnly, SameSite=Lax session cookie that holds an HMAC of the token,
never the token itself, and that stops working when the token changes. The API accepts
the cookie instead of the bearer token only on requests that carry the
``X-Perdure-Dashboard`` header: the dashboard's scripts send it, and a page on another
site cannot (a custom header needs a CORS preflight, which this app never grants), so
other sites cannot use a signed-in browser's cookie (CSRF).

Without a token the API is open, meant for a dashboard on localhost. Then requests
that change something are refused when a browser says they come from another site
(``Sec-Fetch-Site``, else ``Origin``): a page elsewhere cannot cancel runs or resume
hooks through the visitor's browser, and the app answers only requests naming this
machine in their Host header (`perdure.http._guard`), against DNS rebinding.
"""

from __future__ import annotations

import hashlib
import hmac
from typing import TYPE_CHECKING
from urllib.parse import parse_qs, quote, urlsplit

from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.routing import Route

from perdure import web

if TYPE_CHECKING:
    from starlette.requests import Request

__all__ = [
    "DASHBOARD_HEADER",
    "SESSION_COOKIE",
    "Dashboard",
    "cross_site",
    "session_problem",
    "wants_html",
]

SESSION_COOKIE = "perdure_session"
DASHBOARD_HEADER = "x-perdure-dashboard"

_MAX_FORM = 16_384
"""The largest sign-in form body read, in bytes."""

_SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})

_SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'none'; script-src 'self'; style-src 'self'; "
    "img-src 'self'; connect-src 'self'; form-action 'self'; frame-ancestors 'none'; "
    "base-uri 'none'",
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
}


def session_value(token: str) -> str:
    """The session cookie's value for ``token``: an HMAC of it, not the token."""
    return hmac.new(token.encode(), b"perdure dashboard session 1", hashlib.sha256).hexdigest()


def _has_session(request: Request, token: str) -> bool:
    cookie = request.cookies.get(SESSION_COOKIE)
    return cookie is not None and hmac.compare_digest(
        cookie.encode(), session_value(token).encode()
    )


def session_problem(request: Request, token: str) -> tuple[int, str] | None:
    """Why the session cookie does not authorize this API request (None: it does).

    Called for requests that carry the cookie and no Authorization header.
    """
    if not _has_session(request, token):
        return 401, "the dashboard session is not valid (the token changed?); sign in again"
    if DASHBOARD_HEADER not in request.headers:
        return 403, (
            "the dashboard session cookie is accepted only with the X-Perdure-Dashboard "
            "header; other clients send Authorization: Bearer <token>"
        )
    return None


def cross_site(request: Request) -> str | None:
    """Why a request to the open API (no token) is refused as cross-site (None: it is not).

    Only requests that change something are checked, and only browsers say where a
    request comes from: other clients pass.
    """
    if request.method in _SAFE_METHODS:
        return None
    site = request.headers.get("sec-fetch-site")
    if site is not None:
        if site in ("same-origin", "none"):
            return None
        return f"a {site} browser request was refused"
    origin = request.headers.get("origin")
    if origin is None:
        return None
    if origin != "null" and urlsplit(origin).netloc == request.headers.get("host"):
        return None
    return f"a browser request from origin {origin!r} was refused"


def wants_html(request: Request) -> bool:
    """Whether the client prefers HTML to JSON (a browser navigating, not a script)."""
    quality: dict[str, float] = {}
    for part in request.headers.get("accept", "").split(","):
        media, *params = (piece.strip() for piece in part.split(";"))
        weight = 1.0
        for param in params:
            name, _, value = param.partition("=")
            if name.strip() == "q":
                try:
                    weight = float(value)
                except ValueError:
                    weight = 0.0
        quality[media.lower()] = max(weight, quality.get(media.lower(), 0.0))
    html = quality.get("text/html", 0.0)
    return html > 0 and html >= quality.get("application/json", 0.0)


def _base(request: Request) -> str:
    """The path the app is mounted at ('' at the root), for links in pages."""
    root: str = request.scope.get("root_path", "")
    return root.rstrip("/")


def _local_path(request: Request) -> str:
    """The request's path and query inside the app (without the mount prefix)."""
    base = _base(request)
    path = request.url.path
    if base and path.startswith(base):
        path = path[len(base) :]
    return (path or "/") + (f"?{request.url.query}" if request.url.query else "")


def _safe_next(value: str | None) -> str:
    """A path inside the app to go to after signing in: never another site."""
    if (
        not value
        or not value.startswith("/")
        or value.startswith("//")
        or "\\" in value
        or not value.isprintable()
    ):
        return "/"
    return value


def _page(body: str, status: int = 200) -> HTMLResponse:
    headers = {**_SECURITY_HEADERS, "Cache-Control": "no-store", "Vary": "Accept, Cookie"}
    return HTMLResponse(body, status, headers)


class Dashboard:
    """The dashboard's routes, for an app with this token (None: open)."""

    def __init__(self, token: str | None) -> None:
        self.token = token

    def signed_in(self, request: Request) -> bool:
        """Whether the browser may see the pages: no token, or a valid session cookie."""
        return self.token is None or _has_session(request, self.token)

    def routes(self) -> list[Route]:
        """``/``, ``/login``, ``/logout`` and ``/static/{name}`` (the run page is negotiated)."""
        return [
            Route("/", self.runs_page, methods=["GET"]),
            Route("/login", self.login, methods=["GET", "POST"]),
            Route("/logout", self.logout, methods=["POST"]),
            Route("/static/{name}", self.static, methods=["GET"]),
        ]

    def _show(self, request: Request, name: str, **values: str) -> Response:
        """The page, or a redirect to the sign-in form for a browser not signed in."""
        base = _base(request)
        if not self.signed_in(request):
            next_path = quote(_local_path(request), safe="/")
            return RedirectResponse(f"{base}/login?next={next_path}", 303)
        auth = "1" if self.token is not None else ""
        return _page(web.page(name, base=base, auth=auth, **values))

    async def runs_page(self, request: Request) -> Response:
        """The runs list."""
        return self._show(request, "runs.html")

    async def metrics_page(self, request: Request) -> Response:
        """The Metrics page: charts and tables of ``GET /stats`` (its script reads it)."""
        return self._show(request, "metrics.html")

    async def schedules_page(self, request: Request) -> Response:
        """The Schedules page: next fire times and last runs (its script reads the API)."""
        return self._show(request, "schedules.html")

    async def run_page(self, request: Request) -> Response:
        """One run's page (its script looks the run up)."""
        return self._show(request, "run.html", run_id=request.path_params["run_id"])

    # -- signing in ---------------------------------------------------------------------

    async def login(self, request: Request) -> Response:
        """The sign-in form; a right token (form or ``?token=``) sets the session cookie."""
        base = _base(request)
        if self.token is None:
            return RedirectResponse(f"{base}/", 303)
        if request.method == "POST":
            form = await _read_form(request)
            given, next_path = form.get("token"), _safe_next(form.get("next"))
        else:
            given = request.query_params.get("token")
            next_path = _safe_next(request.query_params.get("next"))
        if given is None and self.signed_in(request):
            return RedirectResponse(f"{base}{next_path}", 303)
        if given is not None and hmac.compare_digest(given.encode(), self.token.encode()):
            # A redirect, so the token leaves the address bar and the history at once.
            response = RedirectResponse(f"{base}{next_path}", 303)
            response.set_cookie(
                SESSION_COOKIE,
                session_value(self.token),
                path=f"{base}/",
                secure=request.url.scheme == "https",
                httponly=True,
                samesite="lax",
            )
            return response
        error = "" if given is None else "That is not the API token."
        body = web.page("login.html", base=base, next=next_path, error=error)
        return _page(body, 200 if given is None else 403)

    async def logout(self, request: Request) -> Response:
        """Forget the session cookie."""
        base = _base(request)
        target = f"{base}/login" if self.token is not None else f"{base}/"
        response = RedirectResponse(target, 303)
        response.delete_cookie(SESSION_COOKIE, path=f"{base}/", httponly=True, samesite="lax")
        return response

    # -- files -------------------------------------------------------------------------

    async def static(self, request: Request) -> Response:
        """A file of the dashboard, revalidated by its entity tag."""
        found = web.asset(request.path_params["name"])
        if found is None:
            return Response(b'{"error":"no such file"}', 404, media_type="application/json")
        headers = {
            "ETag": found.etag,
            "Cache-Control": "no-cache",
            "X-Content-Type-Options": "nosniff",
        }
        if request.headers.get("if-none-match") == found.etag:
            return Response(None, 304, headers)
        return Response(found.body, 200, headers, media_type=found.media_type)


async def _read_form(request: Request) -> dict[str, str]:
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > _MAX_FORM:
            return {}
    fields = parse_qs(body.decode("utf-8", "replace"), keep_blank_values=True)
    return {name: values[0] for name, values in fields.items() if values}
