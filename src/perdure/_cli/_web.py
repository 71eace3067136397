"""``perdure web``: the web dashboard and the HTTP API, served with uvicorn.

The app protects itself (`perdure.http`: tokens, cross-site requests, the Host header,
body size and time, credentials kept out of webhook requests); this command adds what
belongs to the server (`perdure._cli._uvicorn`): connection limits, a deadline for each
request's head, and tokens kept out of the access log.
"""

from __future__ import annotations

import contextlib
import ipaddress
import logging
import os
import secrets
import socket
from typing import TYPE_CHECKING, Annotated

import typer
import uvicorn

from perdure._cli._common import (
    USAGE,
    CliError,
    DatabaseUrl,
    Modules,
    database_error,
    import_modules,
    reporting,
    resolve_url,
    run,
    shown_url,
)
from perdure._cli._output import out
from perdure._cli._uvicorn import LIMITS, HeadTimeoutProtocol, RedactTokens, Server
from perdure._engine import Engine
from perdure._workflow import registered_workflows
from perdure.http import create_app

if TYPE_CHECKING:
    from starlette.types import ASGIApp

__all__ = ["server_config", "web"]

_LOOPBACK_NAMES = ("localhost", "127.0.0.1", "::1")


def web(
    host: Annotated[str, typer.Option(help="The address to listen on.")] = "127.0.0.1",
    port: Annotated[
        int, typer.Option(min=0, max=65535, help="The port to listen on (0: any free one).")
    ] = 8000,
    modules: Modules = None,
    verbose: Annotated[
        bool, typer.Option("--verbose", "-v", help="Log every request (INFO level).")
    ] = False,
    secret_headers: Annotated[
        list[str] | None,
        typer.Option(
            "--secret-header",
            metavar="NAME",
            show_default=False,
            help="A request header never stored with a webhook's request (repeatable), "
            "besides Authorization, Cookie and Proxy-Authorization.",
        ),
    ] = None,
    database_url: DatabaseUrl = None,
) -> None:
    """Serve the web dashboard and the HTTP API until SIGTERM or Ctrl-C.

    The dashboard lists runs and shows each one's timeline; it cancels, reruns and
    resumes hooks. Runs are executed by workers (`perdure worker`), not by this server.
    --module makes workflows and hooks known here: payloads are then checked against
    the hook's schema, and reruns record the latest code's version.

    With $PERDURE_API_TOKEN set, the API needs it as a bearer token and browsers sign in
    with it. Without it, the dashboard is open on a loopback address (the default), to
    requests naming this machine (the Host header); on any other address a token is
    made up for the session and the sign-in link printed.
    """
    logging.basicConfig(
        level=logging.INFO if verbose else logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    url = resolve_url(database_url)
    with reporting():
        import_modules(modules or [])
        listener = _listen(host, port)
    token = os.environ.get("PERDURE_API_TOKEN") or None
    made_up = token is None and not _is_loopback(host)
    if made_up:
        token = secrets.token_urlsafe(24)
    try:
        run(
            _serve(
                url,
                listener,
                token,
                made_up=made_up,
                verbose=verbose,
                secret_headers=secret_headers or [],
            )
        )
    finally:
        listener.close()


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _listen(host: str, port: int) -> socket.socket:
    """A socket bound to ``host:port``, or a `CliError` saying why it cannot be."""
    try:
        found = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror as exc:
        raise CliError(f"cannot listen on {host}:{port}: {exc.strerror}", USAGE) from None
    family, kind, proto, _, address = found[0]
    listener = socket.socket(family, kind, proto)
    try:
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(address)
        listener.listen(128)
    except OSError as exc:
        listener.close()
        raise CliError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None
    return listener


def server_config(app: ASGIApp, *, verbose: bool) -> uvicorn.Config:
    """How uvicorn serves ``app``: its limits, the request-head deadline, a quiet log."""
    access = logging.getLogger("uvicorn.access")
    if not any(isinstance(f, RedactTokens) for f in access.filters):
        access.addFilter(RedactTokens())
    return uvicorn.Config(
        app,
        log_config=None,
        access_log=verbose,
        lifespan="off",
        server_header=False,
        http=HeadTimeoutProtocol,
        **LIMITS,
    )


def _address(listener: socket.socket) -> str:
    host, port = listener.getsockname()[:2]
    shown = f"[{host}]" if ":" in host else host
    return f"http://{shown}:{port}"


async def _serve(
    url: str,
    listener: socket.socket,
    token: str | None,
    *,
    made_up: bool,
    verbose: bool,
    secret_headers: list[str],
) -> None:
    async with contextlib.AsyncExitStack() as stack:
        try:
            engine = await stack.enter_async_context(Engine(url, worker=False))
        except Exception as exc:
            raise database_error(url, exc) from None
        # Open (no token) only on loopback: this machine's names and the address it
        # listens on; with a token, any name (the app's default).
        hosts = [*_LOOPBACK_NAMES, listener.getsockname()[0]] if token is None else None
        app = create_app(engine, token=token, allowed_hosts=hosts, secret_headers=secret_headers)
        server = Server(server_config(app, verbose=verbose))
        address = _address(listener)
        known = sorted(registered_workflows())
        out().print(
            f"perdure dashboard on {address}/ (database {shown_url(url)}; "
            + (f"workflows: {', '.join(known)}" if known else "no --module")
            + "). Ctrl-C or SIGTERM stops it.",
            soft_wrap=True,
        )
        if made_up:
            # After '#', which browsers never send: the token reaches no access log,
            # ours or a proxy's; the sign-in page's script posts it.
            out().print(
                f"sign in at {address}/login#token={token} (a token made up for this "
                "session: set $PERDURE_API_TOKEN to choose one)",
                soft_wrap=True,
            )
        elif token is not None:
            out().print("sign in with the token in $PERDURE_API_TOKEN", soft_wrap=True)
        await server.serve(sockets=[listener])
    out().print("perdure web stopped", soft_wrap=True)
